"""Driving Qt's event loop from a benchmark (never app code)."""

from __future__ import annotations


def run_until(predicate, timeout_s: float = 120.0, what: str = "the window") -> None:
    """Run the event loop until ``predicate()`` holds, checking every millisecond (the
    benchmarks' time resolution); TimeoutError after ``timeout_s``."""
    from PySide6.QtCore import QEventLoop, QTimer

    if predicate():
        return
    loop = QEventLoop()
    poll = QTimer()
    poll.timeout.connect(lambda: predicate() and loop.quit())
    poll.start(1)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    poll.stop()
    if not predicate():
        raise TimeoutError(f"{what} did not get there in time")
