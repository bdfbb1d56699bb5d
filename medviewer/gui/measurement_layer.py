"""Measurements on the image view: their shapes and captions, and drawing new ones with a tool.

Every item is a child of the view's image item (``ImageView.add_image_overlay``), so points
are image pixel coordinates (x = column, y = row of the stored image) and shapes follow pan,
zoom, rotation, flips and pixel aspect with no bookkeeping; pens are cosmetic (constant on
screen) and captions stay upright.

How each tool collects its points (a drag gives its press and release points, a click one):

- distance, rectangle, ellipse, calibrate: one left drag;
- angle: a drag along the first arm, ending on the vertex, then a click at the second arm's end;
- Cobb angle: a drag along each of the two endplates;
- text: a click where the note points;
- pixel probe: press (and drag) to read the value under the pointer; it stays until the next.

The layer only collects points and draws; the view computes the values
(``medviewer.app.measurements``) when :attr:`MeasurementLayer.completed` fires.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPainterPath, QPen
from PySide6.QtWidgets import (
    QGraphicsEllipseItem, QGraphicsItem, QGraphicsPathItem, QGraphicsRectItem,
)

from medviewer.gui import canvas
from medviewer.gui.view_tools import TOOLS, Tool

if TYPE_CHECKING:
    from medviewer.gui.view_host import DrawingView

MEASURE_COLOUR = QColor(255, 210, 0)
CALIBRATE_COLOUR = QColor(0, 220, 255)
PROBE_COLOUR = QColor(120, 255, 120)
MEASURE_Z = 10
MIN_DRAG_PX = 0.5  # image pixels: shorter drags are taken as clicks


def _pen(colour: QColor, dashed: bool = False) -> QPen:
    pen = QPen(colour)
    pen.setWidthF(2.0)
    pen.setCosmetic(True)  # the same width on screen at any zoom
    if dashed:
        pen.setStyle(Qt.PenStyle.DashLine)
    return pen


CAPTION_OVER_CAPTION = 100.0  # a caption hiding another's text is worse than hiding a line


def _area(rect: QRectF) -> float:
    return max(rect.width(), 0.0) * max(rect.height(), 0.0)


def _distance_to_segment(p: tuple[float, float], a: tuple[float, float],
                         b: tuple[float, float]) -> float:
    dx, dy = b[0] - a[0], b[1] - a[1]
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy)
                                              / length2))
    return math.hypot(p[0] - a[0] - t * dx, p[1] - a[1] - t * dy)


class MeasurementGraphic:
    """One measurement (or a shape being drawn) on the image: outline, marker, caption."""

    def __init__(self, view: DrawingView, kind: str, colour: QColor = MEASURE_COLOUR,
                 dashed: bool = False) -> None:
        self.kind = kind
        self.points: tuple[tuple[float, float], ...] = ()
        self.items: list[Any] = []
        pen = _pen(colour, dashed)
        if kind == "rectangle":
            self.outline: QGraphicsItem = QGraphicsRectItem()
        elif kind == "ellipse":
            self.outline = QGraphicsEllipseItem()
        else:
            self.outline = QGraphicsPathItem()
        self.outline.setPen(pen)
        self.marker = QGraphicsEllipseItem(-4.0, -4.0, 8.0, 8.0)  # screen pixels
        self.marker.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.marker.setPen(pen)
        self.marker.setBrush(QBrush(colour))
        self.marker.setVisible(kind == "text")
        self.caption = canvas.make_text_item(colour)
        self._view = view
        self._anchor = (0.0, 1.0)
        # Where the caption may go, best first: (point in image coordinates, above it).
        self._caption_places: list[tuple[QPointF, bool]] = []
        for item in (self.outline, self.marker, self.caption):
            view.add_image_overlay(item)
            item.setZValue(MEASURE_Z)
            self.items.append(item)

    def place(self, points: Sequence[tuple[float, float]], text: str) -> None:
        self.points = tuple((float(x), float(y)) for x, y in points)
        pts = [QPointF(x, y) for x, y in self.points]
        if self.kind in ("rectangle", "ellipse") and len(pts) >= 2:
            rect = QRectF(pts[0], pts[1]).normalized()
            self.outline.setRect(rect)  # type: ignore[attr-defined]
            self._caption_places = [(rect.topLeft(), True), (rect.bottomLeft(), False),
                                    (rect.topRight(), True), (rect.bottomRight(), False)]
        else:
            path = QPainterPath()
            # Cobb: two separate lines; the others one polyline through every point.
            strokes = [pts[:2], pts[2:4]] if self.kind == "cobb" else [pts]
            for stroke in strokes:
                if stroke:
                    path.moveTo(stroke[0])
                    for point in stroke[1:]:
                        path.lineTo(point)
            self.outline.setPath(path)  # type: ignore[attr-defined]
            self._caption_places = [(point, above) for point in self._caption_points(pts)
                                    for above in (True, False)]
        if self.kind == "text" and pts:
            self.marker.setPos(pts[0])
        self.caption.setText(text)
        self.caption.setPos(self._caption_places[0][0])
        self.caption.setVisible(bool(text))
        self.fit_caption()

    def fit_caption(self, taken: Sequence[QRectF] = (),
                    avoid: Sequence[QRectF] = ()) -> QRectF | None:
        """Place the caption on screen, clear of ``taken`` (other captions' viewport
        rectangles) and then of ``avoid`` (other measurements' outlines) where one of its
        places allows; returns its viewport rectangle.

        It grows left near the right edge and down near the top; an ROI's caption may sit
        at any corner of its box, a line's at either end, above or below, so measurements
        drawn close together keep their captions readable and their shapes visible."""
        parent = self.caption.parentItem()
        if parent is None or not self.caption.isVisible() or not self._caption_places:
            return None
        graphics_view = self._view.graphics_view
        transform = graphics_view.viewportTransform()
        viewport = graphics_view.viewport()
        bounds = self.caption.boundingRect()
        width, height = bounds.width(), bounds.height()
        best: tuple[float, QPointF, tuple[float, float], QRectF] | None = None
        for place, above in self._caption_places:
            point = transform.map(parent.mapToScene(place))
            # Leftwards when it would run off the right edge (a narrow viewport of a grid)
            # and there is more room on the left; near the right edge in any case.
            room_right = viewport.width() - point.x()
            leftwards = point.x() > viewport.width() * 0.6 or (width > room_right
                                                              and point.x() > room_right)
            if above and point.y() < max(height, viewport.height() * 0.15):
                above = False
            elif not above and point.y() + height > viewport.height():
                above = True
            sides = [leftwards]
            if width <= (room_right if leftwards else point.x()):
                sides.append(not leftwards)  # the other side, where it fits
            for left in sides:
                anchor = (1.0 if left else 0.0, 1.0 if above else 0.0)
                rect = QRectF(point.x() - anchor[0] * width, point.y() - anchor[1] * height,
                              width, height)
                overlap = CAPTION_OVER_CAPTION * sum(_area(rect.intersected(other))
                                                     for other in taken) \
                    + sum(_area(rect.intersected(other)) for other in avoid)
                if best is None or overlap < best[0]:
                    best = (overlap, place, anchor, rect)
                if overlap == 0:
                    break
            if best is not None and best[0] == 0:
                break
        assert best is not None
        _, place, anchor, rect = best
        if self.caption.pos() != place:
            self.caption.setPos(place)
        if anchor != self._anchor:
            self._anchor = anchor
            self.caption.setAnchor(anchor)
        return rect

    def outline_on_screen(self) -> QRectF | None:
        """The outline's bounding rectangle in viewport pixels (None when hidden)."""
        if not self.outline.isVisible() or self.outline.scene() is None:
            return None
        graphics_view = self._view.graphics_view
        return QRectF(graphics_view.mapFromScene(self.outline.sceneBoundingRect())
                      .boundingRect())

    def _caption_points(self, pts: list[QPointF]) -> list[QPointF]:
        """Where a line measurement's caption may go, best first."""
        if not pts:
            return [QPointF()]
        if self.kind == "angle" and len(pts) >= 3:
            return [pts[1], pts[0], pts[2]]  # the vertex first
        if self.kind == "cobb" and len(pts) >= 4:
            return [(pts[0] + pts[1] + pts[2] + pts[3]) / 4.0,
                    (pts[0] + pts[1]) / 2.0, (pts[2] + pts[3]) / 2.0]
        return [pts[-1], pts[0]] if len(pts) > 1 else [pts[0]]

    def distance_to(self, point: tuple[float, float]) -> float:
        """Image pixels from ``point`` to the outline (0 inside an ROI)."""
        pts = self.points
        if self.kind in ("rectangle", "ellipse") and len(pts) == 2:
            x0, x1 = sorted((pts[0][0], pts[1][0]))
            y0, y1 = sorted((pts[0][1], pts[1][1]))
            dx = max(x0 - point[0], 0.0, point[0] - x1)
            dy = max(y0 - point[1], 0.0, point[1] - y1)
            return math.hypot(dx, dy)
        if len(pts) == 1:
            return math.hypot(point[0] - pts[0][0], point[1] - pts[0][1])
        pairs = [(pts[0], pts[1]), (pts[2], pts[3])] if self.kind == "cobb" and len(pts) == 4 \
            else list(zip(pts, pts[1:]))
        return min((_distance_to_segment(point, a, b) for a, b in pairs), default=math.inf)

    def set_visible(self, visible: bool) -> None:
        for item in self.items:
            item.setVisible(visible if item is not self.marker else visible and self.kind == "text")
        if visible and not self.caption.toPlainText():
            self.caption.setVisible(False)

    def remove(self) -> None:
        for item in self.items:
            scene = item.scene()
            item.setParentItem(None)
            if scene is not None:
                scene.removeItem(item)
        self.items.clear()


class MeasurementLayer(QObject):
    """Collects a tool's points from drags and clicks; shows the shape being drawn."""

    completed = Signal(str, object)  # tool name, tuple of (x, y) image points

    def __init__(self, view: DrawingView, preview_text: Callable[[str, tuple], str]) -> None:
        super().__init__(view)
        self._view = view
        self._preview_text = preview_text  # (tool, points) -> caption while drawing
        self.tool: Tool | None = None
        self._points: list[tuple[float, float]] = []  # collected so far
        self._step = 0
        self._preview: MeasurementGraphic | None = None
        self._probe: MeasurementGraphic | None = None

    @property
    def drawing(self) -> bool:
        """A shape is half drawn (its later steps are waited for)."""
        return self._step > 0

    def set_tool(self, name: str | None) -> None:
        self.cancel()
        self.clear_probe()
        self.tool = TOOLS[name] if name else None

    def cancel(self) -> None:
        """Forget a half-drawn shape."""
        self._points.clear()
        self._step = 0
        if self._preview is not None:
            self._preview.remove()
            self._preview = None

    # ------------------------------------------------------------ input (image coordinates)
    def drag(self, start: tuple[float, float], now: tuple[float, float], finished: bool) -> None:
        tool = self.tool
        if tool is None:
            return
        if tool.name == "probe":
            self._show_probe(now)
            return
        step = tool.steps[self._step] if self._step < len(tool.steps) else "drag"
        if step == "click":  # a drag where a click is wanted: its end is the click
            self.hover(now)
            if finished:
                self.click(now)
            return
        pending = [*self._points, start, now]
        self._draw_preview(pending)
        if not finished:
            return
        if math.hypot(now[0] - start[0], now[1] - start[1]) < MIN_DRAG_PX:
            return  # a click: the drag step is still to be done
        self._points.extend([start, now])
        self._advance()

    def click(self, point: tuple[float, float]) -> None:
        tool = self.tool
        if tool is None:
            return
        if tool.name == "probe":
            self._show_probe(point)
            return
        if self._step >= len(tool.steps) or tool.steps[self._step] != "click":
            return  # drag steps ignore clicks
        self._points.append(point)
        self._advance()

    def hover(self, point: tuple[float, float]) -> None:
        """Mouse moves between steps: the next click's point follows the pointer."""
        tool = self.tool
        if tool is None or not self.drawing or self._step >= len(tool.steps):
            return
        if tool.steps[self._step] == "click":
            self._draw_preview([*self._points, point])

    def _advance(self) -> None:
        assert self.tool is not None
        self._step += 1
        if self._step < len(self.tool.steps):
            self._draw_preview(self._points)
            return
        tool, points = self.tool, tuple(self._points)
        self.cancel()
        self.completed.emit(tool.name, points)

    def _draw_preview(self, points: list[tuple[float, float]]) -> None:
        assert self.tool is not None
        if self._preview is None:
            kind = self.tool.kind or "distance"
            colour = CALIBRATE_COLOUR if self.tool.name == "calibrate" else MEASURE_COLOUR
            self._preview = MeasurementGraphic(self._view, kind, colour, dashed=True)
        self._preview.place(points, self._preview_text(self.tool.name, tuple(points)))

    # ------------------------------------------------------------ pixel probe
    def _show_probe(self, point: tuple[float, float]) -> None:
        if self._probe is None:
            self._probe = MeasurementGraphic(self._view, "text", PROBE_COLOUR)
        self._probe.place([point], self._preview_text("probe", (point,)))

    def clear_probe(self) -> None:
        if self._probe is not None:
            self._probe.remove()
            self._probe = None

    @property
    def probe_text(self) -> str:
        return self._probe.caption.toPlainText() if self._probe is not None else ""
