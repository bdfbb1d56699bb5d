"""The label store's values: what callers hand to the store and get back, and the checks a
name, source, class list, region or measurement passes before it is stored.

Plain data without SQLite; :mod:`medviewer.labels.store` re-exports every name here, so
``from medviewer.labels.store import ImageRef`` keeps working.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medviewer.labels.errors import InvalidLabelError

SOURCES = ("manual", "ai_accepted", "ai_overridden", "imported")
SHAPES = ("rectangle", "ellipse", "polygon")
HASH_PREFIX = "sha256:"
MAX_NAME_LENGTH = 200
# Measurement kinds and the points each is drawn with (image pixels: column, row).
MEASUREMENT_POINTS = {
    "distance": (2, "2 points (its two ends)"),
    "angle": (3, "3 points (one arm's end, the vertex, the other arm's end)"),
    "cobb": (4, "4 points (two lines of two points each)"),
    "rectangle": (2, "2 points (opposite corners)"),
    "ellipse": (2, "2 points (opposite corners of its bounding box)"),
    "text": (1, "1 point (where the text is anchored)"),
}
MEASUREMENT_KINDS = tuple(MEASUREMENT_POINTS)
# Where the pixel spacing used came from: a DICOM attribute, the reader's calibration on a
# known distance, or nothing (then lengths and areas are in pixels only).
SPACING_SOURCES = ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing",
                   "calibrated", "none")
MAX_ANNOTATION_TEXT = 2000
MAX_VALUES_TEXT = 10_000


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def is_ai_reader(reader: str) -> bool:
    """AI predictions stored as labels use the reader 'ai' or 'ai:<model name>'."""
    return reader == "ai" or reader.startswith("ai:")


def check_name(kind: str, value: str) -> str:
    if not isinstance(value, str):
        raise InvalidLabelError(f"A {kind} must be text, not {type(value).__name__}.")
    text = value.strip()
    if not text:
        raise InvalidLabelError(f"A {kind} cannot be empty.")
    if len(text) > MAX_NAME_LENGTH:
        raise InvalidLabelError(f"The {kind} '{text[:40]}...' is longer than "
                                f"{MAX_NAME_LENGTH} characters.")
    if any(ch in text for ch in "\r\n\t"):
        raise InvalidLabelError(f"The {kind} '{text}' contains a line break or tab.")
    return text


def check_source(source: str) -> str:
    if source not in SOURCES:
        raise InvalidLabelError(f"The label source '{source}' is not one of "
                                f"{', '.join(SOURCES)}.")
    return source


def check_classes(classes: Sequence[str]) -> list[str]:
    if isinstance(classes, str):
        classes = [classes]
    names = [check_name("class name", c) for c in classes]
    if not names:
        raise InvalidLabelError("A label set needs at least one class.")
    seen = set()
    for name in names:
        if name in seen:
            raise InvalidLabelError(f"The class '{name}' is listed twice.")
        if "," in name:
            raise InvalidLabelError(f"The class name '{name}' contains a comma.")
        seen.add(name)
    return names


# ---------------------------------------------------------------- value objects


@dataclass(frozen=True)
class ImageRef:
    """Which image a label belongs to: its key, plus hints kept beside it.

    ``key`` is the SOP Instance UID, or ``sha256:<hex>`` of the file's content.
    """

    key: str
    path: str | None = None
    patient_id: str | None = None
    width: int | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        if not self.key or not isinstance(self.key, str):
            raise InvalidLabelError("An image needs a SOP Instance UID or a content hash.")

    @classmethod
    def from_hash(cls, digest: str, **hints: Any) -> "ImageRef":
        return cls(HASH_PREFIX + digest.lower(), **hints)

    @classmethod
    def from_instance(cls, instance: Any) -> "ImageRef":
        """From a ``medviewer.dicom.reader.Instance`` (plain images are keyed by content)."""
        width = int(instance.columns) or None
        height = int(instance.rows) or None
        # A hint beside the key, stored as text: a name that is not UTF-8 is kept escaped.
        path = os.fsencode(Path(instance.path).resolve()).decode("utf-8", "backslashreplace")
        if instance.content_hash:
            return cls.from_hash(instance.content_hash, path=path, width=width, height=height)
        uid = instance.sop_instance_uid
        if not uid:
            from medviewer.dicom.images import content_hash

            return cls.from_hash(content_hash(Path(instance.path)), path=path,
                                 patient_id=_patient_id(instance.header), width=width,
                                 height=height)
        return cls(uid, path=path, patient_id=_patient_id(instance.header), width=width,
                   height=height)

    @property
    def sop_instance_uid(self) -> str | None:
        return None if self.key.startswith(HASH_PREFIX) else self.key

    @property
    def content_hash(self) -> str | None:
        return self.key[len(HASH_PREFIX):] if self.key.startswith(HASH_PREFIX) else None


def _patient_id(header: Any) -> str | None:
    value = str(header.get("PatientID", "") or "").strip()
    return value or None


@dataclass(frozen=True)
class LabelSet:
    id: int
    name: str
    classes: tuple[str, ...]
    multi_label: bool
    description: str = ""
    created_at: str = ""

    def ordered(self, classes: Iterable[str], *, what: str = "label") -> tuple[str, ...]:
        """Validate class names and return them in class-list order, without repeats."""
        wanted = set()
        for name in classes:
            text = name.strip() if isinstance(name, str) else name
            if text not in self.classes:
                raise InvalidLabelError(
                    f"The class '{name}' is not in label set '{self.name}' "
                    f"(classes: {', '.join(self.classes)}).")
            wanted.add(text)
        chosen = tuple(c for c in self.classes if c in wanted)
        if not chosen:
            raise InvalidLabelError(f"A {what} in label set '{self.name}' needs at least "
                                    f"one class.")
        if len(chosen) > 1 and not self.multi_label:
            raise InvalidLabelError(
                f"Label set '{self.name}' is single-label, so a {what} cannot have several "
                f"classes ({', '.join(chosen)}).")
        return chosen


@dataclass(frozen=True)
class ImageLabel:
    """One reader's current decision on one image in one label set."""

    label_set: str
    image_key: str
    reader: str
    classes: tuple[str, ...]
    source: str
    note: str | None
    labelled_at: str
    action_id: int
    ai_classes: tuple[str, ...] | None = None
    path: str | None = None


@dataclass(frozen=True)
class Rectangle:
    """Axis-aligned box: top-left corner (x = column, y = row) and size, in image pixels."""

    x: float
    y: float
    width: float
    height: float
    shape = "rectangle"

    @property
    def points(self) -> None:
        return None


@dataclass(frozen=True)
class Ellipse(Rectangle):
    """The ellipse inscribed in the given bounding box."""

    shape = "ellipse"


@dataclass(frozen=True)
class Polygon:
    points: tuple[tuple[float, float], ...]
    shape = "polygon"

    def __post_init__(self) -> None:
        object.__setattr__(self, "points",
                           tuple((float(x), float(y)) for x, y in self.points))

    @property
    def x(self) -> float:
        return min(p[0] for p in self.points) if self.points else math.nan

    @property
    def y(self) -> float:
        return min(p[1] for p in self.points) if self.points else math.nan

    @property
    def width(self) -> float:
        return max(p[0] for p in self.points) - self.x if self.points else math.nan

    @property
    def height(self) -> float:
        return max(p[1] for p in self.points) - self.y if self.points else math.nan


Geometry = Rectangle | Ellipse | Polygon


@dataclass(frozen=True)
class Region:
    id: int
    label_set: str
    image_key: str
    reader: str
    class_name: str
    geometry: Geometry
    frame: int
    source: str
    note: str | None
    created_at: str
    updated_at: str
    action_id: int

    @property
    def shape(self) -> str:
        return self.geometry.shape


@dataclass(frozen=True)
class Measurement:
    """A reader's measurement or text annotation on one image (and frame).

    ``points`` are (column, row) in the original stored pixel grid, as regions are;
    ``pixel_spacing`` is (row spacing, column spacing) in mm as DICOM orders it, None when
    ``spacing_source`` is "none"; ``values`` holds what was computed when it was stored
    (e.g. ``length_mm``, ``angle_deg``, ``mean``, ``sd``, ``min``, ``max``, ``area_mm2``).
    """

    id: int
    image_key: str
    reader: str
    kind: str
    points: tuple[tuple[float, float], ...]
    frame: int
    pixel_spacing: tuple[float, float] | None
    spacing_source: str
    label: str | None
    text: str | None
    values: Mapping[str, Any]
    created_at: str
    updated_at: str
    action_id: int


@dataclass(frozen=True)
class HistoryEntry:
    """One change of one action: ``old`` and ``new`` are the stored rows (None = absent).

    ``target`` is the row's kind (``image_label``, ``region``, ``measurement``);
    ``row_id`` its id for kinds that have one (``region_id`` repeats it for regions);
    ``label_set`` is None for rows outside any label set (measurements).
    """

    action_id: int
    actor: str
    kind: str
    at: str
    undoes: int | None
    target: str
    label_set: str | None
    image_key: str
    reader: str
    region_id: int | None
    old: dict | None
    new: dict | None
    row_id: int | None = None


@dataclass(frozen=True)
class UndoResult:
    undone_action_id: int
    undo_action_id: int
    kind: str
    label_set: str | None
    image_keys: tuple[str, ...]


@dataclass
class LabelEntry:
    """One reader's decision on one image, as an import brings it in."""

    image: ImageRef
    reader: str
    classes: tuple[str, ...]
    source: str = "imported"
    note: str | None = None
    ai_classes: tuple[str, ...] | None = None


@dataclass
class RegionEntry:
    image: ImageRef
    reader: str
    class_name: str
    geometry: Geometry
    frame: int = 0
    source: str = "imported"
    note: str | None = None


@dataclass
class ImportResult:
    action_id: int | None
    labels_written: int
    labels_unchanged: int
    regions_written: int
    label_set_created: bool = False
    classes_added: tuple[str, ...] = field(default_factory=tuple)


def check_region_geometry(geometry: Geometry, frame: int,
                          size: tuple[int, int] | None) -> None:
    """Raise InvalidLabelError unless the region is a valid shape inside an image of size."""
    if geometry.shape not in SHAPES:
        raise InvalidLabelError(f"The region shape '{geometry.shape}' is not one of "
                                f"{', '.join(SHAPES)}.")
    if geometry.shape == "polygon" and len(geometry.points) < 3:
        raise InvalidLabelError("A polygon region needs at least three points.")
    values = [geometry.x, geometry.y, geometry.width, geometry.height]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        raise InvalidLabelError("A region's coordinates must be finite numbers.")
    if geometry.width <= 0 or geometry.height <= 0:
        raise InvalidLabelError("A region must have a positive width and height.")
    if not isinstance(frame, int) or frame < 0:
        raise InvalidLabelError("A region's frame must be a frame index (0 or more).")
    if size is not None:
        width, height = size
        tolerance = 1e-6
        if (geometry.x < -tolerance or geometry.y < -tolerance
                or geometry.x + geometry.width > width + tolerance
                or geometry.y + geometry.height > height + tolerance):
            raise InvalidLabelError(
                f"The region ({geometry.x:g}, {geometry.y:g}, {geometry.width:g} x "
                f"{geometry.height:g}) lies outside the {width} x {height} image.")


def check_measurement(kind: str, points: Sequence[Sequence[float]], frame: int,
                      pixel_spacing: Sequence[float] | None, spacing_source: str,
                      label: str | None, text: str | None, values: Mapping[str, Any] | None,
                      size: tuple[int, int] | None) -> dict:
    """The measurement's stored fields (points as lists, values as a dict), or
    InvalidLabelError naming what is wrong."""
    if kind not in MEASUREMENT_POINTS:
        raise InvalidLabelError(f"The measurement kind '{kind}' is not one of "
                                f"{', '.join(MEASUREMENT_KINDS)}.")
    wanted, described = MEASUREMENT_POINTS[kind]
    try:
        xy = [(float(p[0]), float(p[1])) for p in points if len(p) == 2]
        complete = len(xy) == len(points)
    except (TypeError, ValueError):
        complete = False
    if not complete or not all(math.isfinite(v) for p in xy for v in p):
        raise InvalidLabelError("A measurement's points must be pairs of finite numbers "
                                "(column, row).")
    if len(xy) != wanted:
        raise InvalidLabelError(f"A {kind} measurement needs {described}, not {len(xy)}.")
    _check_shape(kind, xy)
    if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0:
        raise InvalidLabelError("A measurement's frame must be a frame index (0 or more).")
    if size is not None:
        width, height = size
        tolerance = 1e-6
        for column, row in xy:
            if not (-tolerance <= column <= width + tolerance
                    and -tolerance <= row <= height + tolerance):
                raise InvalidLabelError(f"The measurement point ({column:g}, {row:g}) lies "
                                        f"outside the {width} x {height} image.")
    spacing = _check_spacing(pixel_spacing, spacing_source)
    if label is not None and label.strip() == "":
        label = None
    label = check_name("measurement label", label) if label is not None else None
    if kind == "text":
        if not isinstance(text, str) or not text.strip():
            raise InvalidLabelError("A text annotation needs its text.")
        if len(text) > MAX_ANNOTATION_TEXT:
            raise InvalidLabelError(f"A text annotation is limited to {MAX_ANNOTATION_TEXT} "
                                    f"characters.")
    elif text is not None:
        raise InvalidLabelError(f"Only a text annotation has text; give the {kind} a "
                                f"label instead.")
    return {"kind": kind, "points": [list(p) for p in xy], "frame": frame,
            "pixel_spacing": spacing, "spacing_source": spacing_source, "label": label,
            "text": text, "values": _check_values(values)}


def _check_shape(kind: str, xy: list[tuple[float, float]]) -> None:
    if kind == "distance" and xy[0] == xy[1]:
        raise InvalidLabelError("A distance needs two different points.")
    if kind == "angle" and xy[1] in (xy[0], xy[2]):
        raise InvalidLabelError("An angle's arms need a length: its vertex is on an arm's end.")
    if kind == "cobb" and (xy[0] == xy[1] or xy[2] == xy[3]):
        raise InvalidLabelError("Each line of a Cobb angle needs two different points.")
    if kind in ("rectangle", "ellipse") and (xy[0][0] == xy[1][0] or xy[0][1] == xy[1][1]):
        raise InvalidLabelError(f"A {kind} needs a positive width and height.")


def _check_spacing(pixel_spacing: Sequence[float] | None,
                   spacing_source: str) -> list[float] | None:
    if spacing_source not in SPACING_SOURCES:
        raise InvalidLabelError(f"The pixel spacing source '{spacing_source}' is not one of "
                                f"{', '.join(SPACING_SOURCES)}.")
    if spacing_source == "none":
        if pixel_spacing is not None:
            raise InvalidLabelError("A pixel spacing was given with the source 'none'; name "
                                    "where it came from.")
        return None
    try:
        spacing = [float(v) for v in pixel_spacing]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        spacing = []
    if len(spacing) != 2 or not all(math.isfinite(v) and v > 0 for v in spacing):
        raise InvalidLabelError(f"A pixel spacing from {spacing_source} must be two positive "
                                f"numbers (row spacing, column spacing, in mm).")
    return spacing


def _check_values(values: Mapping[str, Any] | None) -> dict:
    if values is None:
        return {}
    if not isinstance(values, Mapping) or not all(isinstance(k, str) and k.strip()
                                                  for k in values):
        raise InvalidLabelError("A measurement's values must be named (a mapping from "
                                "names to values).")
    try:
        text = json.dumps(dict(values), allow_nan=False)
    except (TypeError, ValueError):
        raise InvalidLabelError("A measurement's values must be finite numbers, text or "
                                "lists of them.") from None
    if len(text) > MAX_VALUES_TEXT:
        raise InvalidLabelError(f"A measurement's values take more than {MAX_VALUES_TEXT} "
                                f"characters.")
    return json.loads(text)
