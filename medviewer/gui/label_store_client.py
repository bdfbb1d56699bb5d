"""The label store worker: every label store call of the GUI runs on ONE thread, in order.

:class:`StoreClient` queues calls (``call(store) -> value``) from the GUI thread and hands
each reply back on the GUI thread; :func:`serve_store_calls` is the job that runs them on its
worker. Why one worker and not the GUI thread: a commit is one fsync (p99 about 22 ms on the
development machine, far more on a network share or a busy disk), and the GUI thread must
never wait on a disk; one thread keeps the reader's actions in order, so rapid keys
(1, 2, N, 1...) commit exactly as pressed. On shutdown, calls already asked for are finished
before the thread stops.

:func:`decide_label` and :func:`press_class_key` are the label writes the panel queues: they
run on that thread, so reading the reader's current decision and writing the new one happen
in order with every other call.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from medviewer.errors import UserError
from medviewer.gui.lazy import LazyModule
from medviewer.gui.workers import JobWorker
from medviewer.jobs import CancelFlag

if TYPE_CHECKING:
    from medviewer.labels import store as store_module
    from medviewer.labels.store import ImageLabel, ImageRef, LabelStore
else:  # the store (sqlite3) loads on first use, not at start-up
    store_module = LazyModule("medviewer.labels.store")

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- the store thread


@dataclass(frozen=True)
class StoreReply:
    request_id: int
    value: Any = None
    error: str | None = None  # one sentence for the user; None when the call returned


_STOP = object()


def serve_store_calls(open_store: Callable[[], LabelStore], requests: queue.Queue,
                      drained: threading.Event, cancel: CancelFlag):
    """Job: run store calls one at a time, in the order asked, until ``_STOP`` is queued.

    Each request is ``(request_id, call)``; ``call(store)`` runs on this thread and a
    :class:`StoreReply` is yielded with its return value or its one-sentence error. The store
    is opened at the first request (and again after a failed open). Calls queued before the
    stop request are all run: a label the reader gave is never dropped at close. ``cancel``
    only ends an idle loop.
    """
    store: LabelStore | None = None
    try:
        while True:
            try:
                request = requests.get(timeout=0.1)
            except queue.Empty:
                if cancel.cancelled:
                    return
                continue
            if request is _STOP:
                return
            request_id, call = request
            try:
                if store is None:
                    store = open_store()
                value = call(store)
            except UserError as exc:
                yield StoreReply(request_id, error=str(exc))
            except OSError as exc:
                from medviewer.files import os_error_reason

                where = f" ({exc.filename})" if exc.filename else ""
                yield StoreReply(request_id, error=f"The label store could not be used: "
                                                   f"{os_error_reason(exc)}{where}.")
            except Exception as exc:  # a bug: one sentence for the reader, the traceback to the log
                from medviewer.error_log import unexpected_error_sentence

                yield StoreReply(request_id, error=unexpected_error_sentence(
                    exc, "saving to the label store (nothing was saved)"))
            else:
                yield StoreReply(request_id, value)
    finally:
        if store is not None:
            store.close()
        drained.set()


class StoreClient(QObject):
    """Runs label store calls on one worker thread and calls back on the GUI thread."""

    idle = Signal()  # no call is waiting for its reply any more

    def __init__(self, path: Path | None, reader: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._path = Path(path) if path is not None else None
        self.reader = reader
        self._requests: queue.Queue = queue.Queue()
        self._callbacks: dict[int, tuple[Callable | None, Callable | None]] = {}
        self._next_id = 0
        self._worker: JobWorker | None = None
        self._drained = threading.Event()

    def call(self, call: Callable[[LabelStore], Any],
             on_done: Callable[[Any], None] | None = None,
             on_error: Callable[[str], None] | None = None) -> int:
        """Queue ``call(store)``; ``on_done(value)`` or ``on_error(sentence)`` follows."""
        self._ensure_worker()
        self._next_id += 1
        self._callbacks[self._next_id] = (on_done, on_error)
        self._requests.put((self._next_id, call))
        return self._next_id

    @property
    def path(self) -> Path:
        """The store file (default: the user's); resolved on first use, not at start-up."""
        if self._path is None:
            self._path = store_module.default_store_path()
        return self._path

    @path.setter
    def path(self, value: Path) -> None:
        self._path = Path(value)

    @property
    def pending(self) -> int:
        return len(self._callbacks)

    @property
    def running(self) -> bool:
        return self._worker is not None

    def _ensure_worker(self) -> None:
        if self._worker is not None:
            return
        requests, drained = self._requests, threading.Event()
        self._drained = drained
        worker = JobWorker(
            lambda cancel: serve_store_calls(self._open_store, requests, drained, cancel),
            "saving labels", progress_per_second=0)
        worker.event.connect(self._on_reply)
        self._worker = worker
        worker.start()

    def _open_store(self) -> LabelStore:  # on the worker thread
        try:
            return store_module.LabelStore(self.path, reader=self.reader)
        except OSError as exc:  # e.g. its folder cannot be created
            from medviewer.labels.errors import StoreUnavailableError

            where = Path(exc.filename) if exc.filename else None
            reason = (exc.strerror or str(exc)).rstrip(".")
            if isinstance(exc, (FileExistsError, NotADirectoryError)) and where is not None:
                reason = f"{where} is a file, not a folder"
            elif where is not None and where != self.path:
                reason = f"{reason.lower()} ({where})"
            raise StoreUnavailableError(f"Cannot open the label store {self.path}: "
                                        f"{reason}.") from None

    def _on_reply(self, reply: object) -> None:
        if not isinstance(reply, StoreReply):
            return
        on_done, on_error = self._callbacks.pop(reply.request_id, (None, None))
        try:
            if reply.error is None:
                if on_done is not None:
                    on_done(reply.value)
            elif on_error is not None:
                on_error(reply.error)
            else:
                log.warning("Label store call failed: %s", reply.error)
        finally:
            if not self._callbacks:
                self.idle.emit()

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Run every call already asked for, then stop the thread (close handlers, tests).

        Blocks the calling thread until then: only for closing. False if it timed out.
        """
        worker = self._worker
        if worker is None:
            return True
        self._requests.put(_STOP)
        finished = self._drained.wait(timeout_ms / 1000)
        worker.wait(timeout_ms)
        self._worker = None
        self._requests = queue.Queue()
        if not finished:
            log.warning("The label store thread did not finish its calls in %d ms", timeout_ms)
        return finished


# ---------------------------------------------------------------- writes (on the store thread)


def decide_label(store: LabelStore, set_name: str, image: ImageRef, reader: str,
                 classes: tuple[str, ...], ai: tuple[str, ...] | None) -> ImageLabel | None:
    """Make ``classes`` the reader's decision (None/empty clears it), keeping the note.

    The source follows the AI suggestion the reader saw (or the one stored with the earlier
    decision): equal -> ai_accepted, different -> ai_overridden, none -> manual.
    """
    current = store.label_for(set_name, image.key, reader)
    if not classes:
        store.clear_label(set_name, image, reader=reader)
        return None
    if ai is None and current is not None:
        ai = current.ai_classes
    if ai is None:
        source = "manual"
    else:
        source = "ai_accepted" if set(classes) == set(ai) else "ai_overridden"
    return store.set_label(set_name, image, classes, reader=reader, source=source,
                           note=current.note if current is not None else None, ai_classes=ai)


def press_class_key(store: LabelStore, set_name: str, image: ImageRef, reader: str,
                    class_name: str, ai: tuple[str, ...] | None) -> ImageLabel | None:
    """A class key: single-label sets choose it, multi-label sets toggle it."""
    label_set = store.label_set(set_name)
    current = store.label_for(set_name, image.key, reader)
    have = list(current.classes) if current is not None else []
    if not label_set.multi_label:
        have = [class_name]
    elif class_name in have:
        have.remove(class_name)
    else:
        have.append(class_name)
    ordered = tuple(c for c in label_set.classes if c in have)
    return decide_label(store, set_name, image, reader, ordered, ai)

