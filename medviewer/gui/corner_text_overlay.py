"""Corner text drawn over the image: a transparent widget on the graphics view's viewport.

It covers the viewport, lets every mouse event through, and paints each corner's lines
(``medviewer.app.corner_text``) with a dark edge so they read on white and black alike.
Being a child of the viewport, a grab of the viewport (view export) includes it.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPointF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter
from PySide6.QtWidgets import QWidget

TEXT_COLOUR = QColor(235, 235, 235)
OUTLINE_COLOUR = QColor(0, 0, 0, 200)
MARGIN = 6


class CornerTextOverlay(QWidget):
    """Shows ``lines[corner]`` in the four corners of the widget it is laid over."""

    def __init__(self, viewport: QWidget) -> None:
        super().__init__(viewport)
        self.setObjectName("cornerText")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground)
        self._lines: dict[str, list[str]] = {}
        font = QFont(self.font())
        font.setPointSizeF(max(font.pointSizeF(), 9.0))
        self.setFont(font)
        self._follow = _ResizeFollower(self)
        viewport.installEventFilter(self._follow)
        self.setGeometry(viewport.rect())
        self.raise_()

    def set_lines(self, lines: dict[str, list[str]]) -> None:
        if lines != self._lines:
            self._lines = {corner: list(rows) for corner, rows in lines.items()}
            self.update()

    @property
    def lines(self) -> dict[str, list[str]]:
        return {corner: list(rows) for corner, rows in self._lines.items()}

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt naming
        if not any(self._lines.values()):
            return
        painter = QPainter(self)
        metrics = QFontMetricsF(self.font())
        height = metrics.lineSpacing()
        placed: list[tuple[QPointF, str]] = []
        for corner, rows in self._lines.items():
            top = corner.startswith("top")
            left = corner.endswith("left")
            for index, text in enumerate(rows):
                width = metrics.horizontalAdvance(text)
                x = MARGIN if left else self.width() - MARGIN - width
                if top:
                    y = MARGIN + metrics.ascent() + index * height
                else:
                    y = self.height() - MARGIN - metrics.descent() - (len(rows) - 1 - index) * height
                placed.append((QPointF(x, y), text))
        # A dark edge from four offset copies, then the letters: drawn glyphs are cached, so
        # this costs a fraction of a millisecond (a stroked text path cost about 10 ms).
        painter.setPen(OUTLINE_COLOUR)
        for dx, dy in ((-1, -1), (1, -1), (-1, 1), (1, 1)):
            for point, text in placed:
                painter.drawText(point + QPointF(dx, dy), text)
        painter.setPen(TEXT_COLOUR)
        for point, text in placed:
            painter.drawText(point, text)
        painter.end()


class _ResizeFollower(QObject):
    def __init__(self, overlay: CornerTextOverlay) -> None:
        super().__init__(overlay)
        self._overlay = overlay

    def eventFilter(self, watched, event):  # noqa: N802 - Qt naming
        if event.type() == QEvent.Type.Resize:
            self._overlay.setGeometry(watched.rect())
        return False
