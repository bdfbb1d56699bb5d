"""Checking the image attributes (size, bits, samples, frames) a frame decoder relies on."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from medviewer.dicom.load_errors import LoadError

# Refuse images whose declared size is beyond any radiograph we could display.
MAX_DECODED_BYTES = 2 * 1024**3
MAX_FRAME_PIXELS = 100_000_000  # about 10,000 x 10,000; larger frames are refused


@dataclass(frozen=True)
class ImageGeometry:
    """The Image Pixel module values a decoder needs, checked once at open."""

    rows: int
    columns: int
    samples: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    photometric: str
    planar_configuration: int
    frames: int

    @property
    def frame_bytes(self) -> float:
        """Bytes of one uncompressed frame (fractional for 1-bit data, 2/3 for YBR 4:2:2)."""
        pixels_per_frame = self.rows * self.columns * self.samples
        if self.photometric == "YBR_FULL_422":
            pixels_per_frame = pixels_per_frame * 2 / 3
        return pixels_per_frame * self.bits_allocated / 8


def read_image_geometry(path: Path, ds: Dataset, keyword: str) -> ImageGeometry:
    """The header's Image Pixel values, checked; a missing or impossible one raises LoadError."""
    def whole(name: str, default: int | None, low: int, high: int) -> int:
        raw = ds.get(name)
        if raw in (None, "") or (isinstance(raw, (list, tuple)) and not raw):
            if default is None:
                raise LoadError(path, f"it has pixel data but no {_spaced(name)} value")
            return default
        try:
            value = int(raw[0] if isinstance(raw, (list, tuple)) else raw)
        except (TypeError, ValueError, OverflowError):
            raise LoadError(path, f"its {_spaced(name)} value {str(raw)[:20]!r} is not a "
                                  "whole number") from None
        if not low <= value <= high:
            raise LoadError(path, f"its {_spaced(name)} value {value} is outside "
                                  f"{low}..{high}")
        return value

    rows = whole("Rows", None, 1, 65535)
    columns = whole("Columns", None, 1, 65535)
    samples = whole("SamplesPerPixel", 1, 1, 4)
    float_bits = {"FloatPixelData": 32, "DoubleFloatPixelData": 64}.get(keyword)
    bits_allocated = whole("BitsAllocated", float_bits, 1, 64)
    if bits_allocated != 1 and bits_allocated % 8 and not (bits_allocated == 12 and samples == 1):
        raise LoadError(path, f"its Bits Allocated value {bits_allocated} is not 1, 12 or a "
                              "multiple of 8")
    bits_stored = whole("BitsStored", bits_allocated, 1, 64)
    if bits_stored > bits_allocated:
        raise LoadError(path, f"its Bits Stored ({bits_stored}) exceeds Bits Allocated "
                              f"({bits_allocated})")
    signed = whole("PixelRepresentation", 0, 0, 1) == 1
    frames = whole("NumberOfFrames", 1, 0, 2**31 - 1) or 1
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    if not photometric:  # ACR-NEMA files may omit it
        photometric = "MONOCHROME2" if samples == 1 else "RGB"
    planar = whole("PlanarConfiguration", 0, 0, 1) if samples > 1 else 0
    geometry = ImageGeometry(rows, columns, samples, bits_allocated, bits_stored, signed,
                             photometric, planar, frames)
    if rows * columns > MAX_FRAME_PIXELS or geometry.frame_bytes > MAX_DECODED_BYTES:
        raise LoadError(path, f"it declares frames of {columns} x {rows} pixels, too large "
                              "to display")
    return geometry


def _spaced(keyword: str) -> str:
    """'NumberOfFrames' -> 'Number of Frames', the standard's own name."""
    try:
        return pydicom.datadict.dictionary_description(keyword)
    except KeyError:
        return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", keyword)
