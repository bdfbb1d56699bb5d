"""The burned-in text mask editor: draw rectangles on an image; they are blacked out on every
frame of the files flagged for burned-in text when de-identifying.

``MaskEditor(path, parent)`` loads the image's first frame on a worker (the GUI thread
never reads files), shows it scaled to fit, and lets the user drag rectangles (in image
pixels). "Preview" fills them as the output will be. ``mask()`` returns the
:class:`~medviewer.dicom.deid.pixels.PixelMask`, tied to the image's size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QPoint, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QCheckBox, QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QListWidget, QPushButton,
    QVBoxLayout, QWidget,
)

from medviewer.dicom.deid.pixels import MaskRect, PixelMask
from medviewer.gui.label_dialogs import ERROR_STYLE
from medviewer.gui.widgets import wrapping_label
from medviewer.gui.workers import JobWorker


def _load_frame(path: Path):
    """Job: the first frame as displayed (8-bit grey or RGB)."""
    from medviewer.dicom.reader import open_instance

    yield from ()
    return open_instance(path).display_frame(0)


class MaskCanvas(QWidget):
    """The image scaled to fit, with rectangles the user drags (kept in image pixels)."""

    rectangles_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(420, 320)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.image: QImage | None = None
        self._array: np.ndarray | None = None
        self.rectangles: list[MaskRect] = []
        self.preview = False
        self._drag_start: QPoint | None = None
        self._drag_now: QPoint | None = None

    def set_frame(self, frame: np.ndarray) -> None:
        self._array = np.ascontiguousarray(frame)
        rows, columns = frame.shape[:2]
        if frame.ndim == 2:
            self.image = QImage(self._array.data, columns, rows, columns,
                                QImage.Format.Format_Grayscale8)
        else:
            self.image = QImage(self._array.data, columns, rows, columns * 3,
                                QImage.Format.Format_RGB888)
        self.update()

    # -- geometry: widget <-> image pixels
    def _target(self) -> QRectF:
        if self.image is None:
            return QRectF()
        scale = min(self.width() / self.image.width(), self.height() / self.image.height())
        width, height = self.image.width() * scale, self.image.height() * scale
        return QRectF((self.width() - width) / 2, (self.height() - height) / 2, width, height)

    def to_image(self, point: QPoint) -> tuple[int, int]:
        target = self._target()
        assert self.image is not None
        x = (point.x() - target.x()) * self.image.width() / target.width()
        y = (point.y() - target.y()) * self.image.height() / target.height()
        return (int(min(max(x, 0), self.image.width())),
                int(min(max(y, 0), self.image.height())))

    def _to_widget(self, rect: MaskRect) -> QRectF:
        target = self._target()
        assert self.image is not None
        sx, sy = target.width() / self.image.width(), target.height() / self.image.height()
        return QRectF(target.x() + rect.x * sx, target.y() + rect.y * sy, rect.width * sx,
                      rect.height * sy)

    # -- mouse
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if self.image is not None and event.button() == Qt.MouseButton.LeftButton:
            self._drag_start = self._drag_now = event.position().toPoint()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if self._drag_start is not None:
            self._drag_now = event.position().toPoint()
            self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if self._drag_start is None:
            return
        (x0, y0), (x1, y1) = self.to_image(self._drag_start), \
            self.to_image(event.position().toPoint())
        self._drag_start = self._drag_now = None
        if abs(x1 - x0) >= 1 and abs(y1 - y0) >= 1:
            self.rectangles.append(MaskRect(min(x0, x1), min(y0, y1), abs(x1 - x0),
                                            abs(y1 - y0)))
            self.rectangles_changed.emit()
        self.update()

    # -- painting
    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#202020"))
        if self.image is None:
            painter.setPen(QColor("#bbbbbb"))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "Loading the image...")
            return
        painter.drawImage(self._target(), self.image)
        for rect in self.rectangles:
            area = self._to_widget(rect)
            if self.preview:
                painter.fillRect(area, QColor("black"))
            else:
                painter.fillRect(area, QColor(255, 200, 0, 70))
                painter.setPen(QPen(QColor("#ffc800"), 2))
                painter.drawRect(area)
        if self._drag_start is not None and self._drag_now is not None:
            painter.setPen(QPen(QColor("#ffc800"), 1, Qt.PenStyle.DashLine))
            painter.drawRect(QRect(self._drag_start, self._drag_now).normalized())


class MaskEditor(QDialog):
    """Draw the rectangles to black out; OK returns them through :meth:`mask`."""

    def __init__(self, path: str | Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.path = Path(path)
        self.setWindowTitle("Mask burned-in text")
        self.canvas = MaskCanvas()
        self.list = QListWidget()
        self.list.setMaximumWidth(210)
        self.preview = QCheckBox("Preview the masked image")
        self.preview.toggled.connect(self._preview)
        remove = QPushButton("Remove selected")
        remove.clicked.connect(self._remove_selected)
        clear = QPushButton("Clear all")
        clear.clicked.connect(self._clear)
        self.error = wrapping_label("maskError", ERROR_STYLE)
        side = QVBoxLayout()
        side.addWidget(QLabel("Rectangles (image pixels):"))
        side.addWidget(self.list, 1)
        side.addWidget(remove)
        side.addWidget(clear)
        side.addWidget(self.preview)
        body = QHBoxLayout()
        body.addWidget(self.canvas, 1)
        body.addLayout(side)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(wrapping_label("maskHelp"))
        layout.itemAt(0).widget().setText(
            f"Drag rectangles over the text burned into {self.path.name}. They are filled "
            "on every frame of every flagged file of the same size.")
        layout.addLayout(body, 1)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.canvas.rectangles_changed.connect(self._refresh_list)
        self.resize(820, 560)
        self._worker = JobWorker(lambda cancel: _load_frame(self.path),
                                 "loading the image to mask")
        self._worker.finished.connect(self.canvas.set_frame)
        self._worker.failed.connect(self.error.setText)
        self._worker.start()

    def mask(self) -> PixelMask | None:
        if not self.canvas.rectangles or self.canvas.image is None:
            return None
        return PixelMask(tuple(self.canvas.rectangles), rows=self.canvas.image.height(),
                         columns=self.canvas.image.width())

    def _refresh_list(self) -> None:
        self.list.clear()
        for rect in self.canvas.rectangles:
            self.list.addItem(f"x {rect.x}, y {rect.y}: {rect.width} x {rect.height}")

    def _preview(self, on: bool) -> None:
        self.canvas.preview = on
        self.canvas.update()

    def _remove_selected(self) -> None:
        row = self.list.currentRow()
        if 0 <= row < len(self.canvas.rectangles):
            del self.canvas.rectangles[row]
            self._refresh_list()
            self.canvas.update()

    def _clear(self) -> None:
        self.canvas.rectangles.clear()
        self._refresh_list()
        self.canvas.update()

    def done(self, result: int) -> None:  # noqa: D401 - Qt API
        self._worker.wait()
        super().done(result)
