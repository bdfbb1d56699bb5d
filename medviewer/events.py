"""Plain-Python events: how Qt-free state (the application session, the audit log's source,
the trainer) tells its subscribers that something happened.

An :class:`Emitter` is one kind of event. Subscribers are plain callables, called in the
order they connected, on the thread that emits (the GUI thread for the session; the GUI
bridges worker results to it through ``gui/workers.py``). A subscriber that raises does not
stop the others: every subscriber runs, then the first error is raised again, so a bug is
never silent and never leaves half the subscribers uninformed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
Callback = Callable[..., Any]


class Emitter(Generic[T]):
    """One kind of event; ``emit(value)`` calls every subscriber with ``value``."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._subscribers: list[Callback] = []
        self._blocked = 0
        self._lock = threading.Lock()

    def connect(self, callback: Callback) -> Callback:
        """Subscribe (once: connecting the same callable twice keeps one subscription)."""
        with self._lock:
            if callback not in self._subscribers:
                self._subscribers.append(callback)
        return callback

    def disconnect(self, callback: Callback | None = None) -> None:
        """Unsubscribe ``callback`` (every subscriber when None); unknown ones are ignored."""
        with self._lock:
            if callback is None:
                self._subscribers.clear()
            elif callback in self._subscribers:
                self._subscribers.remove(callback)

    def emit(self, *args: Any) -> None:
        if self._blocked:
            return
        with self._lock:
            subscribers = list(self._subscribers)
        first_error: BaseException | None = None
        for callback in subscribers:
            try:
                callback(*args)
            except Exception as exc:  # the others still hear of it; re-raised below
                log.exception("A subscriber of the '%s' event failed", self.name or "?")
                if first_error is None:
                    first_error = exc
        if first_error is not None:
            raise first_error

    @contextmanager
    def blocked(self) -> Iterator[None]:
        """No subscriber is called inside this block (e.g. while restoring saved state)."""
        self._blocked += 1
        try:
            yield
        finally:
            self._blocked -= 1

    def __len__(self) -> int:
        return len(self._subscribers)

    def __contains__(self, callback: object) -> bool:
        """Whether ``callback`` is subscribed."""
        return callback in self._subscribers

    def __repr__(self) -> str:
        return f"<Emitter {self.name or '?'} ({len(self)} subscribers)>"


class EventGroup:
    """A named set of emitters: ``EventGroup("opened", "closed")`` has ``.opened``, ``.closed``.

    Subclasses may declare the names as a class attribute ``names`` instead.
    """

    names: tuple[str, ...] = ()

    def __init__(self, *names: str) -> None:
        self._emitters: dict[str, Emitter] = {}
        for name in (*self.names, *names):
            emitter: Emitter = Emitter(name)
            self._emitters[name] = emitter
            setattr(self, name, emitter)

    def __iter__(self) -> Iterator[Emitter]:
        return iter(self._emitters.values())

    def disconnect_all(self, callback: Callback | None = None) -> None:
        """Remove ``callback`` (or every subscriber) from every emitter of the group."""
        for emitter in self._emitters.values():
            emitter.disconnect(callback)
