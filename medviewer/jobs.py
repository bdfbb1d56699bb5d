"""Events and cancellation shared by every long job (indexing, inference, training, export).

A long job is a plain generator that yields these events, checks a :class:`CancelFlag`
between steps and returns its result; ``gui/workers.py`` runs such a generator on a thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

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
