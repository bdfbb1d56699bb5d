"""Small widget helpers more than one GUI module uses."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel, QMainWindow, QWidget

if TYPE_CHECKING:
    from medviewer.events import Emitter


def interval_text(bounds: Any, decimals: int = 3) -> str:
    """'low–high' for a pair of finite numbers (a confidence interval), '' for anything
    else: cards are free-form, and an interval may be missing."""
    if (isinstance(bounds, (list, tuple)) and len(bounds) == 2
            and all(isinstance(b, (int, float)) and not isinstance(b, bool)
                    and math.isfinite(b) for b in bounds)):
        return f"{bounds[0]:.{decimals}f}–{bounds[1]:.{decimals}f}"
    return ""


def bracketed_interval(bounds: Any) -> str:
    """' [low–high]' to follow a figure, or '' when there is no interval."""
    text = interval_text(bounds)
    return f" [{text}]" if text else ""


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


def subscribe(owner: QObject, emitter: Emitter, callback: Callable[..., Any]) -> None:
    """Connect ``callback`` to a Qt-free event for as long as ``owner`` lives.

    The session outlives its panels; without this, a closed panel would keep hearing (and
    keep its Python object alive through) the session's events.
    """
    emitter.connect(callback)
    owner.destroyed.connect(lambda *_args: emitter.disconnect(callback))


class _WheelNeedsFocus(QObject):
    """Drops wheel events on a widget that has no keyboard focus (they scroll the panel)."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt naming
        if event.type() == QEvent.Type.Wheel and not watched.hasFocus():
            event.ignore()
            return True
        return False


def ignore_wheel_unless_focused(*widgets: QWidget) -> None:
    """Combo boxes and spin boxes inside a scrolling panel: a wheel notch while scrolling
    past them must not change their value (it changed the saliency class); once clicked
    (focused) the wheel works on them as usual."""
    for widget in widgets:
        widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        guard = _WheelNeedsFocus(widget)
        widget.installEventFilter(guard)
