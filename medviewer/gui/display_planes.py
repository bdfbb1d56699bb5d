"""The file's display shutter and overlay planes drawn on the image view (dicom/shutters.py and
dicom/overlay_planes.py decode them; this draws them).

Both are children of the view's image item, so they share its transform (pan, zoom, rotation,
flips, pixel aspect). The shutter is one filled path, the image rectangle minus the opening,
above the image (it hides it) and below the saliency overlay, regions and measurements. Each
overlay plane is an RGBA image item placed at its origin, cut to the image; only planes
showing something on the current frame are visible.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsPathItem

from medviewer.dicom import shutters

if TYPE_CHECKING:
    from medviewer.dicom.reader import Instance
    from medviewer.gui.view_host import OverlayHost

log = logging.getLogger(__name__)

SHUTTER_Z = 1.0  # above the image (0), below the saliency overlay (2)
OVERLAY_Z = 1.5
# An overlay plane has no colour of its own outside a presentation state; it is drawn in the
# brightest grey, as the modality that burned such graphics into film drew them.
OVERLAY_RGBA = (255, 255, 255, 255)


def shutter_path(shutter: shutters.DisplayShutter, rows: int, columns: int) -> QPainterPath:
    """The area the geometric shapes hide, in image coordinates: the image minus the opening."""
    whole = QPainterPath()
    whole.addRect(QRectF(0, 0, columns, rows))
    opening = QPainterPath(whole)
    for shape in shutter.geometric_shapes:
        part = QPainterPath()
        if isinstance(shape, shutters.RectangularShutter):
            x0, y0, x1, y1 = shape.image_rect()
            part.addRect(QRectF(QPointF(x0, y0), QPointF(x1, y1)))
        elif isinstance(shape, shutters.CircularShutter):
            cx, cy, radius = shape.image_circle()
            part.addEllipse(QPointF(cx, cy), radius, radius)
        elif isinstance(shape, shutters.PolygonalShutter):
            part.addPolygon(QPolygonF([QPointF(x, y) for x, y in shape.image_points()]))
            part.closeSubpath()
        opening = opening.intersected(part)
    return whole.subtracted(opening).simplified()


class DisplayPlanes:
    """The shutter and overlay plane items of one image view."""

    def __init__(self, view: OverlayHost) -> None:
        self._view = view
        self._shutter_items: list[Any] = []  # the path, then one image item per bitmap
        self._overlay_items: dict[int, Any] = {}  # group -> pyqtgraph ImageItem
        self._has_content: dict[int, bool] = {}  # group -> shows something on this frame
        self._instance: Instance | None = None
        self._frame = -1
        self.shutter_enabled = True
        self.overlays_enabled = True

    # ------------------------------------------------------------ state
    @property
    def shutter_items(self) -> list[Any]:
        return list(self._shutter_items)

    def overlay_item(self, group: int) -> Any:
        return self._overlay_items.get(group)

    @property
    def showing_shutter(self) -> bool:
        return any(item.isVisible() for item in self._shutter_items)

    def showing_overlays(self) -> list[int]:
        """Groups of the overlay planes on screen now."""
        return [group for group, item in self._overlay_items.items() if item.isVisible()]

    # ------------------------------------------------------------ changes
    def show(self, instance: Instance | None, frame: int) -> None:
        """Draw what ``instance`` asks for on ``frame`` (nothing for most files, at no cost)."""
        if instance is not self._instance:
            self._clear_items()
            self._instance = instance
            self._frame = -1
            if instance is not None:
                self._make_shutter(instance)
        if instance is not None and frame != self._frame:
            self._frame = frame
            self._show_overlays(instance, frame)
        self._update_visibility()

    def set_shutter_enabled(self, enabled: bool) -> None:
        self.shutter_enabled = bool(enabled)
        self._update_visibility()

    def set_overlays_enabled(self, enabled: bool) -> None:
        self.overlays_enabled = bool(enabled)
        self._update_visibility()

    def clear(self) -> None:
        self._clear_items()
        self._instance = None
        self._frame = -1

    # ------------------------------------------------------------ drawing
    def _make_shutter(self, instance: Instance) -> None:
        shutter = instance.display_shutter()
        if shutter is None or not shutter.shapes:
            return
        colour = shutter.rgb()
        if shutter.geometric_shapes:
            item = QGraphicsPathItem(shutter_path(shutter, instance.rows, instance.columns))
            item.setPen(QPen(Qt.PenStyle.NoPen))
            item.setBrush(QBrush(QColor(*colour)))
            self._add(item, SHUTTER_Z)
            self._shutter_items.append(item)
        planes = instance.overlay_planes()
        for group in shutter.bitmap_groups:
            plane = planes.by_group(group)
            placed = plane.placed(0, instance.rows, instance.columns) if plane else None
            if placed is not None:
                item = self._bitmap_item(placed[0], (*colour, 255))
                item.setPos(placed[2], placed[1])
                self._add(item, SHUTTER_Z)
                self._shutter_items.append(item)

    def _add(self, item, z: float) -> None:
        self._view.add_image_overlay(item)
        item.setZValue(z)

    @staticmethod
    def _bitmap_item(bitmap, rgba_colour, item=None):
        """A pyqtgraph ImageItem showing ``rgba_colour`` where ``bitmap`` is set."""
        import numpy as np

        from medviewer.gui.lazy import import_pyqtgraph

        rgba = np.zeros((*bitmap.shape, 4), dtype=np.uint8)
        rgba[bitmap] = rgba_colour
        if item is None:
            item = import_pyqtgraph().ImageItem(axisOrder="row-major")
        item.setImage(rgba, autoLevels=False, levels=None)
        return item

    def _show_overlays(self, instance: Instance, frame: int) -> None:
        planes = instance.overlay_planes()
        shutter = instance.display_shutter()
        bitmap_groups = set(shutter.bitmap_groups) if shutter is not None else set()
        for plane in planes.planes:
            if plane.group in bitmap_groups:
                continue  # drawn as part of the shutter
            placed = plane.placed(frame, instance.rows, instance.columns)
            item = self._overlay_items.get(plane.group)
            self._has_content[plane.group] = placed is not None
            if placed is None:
                continue
            bitmap, row0, col0 = placed
            if item is None:
                item = self._bitmap_item(bitmap, OVERLAY_RGBA)
                self._add(item, OVERLAY_Z)
                self._overlay_items[plane.group] = item
            else:
                self._bitmap_item(bitmap, OVERLAY_RGBA, item)
            item.setPos(col0, row0)

    def _update_visibility(self) -> None:
        for item in self._shutter_items:
            item.setVisible(self.shutter_enabled)
        for group, item in self._overlay_items.items():
            item.setVisible(self.overlays_enabled and self._has_content.get(group, False))

    def _clear_items(self) -> None:
        for item in [*self._overlay_items.values(), *self._shutter_items]:
            scene = item.scene()
            item.setParentItem(None)
            if scene is not None:
                scene.removeItem(item)
        self._shutter_items.clear()
        self._overlay_items.clear()
        self._has_content.clear()
