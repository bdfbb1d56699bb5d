"""Small widget helpers more than one GUI module uses."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel, QMainWindow


def bold_label(text: str) -> QLabel:
    """A label in the bold version of its normal font (a heading or a headline)."""
    label = QLabel(text)
    font = label.font()
    font.setBold(True)
    label.setFont(font)
    return label


def wrapping_label(name: str, style: str = "") -> QLabel:
    """A word-wrapped, mouse-selectable label (an error or result sentence to copy)."""
    label = QLabel()
    label.setObjectName(name)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if style:
        label.setStyleSheet(style)
    return label


def window_action(window: QMainWindow, text: str, slot: Callable[[], None],
                  tip: str = "") -> QAction:
    """An action of ``window`` (so its shortcut works wherever the focus is in it)."""
    action = QAction(text, window)
    action.triggered.connect(lambda _checked=False: slot())
    if tip:
        action.setToolTip(tip)
        action.setStatusTip(tip)
    window.addAction(action)
    return action
