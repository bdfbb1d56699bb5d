"""The window's outermost handler: an uncaught exception is one sentence in one box."""

from __future__ import annotations

import logging
import sys
import threading

import pytest
from PySide6.QtCore import qInstallMessageHandler, qWarning
from PySide6.QtWidgets import QWidget

from medviewer import error_log
from medviewer.gui.app import install_error_handlers


@pytest.fixture
def reporter(qtbot, isolated_home):
    previous = sys.excepthook, threading.excepthook
    error_log.configure_logging()
    window = QWidget()
    qtbot.addWidget(window)
    installed = install_error_handlers(window)
    yield installed
    sys.excepthook, threading.excepthook = previous
    qInstallMessageHandler(None)
    if installed.box is not None:
        installed.box.close()


def _raise(exc: BaseException):
    try:
        raise exc
    except BaseException as caught:
        return type(caught), caught, caught.__traceback__


def test_an_uncaught_exception_is_one_sentence_naming_the_log(reporter, qtbot, isolated_home):
    sys.excepthook(*_raise(ValueError("deep inside a slot")))
    qtbot.waitUntil(lambda: reporter.box is not None and reporter.box.isVisible())
    log_file = isolated_home / "logs" / "medviewer.log"
    assert reporter.box.text() == (
        f"An unexpected error (ValueError) stopped MedViewer while handling your last action; "
        f"the details are in {log_file}.")
    assert "deep inside a slot" in log_file.read_text()
    assert not reporter.box.isModal()


def test_a_burst_of_errors_keeps_one_box(reporter, qtbot):
    for number in range(3):
        sys.excepthook(*_raise(KeyError(number)))
    qtbot.waitUntil(lambda: reporter.more == 2)
    assert "(2 more unexpected errors since" in reporter.box.text()


def test_a_worker_threads_exception_reaches_the_box(reporter, qtbot):
    thread = threading.Thread(target=lambda: 1 / 0)
    thread.start()
    thread.join()
    qtbot.waitUntil(lambda: reporter.box is not None and reporter.box.isVisible())
    assert "ZeroDivisionError" in reporter.box.text()


def test_qt_messages_go_to_the_log_not_the_terminal(reporter, capsys, isolated_home):
    qWarning("a Qt complaint")
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert "a Qt complaint" not in capsys.readouterr().err
    assert "a Qt complaint" in (isolated_home / "logs" / "medviewer.log").read_text()
