"""Corner text drawn over the image, in the graphics view's foreground pass.

The lines of each corner (``medviewer.app.corner_text``) are painted in viewport pixels
after the scene, with a dark edge so they read on white and black alike. Drawing in the
view's own paint costs a fraction of a millisecond; a transparent widget laid over the
viewport cost about 3 ms more on every image change, because Qt composed it with each repaint.
Each line is drawn once (letters and edge) into a small cached pixmap and each repaint only
copies it: a view repaints several times per image, and most lines (name, study, modality)
stay the same from image to image. A grab of the viewport (view export) includes it.
"""

from __future__ import annotations

from collections import OrderedDict

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPixmap

TEXT_COLOUR = QColor(235, 235, 235)
OUTLINE_COLOUR = QColor(0, 0, 0, 200)
MARGIN = 6
EDGE = 1  # pixels of dark edge around the letters
CACHED_LINES = 128


class CornerTextOverlay:
    """``lines[corner]`` in the four corners of a graphics view's viewport."""

    def __init__(self, graphics_view) -> None:
        self._view = graphics_view
        self._lines: dict[str, list[str]] = {}
        self._visible = True
        self.font = QFont(graphics_view.font())
        self.font.setPointSizeF(max(self.font.pointSizeF(), 9.0))
        self._metrics = QFontMetricsF(self.font)
        self._placed: tuple[tuple[int, int], list[tuple[QPointF, str]]] | None = None
        self._line_pixmaps: OrderedDict[tuple[str, float], QPixmap] = OrderedDict()
        graphics_view.foreground_painter = self.paint

    def set_lines(self, lines: dict[str, list[str]]) -> None:
        if lines != self._lines:
            self._lines = {corner: list(rows) for corner, rows in lines.items()}
            self._placed = None
            if self._visible:
                self._view.viewport().update()

    @property
    def lines(self) -> dict[str, list[str]]:
        return {corner: list(rows) for corner, rows in self._lines.items()}

    def isVisible(self) -> bool:  # noqa: N802 - reads like the widgets around it
        return self._visible

    def setVisible(self, visible: bool) -> None:  # noqa: N802
        if bool(visible) != self._visible:
            self._visible = bool(visible)
            self._view.viewport().update()

    def paint(self, painter: QPainter, width: int, height: int) -> None:
        if not self._visible or not any(self._lines.values()):
            return
        if self._placed is None or self._placed[0] != (width, height):
            self._placed = ((width, height), self.placed_lines(width, height))
        ratio = painter.device().devicePixelRatioF() if painter.device() else 1.0
        ascent = self._metrics.ascent()
        for point, text in self._placed[1]:
            painter.drawPixmap(point - QPointF(EDGE, ascent + EDGE), self._line_pixmap(text, ratio))

    def _line_pixmap(self, text: str, ratio: float) -> QPixmap:
        """``text`` with its dark edge (four offset copies under the letters), drawn once."""
        key = (text, ratio)
        pixmap = self._line_pixmaps.get(key)
        if pixmap is not None:
            self._line_pixmaps.move_to_end(key)
            return pixmap
        metrics = self._metrics
        pixmap = QPixmap(int(round((metrics.horizontalAdvance(text) + 2 * EDGE + 1) * ratio)),
                         int(round((metrics.height() + 2 * EDGE) * ratio)))
        pixmap.setDevicePixelRatio(ratio)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setFont(self.font)
        baseline = QPointF(EDGE, EDGE + metrics.ascent())
        painter.setPen(OUTLINE_COLOUR)
        for dx, dy in ((-EDGE, -EDGE), (EDGE, -EDGE), (-EDGE, EDGE), (EDGE, EDGE)):
            painter.drawText(baseline + QPointF(dx, dy), text)
        painter.setPen(TEXT_COLOUR)
        painter.drawText(baseline, text)
        painter.end()
        self._line_pixmaps[key] = pixmap
        if len(self._line_pixmaps) > CACHED_LINES:
            self._line_pixmaps.popitem(last=False)
        return pixmap

    def placed_lines(self, width: int, height: int) -> list[tuple[QPointF, str]]:
        """Each line's baseline start in viewport pixels and its text as drawn (shortened
        with "…" where it would run into the facing corner's line)."""
        metrics = self._metrics
        spacing = metrics.lineSpacing()
        placed: list[tuple[QPointF, str]] = []
        for corner, rows in self._lines.items():
            top = corner.startswith("top")
            left = corner.endswith("left")
            facing = self._lines.get(corner.replace("left", "right") if left
                                     else corner.replace("right", "left"), [])
            for index, text in enumerate(rows):
                # A line shares its row with the facing corner's: each gets half the width
                # (a 2x2 viewport is narrow), and a longer one ends in "…".
                room = (width - 3 * MARGIN) / 2 if index < len(facing) and facing[index] \
                    else width - 2 * MARGIN
                advance = metrics.horizontalAdvance(text)
                if advance > room:
                    text = metrics.elidedText(text, Qt.TextElideMode.ElideRight, max(room, 0))
                    advance = metrics.horizontalAdvance(text)
                x = MARGIN if left else width - MARGIN - advance
                if top:
                    y = MARGIN + metrics.ascent() + index * spacing
                else:
                    y = height - MARGIN - metrics.descent() - (len(rows) - 1 - index) * spacing
                placed.append((QPointF(x, y), text))
        return placed
