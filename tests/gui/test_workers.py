"""The one worker pattern: a job generator on a QThread, events as queued signals."""

from __future__ import annotations

import threading

import pytest

from medviewer.errors import UserError
from medviewer.gui import workers
from medviewer.gui.workers import JobWorker
from medviewer.jobs import CancelFlag, Progress


class Marker:
    """A non-progress event; these are never throttled."""

    def __init__(self, value: int) -> None:
        self.value = value


def counting_job(n: int, cancel: CancelFlag):
    for i in range(n):
        cancel.raise_if_cancelled()
        yield Progress(i + 1, n, f"step {i + 1}")
        if i % 100 == 0:
            yield Marker(i)
    return "done"


def run_and_collect(qtbot, worker: JobWorker, end_signal) -> list:
    events: list = []
    worker.event.connect(events.append)
    with qtbot.waitSignal(worker.ended, timeout=10_000):
        with qtbot.waitSignal(end_signal, timeout=10_000):
            worker.start()
    return events


def test_result_arrives_and_progress_is_throttled(qtbot):
    worker = JobWorker(lambda cancel: counting_job(5000, cancel), "counting")
    results: list = []
    worker.finished.connect(results.append)
    events = run_and_collect(qtbot, worker, worker.finished)
    assert results == ["done"]
    progress = [e for e in events if isinstance(e, Progress)]
    markers = [e.value for e in events if isinstance(e, Marker)]
    assert markers == list(range(0, 5000, 100)), "non-progress events must all arrive, in order"
    assert progress[-1].done == 5000, "the last progress before the end is always delivered"
    # Throttled: besides a few per second, only a progress held back when a marker came.
    assert len(progress) < 50 + len(markers), f"{len(progress)} progress signals"
    assert [p.done for p in progress] == sorted(p.done for p in progress)
    # Events arrive in the order the job made them: no progress newer than a marker before it.
    for index, event in enumerate(events):
        if isinstance(event, Marker):
            before = [e.done for e in events[:index] if isinstance(e, Progress)]
            after = [e.done for e in events[index + 1:] if isinstance(e, Progress)]
            assert all(done <= event.value + 1 for done in before)
            assert all(done > event.value + 1 for done in after)
    assert not worker.is_running()


def test_user_error_becomes_its_own_sentence(qtbot):
    def job(cancel):
        yield Progress(0, 1)
        raise UserError("Cannot open x.dcm: the file is empty.")

    worker = JobWorker(job, "opening x")
    messages: list[str] = []
    worker.failed.connect(messages.append)
    run_and_collect(qtbot, worker, worker.failed)
    assert messages == ["Cannot open x.dcm: the file is empty."]


def test_bug_becomes_generic_sentence_and_logged_traceback(qtbot, isolated_home):
    def job(cancel):
        yield Progress(0, 1)
        raise ValueError("internal detail 1234")

    worker = JobWorker(job, "indexing the folder")
    messages: list[str] = []
    worker.failed.connect(messages.append)
    run_and_collect(qtbot, worker, worker.failed)
    assert len(messages) == 1
    assert "indexing the folder" in messages[0]
    assert "1234" not in messages[0] and "Traceback" not in messages[0]
    log_file = isolated_home / "logs" / "medviewer.log"
    assert str(log_file) in messages[0]  # the sentence names the file with the traceback
    assert "internal detail 1234" in log_file.read_text()


def endless_job(started: threading.Event, cancel: CancelFlag):
    step = 0
    while True:
        cancel.raise_if_cancelled()
        step += 1
        yield Marker(step)
        started.set()
        cancel._event.wait(0.005)  # worker thread only: a slow step that wakes on cancel


def test_cancel_stops_the_job_and_reports_cancelled(qtbot):
    started = threading.Event()
    worker = JobWorker(lambda cancel: endless_job(started, cancel), "waiting")
    finished: list = []
    worker.finished.connect(finished.append)
    with qtbot.waitSignal(worker.event, timeout=5_000):
        worker.start()
    assert worker.is_running()
    assert worker in workers.running_workers()
    with qtbot.waitSignal(worker.cancelled, timeout=5_000):
        worker.cancel()
    assert finished == []
    assert not worker.is_running()


def test_job_that_ignores_the_flag_still_ends_as_cancelled(qtbot):
    gate = threading.Event()

    def job(cancel):
        yield Progress(0, 1)
        gate.wait(5)  # never looks at the flag
        return "late result"

    worker = JobWorker(job, "ignoring cancel")
    finished: list = []
    worker.finished.connect(finished.append)
    with qtbot.waitSignal(worker.event, timeout=5_000):
        worker.start()
    worker.cancel()
    gate.set()
    with qtbot.waitSignal(worker.cancelled, timeout=5_000):
        pass
    assert finished == []


def test_wait_cancels_and_joins_a_running_job(qtbot):
    started = threading.Event()
    worker = JobWorker(lambda cancel: endless_job(started, cancel), "waiting")
    worker.start()
    assert started.wait(5)
    assert worker.wait(5_000) is True
    assert not worker.is_running()
    assert workers.running_workers() == []
    # The outcome still arrives (queued) once the event loop runs.
    with qtbot.waitSignal(worker.ended, timeout=5_000):
        pass


def test_running_workers_sees_a_thread_left_running(qtbot):
    """What the autouse fixture relies on to fail tests that leave a thread behind."""
    started = threading.Event()
    worker = JobWorker(lambda cancel: endless_job(started, cancel), "left running")
    worker.start()
    assert started.wait(5)
    try:
        assert [w.description for w in workers.running_workers()] == ["left running"]
    finally:
        worker.wait(5_000)
    assert workers.wait_for_all() is True


@pytest.mark.parametrize("factory_error", [UserError("Cannot open y: no such file."), KeyError("k")])
def test_errors_raised_while_creating_the_job_are_reported(qtbot, factory_error):
    def factory(cancel):
        raise factory_error

    worker = JobWorker(factory, "starting")
    messages: list[str] = []
    worker.failed.connect(messages.append)
    run_and_collect(qtbot, worker, worker.failed)
    assert len(messages) == 1
    if isinstance(factory_error, UserError):
        assert messages == ["Cannot open y: no such file."]
    else:
        assert "starting" in messages[0]


def test_progress_held_back_is_not_delivered_after_a_later_event(qtbot):
    def job(cancel: CancelFlag):
        yield Progress(1, 2, "first")  # delivered at once
        yield Progress(2, 2, "second")  # held back by the throttle
        yield Marker(99)  # e.g. EpochEnd: the GUI must see 'second' before it
        return "done"

    worker = JobWorker(job, "ordering")
    events = run_and_collect(qtbot, worker, worker.finished)
    kinds = [e.done if isinstance(e, Progress) else "marker" for e in events]
    assert kinds == [1, 2, "marker"]
