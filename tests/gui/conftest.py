"""GUI fixtures: offscreen Qt, pyqtgraph configured, and nothing a test started left behind.

Every GUI test fails if, once its fixtures have closed what they opened, it left running a
JobWorker or any other thread, a QThreadPool task or a QTimer, or left a top-level widget
alive: each of those outlives the test and fires (or is deleted) inside a later one, where
the crash points at the wrong test.
"""

from __future__ import annotations

import gc
import threading
import weakref
from pathlib import Path

import pydicom
import pytest
import shiboken6
from PySide6.QtCore import QEvent, QThreadPool, QTimer
from PySide6.QtWidgets import QApplication

from medviewer.gui import workers
from medviewer.gui.app import GuiThreadGarbageCollector, configure_pyqtgraph

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
PYDICOM_DATA = Path(pydicom.__file__).parent.parent / "data_store" / "data"


# Grace for threads that were told to stop when the test's fixtures closed.
THREAD_GRACE_S = 5.0


class _TimerWatch:
    """Remembers every QTimer started during a test (weakly), to find those still running."""

    def __init__(self) -> None:
        self.started: weakref.WeakSet[QTimer] = weakref.WeakSet()
        self._original = QTimer.start

    def __enter__(self) -> _TimerWatch:
        watch = self

        def start(timer: QTimer, *args) -> None:
            watch.started.add(timer)
            watch._original(timer, *args)

        QTimer.start = start
        return self

    def __exit__(self, *_exc) -> None:
        QTimer.start = self._original

    def running(self) -> list[str]:
        alive = [t for t in list(self.started) if shiboken6.isValid(t) and t.isActive()]
        return [f"{type(t.parent()).__name__ if t.parent() else 'no parent'}."
                f"{t.objectName() or 'QTimer'} every {t.interval()} ms" for t in alive]


def _python_threads() -> list[threading.Thread]:
    """Threads Python started (QThreads, which show up as dummy threads once they ran
    Python code, are the JobWorker check's)."""
    return [t for t in threading.enumerate() if not isinstance(t, threading._DummyThread)]


def _process_deletions() -> None:
    """Run the deleteLater()s the fixtures asked for, so what remains was really kept."""
    for _ in range(3):
        QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        QApplication.processEvents()


@pytest.fixture(autouse=True)
def nothing_left_behind(qapp):
    """Fails the test if, after its fixtures closed, a thread, a pool task, a running timer
    or a new top-level widget remains.

    The test runs under the app's garbage-collection regime (GUI thread only); what it left
    behind is collected afterwards, here, outside any Qt callback.
    """
    configure_pyqtgraph()
    collector = GuiThreadGarbageCollector()
    threads_before = set(_python_threads())
    widgets_before = {id(w) for w in QApplication.topLevelWidgets()}
    with _TimerWatch() as timers:
        yield
        leftover = workers.running_workers()
        for worker in leftover:
            worker.wait(5_000)
        _process_deletions()
        pool = QThreadPool.globalInstance()
        pool_busy = pool.activeThreadCount()
        pool.waitForDone(5_000)
        stray_threads = [t for t in _python_threads()
                         if t not in threads_before and t.is_alive()]
        for thread in stray_threads:
            thread.join(THREAD_GRACE_S / max(1, len(stray_threads)))
        stray_threads = [t.name for t in stray_threads if t.is_alive()]
        running_timers = timers.running()
        # Parentless widgets owned by Python objects (pyqtgraph's context menus) go with
        # their owners: collect those first, as the GUI-thread collector would.
        gc.collect()
        _process_deletions()
        new_widgets = [w for w in QApplication.topLevelWidgets()
                       if id(w) not in widgets_before and shiboken6.isValid(w)]
        widget_names = [f"{type(w).__name__}({w.objectName() or w.windowTitle()!r})"
                        for w in new_widgets]
        for widget in new_widgets:  # hidden, not deleted: Python may still hold them
            widget.hide()
    collector.stop()
    problems = []
    if leftover:
        problems.append(f"worker threads left running: {[w.description for w in leftover]}")
    if stray_threads:
        problems.append(f"threads left running: {stray_threads}")
    if pool_busy:
        problems.append(f"{pool_busy} QThreadPool task(s) left running")
    if running_timers:
        problems.append(f"timers left running: {running_timers}")
    if widget_names:
        problems.append(f"top-level widgets left open: {widget_names}")
    assert not problems, "; ".join(problems)


def pydicom_file(name: str) -> Path:
    path = PYDICOM_FILES / name
    if not path.is_file():
        pytest.fail(f"pydicom test file {name} is missing from {PYDICOM_FILES}")
    return path


def pydicom_data_file(name: str) -> Path:
    path = PYDICOM_DATA / name
    if not path.is_file():
        pytest.fail(f"pydicom-data file {name} is missing from {PYDICOM_DATA}")
    return path


@pytest.fixture
def main_window(qtbot):
    from medviewer.gui.main_window import MainWindow

    window = MainWindow()
    window.resize(1200, 800)
    window.show()
    qtbot.waitExposed(window)
    yield window
    window.close()
    window.deleteLater()


@pytest.fixture
def image_view(qtbot):
    from medviewer.gui.image_view import ImageView

    view = ImageView()
    view.resize(600, 500)
    view.show()
    qtbot.waitExposed(view)
    yield view
    view.close()
    view.deleteLater()
