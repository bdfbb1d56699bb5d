"""GUI fixtures: offscreen Qt, pyqtgraph configured, and no worker thread left behind."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from medviewer.gui import workers
from medviewer.gui.app import GuiThreadGarbageCollector, configure_pyqtgraph

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
PYDICOM_DATA = Path(pydicom.__file__).parent.parent / "data_store" / "data"


@pytest.fixture(autouse=True)
def no_thread_left_running(qapp):
    """Fails the test if any JobWorker thread is still running after its fixtures closed.

    The test runs under the app's garbage-collection regime (GUI thread only); what it left
    behind is collected afterwards, here, outside any Qt callback.
    """
    configure_pyqtgraph()
    collector = GuiThreadGarbageCollector()
    yield
    leftover = workers.running_workers()
    for worker in leftover:
        worker.wait(5_000)
    collector.stop()
    assert not leftover, f"worker threads left running: {[w.description for w in leftover]}"


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
