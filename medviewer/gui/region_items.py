"""Region labels on the image view: rectangles and ellipses drawn in image pixel coordinates.

Every item here is a child of the view's image item (``ImageView.add_image_overlay``), so its
local coordinates are the store's convention (x = column, y = row of the original, un-rotated
stored image; see docs/labels-format.md) and it follows zoom, pan, rotation, flips and pixel
aspect exactly, with no bookkeeping of ours. Only the class captions are re-placed when the
view changes, so each stays at the corner that is top-left *on screen*.

:class:`RegionLayer` shows what the label panel tells it (committed regions, regions being
saved, regions being deleted) and reports what the reader does (a region drawn, a region
selected); it never talks to the label store itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsItem, QGraphicsRectItem

from medviewer.gui.lazy import import_pyqtgraph

if TYPE_CHECKING:
    from medviewer.gui.image_view import ImageView

pg = import_pyqtgraph()

SHAPES = ("rectangle", "ellipse")
# Distinct, readable on grey X-rays; class i gets colour i (cycling).
CLASS_COLOURS = (
    QColor(255, 196, 0), QColor(0, 200, 255), QColor(255, 90, 160), QColor(120, 230, 80),
    QColor(190, 130, 255), QColor(255, 140, 60), QColor(80, 255, 210), QColor(240, 240, 120),
    QColor(150, 180, 255),
)
PENDING_COLOUR = QColor(200, 200, 200)
MIN_SIZE_PX = 1.0  # image pixels: smaller drags are clicks, not regions

_Z_SURFACE = 5
_Z_REGION = 6
_Z_CAPTION = 7


def class_colour(index: int) -> QColor:
    return QColor(CLASS_COLOURS[index % len(CLASS_COLOURS)])


@dataclass(frozen=True)
class RegionDraft:
    """A region the reader just drew: image pixel coordinates of its bounding box."""

    shape: str
    x: float
    y: float
    width: float
    height: float
    frame: int = 0

    def rect(self) -> QRectF:
        return QRectF(self.x, self.y, self.width, self.height)


class _Selectable:
    """pyqtgraph delivers clicks to items that have ``mouseClickEvent``."""

    layer: "RegionLayer | None" = None
    handle: object = None  # region id (int) or a pending token (str)

    def mouseClickEvent(self, ev):  # noqa: N802 - pyqtgraph naming
        if ev.button() == Qt.MouseButton.LeftButton and self.layer is not None \
                and isinstance(self.handle, int):
            ev.accept()
            self.layer.select(self.handle)
        else:
            ev.ignore()


class _RectGraphic(_Selectable, QGraphicsRectItem):
    pass


class _EllipseGraphic(_Selectable, QGraphicsEllipseItem):
    pass


class _DrawingSurface(QGraphicsRectItem):
    """Covers the image while region mode is on; a left drag on it draws a region."""

    def __init__(self, layer: "RegionLayer") -> None:
        super().__init__()
        self.layer = layer
        self.setPen(QPen(Qt.PenStyle.NoPen))
        self.setBrush(QBrush(Qt.BrushStyle.NoBrush))
        self.setZValue(_Z_SURFACE)
        self.setCursor(Qt.CursorShape.CrossCursor)

    def mouseDragEvent(self, ev):  # noqa: N802 - pyqtgraph naming
        if ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()  # right drag stays window/level, on the view box
            return
        ev.accept()
        # buttonDownPos/pos are in this item's coordinates: image pixels.
        self.layer._on_drag(ev.buttonDownPos(Qt.MouseButton.LeftButton), ev.pos(),
                            ev.isFinish())

    def mouseClickEvent(self, ev):  # noqa: N802 - pyqtgraph naming
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self.layer.select(None)
        else:
            ev.ignore()


class RegionGraphic:
    """One region on screen: its outline and its caption."""

    def __init__(self, layer: "RegionLayer", handle: object, shape: str, rect: QRectF,
                 caption: str, colour: QColor) -> None:
        self.layer = layer
        self.shape = shape
        self.outline = _EllipseGraphic() if shape == "ellipse" else _RectGraphic()
        self.outline.layer = layer
        self.outline.handle = handle
        self.outline.setRect(rect)
        self.outline.setZValue(_Z_REGION)
        self.caption = pg.TextItem(anchor=(0, 1), fill=pg.mkBrush(0, 0, 0, 170))
        self.caption.setZValue(_Z_CAPTION)
        self.colour = colour
        self.text = caption
        self.state = "saved"  # saved | saving | deleting
        self.selected = False

    @property
    def handle(self) -> object:
        return self.outline.handle

    @handle.setter
    def handle(self, value: object) -> None:
        self.outline.handle = value

    def rect(self) -> QRectF:
        return self.outline.rect()

    def style(self) -> None:
        colour = PENDING_COLOUR if self.state != "saved" else self.colour
        pen = QPen(colour)
        pen.setCosmetic(True)  # the same on-screen width at any zoom
        pen.setWidthF(3.0 if self.selected else 2.0)
        if self.state != "saved":
            pen.setStyle(Qt.PenStyle.DashLine)
        self.outline.setPen(pen)
        fill = QColor(colour)
        fill.setAlpha(60 if self.selected else 0)
        self.outline.setBrush(QBrush(fill))
        suffix = {"saving": " (saving…)", "deleting": " (deleting…)"}.get(self.state, "")
        self.caption.setColor(colour)
        self.caption.setText(self.text + suffix)

    def place_caption(self) -> None:
        """At the corner of the outline that is top-left on screen, whatever the orientation."""
        rect = self.outline.rect()
        corners = (rect.topLeft(), rect.topRight(), rect.bottomLeft(), rect.bottomRight())
        best = min(corners, key=lambda c: _screen_order(self.outline.mapToScene(c)))
        self.caption.setPos(best)

    def items(self) -> tuple[QGraphicsItem, QGraphicsItem]:
        return self.outline, self.caption


def _screen_order(point: QPointF) -> tuple[float, float]:
    return round(point.y(), 3), round(point.x(), 3)


class RegionLayer(QObject):
    """The regions of the image on screen, and region drawing (``drawing`` mode)."""

    drawn = Signal(object)  # RegionDraft
    selection_changed = Signal(object)  # region id or None

    def __init__(self, view: ImageView) -> None:
        super().__init__(view)
        self.view = view
        self.shape = "rectangle"
        self.drawing = False
        self._surface: _DrawingSurface | None = None
        self._graphics: dict[object, RegionGraphic] = {}  # region id or pending token
        self._preview: RegionGraphic | None = None
        self._selected: int | None = None
        view.view_changed.connect(self.relayout)

    # -- drawing mode
    def set_drawing(self, on: bool) -> None:
        self.drawing = bool(on)
        surface = self._ensure_surface()
        surface.setVisible(self.drawing)
        if not self.drawing and self._preview is not None:
            self._remove_graphic(self._preview)
            self._preview = None

    def set_shape(self, shape: str) -> None:
        if shape not in SHAPES:
            raise ValueError(f"unknown region shape {shape!r}")
        self.shape = shape

    def image_size(self) -> tuple[int, int]:
        instance = self.view.instance
        return (int(instance.columns), int(instance.rows)) if instance is not None else (0, 0)

    def sync_image(self) -> None:
        """Fit the drawing surface to the image on screen (call after a new image shows)."""
        width, height = self.image_size()
        self._ensure_surface().setRect(QRectF(0, 0, width, height))

    def _ensure_surface(self) -> _DrawingSurface:
        if self._surface is None:
            self._surface = _DrawingSurface(self)
            self.view.add_image_overlay(self._surface)
            self._surface.setZValue(_Z_SURFACE)
            self._surface.setVisible(self.drawing)
            width, height = self.image_size()
            self._surface.setRect(QRectF(0, 0, width, height))
        return self._surface

    def _on_drag(self, start: QPointF, now: QPointF, finished: bool) -> None:
        if self.view.instance is None:
            return
        rect = self._clamped(start, now)
        if self._preview is None:
            self._preview = RegionGraphic(self, None, self.shape, rect, "", PENDING_COLOUR)
            self._preview.state = "saving"
            self._add_graphic(self._preview)
        self._preview.outline.setRect(rect)
        self._preview.text = f"{rect.width():.0f} × {rect.height():.0f} px"
        self._preview.style()
        self._preview.place_caption()
        if not finished:
            return
        self._remove_graphic(self._preview)
        self._preview = None
        if rect.width() >= MIN_SIZE_PX and rect.height() >= MIN_SIZE_PX:
            self.drawn.emit(RegionDraft(self.shape, rect.x(), rect.y(), rect.width(),
                                        rect.height(), self.view.frame))

    def _clamped(self, a: QPointF, b: QPointF) -> QRectF:
        width, height = self.image_size()
        x0, x1 = sorted((min(max(a.x(), 0.0), width), min(max(b.x(), 0.0), width)))
        y0, y1 = sorted((min(max(a.y(), 0.0), height), min(max(b.y(), 0.0), height)))
        return QRectF(x0, y0, x1 - x0, y1 - y0)

    # -- what is shown
    def show_region(self, region_id: int, shape: str, rect: QRectF, caption: str,
                    colour: QColor) -> RegionGraphic:
        """Show (or update) a committed region."""
        graphic = self._graphics.get(region_id)
        if graphic is not None and graphic.shape != shape:
            self.remove(region_id)
            graphic = None
        if graphic is None:
            graphic = RegionGraphic(self, region_id, shape, rect, caption, colour)
            self._graphics[region_id] = graphic
            self._add_graphic(graphic)
        graphic.outline.setRect(rect)
        graphic.text, graphic.colour, graphic.state = caption, colour, "saved"
        graphic.selected = region_id == self._selected
        graphic.style()
        graphic.place_caption()
        return graphic

    def show_pending(self, token: str, draft: RegionDraft, caption: str) -> RegionGraphic:
        """A region sent to the store and not yet committed: dashed grey, '(saving…)'."""
        graphic = RegionGraphic(self, token, draft.shape, draft.rect(), caption,
                                PENDING_COLOUR)
        graphic.state = "saving"
        self._graphics[token] = graphic
        self._add_graphic(graphic)
        graphic.style()
        graphic.place_caption()
        return graphic

    def set_state(self, handle: object, state: str) -> None:
        graphic = self._graphics.get(handle)
        if graphic is not None:
            graphic.state = state
            graphic.style()

    def remove(self, handle: object) -> None:
        graphic = self._graphics.pop(handle, None)
        if graphic is not None:
            self._remove_graphic(graphic)
        if handle == self._selected:
            self.select(None)

    def clear(self) -> None:
        for handle in list(self._graphics):
            self.remove(handle)
        self.select(None)

    def handles(self) -> list[object]:
        return list(self._graphics)

    def graphic(self, handle: object) -> RegionGraphic | None:
        return self._graphics.get(handle)

    def keep_only(self, handles: Iterable[object]) -> None:
        wanted = set(handles)
        for handle in list(self._graphics):
            if handle not in wanted:
                self.remove(handle)

    # -- selection
    @property
    def selected(self) -> int | None:
        return self._selected

    def select(self, region_id: int | None) -> None:
        if region_id is not None and region_id not in self._graphics:
            region_id = None
        if region_id == self._selected:
            return
        self._selected = region_id
        for handle, graphic in self._graphics.items():
            graphic.selected = handle == region_id
            graphic.style()
        self.selection_changed.emit(region_id)

    # -- geometry
    def relayout(self) -> None:
        for graphic in self._graphics.values():
            graphic.place_caption()

    def scene_rect(self, handle: object) -> QRectF:
        """Where the region's outline is in scene coordinates (tests, screenshots)."""
        graphic = self._graphics[handle]
        return graphic.outline.mapRectToScene(graphic.outline.rect())

    def _add_graphic(self, graphic: RegionGraphic) -> None:
        for item in graphic.items():
            self.view.add_image_overlay(item)
        graphic.outline.setZValue(_Z_REGION)
        graphic.caption.setZValue(_Z_CAPTION)

    @staticmethod
    def _remove_graphic(graphic: RegionGraphic) -> None:
        for item in graphic.items():
            scene = item.scene()
            item.setParentItem(None)
            if scene is not None:
                scene.removeItem(item)
