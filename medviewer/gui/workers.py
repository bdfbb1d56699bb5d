"""The one way the GUI runs long work: a job generator on a QThread, events as queued signals.

A job is a plain generator from a Qt-free module (see :mod:`medviewer.jobs`): it yields
events (``Progress`` or anything else), checks a :class:`CancelFlag` between steps and
``return``s its result. :class:`JobWorker` runs it on its own ``QThread`` and turns what
happens into signals delivered on the GUI thread:

- ``event(object)``: every yielded event; ``Progress`` events are throttled to a few per
  second (the last one before the end is always delivered),
- ``finished(object)``: the job's return value,
- ``failed(str)``: one sentence for the user (a ``UserError``'s own sentence, or one for a
  bug naming the log file that holds its traceback: ``medviewer.error_log``),
- ``cancelled()``: the job stopped because :meth:`JobWorker.cancel` was called,
- ``ended()``: after any of the three above, once the thread has stopped.

The widget that starts a worker owns it, offers Cancel and calls :meth:`JobWorker.wait`
from its close handler. Nothing here blocks the GUI thread except that close-time wait.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal

from medviewer.errors import UserError
from medviewer.jobs import CancelFlag, JobCancelled, Progress

log = logging.getLogger(__name__)

# At most this many Progress signals per second reach the GUI.
PROGRESS_SIGNALS_PER_SECOND = 5

JobFactory = Callable[[CancelFlag], Generator[Any, None, Any]]

# Workers whose thread has started and not yet stopped. Holding them here keeps a running
# QThread alive even if its owner dropped it, and lets tests check nothing is left running.
_running: set["JobWorker"] = set()


def running_workers() -> list["JobWorker"]:
    """Workers whose thread is still running (tests assert this is empty afterwards)."""
    return [worker for worker in _running if worker.is_running()]


class _JobThread(QThread):
    """Drives the generator; its signals are emitted from the worker thread (queued to GUI)."""

    event = Signal(object)
    result = Signal(object)
    failure = Signal(str)
    stopped_by_cancel = Signal()

    def __init__(self, factory: JobFactory, cancel_flag: CancelFlag, description: str,
                 throttle_s: float) -> None:
        super().__init__()
        self._factory = factory
        self._cancel_flag = cancel_flag
        self._description = description
        self._throttle_s = throttle_s

    def run(self) -> None:  # runs on the worker thread
        pending: Progress | None = None
        last_emit = 0.0
        job = None
        try:
            job = self._factory(self._cancel_flag)
            while True:
                if self._cancel_flag.cancelled:
                    job.close()
                    self.stopped_by_cancel.emit()
                    return
                try:
                    item = next(job)
                except StopIteration as stop:
                    if self._cancel_flag.cancelled:
                        self.stopped_by_cancel.emit()
                        return
                    if pending is not None:
                        self.event.emit(pending)
                    self.result.emit(stop.value)
                    return
                if isinstance(item, Progress):
                    now = time.monotonic()
                    if now - last_emit >= self._throttle_s:
                        self.event.emit(item)
                        last_emit, pending = now, None
                    else:
                        pending = item
                else:
                    # A held Progress goes first so events keep the order they were made in.
                    if pending is not None:
                        self.event.emit(pending)
                        pending = None
                    self.event.emit(item)
        except JobCancelled:
            self.stopped_by_cancel.emit()
        except UserError as exc:
            self.failure.emit(str(exc))
        except Exception as exc:  # a bug: the user gets one sentence, the log file the traceback
            from medviewer.error_log import unexpected_error_sentence

            self.failure.emit(unexpected_error_sentence(exc, self._description))
        finally:
            if job is not None:
                job.close()


class JobWorker(QObject):
    """Runs one job generator on its own thread; create, connect, then :meth:`start`.

    ``factory(cancel_flag)`` must return the generator; it is called on the worker thread,
    so even the job's set-up work stays off the GUI thread. Keep a Python reference to the
    worker rather than giving it a Qt parent: a parent deleted while the job runs would take
    the worker with it. A running worker is kept alive by this module until it ends.
    """

    event = Signal(object)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    ended = Signal()

    def __init__(self, factory: JobFactory, description: str,
                 parent: QObject | None = None,
                 progress_per_second: float = PROGRESS_SIGNALS_PER_SECOND) -> None:
        super().__init__(parent)
        self.description = description
        self.cancel_flag = CancelFlag()
        self._thread = _JobThread(factory, self.cancel_flag, description,
                                  1.0 / progress_per_second if progress_per_second > 0 else 0.0)
        # The thread object lives on the GUI thread, so these connections are queued.
        self._thread.event.connect(self.event)
        self._thread.result.connect(self._on_result)
        self._thread.failure.connect(self._on_failure)
        self._thread.stopped_by_cancel.connect(self._on_cancelled)
        self._thread.finished.connect(self._on_thread_finished)
        self._outcome: tuple[str, Any] | None = None

    # -- control
    def start(self) -> None:
        _running.add(self)
        self._thread.start()

    def cancel(self) -> None:
        """Ask the job to stop at its next step; ``cancelled`` follows (queued)."""
        self.cancel_flag.cancel()

    def is_running(self) -> bool:
        return self._thread.isRunning()

    def wait(self, timeout_ms: int = 10_000) -> bool:
        """Cancel and wait for the thread to stop: only for close handlers and tests.

        Returns False if the job did not stop in time (it is logged).
        """
        self.cancel()
        if not self._thread.isRunning():
            return True
        stopped = self._thread.wait(timeout_ms)
        if not stopped:
            log.warning("Job '%s' did not stop within %d ms", self.description, timeout_ms)
        return stopped

    # -- outcome (queued from the worker thread, delivered on the GUI thread)
    def _on_result(self, value: Any) -> None:
        self._outcome = ("finished", value)

    def _on_failure(self, message: str) -> None:
        self._outcome = ("failed", message)

    def _on_cancelled(self) -> None:
        self._outcome = ("cancelled", None)

    def _on_thread_finished(self) -> None:
        # Deliver the outcome only now, so a handler may safely start a new job or delete us.
        _running.discard(self)
        outcome, value = self._outcome or ("cancelled", None)
        if outcome == "finished" and self.cancel_flag.cancelled:
            outcome = "cancelled"
        if outcome == "finished":
            self.finished.emit(value)
        elif outcome == "failed":
            self.failed.emit(value)
        else:
            self.cancelled.emit()
        self.ended.emit()


def wait_for_all(workers: list[JobWorker] | None = None, timeout_ms: int = 10_000) -> bool:
    """Cancel and wait for the given (default: every running) worker; for close handlers."""
    ok = True
    for worker in list(_running if workers is None else workers):
        ok = worker.wait(timeout_ms) and ok
    return ok
