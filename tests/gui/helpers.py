"""Real input events for GUI tests (sent through Qt, handled by the real widgets)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QImage, QMouseEvent
from PySide6.QtWidgets import QApplication, QWidget


def _send_mouse(widget: QWidget, kind: QEvent.Type, pos: QPointF, button: Qt.MouseButton,
                buttons: Qt.MouseButton) -> None:
    event = QMouseEvent(kind, pos, widget.mapToGlobal(pos), button, buttons,
                        Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def mouse_move(qtbot, widget: QWidget, pos: QPointF) -> None:
    qtbot.wait(30)  # pyqtgraph drops moves that come faster than its rate limit
    _send_mouse(widget, QEvent.Type.MouseMove, QPointF(pos), Qt.MouseButton.NoButton,
                Qt.MouseButton.NoButton)


def mouse_drag(qtbot, widget: QWidget, start: QPointF, end: QPointF,
               button: Qt.MouseButton) -> None:
    """Press at ``start``, move part of the way (starting the drag), release at ``end``."""
    start, end = QPointF(start), QPointF(end)
    qtbot.wait(30)
    _send_mouse(widget, QEvent.Type.MouseButtonPress, start, button, button)
    middle = start + (end - start) * 0.5
    if (middle - start).manhattanLength() < 8:
        middle = start + QPointF(8, 8)
    qtbot.wait(30)
    _send_mouse(widget, QEvent.Type.MouseMove, middle, Qt.MouseButton.NoButton, button)
    qtbot.wait(30)
    _send_mouse(widget, QEvent.Type.MouseMove, end, Qt.MouseButton.NoButton, button)
    qtbot.wait(30)
    _send_mouse(widget, QEvent.Type.MouseButtonRelease, end, button, Qt.MouseButton.NoButton)


def grab_grey(widget: QWidget) -> np.ndarray:
    """What the widget draws, as a (height, width) array of the red channel."""
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    width, height = image.width(), image.height()
    buffer = np.frombuffer(image.constBits(), dtype=np.uint8,
                           count=image.bytesPerLine() * height)
    rows = buffer.reshape(height, image.bytesPerLine())[:, : width * 3]
    return rows.reshape(height, width, 3)[:, :, 0].copy()


def mouse_click(qtbot, widget: QWidget, pos: QPointF,
                button: Qt.MouseButton = Qt.MouseButton.LeftButton) -> None:
    """Press and release at ``pos`` without moving (a click, not a drag)."""
    qtbot.wait(30)
    _send_mouse(widget, QEvent.Type.MouseButtonPress, QPointF(pos), button, button)
    qtbot.wait(30)
    _send_mouse(widget, QEvent.Type.MouseButtonRelease, QPointF(pos), button,
                Qt.MouseButton.NoButton)
