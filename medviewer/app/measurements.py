"""Measurements on an image, Qt-free: distances, angles, Cobb angles, ROI statistics, calibration.

A :class:`Measurement` is plain data that serialises to JSON (:meth:`Measurement.to_dict`):
its kind, its points in image pixel coordinates, the frame, the pixel spacing it was computed
with and where that spacing came from, the reader's label, and the computed values. The
label store keeps exactly this; the image view draws it.

Coordinates: a point is (column, row) = (x, y) in image pixels of the stored image (before
any rotation or flip on screen); pixel (row r, col c) covers [c, c+1) x [r, r+1), so its
centre is (c + 0.5, r + 0.5). Lengths and angles are computed in millimetres when a pixel
spacing is known (so non-square pixels give true angles), in pixels otherwise.

Points per kind:

- ``distance``: the two ends;
- ``angle``: first arm's end, the vertex, second arm's end (0..180 degrees);
- ``cobb``: two lines (four points: line 1 start, end, line 2 start, end); the angle between
  the lines, both taken as pointing right (towards higher columns), so 0..180 degrees;
- ``rectangle`` / ``ellipse``: two opposite corners of the bounding box. Statistics are over
  the pixels whose centre lies inside the shape, in modality units (after the Modality LUT or
  rescale), SD with ddof=0; the area is the shape's own (w x h, or pi a b);
- ``text``: where the annotation points; its text is the label.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from medviewer.errors import UserError
from medviewer.labels.values import (
    MEASUREMENT_KINDS,
    MEASUREMENT_POINTS,
    SPACING_SOURCES,
)

if TYPE_CHECKING:
    from medviewer.dicom.pixels import Spacing

# The kinds, their points and the spacing sources are the label store's, where they are kept.
KINDS = MEASUREMENT_KINDS
POINTS_PER_KIND = {kind: points for kind, (points, _) in MEASUREMENT_POINTS.items()}
ROI_KINDS = ("rectangle", "ellipse")
SOURCE_NAMES = {"PixelSpacing": "Pixel Spacing", "ImagerPixelSpacing": "Imager Pixel Spacing",
                "NominalScannedPixelSpacing": "Nominal Scanned Pixel Spacing",
                "calibrated": "calibrated", "none": "no pixel spacing"}
CALIBRATED = "calibrated"
# Units a length can be shown in (the settings' length_unit), as mm per unit.
LENGTH_UNITS = {"mm": 1.0, "cm": 10.0}
KIND_TITLES = {"distance": "Distance", "angle": "Angle", "cobb": "Cobb angle",
               "rectangle": "Rectangle ROI", "ellipse": "Ellipse ROI", "text": "Note"}

Point = tuple[float, float]


class MeasurementError(UserError):
    """A measurement that cannot be made or read back; ``str()`` is one sentence."""


# ---------------------------------------------------------------- the record


@dataclass(frozen=True)
class Measurement:
    """One measurement or annotation on one frame of one image (see the module docstring)."""

    kind: str
    points: tuple[Point, ...]
    frame: int = 0
    pixel_spacing: tuple[float, float] | None = None  # (row mm, column mm) used, or None
    spacing_source: str = "none"
    label: str = ""
    values: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: lists for tuples, values as computed."""
        return {
            "kind": self.kind,
            "points": [[float(x), float(y)] for x, y in self.points],
            "frame": int(self.frame),
            "pixel_spacing": list(self.pixel_spacing) if self.pixel_spacing else None,
            "spacing_source": self.spacing_source,
            "label": self.label,
            "values": dict(self.values),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measurement:
        """The measurement ``to_dict`` wrote; MeasurementError when it is not one."""
        try:
            kind = str(data["kind"])
            points = tuple((float(p[0]), float(p[1])) for p in data["points"])
            spacing = data.get("pixel_spacing")
            pixel_spacing = (float(spacing[0]), float(spacing[1])) if spacing else None
            measurement = cls(kind, points, int(data.get("frame", 0)), pixel_spacing,
                              str(data.get("spacing_source", "none")), str(data.get("label", "")),
                              dict(data.get("values") or {}))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise MeasurementError(f"A stored measurement is not readable ({exc}).") from None
        _check(measurement.kind, measurement.points, measurement.spacing_source)
        return measurement

    @property
    def spacing_name(self) -> str:
        return SOURCE_NAMES.get(self.spacing_source, self.spacing_source)

    def text(self, length_unit: str = "mm") -> str:
        """What is written beside it on the image (one or a few short lines); lengths and
        areas in ``length_unit`` (LENGTH_UNITS: the reader's setting). Stored values stay
        in mm whatever is shown."""
        v = self.values
        unit = f" {v['unit']}" if v.get("unit") else ""
        scale = LENGTH_UNITS[length_unit]
        if self.kind == "distance":
            if "length_mm" in v:
                return (f"{v['length_mm'] / scale:.{_decimals(scale)}f} {length_unit} "
                        f"({self.spacing_name})")
            return f"{v['length_px']:.1f} px (no pixel spacing)"
        if self.kind in ("angle", "cobb"):
            prefix = "Cobb " if self.kind == "cobb" else ""
            return f"{prefix}{v['angle_deg']:.1f}°"
        if self.kind in ROI_KINDS:
            if "area_mm2" in v:
                area = (f"area {v['area_mm2'] / scale ** 2:.{_decimals(scale ** 2)}f} "
                        f"{length_unit}²")
            else:
                area = f"area {v['area_px']:.0f} px² (no pixel spacing)"
            if v.get("pixels", 0) == 0 or "mean" not in v:
                return area
            if isinstance(v["mean"], list):  # colour: one mean per channel
                means = "/".join(f"{m:.0f}" for m in v["mean"])
                return f"mean RGB {means}\n{area}"
            return (f"mean {_number(v['mean'])}{unit}  SD {_number(v['sd'])}\n"
                    f"min {_number(v['min'])}  max {_number(v['max'])}\n{area}")
        return self.label

    @property
    def title(self) -> str:
        """What it is, for menus: 'Rectangle ROI'."""
        return KIND_TITLES[self.kind]

    def summary(self, length_unit: str = "mm") -> str:
        """One line for the status bar: 'Distance 12.3 mm (Pixel Spacing)'."""
        name = self.title
        body = self.text(length_unit).replace("\n", ", ")
        if self.kind == "cobb":
            body = body.removeprefix("Cobb ")
        return f"{name} {body}" if body else name


def _decimals(scale: float) -> int:
    """Decimals that keep a tenth of a mm (or mm²) visible in a larger unit."""
    return 1 + round(math.log10(scale))


def _number(value: float) -> str:
    return f"{value:.1f}" if abs(value) < 1e5 else f"{value:.4g}"


def _check(kind: str, points: Sequence[Point], spacing_source: str) -> None:
    if kind not in KINDS:
        raise MeasurementError(f"'{kind}' is not a kind of measurement "
                               f"(one of {', '.join(KINDS)}).")
    if len(points) != POINTS_PER_KIND[kind]:
        raise MeasurementError(f"A {kind} measurement needs {POINTS_PER_KIND[kind]} points, "
                               f"not {len(points)}.")
    if not all(math.isfinite(c) for point in points for c in point):
        raise MeasurementError(f"A {kind} measurement has a point that is not a number.")
    if spacing_source not in SPACING_SOURCES:
        raise MeasurementError(f"'{spacing_source}' is not a pixel spacing source "
                               f"(one of {', '.join(SPACING_SOURCES)}).")


# ---------------------------------------------------------------- spacing


def spacing_source(spacing: Spacing | None) -> str:
    """The record's name for where a spacing came from."""
    if spacing is None:
        return "none"
    return spacing.attribute if spacing.attribute in SPACING_SOURCES else "PixelSpacing"


def calibrated_spacing(start: Point, end: Point, known_mm: float, aspect: float = 1.0) -> Spacing:
    """The pixel spacing that makes the line ``start``-``end`` ``known_mm`` long.

    ``aspect`` is the pixel's height over its width (row spacing / column spacing), kept
    from the file when it says (Pixel Aspect Ratio); 1 for square pixels.
    """
    from medviewer.dicom.pixels import Spacing

    if not (math.isfinite(known_mm) and known_mm > 0):
        raise MeasurementError("The known distance must be a length above 0 mm.")
    dx, dy = end[0] - start[0], end[1] - start[1]
    scaled = math.hypot(dx, dy * aspect)  # the line's length in column-spacing units
    if scaled < 1.0:
        raise MeasurementError("Draw the calibration line over at least one pixel.")
    col_mm = known_mm / scaled
    return Spacing(col_mm * aspect, col_mm, f"calibrated from a known distance of "
                                            f"{known_mm:g} mm", CALIBRATED)


def _to_mm(points: Sequence[Point], spacing: tuple[float, float] | None) -> np.ndarray:
    array = np.asarray(points, dtype=np.float64)
    if spacing is not None:
        array = array * np.array([spacing[1], spacing[0]])  # x by column, y by row spacing
    return array


# ---------------------------------------------------------------- geometry


def length(start: Point, end: Point, spacing: tuple[float, float] | None = None) -> float:
    """Length in mm with a spacing (row mm, column mm), in pixels without."""
    a, b = _to_mm([start, end], spacing)
    return float(math.hypot(*(b - a)))


def angle_between(u: np.ndarray, v: np.ndarray) -> float:
    """Angle between two vectors in degrees, 0..180 (atan2: exact near 0 and 180)."""
    cross = u[0] * v[1] - u[1] * v[0]
    dot = float(np.dot(u, v))
    return math.degrees(math.atan2(abs(cross), dot))


def angle_at(first: Point, vertex: Point, second: Point,
             spacing: tuple[float, float] | None = None) -> float:
    """The angle at ``vertex`` between the arms to ``first`` and ``second``, in degrees."""
    a, b, c = _to_mm([first, vertex, second], spacing)
    if not np.any(a - b) or not np.any(c - b):
        raise MeasurementError("An angle needs two arms longer than zero.")
    return angle_between(a - b, c - b)


def _rightwards(vector: np.ndarray) -> np.ndarray:
    return -vector if vector[0] < 0 or (vector[0] == 0 and vector[1] < 0) else vector


def cobb_angle(line1: tuple[Point, Point], line2: tuple[Point, Point],
               spacing: tuple[float, float] | None = None) -> float:
    """The angle between two lines, each taken as pointing right, in degrees (0..180)."""
    p = _to_mm([*line1, *line2], spacing)
    u, v = p[1] - p[0], p[3] - p[2]
    if not np.any(u) or not np.any(v):
        raise MeasurementError("A Cobb angle needs two lines longer than zero.")
    return angle_between(_rightwards(u), _rightwards(v))


def bounding_box(points: Sequence[Point]) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) with x0 <= x1 and y0 <= y1."""
    (xa, ya), (xb, yb) = points
    return min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb)


def roi_mask(kind: str, points: Sequence[Point], rows: int,
             columns: int) -> tuple[np.ndarray, int, int]:
    """(mask, first row, first column): the pixels whose centre is inside the ROI.

    The mask covers only the ROI's bounding box cut to the image, so a small ROI on a large
    image costs little; it may be empty.
    """
    x0, y0, x1, y1 = bounding_box(points)
    col0, row0 = max(math.floor(x0), 0), max(math.floor(y0), 0)
    col1, row1 = min(math.ceil(x1), columns), min(math.ceil(y1), rows)
    if col1 <= col0 or row1 <= row0:
        return np.zeros((0, 0), dtype=bool), row0, col0
    xs = np.arange(col0, col1, dtype=np.float64)[None, :] + 0.5
    ys = np.arange(row0, row1, dtype=np.float64)[:, None] + 0.5
    if kind == "rectangle":
        mask = (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
    elif kind == "ellipse":
        a, b = (x1 - x0) / 2.0, (y1 - y0) / 2.0
        if a <= 0 or b <= 0:
            return np.zeros((row1 - row0, col1 - col0), dtype=bool), row0, col0
        cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
        mask = ((xs - cx) / a) ** 2 + ((ys - cy) / b) ** 2 <= 1.0
    else:
        raise MeasurementError(f"'{kind}' is not a region of interest.")
    return mask, row0, col0


def roi_area(kind: str, points: Sequence[Point], spacing: tuple[float, float] | None) -> float:
    """The shape's own area: mm² with a spacing, pixels² without."""
    x0, y0, x1, y1 = bounding_box(points)
    width, height = x1 - x0, y1 - y0
    if spacing is not None:
        width, height = width * spacing[1], height * spacing[0]
    return width * height if kind == "rectangle" else math.pi * width * height / 4.0


def roi_statistics(values: np.ndarray, kind: str, points: Sequence[Point]) -> dict[str, Any]:
    """Mean, SD (ddof=0), min, max and pixel count of ``values`` (modality units) in the ROI.

    Colour frames (rows, columns, 3) give one mean per channel instead.
    """
    rows, columns = values.shape[:2]
    mask, row0, col0 = roi_mask(kind, points, rows, columns)
    inside = values[row0:row0 + mask.shape[0], col0:col0 + mask.shape[1]][mask]
    count = int(mask.sum())
    if count == 0:
        return {"pixels": 0}
    if inside.ndim == 2:  # colour: (pixels, 3)
        return {"pixels": count, "mean": [float(m) for m in inside.mean(axis=0)]}
    data = inside.astype(np.float64)
    return {"pixels": count, "mean": float(data.mean()), "sd": float(data.std()),
            "min": float(data.min()), "max": float(data.max())}


# ---------------------------------------------------------------- on the image


def _clamp(point: Point, columns: float, rows: float) -> Point:
    return (min(max(point[0], 0.0), columns), min(max(point[1], 0.0), rows))


def _clip_segment(start: Point, end: Point, columns: float,
                  rows: float) -> tuple[Point, Point] | None:
    """The part of start-end inside [0, columns] x [0, rows] (Liang-Barsky), None when the
    segment misses it; a point inside stays where it is and the direction is kept."""
    dx, dy = end[0] - start[0], end[1] - start[1]
    low, high = 0.0, 1.0
    for p, q in ((-dx, start[0]), (dx, columns - start[0]), (-dy, start[1]),
                 (dy, rows - start[1])):
        if p == 0:
            if q < 0:
                return None
            continue
        ratio = q / p
        if p < 0:
            low = max(low, ratio)
        else:
            high = min(high, ratio)
        if low > high:
            return None
    return ((start[0] + low * dx, start[1] + low * dy),
            (start[0] + high * dx, start[1] + high * dy))


def within_image(kind: str, points: Sequence[Point], columns: float,
                 rows: float) -> tuple[Point, ...]:
    """The points of a drag that ran off the image, brought onto it: each line (a distance,
    a Cobb endplate, an angle's arm from its vertex) is cut at the image's edge along its
    own direction, so angles do not change; ROI corners and a note's anchor move to the
    edge. Points already on the image stay."""
    points = [(float(x), float(y)) for x, y in points]

    def cut(start: Point, end: Point) -> tuple[Point, Point]:
        clipped = _clip_segment(start, end, columns, rows)
        if clipped is None:
            return _clamp(start, columns, rows), _clamp(end, columns, rows)
        return clipped

    if kind in ("distance", "cobb"):
        out: list[Point] = []
        for index in range(0, len(points) - 1, 2):
            out.extend(cut(points[index], points[index + 1]))
        return tuple(out)
    if kind == "angle" and len(points) == 3:
        first, vertex, second = points
        vertex_now, first_now = cut(vertex, first)
        _, second_now = cut(vertex_now, second)
        return (first_now, vertex_now, second_now)
    return tuple(_clamp(point, columns, rows) for point in points)


# ---------------------------------------------------------------- making one


def measure(kind: str, points: Sequence[Point], *, frame: int = 0,
            spacing: Spacing | None = None, values: np.ndarray | None = None,
            unit: str = "", label: str = "") -> Measurement:
    """A measurement with its values computed.

    ``values`` (the frame in modality units) is needed for ROI statistics; without it an
    ROI gets its area only. ``unit`` is the modality unit ('HU', '' when unspecified).
    """
    points = tuple((float(x), float(y)) for x, y in points)
    source = spacing_source(spacing)
    _check(kind, points, source)
    mm = (spacing.row_mm, spacing.col_mm) if spacing is not None else None
    computed: dict[str, Any] = {}
    if kind == "distance":
        computed["length_px"] = length(*points)
        if mm is not None:
            computed["length_mm"] = length(*points, spacing=mm)
    elif kind == "angle":
        computed["angle_deg"] = angle_at(*points, spacing=mm)
    elif kind == "cobb":
        computed["angle_deg"] = cobb_angle(points[:2], points[2:], spacing=mm)
    elif kind in ROI_KINDS:
        computed["area_px"] = roi_area(kind, points, None)
        if mm is not None:
            computed["area_mm2"] = roi_area(kind, points, mm)
        if values is not None:
            computed.update(roi_statistics(values, kind, points))
            if unit and "sd" in computed:
                computed["unit"] = unit
    return Measurement(kind, points, int(frame), mm, source, label, computed)


def remeasure(measurement: Measurement, *, spacing: Spacing | None,
              values: np.ndarray | None = None, unit: str = "") -> Measurement:
    """The same points measured again (a new calibration, the frame's values now decoded)."""
    return measure(measurement.kind, measurement.points, frame=measurement.frame,
                   spacing=spacing, values=values, unit=unit, label=measurement.label)


# ---------------------------------------------------------------- the label store's rows


def store_fields(measurement: Measurement) -> dict[str, Any]:
    """Keyword arguments for ``LabelStore.add_measurement`` (and ``update_measurement``
    without ``kind`` and ``frame``): a note's text is the store's ``text``, any other
    kind's label its ``label``."""
    is_note = measurement.kind == "text"
    return {"kind": measurement.kind, "points": [list(p) for p in measurement.points],
            "frame": measurement.frame,
            "pixel_spacing": list(measurement.pixel_spacing)
            if measurement.pixel_spacing else None,
            "spacing_source": measurement.spacing_source,
            "label": None if is_note else (measurement.label or None),
            "text": measurement.label if is_note else None,
            "values": dict(measurement.values)}


def from_stored(stored: Any) -> Measurement:
    """The measurement a ``medviewer.labels`` Measurement row holds (as it was computed
    when stored: the store keeps values, it does not recompute them)."""
    label = (stored.text or "") if stored.kind == "text" else (stored.label or "")
    spacing = stored.pixel_spacing
    return Measurement(stored.kind, tuple((float(x), float(y)) for x, y in stored.points),
                       int(stored.frame),
                       (float(spacing[0]), float(spacing[1])) if spacing else None,
                       stored.spacing_source, label, dict(stored.values))


def same_geometry(first: Measurement, second: Measurement) -> bool:
    """Whether two records are one measurement (its values, spacing or label may differ:
    re-measured after a calibration, relabelled)."""
    return (first.kind, first.points, first.frame) == (second.kind, second.points,
                                                        second.frame)
