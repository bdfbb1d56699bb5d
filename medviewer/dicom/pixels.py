"""The grey-scale and colour display pipeline, in DICOM order (PS3.3 C.11, PS3.4 N.2).

stored values -> Modality LUT (rescale or LUT sequence) -> modality units
              -> VOI (window centre/width with its function, or a VOI LUT sequence) -> [0, 1]
              -> MONOCHROME1 / Presentation LUT Shape INVERSE -> 8-bit display values.

Everything here is numpy on a header :class:`pydicom.Dataset`; nothing decodes pixel data.
Enhanced multi-frame objects keep these attributes per frame in functional groups, so every
lookup takes the frame index.

Arithmetic runs in float32 where float32 holds the numbers (the usual case: fast, half the
memory) and in float64 where it does not (rescale slopes like 1e-308 or 1e30, windows 4e38
wide, narrow windows far from zero); values that not even float64 holds are refused with
:class:`~medviewer.dicom.load_errors.UnusableValueError`. Windows work at any scale of the
modality values: automatic windows span the data however small its range, and LINEAR's
unit-step model uses the data's own step (:func:`modality_step`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from medviewer.dicom.load_errors import UnusableValueError

VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


@dataclass(frozen=True)
class Window:
    """A VOI window: centre/width in modality units and the VOI LUT Function."""

    center: float
    width: float
    function: str = "LINEAR"
    label: str = ""

    def describe(self) -> str:
        text = f"C {self.center:g} / W {self.width:g}"
        if self.function != "LINEAR":
            text += f" ({self.function})"
        return text


@dataclass(frozen=True, eq=False)
class VoiLut:
    """A VOI LUT Sequence item: a table from modality values to display values."""

    first_mapped: int
    table: np.ndarray  # output values, length = number of entries
    output_max: float
    label: str = ""

    def describe(self) -> str:
        return self.label or f"VOI LUT ({len(self.table)} entries)"

    # Equal when the tables are equal (the dataclass default would compare arrays ambiguously).
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VoiLut):
            return NotImplemented
        return (self.first_mapped, self.output_max, self.label) == (
            other.first_mapped, other.output_max, other.label) and np.array_equal(
                self.table, other.table)

    def __hash__(self) -> int:
        return hash((self.first_mapped, self.output_max, self.label, len(self.table)))


Voi = Window | VoiLut


@dataclass(frozen=True)
class Spacing:
    """Physical size of a pixel in mm and which attribute it came from (said to the user)."""

    row_mm: float  # distance between rows (vertical)
    col_mm: float  # distance between columns (horizontal)
    source: str
    # The attribute's keyword ("PixelSpacing", "ImagerPixelSpacing", ...), or "calibrated"
    # for a spacing the reader set from a known distance; what measurements record.
    attribute: str = field(default="", compare=False)


# ---------------------------------------------------------------- functional groups


def frame_attribute(ds: Dataset, frame: int, sequence: str, keyword: str) -> Any:
    """An attribute from an enhanced object's per-frame or shared functional groups.

    Falls back to the top-level dataset, where classic (non-enhanced) objects keep it.
    """
    for groups_keyword, index in (("PerFrameFunctionalGroupsSequence", frame),
                                  ("SharedFunctionalGroupsSequence", 0)):
        groups = ds.get(groups_keyword)
        if not groups or index >= len(groups):
            continue
        macro = groups[index].get(sequence)
        if macro and keyword in macro[0]:
            return macro[0].get(keyword)
    return ds.get(keyword)


def _floats(value: Any) -> list[float]:
    if value is None or value == "":
        return []
    items = value if isinstance(value, (MultiValue, list, tuple)) else [value]
    out = []
    for item in items:
        try:
            out.append(float(item))
        except (TypeError, ValueError):
            continue
    return out


def _lut_table(item: Dataset, ds: Dataset | None = None) -> tuple[int, np.ndarray, int] | None:
    """(first mapped value, table, bits per entry) from an item with LUTDescriptor/LUTData.

    ``ds`` (the file's dataset) tells the byte order of an OW table and whether the first
    mapped value is signed.
    """
    descriptor = item.get("LUTDescriptor")
    data = item.get("LUTData")
    if descriptor is None or data is None:
        return None
    descriptor = list(descriptor) if isinstance(descriptor, (list, MultiValue)) else [descriptor]
    if len(descriptor) < 3:
        return None
    entries = int(descriptor[0]) or 65536  # 0 means 2^16 entries
    first = int(descriptor[1])
    bits = int(descriptor[2])
    if ds is not None and _whole(ds, "PixelRepresentation", 0) == 1 and first > 32767:
        first -= 65536  # US-encoded descriptor of signed data (PS3.3 C.11.1.1)
    if isinstance(data, bytes):
        little = getattr(ds, "original_encoding", (True, True))[1] is not False
        if bits <= 8 and len(data) == entries:
            table = np.frombuffer(data, dtype=np.uint8)
        else:
            table = np.frombuffer(data[: len(data) // 2 * 2], dtype="<u2" if little else ">u2")
    else:
        table = np.asarray(data if isinstance(data, (list, MultiValue)) else [data], dtype=np.float64)
    table = np.asarray(table, dtype=np.float64)[:entries]
    if table.size == 0:
        return None
    return first, table, bits


def _lookup(values: np.ndarray, first: int, table: np.ndarray) -> np.ndarray:
    index = np.clip(np.rint(values).astype(np.int64) - first, 0, table.size - 1)
    return table[index]


# ---------------------------------------------------------------- modality LUT


def _whole(ds: Dataset, keyword: str, default: int) -> int:
    """An integer attribute, or ``default`` when absent or not a number (damaged files)."""
    try:
        value = ds.get(keyword, default)
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError, OverflowError):
        return default


def is_colour(ds: Dataset) -> bool:
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    return _whole(ds, "SamplesPerPixel", 1) > 1 or photometric == "PALETTE COLOR"


def rescale(ds: Dataset, frame: int = 0) -> tuple[float, float]:
    """(slope, intercept) for a frame; (1, 0) when absent or unusable."""
    slope = _floats(frame_attribute(ds, frame, "PixelValueTransformationSequence", "RescaleSlope"))
    intercept = _floats(frame_attribute(ds, frame, "PixelValueTransformationSequence",
                                        "RescaleIntercept"))
    s = slope[0] if slope else 1.0
    b = intercept[0] if intercept else 0.0
    if not np.isfinite(s) or s == 0:
        s = 1.0
    if not np.isfinite(b):
        b = 0.0
    return s, b


def modality_lut(stored: np.ndarray, ds: Dataset, frame: int = 0) -> np.ndarray:
    """Stored values -> modality units (HU for CT, OD, ...). Colour data passes through.

    Returns the input unchanged (no copy) when the transform is the identity, so plain
    radiographs cost nothing here.
    """
    if is_colour(ds):
        return stored
    sequence = ds.get("ModalityLUTSequence")
    if sequence:
        parsed = _lut_table(sequence[0], ds)
        if parsed is not None:
            first, table, _bits = parsed
            return _lookup(stored, first, table).astype(np.float32)
    slope, intercept = rescale(ds, frame)
    if slope == 1.0 and intercept == 0.0:
        return stored
    dtype = _rescale_type(_bounds(stored), slope, intercept)
    if dtype is None:  # the dtype's whole range does not fit: judge by the actual values
        low, high = _extremes(stored)
        dtype = _rescale_type((low, high), slope, intercept)
        if dtype is None:
            raise UnusableValueError(
                f"its Rescale Slope ({slope:g}) and Rescale Intercept ({intercept:g}) give "
                f"values too large for any number this viewer can compute with")
    return stored.astype(dtype) * dtype(slope) + dtype(intercept)


# Largest modality magnitude kept: differences of two such values (window widths) stay finite.
MAX_MODALITY_MAGNITUDE = float(np.finfo(np.float64).max) / 4
_FLOAT32_SAFE = 1e37  # below float32's 3.4e38, with room for sums and differences


def _bounds(stored: np.ndarray) -> tuple[float, float]:
    """The values ``stored``'s type can hold (for floats: its actual finite extremes)."""
    if stored.dtype.kind in "iu":
        info = np.iinfo(stored.dtype)
        return float(info.min), float(info.max)
    if stored.dtype.kind == "b":
        return 0.0, 1.0
    return _extremes(stored)


def _extremes(values: np.ndarray) -> tuple[float, float]:
    if values.size == 0:
        return 0.0, 0.0
    if values.dtype.kind == "f":
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            return 0.0, 0.0
        return float(finite.min()), float(finite.max())
    return float(values.min()), float(values.max())


def _rescale_type(stored_range: tuple[float, float], slope: float,
                  intercept: float) -> type[np.floating] | None:
    """float32 or float64, whichever holds ``stored * slope + intercept`` over the range
    (and resolves its steps); None when even float64 would overflow."""
    ends = [v * slope + intercept for v in stored_range]
    big = max(abs(v) for v in (*ends, intercept))
    if not big <= MAX_MODALITY_MAGNITUDE:  # also catches inf and nan
        return None
    step = abs(slope)
    if big < _FLOAT32_SAFE and step > 1e-30 and step >= big * 2.0**-18:
        return np.float32
    return np.float64


def modality_step(ds: Dataset, stored_dtype: np.dtype, frame: int = 0) -> float:
    """The step between neighbouring modality values, as LINEAR windows use it (at most 1).

    1 for integer data in unit steps (the standard's model), ``|Rescale Slope|`` when that
    is finer, 0 for floating-point pixel data, which has no step.
    """
    if np.dtype(stored_dtype).kind == "f":
        return 0.0
    if ds.get("ModalityLUTSequence"):
        return 1.0
    return min(1.0, abs(rescale(ds, frame)[0]))


def modality_range(ds: Dataset, frame: int = 0) -> tuple[float, float] | None:
    """Smallest and largest modality values the stored bit depth allows (for 'full range')."""
    bits = _whole(ds, "BitsStored", 0)
    if not 1 <= bits <= 32:
        return None
    signed = _whole(ds, "PixelRepresentation", 0) == 1
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    ends = modality_lut(np.array([low, high], dtype=np.float64), ds, frame)
    return float(np.min(ends)), float(np.max(ends))


# Rescale Type / Modality LUT Type defined terms (PS3.3 C.11.1.1.2) -> the text after a value.
# "US" (unspecified) has none; codes not listed are named as codes, never passed off as units.
_MODALITY_UNITS = {
    "HU": "HU", "HU_MOD": "HU (modified)", "OD": "OD", "MGML": "mg/ml", "Z_EFF": "Zeff",
    "ED": "×10²³ electrons/ml", "EDW": "× water's electron density", "PCT": "%",
    "PVAL": "(presentation value)", "US": "",
}


def modality_unit(ds: Dataset, frame: int = 0) -> str:
    """What follows a modality value for the user: 'HU', 'mg/ml', '' when unspecified.

    CT values are Hounsfield units whatever the file says; a code the standard does not
    define is shown as "(Rescale Type X)" so it is not read as a unit.
    """
    if is_colour(ds):
        return ""
    if str(ds.get("Modality", "") or "").strip().upper() == "CT":
        return "HU"
    code = ""
    sequence = ds.get("ModalityLUTSequence")
    if sequence:
        code = str(sequence[0].get("ModalityLUTType", "") or "")
    if not code:
        code = str(frame_attribute(ds, frame, "PixelValueTransformationSequence",
                                   "RescaleType") or "")
    code = code.strip().upper()
    if code in _MODALITY_UNITS:
        return _MODALITY_UNITS[code]
    return f"(Rescale Type {code})" if code else ""


# ---------------------------------------------------------------- VOI


def file_windows(ds: Dataset, frame: int = 0) -> list[Window]:
    """Every window the file suggests for this frame (Window Center/Width may hold several)."""
    centers = _floats(frame_attribute(ds, frame, "FrameVOILUTSequence", "WindowCenter"))
    widths = _floats(frame_attribute(ds, frame, "FrameVOILUTSequence", "WindowWidth"))
    function = str(frame_attribute(ds, frame, "FrameVOILUTSequence", "VOILUTFunction") or "LINEAR")
    function = function.strip().upper() if function.strip().upper() in VOI_FUNCTIONS else "LINEAR"
    explanations = frame_attribute(ds, frame, "FrameVOILUTSequence",
                                   "WindowCenterWidthExplanation")
    if isinstance(explanations, str):
        explanations = [explanations]
    explanations = list(explanations or [])
    # A LINEAR window narrower than the data's step is a threshold no writer means, and one
    # a thousand times wider than every value the bit depth allows shows them all as grey.
    least_linear = min(1.0, abs(rescale(ds, frame)[0]))
    try:
        span = modality_range(ds, frame)
    except UnusableValueError:  # said when the pixels are converted
        span = None
    widest = 1000.0 * (span[1] - span[0]) if span is not None and span[1] > span[0] \
        else float("inf")
    windows = []
    for i, (center, width) in enumerate(zip(centers, widths)):
        if not (np.isfinite(center) and np.isfinite(width)) or width <= 0 or width > widest:
            continue
        if function == "LINEAR" and width < least_linear:
            continue
        explanation = str(explanations[i]).strip() if i < len(explanations) else ""
        label = explanation or f"File window {i + 1}"
        windows.append(Window(center, width, function, label))
    return windows


def file_voi_luts(ds: Dataset) -> list[VoiLut]:
    luts = []
    for i, item in enumerate(ds.get("VOILUTSequence") or []):
        parsed = _lut_table(item, ds)
        if parsed is None:
            continue
        first, table, bits = parsed
        declared_max = float(2 ** min(max(bits, 1), 16) - 1)
        # Some writers declare 16 bits for 12-bit tables (and vice versa); trust the data.
        output_max = declared_max if table.max() <= declared_max else float(table.max())
        label = str(item.get("LUTExplanation", "") or f"VOI LUT {i + 1}")
        luts.append(VoiLut(first, table, output_max or 1.0, label))
    return luts


def full_range_window(values: np.ndarray) -> Window:
    """A linear window spanning the data's own minimum to maximum."""
    if values.size == 0:
        return Window(0.5, 1.0, "LINEAR", "Full range")
    low, high = float(values.min()), float(values.max())
    if values.dtype.kind == "f" and not (np.isfinite(low) and np.isfinite(high)):
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            return Window(0.5, 1.0, "LINEAR", "Full range")
        low, high = float(finite.min()), float(finite.max())
    return window_for_range(low, high)


def window_for_range(low: float, high: float) -> Window:
    """The full-range window for modality values from ``low`` to ``high``, at any scale
    (values from 0 to 0.002 get a window 0.002 wide); constant data gets width 1."""
    width = high - low
    return Window(low / 2.0 + high / 2.0, width if width > 0 else 1.0, "LINEAR_EXACT",
                  "Full range")


def smallest_width(data_width: float) -> float:
    """The narrowest window worth offering for data spanning ``data_width``: 1 for 16-bit
    data, proportionally less for data at a smaller scale."""
    return min(1.0, data_width / 65536.0) if data_width > 0 else 1.0


def default_voi(ds: Dataset, modality_values: np.ndarray, frame: int = 0) -> Voi:
    """The file's first window, else its first VOI LUT, else the data's full range."""
    windows = file_windows(ds, frame)
    if windows:
        return windows[0]
    luts = file_voi_luts(ds)
    if luts:
        return luts[0]
    return full_range_window(modality_values)


# ---------------------------------------------------------------- integer fast path
#
# 8- and 16-bit stored values can take at most 65,536 distinct values, so every step of the
# pipeline (Modality LUT, VOI, inversion, rounding) can run once per possible value and the
# image becomes one table lookup: the same numbers as the per-pixel path, several times
# faster, and without a float copy of the frame.

_TABLE_CHUNK = 1 << 17  # pixels per lookup step: keeps numpy's index buffer in cache
_table_inputs: dict[str, np.ndarray] = {}


def _table_input(dtype: np.dtype) -> np.ndarray:
    """Every value of an 8/16-bit integer dtype, at the index of its unsigned bit pattern."""
    key = dtype.str
    if key not in _table_inputs:
        unsigned = np.dtype(f"u{dtype.itemsize}")
        values = np.arange(2 ** (8 * dtype.itemsize), dtype=unsigned)
        _table_inputs[key] = values.view(dtype.newbyteorder("=")) if dtype.kind == "i" else values
    return _table_inputs[key]


def table_friendly(stored: np.ndarray) -> bool:
    """Whether ``stored`` is integer data small enough for the table path."""
    return stored.dtype.kind in "iub" and stored.dtype.itemsize <= 2 and stored.dtype.isnative


def _present_values(stored: np.ndarray) -> np.ndarray:
    """Mask over the table input marking the values that occur in ``stored``."""
    unsigned = stored.view(f"u{stored.dtype.itemsize}") if stored.dtype.kind == "i" else stored
    counts = np.bincount(unsigned.reshape(-1), minlength=2 ** (8 * stored.dtype.itemsize))
    return counts > 0


def modality_value_range(stored: np.ndarray, ds: Dataset, frame: int = 0) -> tuple[float, float] | None:
    """Smallest and largest modality value in a frame, without converting the whole frame.

    None when the data is not small integers (then convert the frame and look).
    """
    if not table_friendly(stored) or stored.size == 0:
        return None
    if stored.dtype.kind == "b":
        stored = stored.view(np.uint8)
    if ds.get("ModalityLUTSequence"):  # a table need not be monotonic: look at every value
        mapped = modality_lut(_table_input(stored.dtype), ds, frame)[_present_values(stored)]
    else:  # rescale is linear: the extremes come from the stored extremes
        mapped = modality_lut(np.array([stored.min(), stored.max()], dtype=stored.dtype), ds,
                              frame)
    return float(np.min(mapped)), float(np.max(mapped))


def _modality_table(stored: np.ndarray, ds: Dataset, frame: int) -> np.ndarray:
    """Modality values of every possible stored value; entries no value in ``stored`` uses
    may be beyond what a number holds (a huge slope): they are set to 0, after checking
    that the values present are fine."""
    table_input = _table_input(stored.dtype)
    try:
        return modality_lut(table_input, ds, frame)
    except UnusableValueError:
        present = _present_values(stored)
        modality_lut(table_input[present], ds, frame)  # raises if the data itself overflows
        slope, intercept = rescale(ds, frame)
        table = np.zeros(table_input.size, dtype=np.float64)
        table[present] = table_input[present].astype(np.float64) * slope + intercept
        return table


def default_voi_for_stored(ds: Dataset, stored: np.ndarray, frame: int = 0) -> Voi | None:
    """:func:`default_voi` from stored values; None when the modality values are needed."""
    windows = file_windows(ds, frame)
    if windows:
        return windows[0]
    luts = file_voi_luts(ds)
    if luts:
        return luts[0]
    value_range = modality_value_range(stored, ds, frame)
    return window_for_range(*value_range) if value_range is not None else None


def display_from_stored(stored: np.ndarray, ds: Dataset, frame: int, voi: Voi,
                        invert: bool) -> np.ndarray | None:
    """``to_display(modality_lut(stored))`` by table lookup; None if the dtype does not allow."""
    if not table_friendly(stored):
        return None
    if stored.dtype.kind == "b":
        stored = stored.view(np.uint8)
    table = to_display(_modality_table(stored, ds, frame), voi, invert,
                       modality_step(ds, stored.dtype, frame))
    index = stored.view(f"u{stored.dtype.itemsize}") if stored.dtype.kind == "i" else stored
    flat = np.ascontiguousarray(index).reshape(-1)
    out = np.empty(flat.size, dtype=np.uint8)
    for start in range(0, flat.size, _TABLE_CHUNK):
        np.take(table, flat[start:start + _TABLE_CHUNK], out=out[start:start + _TABLE_CHUNK])
    return out.reshape(stored.shape)


def apply_window(values: np.ndarray, window: Window, step: float = 1.0) -> np.ndarray:
    """Modality values -> [0, 1] by the VOI LUT Function's formula (PS3.3 C.11.2.1.2).

    LINEAR:       x <= c - s/2 - (w-s)/2 -> 0;  x > c - s/2 + (w-s)/2 -> 1;
                  else ((x - (c - s/2)) / (w - s) + 0.5); a threshold at c - s/2 if w <= s
    LINEAR_EXACT: x <= c - w/2 -> 0;  x > c + w/2 -> 1;  else (x - c) / w + 0.5
    SIGMOID:      1 / (1 + exp(-4 (x - c) / w))

    The standard writes LINEAR for values in unit steps (s = 1, the default); ``step`` is
    the data's own step (:func:`modality_step`), so a window narrower than 1 stays a ramp
    on data at a smaller scale. NaN values show as 0.
    """
    c, w = float(window.center), float(window.width)
    working = _window_type(values, c, w)
    x = values.astype(working, copy=False)
    c_, w_ = working(c), working(w)
    if window.function == "SIGMOID":
        out = (1.0 / (1.0 + np.exp(np.clip(-4.0 * (x - c_) / w_, -80, 80)))).astype(working)
    elif window.function == "LINEAR_EXACT":
        out = (x - c_) / w_ + working(0.5)
    else:
        s = min(max(float(step), 0.0), 1.0)
        if w <= s:  # the standard's w - 1 = 0 case: a threshold at c - s/2
            out = (x > working(c - s / 2)).astype(working)
        else:
            out = (x - working(c - s / 2)) / working(w - s) + working(0.5)
    out = np.clip(out, 0.0, 1.0, out=out if out.dtype == working else None)
    if out.dtype.kind == "f" and values.dtype.kind == "f":
        np.nan_to_num(out, copy=False, nan=0.0)
    return out.astype(np.float32, copy=False)


def _window_type(values: np.ndarray, center: float, width: float) -> type[np.floating]:
    """float32 when it holds the window's numbers and resolves its width near its centre."""
    if values.dtype == np.float64:
        return np.float64
    if abs(center) < _FLOAT32_SAFE and 1e-30 < width < _FLOAT32_SAFE \
            and width >= abs(center) * 2.0**-12:
        return np.float32
    return np.float64


def apply_voi(values: np.ndarray, voi: Voi, step: float = 1.0) -> np.ndarray:
    if isinstance(voi, VoiLut):
        return (_lookup(values, voi.first_mapped, voi.table) / voi.output_max).astype(np.float32)
    return apply_window(values, voi, step)


def needs_inversion(ds: Dataset) -> bool:
    """MONOCHROME1 shows low values bright; Presentation LUT Shape INVERSE asks the same.

    DX objects pair MONOCHROME1 with INVERSE to describe one and the same inversion, so the
    two are combined with 'or', not toggled twice.
    """
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    shape = str(ds.get("PresentationLUTShape", "") or "").strip().upper()
    return photometric == "MONOCHROME1" or shape == "INVERSE"


def to_display(values: np.ndarray, voi: Voi, invert: bool, step: float = 1.0) -> np.ndarray:
    """Modality values -> 8-bit grey display values (``step``: see :func:`apply_window`).

    Inversion happens after rounding, so an inverted image is exactly 255 minus the plain one.
    """
    out = np.rint(apply_voi(values, voi, step) * np.float32(255.0)).astype(np.uint8)
    if invert:
        np.subtract(np.uint8(255), out, out=out)
    return out


def colour_bits(ds: Dataset) -> int:
    """Bits per colour channel after decoding: the palette's entry size, else Bits Stored."""
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if photometric == "PALETTE COLOR":
        descriptor = ds.get("RedPaletteColorLookupTableDescriptor")
        try:
            return 8 if int(descriptor[2]) <= 8 else 16
        except (TypeError, ValueError, IndexError):
            return 16
    bits = _whole(ds, "BitsStored", 0) or _whole(ds, "BitsAllocated", 8)
    return min(max(bits, 1), 32)


def colour_to_display(rgb: np.ndarray, voi: Window | None = None,
                      bits: int | None = None) -> np.ndarray:
    """RGB of any bit depth -> 8-bit RGB; an optional window applies to all channels.

    ``bits`` is the channel depth (see :func:`colour_bits`); without it values above 255
    are taken as 16-bit.
    """
    if voi is not None:
        return np.rint(apply_window(rgb, voi) * 255.0).astype(np.uint8)
    if rgb.dtype == np.uint8 and (bits is None or bits == 8):
        return rgb
    if bits is None:
        top = float(rgb.max()) if rgb.size else 1.0
        bits = 16 if top > 255 else 8
    scale = 255.0 / float(2**bits - 1)
    return np.clip(np.rint(rgb.astype(np.float32) * np.float32(scale)), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- geometry


def pixel_spacing(ds: Dataset, frame: int = 0) -> Spacing | None:
    """Pixel size in mm, preferring calibrated Pixel Spacing, then Imager Pixel Spacing."""
    values = _floats(frame_attribute(ds, frame, "PixelMeasuresSequence", "PixelSpacing"))
    if len(values) >= 2 and values[0] > 0 and values[1] > 0:
        return Spacing(values[0], values[1], "Pixel Spacing (in the patient)", "PixelSpacing")
    values = _floats(ds.get("ImagerPixelSpacing"))
    if len(values) >= 2 and values[0] > 0 and values[1] > 0:
        magnification = _floats(ds.get("EstimatedRadiographicMagnificationFactor"))
        if magnification and magnification[0] > 0 and magnification[0] != 1.0:
            m = magnification[0]
            return Spacing(values[0] / m, values[1] / m,
                           f"Imager Pixel Spacing corrected by magnification {m:g}",
                           "ImagerPixelSpacing")
        return Spacing(values[0], values[1], "Imager Pixel Spacing (at the detector)",
                       "ImagerPixelSpacing")
    values = _floats(ds.get("NominalScannedPixelSpacing"))
    if len(values) >= 2 and values[0] > 0 and values[1] > 0:
        return Spacing(values[0], values[1], "Nominal Scanned Pixel Spacing (film scan)",
                       "NominalScannedPixelSpacing")
    return None
