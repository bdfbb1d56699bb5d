"""Guard against a PySide6 build that mismanages the reference counts of None/True/False.

PySide6 6.12.0 on Python 3.11 drops a reference to None on every call of a method that
returns nothing (and to True/False when a signal is emitted): after a few thousand Qt calls
the interpreter aborts with "deallocating None". pyproject.toml excludes that version.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel, QTreeWidgetItem

CALLS = 5_000


class Emitter(QObject):
    changed = Signal(int)


def refcount_drift(call) -> float:
    before_none, before_true = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(CALLS):
        call()
    return max(abs(sys.getrefcount(None) - before_none),
               abs(sys.getrefcount(True) - before_true)) / CALLS


def test_void_calls_and_signals_keep_none_and_bools_alive(qtbot):
    label = QLabel()
    qtbot.addWidget(label)
    item = QTreeWidgetItem(["x"])
    emitter = Emitter()
    received: list[int] = []
    emitter.changed.connect(received.append)
    assert refcount_drift(lambda: label.setText("x")) < 0.01
    assert refcount_drift(lambda: item.setData(0, 256, "kind")) < 0.01
    assert refcount_drift(lambda: emitter.changed.emit(1)) < 0.01
    assert len(received) == CALLS
