"""Saliency overlay: a colour-mapped map drawn over the image, in the image's own pixel grid.

The map comes from ``medviewer.inference.saliency`` as float32 [rows, cols] in [0, 1] on the
shown frame's pixel grid. :class:`SaliencyOverlay` draws it as a pyqtgraph ``ImageItem``
made a child of the image view's image item (``ImageView.add_image_overlay``), so it shares
the image's transform and follows pan, zoom, rotation, flips and pixel aspect exactly.

Each pixel's alpha is its saliency (cold regions leave the image visible, as
``saliency.blend_overlay`` does); the item's opacity is the user's overall opacity, so the
slider changes nothing but one number. pyqtgraph is imported only when the first map arrives.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from medviewer.gui.lazy import LazyModule

if TYPE_CHECKING:
    import numpy as np

    from medviewer.gui.image_view import ImageView
else:  # numpy loads with the first map, after the window is shown
    np = LazyModule("numpy")

log = logging.getLogger(__name__)

COLOUR_MAPS = ("jet", "inferno", "viridis", "hot")
DEFAULT_COLOUR_MAP = "jet"
# Above the image (z 0), below measurements (z 10) and anything drawn for labels.
OVERLAY_Z = 2


def colour_lut(name: str) -> np.ndarray:
    """A 256-entry uint8 RGB lookup table for one of :data:`COLOUR_MAPS`."""
    ramp = np.linspace(0.0, 1.0, 256, dtype=np.float32)
    if name == "jet":
        from medviewer.inference.saliency import jet_colormap

        return jet_colormap(ramp)
    if name == "hot":  # black-red-yellow-white, as in matplotlib's 'hot'
        rgb = np.stack([np.clip(ramp * 3.0, 0, 1), np.clip(ramp * 3.0 - 1.0, 0, 1),
                        np.clip(ramp * 3.0 - 2.0, 0, 1)], axis=1)
        return np.rint(rgb * 255.0).astype(np.uint8)
    if name in ("inferno", "viridis"):
        from medviewer.gui.lazy import import_pyqtgraph

        pg = import_pyqtgraph()
        table = pg.colormap.get(name).getLookupTable(0.0, 1.0, 256, alpha=False)
        return np.asarray(table, dtype=np.uint8)[:, :3]
    raise ValueError(f"unknown colour map {name!r} (choose one of {', '.join(COLOUR_MAPS)})")


_RGBA_LUTS: dict[str, np.ndarray] = {}
_RGBA_LOCK = threading.Lock()


def _rgba_lut(name: str) -> np.ndarray:
    """The colour map with alpha = index, as 256 packed RGBA uint32 values (one gather)."""
    with _RGBA_LOCK:
        lut = _RGBA_LUTS.get(name)
        if lut is None:
            table = np.empty((256, 4), np.uint8)
            table[:, :3] = colour_lut(name)
            table[:, 3] = np.arange(256, dtype=np.uint8)
            lut = _RGBA_LUTS[name] = table.view(np.uint32).ravel()
        return lut


def saliency_rgba(values: np.ndarray, colour_map: str = DEFAULT_COLOUR_MAP) -> np.ndarray:
    """Map [0, 1] -> uint8 RGBA [rows, cols, 4]: colour from the LUT, alpha = saliency.

    Safe on a worker thread; a 3000 x 2500 map takes about 0.1 s (one uint8 index, one
    uint32 gather), so the read jobs make the picture and the GUI thread only shows it.
    """
    if values.ndim != 2:
        raise ValueError(f"expected a 2-D saliency map, got shape {values.shape}")
    lut = _rgba_lut(colour_map)
    index = np.multiply(values, np.float32(255.0), dtype=np.float32)
    np.clip(index, 0.0, 255.0, out=index)
    index += np.float32(0.5)  # round half up, as the cast truncates
    packed = lut[index.astype(np.uint8)]
    return packed.view(np.uint8).reshape(*values.shape, 4)


@dataclass(frozen=True)
class OverlayMap:
    """What the overlay shows: a map and what it explains."""

    values: np.ndarray  # float32 [rows, cols] in [0, 1], the frame's pixel grid
    method: str  # 'cam' or 'occlusion'
    class_name: str
    frame: int = 0
    rgba: np.ndarray | None = None  # saliency_rgba(values, colour_map), made off the GUI thread
    colour_map: str = ""

    @property
    def hottest_pixel(self) -> tuple[int, int]:
        """(row, col) of the largest value."""
        row, col = np.unravel_index(int(np.argmax(self.values)), self.values.shape)
        return int(row), int(col)


class SaliencyOverlay:
    """The heat map on an :class:`ImageView`; shown only while it has a map and is enabled."""

    def __init__(self, view: ImageView, opacity: float = 0.45,
                 colour_map: str = DEFAULT_COLOUR_MAP) -> None:
        self._view = view
        self._item: Any = None  # pyqtgraph ImageItem, made when the first map arrives
        self._map: OverlayMap | None = None
        self._enabled = True
        self._opacity = _clamp_opacity(opacity)
        self._colour_map = colour_map if colour_map in COLOUR_MAPS else DEFAULT_COLOUR_MAP

    # ------------------------------------------------------------ state
    @property
    def item(self) -> Any:
        """The pyqtgraph ImageItem (None until a map was first shown)."""
        return self._item

    @property
    def map(self) -> OverlayMap | None:
        return self._map

    @property
    def enabled(self) -> bool:
        return self._enabled

    @property
    def opacity(self) -> float:
        return self._opacity

    @property
    def colour_map(self) -> str:
        return self._colour_map

    @property
    def is_showing(self) -> bool:
        """Whether a map is on screen now."""
        return self._item is not None and self._item.isVisible()

    # ------------------------------------------------------------ changes
    def set_map(self, overlay_map: OverlayMap) -> None:
        """Show a map; it must be on the shown image's pixel grid (rows x cols)."""
        instance = self._view.instance
        if instance is None:
            return
        expected = (instance.rows, instance.columns)
        if overlay_map.values.shape != expected:
            raise ValueError(f"saliency map {overlay_map.values.shape} is not on the image's "
                             f"{expected[0]}x{expected[1]} pixel grid")
        self._map = overlay_map
        picture = overlay_map.rgba
        if picture is None or overlay_map.colour_map != self._colour_map:
            picture = saliency_rgba(overlay_map.values, self._colour_map)
        item = self._ensure_item()
        item.setImage(picture, autoLevels=False, levels=None)
        self._update_visibility()

    def clear(self) -> None:
        """Forget the map (a new image is shown, or the old one is gone)."""
        self._map = None
        if self._item is not None:
            self._item.clear()
        self._update_visibility()

    def set_enabled(self, enabled: bool) -> None:
        self._enabled = bool(enabled)
        self._update_visibility()

    def set_opacity(self, opacity: float) -> None:
        self._opacity = _clamp_opacity(opacity)
        if self._item is not None:
            self._item.setOpacity(self._opacity)

    def set_colour_map(self, name: str) -> None:
        if name not in COLOUR_MAPS:
            raise ValueError(f"unknown colour map {name!r}")
        self._colour_map = name
        if self._map is not None and self._item is not None:
            self._item.setImage(saliency_rgba(self._map.values, name), autoLevels=False,
                                levels=None)

    # ------------------------------------------------------------ drawing
    def _ensure_item(self) -> Any:
        if self._item is None:
            from medviewer.gui.lazy import import_pyqtgraph

            pg = import_pyqtgraph()
            item = pg.ImageItem(axisOrder="row-major")
            item.setObjectName("saliencyOverlay")
            item.setZValue(OVERLAY_Z)
            item.setOpacity(self._opacity)
            item.setVisible(False)
            self._view.add_image_overlay(item)  # a child of the image item: same transform
            self._item = item
        return self._item

    def _update_visibility(self) -> None:
        if self._item is not None:
            self._item.setVisible(self._enabled and self._map is not None)


def _clamp_opacity(value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return 0.45
    return min(max(value, 0.0), 1.0) if math.isfinite(value) else 0.45
