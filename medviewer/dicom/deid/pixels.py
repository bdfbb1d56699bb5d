"""Identity in the pixels: which files may carry burned-in text, and rectangle masks.

Header de-identification cannot see text written into the image (ultrasound and secondary
captures often show the patient's name) or an encapsulated PDF. Such files are refused
unless the user confirms them or masks them: a mask is a list of rectangles in image pixels,
filled on every frame. Masking decodes the pixel data, so a compressed file is written
back uncompressed (Explicit VR Little Endian, pydicom's ``decompress``).

A masked output records it (Burned In Annotation NO, the Clean Pixel Data Option's code
and the rectangles in De-identification Method), and a file that records cleaned pixels
is not suspected again: re-exporting a masked ultrasound needs no new mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from medviewer.dicom.deid import raw
from medviewer.dicom.deid.dataset import recorded_codes, recorded_pixel_cleaning
from medviewer.dicom.deid.profile import OPTIONS

SOP_CLASS_UID, MODALITY = 0x00080016, 0x00080060
BURNED_IN_ANNOTATION, RECOGNIZABLE_VISUAL_FEATURES = 0x00280301, 0x00280302
ENCAPSULATED_DOCUMENT = 0x00420011
CLEAN_GRAPHICS_CODE = OPTIONS["clean-graphics"][1]
OVERLAY_DATA, CURVE_DATA = 0x60003000, 0x50003000

# Modalities whose images commonly show text burned into the pixels.
BURNED_IN_MODALITIES = {
    "US": "an ultrasound image", "IVUS": "an intravascular ultrasound image",
    "OT": "an 'other' (OT) image, often a screen capture", "XC": "an external camera photo",
    "ES": "an endoscopy image", "DOC": "a scanned document",
}
SECONDARY_CAPTURE_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.7.1",
                                 "1.2.840.10008.5.1.4.1.1.7.2", "1.2.840.10008.5.1.4.1.1.7.3",
                                 "1.2.840.10008.5.1.4.1.1.7.4"}
ULTRASOUND_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.6.1", "1.2.840.10008.5.1.4.1.1.6.2",
                          "1.2.840.10008.5.1.4.1.1.3.1"}


def burned_in_reason(ds: Dataset, *, keeps_graphics: bool = False) -> str | None:
    """Why a file may show identity in its pixels or content (None: no known reason).

    ``keeps_graphics``: the profile keeps overlays and curves (Clean Graphics), whose bitmaps
    can show text drawn over the image as well as pixels can.
    """
    if raw.text(ds, BURNED_IN_ANNOTATION).upper() == "YES":
        return "its Burned In Annotation says YES"
    if raw.text(ds, RECOGNIZABLE_VISUAL_FEATURES).upper() == "YES":
        return "its Recognizable Visual Features says YES (a face or other feature)"
    if ENCAPSULATED_DOCUMENT in ds:
        return "it holds an encapsulated document, whose text cannot be de-identified"
    if keeps_graphics and graphics_groups(ds) and \
            ("DCM", CLEAN_GRAPHICS_CODE) not in recorded_codes(ds):
        return ("it has an overlay or curve that Clean Graphics keeps, which may show text "
                "drawn over the image")
    if recorded_pixel_cleaning(ds) is not None:
        return None  # a de-identification cleaned its pixels and said so
    sop_class = raw.text(ds, SOP_CLASS_UID)
    if sop_class in SECONDARY_CAPTURE_SOP_CLASSES:
        return "it is a secondary capture, which commonly shows burned-in text"
    if sop_class in ULTRASOUND_SOP_CLASSES:
        return "it is an ultrasound image, which commonly shows burned-in text"
    modality = raw.text(ds, MODALITY).upper()
    if modality in BURNED_IN_MODALITIES:
        return f"it is {BURNED_IN_MODALITIES[modality]}, which commonly shows burned-in text"
    return None


@dataclass(frozen=True)
class MaskRect:
    """A rectangle in image pixels: top-left column x, row y, and its size."""

    x: int
    y: int
    width: int
    height: int

    @classmethod
    def parse(cls, text: str) -> MaskRect:
        """'X,Y,W,H' in pixels."""
        parts = text.split(",")
        if len(parts) != 4 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"'{text}' is not X,Y,WIDTH,HEIGHT in whole pixels")
        x, y, width, height = (int(p) for p in parts)
        if width <= 0 or height <= 0:
            raise ValueError(f"the rectangle '{text}' has no area")
        return cls(x, y, width, height)

    def describe(self) -> str:
        """'X,Y,W,H', as parse reads it."""
        return f"{self.x},{self.y},{self.width},{self.height}"


@dataclass(frozen=True)
class PixelMask:
    """Rectangles filled on every frame of the files flagged for burned-in text.

    ``rows``/``columns``: the image size the rectangles were drawn on; when given, the mask
    applies only to images of that size (rectangles on another size would miss the text).
    """

    rectangles: tuple[MaskRect, ...]
    rows: int | None = None
    columns: int | None = None

    def fits(self, ds: Dataset) -> bool:
        if not self.rectangles or "PixelData" not in ds:
            return False
        if self.rows is None or self.columns is None:
            return True
        return (int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)) == \
            (self.rows, self.columns)


def apply_mask(ds: Dataset, mask: PixelMask) -> int:
    """Fill the rectangles on every frame (in place); returns the frames masked.

    The fill is the darkest value as displayed: the minimum stored value, or the maximum
    for MONOCHROME1 (inverted) images.
    """
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.decompress()
    array = np.array(ds.pixel_array)  # a writable copy
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames == 1:
        array = array[np.newaxis]
    rows, columns = array.shape[1], array.shape[2]
    inverted = str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1"
    fill = array.max() if inverted else array.min()
    if array.ndim == 4:  # colour: black
        fill = 0
    for rect in mask.rectangles:
        top, left = max(0, rect.y), max(0, rect.x)
        bottom, right = min(rows, rect.y + rect.height), min(columns, rect.x + rect.width)
        if top < bottom and left < right:
            array[:, top:bottom, left:right] = fill
    if frames == 1:
        array = array[0]
    if array.ndim == 4 or (frames == 1 and array.ndim == 3):  # colour, now interleaved RGB
        ds.PlanarConfiguration = 0
        if str(ds.get("PhotometricInterpretation", "")).startswith("YBR"):
            ds.PhotometricInterpretation = "RGB"
    ds.PixelData = array.tobytes()
    _mask_overlays(ds, mask)
    return frames


def graphics_groups(ds: Dataset) -> set[int]:
    """The groups of the overlays (60xx) and curves (50xx) that hold data."""
    return {int(tag) >> 16 for tag in ds.keys()  # noqa: SIM118 - tags, without converting
            if int(tag) & 0xFF01FFFF in (OVERLAY_DATA, CURVE_DATA)}


def _mask_overlays(ds: Dataset, mask: PixelMask) -> None:
    """Clear the rectangles in every overlay plane too (its bits can draw text). An
    overlay's origin (60xx,0050) places its first bit on the image (1-based)."""
    for group in sorted(g for g in graphics_groups(ds) if g >> 8 == 0x60):
        base = group << 16
        try:
            rows, columns = int(ds[base | 0x0010].value), int(ds[base | 0x0011].value)
            frames = int(ds[base | 0x0015].value or 1) if base | 0x0015 in ds else 1
            origin = ds[base | 0x0050].value if base | 0x0050 in ds else (1, 1)
            top0, left0 = int(origin[0]) - 1, int(origin[1]) - 1
            data = bytes(ds[base | 0x3000].value)
        except (KeyError, TypeError, ValueError, IndexError):
            continue  # an overlay that cannot be read cannot be masked: left as it is
        count = frames * rows * columns
        bits = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")
        if bits.size < count or not count:
            continue
        planes = bits[:count].reshape(frames, rows, columns)
        for rect in mask.rectangles:
            top, left = max(0, rect.y - top0), max(0, rect.x - left0)
            bottom = min(rows, rect.y + rect.height - top0)
            right = min(columns, rect.x + rect.width - left0)
            if top < bottom and left < right:
                planes[:, top:bottom, left:right] = 0
        packed = np.packbits(np.concatenate([planes.ravel(), bits[count:]]),
                             bitorder="little").tobytes()
        ds[base | 0x3000].value = packed + b"\x00" * (len(packed) % 2)
