"""Events and cancellation shared by every long job (indexing, inference, training, export).

A long job is a plain generator that yields these events, checks a :class:`CancelFlag`
between steps and returns its result; ``gui/workers.py`` runs such a generator on a thread.
A consumer of a job's events subclasses :class:`EventConsumer`, which hands each event to
its ``on_<type name in snake case>`` method.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    done: int
    total: int | None
    message: str = ""

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, self.done / self.total)


class JobCancelled(Exception):
    """Raised inside a job when its cancel flag is set; callers treat it as a normal end."""


class CancelFlag:
    """Thread-safe flag a GUI sets and a worker polls between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise JobCancelled()


def run_to_end(job: Generator[Any, None, T], on_event: Callable[[Any], None] | None = None) -> T:
    """Drive a job generator on the calling thread (CLI, tests) and return its result.

    Jobs yield events and ``return`` their result; ``gui/workers.py`` does the same on a thread.
    """
    while True:
        try:
            event = next(job)
        except StopIteration as stop:
            return stop.value
        if on_event is not None:
            on_event(event)


class EventConsumer:
    """Handles a job's events by type: a ``RunStarted`` event goes to ``on_run_started``.

    The one dispatcher for every consumer of job events (``medviewer train``'s printer, the
    training wizard's pages), so no consumer keeps its own isinstance chain. A type the
    consumer means to skip goes in ``ignored_events``; any other event without a handler is
    logged as a warning (once per consumer class and type) instead of vanishing, and
    :func:`unhandled_events` lets a test check a consumer against a job's list of types.
    """

    ignored_events: tuple[type, ...] = ()

    def dispatch(self, event: Any) -> None:
        handler = getattr(self, handler_name(type(event)), None)
        if handler is not None:
            handler(event)
        elif not isinstance(event, self.ignored_events):
            _warn_unhandled(type(self), type(event))


@functools.cache
def handler_name(event_type: type) -> str:
    """``on_`` and the type's name in snake case: ``EpochEnd`` -> ``on_epoch_end``."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_",
                   event_type.__name__)
    return "on_" + words.lower()


def unhandled_events(consumer: type[EventConsumer], event_types: Iterable[type]) -> list[type]:
    """The types among ``event_types`` that ``consumer`` neither handles nor ignores."""
    return [t for t in event_types if not callable(getattr(consumer, handler_name(t), None))
            and not issubclass(t, consumer.ignored_events)]


@functools.cache
def _warn_unhandled(consumer: type, event_type: type) -> None:
    log.warning("%s has no %s method: %s events are not shown", consumer.__name__,
                handler_name(event_type), event_type.__name__)
