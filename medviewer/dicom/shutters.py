"""DICOM display shutters (PS3.3 C.7.6.11, C.7.6.15): what the image hides and in which colour.

A shutter leaves an opening and hides everything outside it. Several shapes combine: the
opening is where every geometric shape (rectangle, circle, polygon) is open, and a bitmap
shutter (an overlay plane) hides its set pixels as well. The hidden part is painted with the
Shutter Presentation Value (a grey P-value, 0 = black .. 65535 = white) or, on a colour
display, the Shutter Presentation Color CIELab Value; black when the file names neither.

Positions in the file are 1-based (row, column) pixel numbers. Here they are converted to
*image coordinates* (x = column, y = row; pixel (r, c), 0-based, covers [c, c+1) x [r, r+1)),
the coordinates the image view draws in: a vertex or centre at pixel (R, C) is the centre of
that pixel, (C - 0.5, R - 0.5), and a rectangle's edges include their edge pixels. A pixel is
hidden when its centre is outside the opening (:meth:`DisplayShutter.hidden_mask`).

Only the header is read; nothing here decodes pixel data or imports Qt.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

log = logging.getLogger(__name__)

P_VALUE_MAX = 0xFFFF


@dataclass(frozen=True)
class RectangularShutter:
    """Open from column ``left`` to ``right`` and row ``upper`` to ``lower`` (1-based, inclusive)."""

    left: int
    right: int
    upper: int
    lower: int

    def image_rect(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the opening in image coordinates."""
        return float(self.left - 1), float(self.upper - 1), float(self.right), float(self.lower)

    def open_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = self.image_rect()
        return (x >= x0) & (x < x1) & (y >= y0) & (y < y1)


@dataclass(frozen=True)
class CircularShutter:
    """Open inside the circle of ``radius`` pixels about pixel (``center_row``, ``center_column``)."""

    center_row: float
    center_column: float
    radius: float

    def image_circle(self) -> tuple[float, float, float]:
        """(cx, cy, r) of the opening in image coordinates."""
        return self.center_column - 0.5, self.center_row - 0.5, float(self.radius)

    def open_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        cx, cy, r = self.image_circle()
        return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


@dataclass(frozen=True)
class PolygonalShutter:
    """Open inside the polygon through ``vertices`` ((row, column), 1-based), closed."""

    vertices: tuple[tuple[float, float], ...]

    def image_points(self) -> list[tuple[float, float]]:
        """The vertices as (x, y) image coordinates."""
        return [(column - 0.5, row - 0.5) for row, column in self.vertices]

    def open_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Even-odd rule (a ray to the right crosses an odd number of edges), and points on
        an edge are open too: the opening is the closed polygon."""
        points = self.image_points()
        inside = np.zeros(np.broadcast(x, y).shape, dtype=bool)
        on_edge = np.zeros_like(inside)
        for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1]):
            cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)
            on_edge |= (cross == 0) & (np.minimum(x1, x2) <= x) & (x <= np.maximum(x1, x2)) \
                & (np.minimum(y1, y2) <= y) & (y <= np.maximum(y1, y2))
            if y1 == y2:
                continue  # a horizontal edge is never crossed by a horizontal ray
            spans = (y1 > y) != (y2 > y)
            crossing_x = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            inside ^= spans & (x < crossing_x)
        return inside | on_edge


@dataclass(frozen=True)
class BitmapShutter:
    """Hides the set pixels of the overlay plane in group ``overlay_group`` (e.g. 0x6000)."""

    overlay_group: int


Shape = RectangularShutter | CircularShutter | PolygonalShutter | BitmapShutter


@dataclass(frozen=True)
class DisplayShutter:
    """The shapes of a file's display shutter and how the hidden part is shown."""

    shapes: tuple[Shape, ...]
    presentation_value: int | None = None  # grey P-value, 0..65535
    cielab: tuple[int, int, int] | None = None  # DICOM-scaled CIELab, 0..65535 each
    problems: tuple[str, ...] = ()  # phrases for shapes the file describes but cannot be used

    @property
    def geometric_shapes(self) -> tuple[Shape, ...]:
        return tuple(s for s in self.shapes if not isinstance(s, BitmapShutter))

    @property
    def bitmap_groups(self) -> tuple[int, ...]:
        return tuple(s.overlay_group for s in self.shapes if isinstance(s, BitmapShutter))

    def grey(self) -> int:
        """The hidden part's 8-bit grey value on a grey-scale display."""
        value = self.presentation_value or 0
        return int(round(min(max(value, 0), P_VALUE_MAX) * 255 / P_VALUE_MAX))

    def rgb(self) -> tuple[int, int, int]:
        """The hidden part's 8-bit sRGB colour: the CIELab value if given, else the grey."""
        if self.cielab is not None:
            return cielab_to_rgb(self.cielab)
        grey = self.grey()
        return grey, grey, grey

    def hidden_mask(self, rows: int, columns: int,
                    bitmaps: Sequence[np.ndarray] = ()) -> np.ndarray:
        """(rows, columns) bool, True where the shutter hides the pixel.

        ``bitmaps`` are the bitmap shutters' overlay masks already on the image's grid (see
        ``overlay_planes.OverlayPlane.image_mask``); their set pixels are hidden too.
        """
        x = (np.arange(columns, dtype=np.float64) + 0.5)[None, :]  # pixel centres,
        y = (np.arange(rows, dtype=np.float64) + 0.5)[:, None]  # broadcast to (rows, columns)
        opening = np.ones((rows, columns), dtype=bool)
        for shape in self.geometric_shapes:
            opening &= shape.open_at(x, y)
        hidden = ~opening
        for bitmap in bitmaps:
            hidden |= bitmap.astype(bool)
        return hidden


# ---------------------------------------------------------------- reading the header


def _numbers(value: Any) -> list[float]:
    if value is None or value == "":
        return []
    items = value if isinstance(value, (MultiValue, list, tuple)) else [value]
    out = []
    for item in items:
        try:
            number = float(item)
        except (TypeError, ValueError):
            return []
        if not np.isfinite(number):
            return []
        out.append(number)
    return out


def _shape_names(ds: Dataset) -> list[str]:
    raw = ds.get("ShutterShape")
    if raw is None or raw == "":
        return []
    items = raw if isinstance(raw, (MultiValue, list, tuple)) else str(raw).split("\\")
    return [str(item).strip().upper() for item in items if str(item).strip()]


def _rectangle(ds: Dataset) -> RectangularShutter | str:
    edges = [_numbers(ds.get(keyword)) for keyword in (
        "ShutterLeftVerticalEdge", "ShutterRightVerticalEdge",
        "ShutterUpperHorizontalEdge", "ShutterLowerHorizontalEdge")]
    if any(len(edge) != 1 for edge in edges):
        return "its rectangular shutter lacks an edge"
    left, right, upper, lower = (int(round(edge[0])) for edge in edges)
    if right < left or lower < upper:
        return "its rectangular shutter's edges are in the wrong order"
    return RectangularShutter(left, right, upper, lower)


def _circle(ds: Dataset) -> CircularShutter | str:
    center = _numbers(ds.get("CenterOfCircularShutter"))
    radius = _numbers(ds.get("RadiusOfCircularShutter"))
    if len(center) != 2 or len(radius) != 1 or radius[0] <= 0:
        return "its circular shutter lacks a centre or a radius"
    return CircularShutter(center[0], center[1], radius[0])


def _polygon(ds: Dataset) -> PolygonalShutter | str:
    values = _numbers(ds.get("VerticesOfThePolygonalShutter"))
    if len(values) < 6 or len(values) % 2:
        return "its polygonal shutter has fewer than three vertices"
    return PolygonalShutter(tuple((values[i], values[i + 1]) for i in range(0, len(values), 2)))


def _bitmap(ds: Dataset) -> BitmapShutter | str:
    group = _numbers(ds.get("ShutterOverlayGroup"))
    if len(group) != 1 or not (0x6000 <= int(group[0]) <= 0x601E) or int(group[0]) % 2:
        return "its bitmap shutter names no overlay plane"
    return BitmapShutter(int(group[0]))


_READERS = {"RECTANGULAR": _rectangle, "CIRCULAR": _circle, "POLYGONAL": _polygon,
            "BITMAP": _bitmap}


def read_display_shutter(ds: Dataset) -> DisplayShutter | None:
    """The file's display shutter, or None when it has none (or none that can be used).

    A shape the file names but describes badly is left out and said in ``problems``; the
    image is then shown with the shapes that are usable.
    """
    names = _shape_names(ds)
    if not names:
        return None
    shapes: list[Shape] = []
    problems: list[str] = []
    for name in dict.fromkeys(names):  # each shape once, in the file's order
        reader = _READERS.get(name)
        if reader is None:
            problems.append(f"its shutter shape {name!r} is not one DICOM defines")
            continue
        try:
            shape = reader(ds)
        except Exception as exc:  # noqa: BLE001 - a damaged value must not stop the image
            log.info("Display shutter %s unreadable", name, exc_info=True)
            shape = f"its {name.lower()} shutter cannot be read ({type(exc).__name__})"
        if isinstance(shape, str):
            problems.append(shape)
        else:
            shapes.append(shape)
    for problem in problems:
        log.info("Display shutter: %s", problem)
    if not shapes:
        return DisplayShutter((), problems=tuple(problems)) if problems else None
    value = _numbers(ds.get("ShutterPresentationValue"))
    presentation_value = int(min(max(value[0], 0), P_VALUE_MAX)) if len(value) == 1 else None
    lab = _numbers(ds.get("ShutterPresentationColorCIELabValue"))
    cielab = tuple(int(min(max(v, 0), P_VALUE_MAX)) for v in lab) if len(lab) == 3 else None
    return DisplayShutter(tuple(shapes), presentation_value, cielab,  # type: ignore[arg-type]
                          tuple(problems))


# ---------------------------------------------------------------- colour


_D65_WHITE = (0.95047, 1.0, 1.08883)


def cielab_to_rgb(scaled: Sequence[int]) -> tuple[int, int, int]:
    """DICOM-scaled CIELab (PS3.3 C.10.7.1.1: L* 0..100 and a*, b* -128..127 on 0..65535)
    -> 8-bit sRGB, through CIE XYZ with the D65 white point."""
    lightness = scaled[0] * 100.0 / P_VALUE_MAX
    a = scaled[1] * 255.0 / P_VALUE_MAX - 128.0
    b = scaled[2] * 255.0 / P_VALUE_MAX - 128.0
    fy = (lightness + 16.0) / 116.0
    fx = fy + a / 500.0
    fz = fy - b / 200.0
    delta = 6.0 / 29.0

    def inverse(f: float) -> float:
        return f ** 3 if f > delta else 3 * delta * delta * (f - 4.0 / 29.0)

    x, y, z = (white * inverse(f) for white, f in zip(_D65_WHITE, (fx, fy, fz)))
    linear = (3.2404542 * x - 1.5371385 * y - 0.4985314 * z,
              -0.9692660 * x + 1.8760108 * y + 0.0415560 * z,
              0.0556434 * x - 0.2040259 * y + 1.0572252 * z)

    def encode(c: float) -> int:
        c = min(max(c, 0.0), 1.0)
        c = 12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055
        return int(round(c * 255.0))

    r, g, b_ = (encode(c) for c in linear)
    return r, g, b_
