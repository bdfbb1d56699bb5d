"""DICOM overlay planes (PS3.3 C.9.2, C.9.3): the 1-bit graphics and ROIs in groups 6000-601E.

Each plane is a bitmap of Overlay Rows x Overlay Columns placed with its top-left pixel at
Overlay Origin (row, column; 1-based, so (1, 1) is the image's first pixel; it may lie
outside the image, and what falls outside is not shown). Overlay Data packs the bits in
pixel order, least significant bit first, with the frames of a multi-frame overlay one after
the other and no padding between them; in an OW value of a big-endian file each 16-bit word
is byte-swapped, so the bytes are swapped back before unpacking.

A multi-frame overlay (Number of Frames in Overlay present) starts at image frame Image
Frame Origin (1-based): image frame f (0-based) shows overlay frame f + 1 - origin, when
there is one. An overlay without Number of Frames in Overlay applies to every frame.

Overlays kept in the unused high bits of the pixel data (retired; Overlay Bits Allocated
greater than 1) are not shown; the plane is reported in ``problems``.

Only the header is read (Overlay Data lies before Pixel Data); nothing here imports Qt.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from medviewer.dicom.image_geometry import MAX_FRAME_PIXELS

log = logging.getLogger(__name__)

FIRST_GROUP, LAST_GROUP = 0x6000, 0x601E


@dataclass(frozen=True, eq=False)
class OverlayPlane:
    """One overlay plane, its data still packed; :meth:`bitmap` unpacks one frame."""

    group: int
    rows: int
    columns: int
    origin_row: int  # 1-based image row of the overlay's first row (may be < 1)
    origin_column: int
    kind: str = "G"  # G (graphics) or R (region of interest)
    label: str = ""
    description: str = ""
    frames: int = 1
    image_frame_origin: int = 1
    every_frame: bool = True  # no Number of Frames in Overlay: the plane applies to all
    data: bytes = field(default=b"", repr=False)

    @property
    def number(self) -> int:
        """1 for group 6000, 2 for 6002, ..."""
        return (self.group - FIRST_GROUP) // 2 + 1

    @property
    def name(self) -> str:
        """For menus and messages: 'Overlay 1 (6000): LABEL'."""
        text = f"Overlay {self.number} ({self.group:04X})"
        detail = self.label or self.description
        if self.kind == "R":
            detail = f"{detail} (ROI)" if detail else "ROI"
        return f"{text}: {detail}" if detail else text

    def frame_index(self, image_frame: int) -> int | None:
        """The overlay frame shown on image frame ``image_frame`` (0-based), or None."""
        if self.every_frame:
            return 0
        index = image_frame + 1 - self.image_frame_origin
        return index if 0 <= index < self.frames else None

    def bitmap(self, image_frame: int = 0) -> np.ndarray | None:
        """(rows, columns) bool of the overlay frame shown on ``image_frame``, or None."""
        index = self.frame_index(image_frame)
        if index is None:
            return None
        count = self.rows * self.columns
        first_bit = index * count
        first_byte, offset = divmod(first_bit, 8)
        last_byte = (first_bit + count + 7) // 8
        packed = np.frombuffer(self.data, dtype=np.uint8)[first_byte:last_byte]
        bits = np.unpackbits(packed, bitorder="little")[offset:offset + count]
        return bits.reshape(self.rows, self.columns).astype(bool)

    def placed(self, image_frame: int, image_rows: int,
               image_columns: int) -> tuple[np.ndarray, int, int] | None:
        """(bitmap cut to the image, first image row, first image column) for a frame.

        None when the plane shows nothing on that frame or lies wholly outside the image.
        """
        bitmap = self.bitmap(image_frame)
        if bitmap is None:
            return None
        top, left = self.origin_row - 1, self.origin_column - 1
        row0, col0 = max(top, 0), max(left, 0)
        row1 = min(top + self.rows, image_rows)
        col1 = min(left + self.columns, image_columns)
        if row1 <= row0 or col1 <= col0:
            return None
        return bitmap[row0 - top:row1 - top, col0 - left:col1 - left], row0, col0

    def image_mask(self, image_frame: int, image_rows: int, image_columns: int) -> np.ndarray:
        """(image_rows, image_columns) bool: the plane's set pixels on the image's grid."""
        mask = np.zeros((image_rows, image_columns), dtype=bool)
        placed = self.placed(image_frame, image_rows, image_columns)
        if placed is not None:
            bitmap, row0, col0 = placed
            mask[row0:row0 + bitmap.shape[0], col0:col0 + bitmap.shape[1]] = bitmap
        return mask


@dataclass(frozen=True)
class OverlayPlanes:
    """Every usable plane of a file, and a phrase for each plane that cannot be shown."""

    planes: tuple[OverlayPlane, ...] = ()
    problems: tuple[str, ...] = ()

    def by_group(self, group: int) -> OverlayPlane | None:
        return next((plane for plane in self.planes if plane.group == group), None)


# ---------------------------------------------------------------- reading the header


def has_overlay_planes(ds: Dataset) -> bool:
    """Cheap check (no value is converted): does the header hold any 60xx Overlay Rows?"""
    return any((group, 0x0010) in ds for group in range(FIRST_GROUP, LAST_GROUP + 1, 2))


def _value(ds: Dataset, group: int, element: int) -> Any:
    item = ds.get((group, element))
    return None if item is None else item.value


def _integers(value: Any) -> list[int]:
    if value is None or value == "":
        return []
    if isinstance(value, bytes):  # a value kept raw: US/SS pairs little-endian
        if len(value) % 2:
            return []
        return [int(v) for v in np.frombuffer(value, dtype="<i2")]
    items = value if isinstance(value, (MultiValue, list, tuple)) else [value]
    out = []
    for item in items:
        try:
            out.append(int(float(item)))
        except (TypeError, ValueError, OverflowError):
            return []
    return out


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1", "replace").strip(" \x00")
    return str(value).strip()


def _little_endian_bytes(ds: Dataset, group: int, data: bytes) -> bytes:
    """OW data of a big-endian file, byte-swapped back into pixel order."""
    encoding = getattr(ds, "original_encoding", (None, True))
    element = ds.get((group, 0x3000))
    vr = getattr(element, "VR", "OW")
    if encoding[1] is False and vr == "OW" and len(data) >= 2:
        even = data[: len(data) // 2 * 2]
        return np.frombuffer(even, dtype=">u2").astype("<u2").tobytes() + data[len(even):]
    return data


def _read_plane(ds: Dataset, group: int) -> OverlayPlane | str | None:
    rows = _integers(_value(ds, group, 0x0010))
    columns = _integers(_value(ds, group, 0x0011))
    data = _value(ds, group, 0x3000)
    if not rows and not columns and not data:
        return None  # an empty group some writers leave behind: no overlay, no problem
    if len(rows) != 1 or len(columns) != 1 or rows[0] <= 0 or columns[0] <= 0:
        return "has no usable size"
    rows_n, columns_n = rows[0], columns[0]
    if rows_n * columns_n > MAX_FRAME_PIXELS:
        return f"is too large ({columns_n} x {rows_n})"
    bits = _integers(_value(ds, group, 0x0100))
    if bits and bits[0] != 1:
        return "is kept in the pixel data's unused bits, which this viewer does not show"
    if not isinstance(data, bytes) or not data:
        return "has no Overlay Data"
    frames_value = _integers(_value(ds, group, 0x0015))
    every_frame = not frames_value
    frames = frames_value[0] if frames_value else 1
    if frames < 1:
        return "declares no frames"
    needed = (frames * rows_n * columns_n + 7) // 8
    if len(data) < needed - 1:
        return (f"has {len(data)} bytes of Overlay Data where its {columns_n} x {rows_n} "
                f"size needs {needed}")
    data = data.ljust(needed, b"\x00")  # a last byte some writers drop holds < 8 pixels
    origin = _integers(_value(ds, group, 0x0050))
    origin_row, origin_column = (origin[0], origin[1]) if len(origin) == 2 else (1, 1)
    frame_origin = _integers(_value(ds, group, 0x0051))
    kind = _text(_value(ds, group, 0x0040)).upper()[:1] or "G"
    return OverlayPlane(
        group=group, rows=rows_n, columns=columns_n, origin_row=origin_row,
        origin_column=origin_column, kind=kind if kind in ("G", "R") else "G",
        label=_text(_value(ds, group, 0x1500)), description=_text(_value(ds, group, 0x0022)),
        frames=frames, image_frame_origin=frame_origin[0] if frame_origin else 1,
        every_frame=every_frame, data=_little_endian_bytes(ds, group, data))


def read_overlay_planes(ds: Dataset) -> OverlayPlanes:
    """Every overlay plane in the header; a plane that cannot be shown is named in
    ``problems`` ("overlay plane 6002 has no Overlay Data") and left out."""
    planes: list[OverlayPlane] = []
    problems: list[str] = []
    for group in range(FIRST_GROUP, LAST_GROUP + 1, 2):
        if (group, 0x0010) not in ds and (group, 0x3000) not in ds:
            continue
        try:
            plane = _read_plane(ds, group)
        except Exception as exc:  # noqa: BLE001 - a damaged plane must not stop the image
            log.info("Overlay plane %04X unreadable", group, exc_info=True)
            plane = f"cannot be read ({type(exc).__name__})"
        if plane is None:
            continue
        if isinstance(plane, str):
            problems.append(f"overlay plane {group:04X} {plane}")
            log.info("Overlay plane %04X %s", group, plane)
        else:
            planes.append(plane)
    return OverlayPlanes(tuple(planes), tuple(problems))
