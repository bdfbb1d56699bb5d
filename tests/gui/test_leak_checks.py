"""The GUI fixtures fail a test that leaves something running: proven by running such tests."""

from __future__ import annotations

from pathlib import Path

pytest_plugins = ["pytester"]

LEAKY_TESTS = '''
import threading, time
from PySide6.QtCore import QRunnable, QThreadPool, QTimer
from PySide6.QtWidgets import QWidget

KEEP = []

def test_leaves_a_timer(qapp):
    timer = QTimer()
    timer.setObjectName("forgotten")
    timer.start(1000)
    KEEP.append(timer)

def test_leaves_a_window(qapp):
    window = QWidget()
    window.setObjectName("forgottenWindow")
    window.show()
    KEEP.append(window)

def test_leaves_a_thread(qapp):
    stop = threading.Event()
    threading.Thread(target=stop.wait, args=(8,), name="forgotten-thread", daemon=True).start()

def test_leaves_a_pool_task(qapp):
    class Sleep(QRunnable):
        def run(self):
            time.sleep(1.0)
    QThreadPool.globalInstance().start(Sleep())

def test_cleans_up(qapp):
    timer = QTimer()
    timer.start(1000)
    timer.stop()
'''


def test_each_kind_of_leftover_fails_its_test(pytester):
    conftest = Path(__file__).with_name("conftest.py").read_text(encoding="utf-8")
    pytester.makeconftest(conftest)
    pytester.makepyfile(test_leaky=LEAKY_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=5, errors=4)
    output = result.stdout.str()
    assert "timers left running: ['no parent.forgotten every 1000 ms']" in output
    assert "top-level widgets left open: [\"QWidget('forgottenWindow')\"]" in output
    assert "threads left running: ['forgotten-thread']" in output
    assert "QThreadPool task(s) left running" in output
