"""Guarded opening of DICOM files: a header now, pixels lazily, or one clear LoadError.

``open_instance(path)`` parses the header only (no pixel data is read). Frames decode on
first use and are kept in a process-wide cache bounded by a memory budget. Every failure a
file can cause becomes a :class:`LoadError` naming the file and the reason.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from medviewer.dicom import pixels
from medviewer.errors import UserError

log = logging.getLogger(__name__)

# Values larger than this are skipped while parsing headers and read only when used, so an
# absurd declared length never allocates its size.
HEADER_DEFER_SIZE = "256 KB"
# Refuse to decode images whose declared size is beyond any radiograph we could display.
MAX_DECODED_BYTES = 2 * 1024**3


class LoadError(UserError):
    """A file that cannot be opened or decoded; ``str()`` is one sentence for the user."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason.rstrip(".")
        super().__init__(f"Cannot open {self.path}: {self.reason}.")


# ---------------------------------------------------------------- pixel cache


class PixelCache:
    """LRU cache of decoded frames bounded in bytes; shared by every Instance."""

    def __init__(self, budget_bytes: int = 1024**3) -> None:
        self.budget_bytes = budget_bytes
        self._items: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            array = self._items.get(key)
            if array is not None:
                self._items.move_to_end(key)
            return array

    def put(self, key: tuple, array: np.ndarray) -> None:
        if array.nbytes > self.budget_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._items[key] = array
            self._bytes += array.nbytes
            while self._bytes > self.budget_bytes and self._items:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= evicted.nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    @property
    def used_bytes(self) -> int:
        return self._bytes


pixel_cache = PixelCache()


# ---------------------------------------------------------------- the Instance


FrameLoader = Callable[[int], np.ndarray]


class Instance:
    """One image object: its header (no pixel data) and lazily decoded frames.

    ``stored_frame`` gives decoded stored values (colour already as RGB), ``modality_frame``
    values in modality units (what the cursor readout shows), ``display_frame`` the 8-bit
    image exactly as shown with a given (or the default) VOI.
    """

    def __init__(self, path: Path, header: Dataset, load_frame: FrameLoader | None,
                 cache_key: tuple, content_hash: str | None = None) -> None:
        self.path = path
        self.header = header
        # SHA-256 of the file for non-DICOM images, which have no real SOP Instance UID.
        self.content_hash = content_hash
        self._load_frame = load_frame
        self._cache_key = cache_key

    # -- identity and geometry
    @property
    def sop_instance_uid(self) -> str:
        return str(self.header.get("SOPInstanceUID", ""))

    @property
    def has_pixels(self) -> bool:
        return self._load_frame is not None

    @property
    def rows(self) -> int:
        return int(self.header.get("Rows", 0) or 0)

    @property
    def columns(self) -> int:
        return int(self.header.get("Columns", 0) or 0)

    @property
    def n_frames(self) -> int:
        try:
            return max(1, int(self.header.get("NumberOfFrames", 1) or 1))
        except (TypeError, ValueError):
            return 1

    @property
    def is_colour(self) -> bool:
        return pixels.is_colour(self.header)

    @property
    def modality(self) -> str:
        return str(self.header.get("Modality", "") or "")

    def pixel_spacing(self, frame: int = 0) -> pixels.Spacing | None:
        return pixels.pixel_spacing(self.header, frame)

    # -- pixels
    def _check_frame(self, frame: int) -> None:
        if not self.has_pixels:
            raise LoadError(self.path, "the file holds no image (no Pixel Data)")
        if not 0 <= frame < self.n_frames:
            raise LoadError(self.path, f"frame {frame + 1} does not exist "
                                       f"(the image has {self.n_frames})")

    def stored_frame(self, frame: int = 0) -> np.ndarray:
        self._check_frame(frame)
        key = (*self._cache_key, "stored", frame)
        array = pixel_cache.get(key)
        if array is None:
            assert self._load_frame is not None
            array = self._load_frame(frame)
            array.setflags(write=False)
            pixel_cache.put(key, array)
        return array

    def modality_frame(self, frame: int = 0) -> np.ndarray:
        """Pixel values in modality units (rescaled / Modality LUT), or RGB for colour."""
        stored = self.stored_frame(frame)
        if self.is_colour:
            return stored
        key = (*self._cache_key, "modality", frame)
        array = pixel_cache.get(key)
        if array is None:
            array = pixels.modality_lut(stored, self.header, frame)
            if array is not stored:
                array.setflags(write=False)
                pixel_cache.put(key, array)
        return array

    def file_windows(self, frame: int = 0) -> list[pixels.Window]:
        return pixels.file_windows(self.header, frame)

    def voi_luts(self) -> list[pixels.VoiLut]:
        return pixels.file_voi_luts(self.header)

    def default_voi(self, frame: int = 0) -> pixels.Voi | None:
        if self.is_colour:
            return None
        return pixels.default_voi(self.header, self.modality_frame(frame), frame)

    def full_range_voi(self, frame: int = 0) -> pixels.Window:
        return pixels.full_range_window(self.modality_frame(frame))

    @property
    def inverted(self) -> bool:
        return not self.is_colour and pixels.needs_inversion(self.header)

    def display_frame(self, frame: int = 0, voi: pixels.Voi | None = None,
                      invert: bool = False) -> np.ndarray:
        """The 8-bit image as displayed: grey (rows, cols) or RGB (rows, cols, 3).

        ``invert`` is the user's extra inversion on top of what the file asks for.
        """
        values = self.modality_frame(frame)
        if self.is_colour:
            window = voi if isinstance(voi, pixels.Window) else None
            out = pixels.colour_to_display(values, window)
            return 255 - out if invert else out
        if voi is None:
            voi = pixels.default_voi(self.header, values, frame)
        return pixels.to_display(values, voi, self.inverted != invert)


# ---------------------------------------------------------------- opening


def _reason_from_exception(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def _file_key(path: Path) -> tuple:
    stat = path.stat()
    return (str(path), stat.st_mtime_ns, stat.st_size)


def read_header(path: str | os.PathLike) -> Dataset:
    """Parse a DICOM file up to (not including) its pixel data, or raise LoadError."""
    path = Path(path)
    if path.is_dir():
        raise LoadError(path, "it is a folder, not a file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise LoadError(path, f"the file cannot be read ({exc.strerror or exc})") from None
    if size == 0:
        raise LoadError(path, "the file is empty")
    try:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, defer_size=HEADER_DEFER_SIZE)
        except InvalidDicomError:
            if not _looks_like_acr_nema(path):
                raise LoadError(path, "it is not a DICOM file (no DICM preamble and no "
                                      "recognisable data elements)") from None
            ds = pydicom.dcmread(path, stop_before_pixels=True, defer_size=HEADER_DEFER_SIZE,
                                 force=True)
    except LoadError:
        raise
    except RecursionError:
        raise LoadError(path, "its sequences are nested too deeply to be valid") from None
    except MemoryError:
        raise LoadError(path, "it declares an element larger than memory allows") from None
    except (EOFError, OSError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            OverflowError, NotImplementedError, UnicodeError, RuntimeError) as exc:
        reason = _reason_from_exception(exc)
        if isinstance(exc, EOFError) or "end of file" in reason.lower():
            reason = f"the file is truncated ({reason})"
        raise LoadError(path, f"its header is malformed ({reason})") from None
    if len(ds) == 0 or not any(tag.group not in (0x0002,) for tag in ds.keys()):
        raise LoadError(path, "it holds no DICOM data elements")
    return ds


def _looks_like_acr_nema(path: Path) -> bool:
    """ACR-NEMA style files have no preamble and start with a group 0008 element."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    return len(head) == 8 and head[:2] in (b"\x08\x00", b"\x00\x08") and head[2:4] < b"\x00\x02"


def _expected_frame_bytes(ds: Dataset) -> int:
    rows = int(ds.get("Rows", 0) or 0)
    cols = int(ds.get("Columns", 0) or 0)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.get("BitsAllocated", 0) or 0)
    return rows * cols * samples * max(bits, 1) // 8


def _make_frame_loader(path: Path, header: Dataset) -> FrameLoader | None:
    has_pixels = any(k in header for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))
    if not has_pixels:
        # stop_before_pixels hides Pixel Data; look for it cheaply in the raw file.
        if not _has_pixel_data(path):
            return None

    def load(frame: int) -> np.ndarray:
        return _decode_frame(path, frame)

    return load


def _has_pixel_data(path: Path) -> bool:
    try:
        ds = pydicom.dcmread(path, defer_size=HEADER_DEFER_SIZE, force=True,
                             specific_tags=["PixelData", "FloatPixelData", "DoubleFloatPixelData"])
    except Exception:  # a header that parsed once but not now: let decode report it
        return True
    return any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))


def _decode_frame(path: Path, frame: int) -> np.ndarray:
    try:
        ds = pydicom.dcmread(path, defer_size=HEADER_DEFER_SIZE, force=True)
    except Exception as exc:  # noqa: BLE001 - any parser failure is the file's fault
        raise LoadError(path, f"it cannot be re-read ({_reason_from_exception(exc)})") from None
    transfer_syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    frames = max(1, int(ds.get("NumberOfFrames", 1) or 1))
    frame_bytes = _expected_frame_bytes(ds)
    if frame_bytes <= 0:
        raise LoadError(path, "its image attributes (Rows, Columns, Bits Allocated) are missing "
                              "or zero")
    if frame_bytes * frames > MAX_DECODED_BYTES * 4 or frame_bytes > MAX_DECODED_BYTES:
        raise LoadError(path, f"it declares an image of {frame_bytes * frames / 1e9:.1f} GB, "
                              "too large to display")
    declared = _declared_pixel_length(ds)
    size = path.stat().st_size
    if declared is not None:
        if declared > size:
            raise LoadError(path, f"pixel data declares {declared} bytes but the file has only "
                                  f"{size}")
    is_compressed = bool(transfer_syntax) and transfer_syntax.is_compressed
    if not is_compressed and declared is not None:
        needed = frame_bytes * frames
        if int(ds.get("BitsAllocated", 0) or 0) == 1:
            needed = (needed + 7) // 8
        if declared < needed:
            raise LoadError(path, f"pixel data is shorter than declared ({declared} of "
                                  f"{needed} bytes)")
    try:
        array = pydicom.pixels.pixel_array(ds, index=frame if frames > 1 else None)
    except LoadError:
        raise
    except MemoryError:
        raise LoadError(path, "decoding it needs more memory than is available") from None
    except Exception as exc:  # noqa: BLE001 - decoder plugins raise anything
        name = transfer_syntax.name if transfer_syntax else "unknown transfer syntax"
        reason = _reason_from_exception(exc)
        if is_compressed:
            raise LoadError(path, f"its {name} pixel data cannot be decoded ({reason})") from None
        raise LoadError(path, f"its pixel data cannot be read ({reason})") from None
    if frames > 1 and array.ndim >= 3 and array.shape[0] == frames and not _is_single_rgb(ds, array):
        array = array[frame]
    if str(ds.get("PhotometricInterpretation", "")).upper() == "PALETTE COLOR":
        try:
            array = pydicom.pixels.apply_color_lut(array, ds)
        except Exception as exc:  # noqa: BLE001
            raise LoadError(path, f"its palette colour table is unusable "
                                  f"({_reason_from_exception(exc)})") from None
    return np.ascontiguousarray(array)


def _declared_pixel_length(ds: Dataset) -> int | None:
    """Pixel Data's byte length as declared in the file, without reading the value."""
    if "PixelData" not in ds:
        return None
    element = ds.get_item("PixelData")
    length = getattr(element, "length", None)  # RawDataElement: the declared length
    if length is None:
        value = element.value  # already read (small, under the defer size)
        return len(value) if isinstance(value, bytes) else None
    return None if length == 0xFFFFFFFF else int(length)


def _is_single_rgb(ds: Dataset, array: np.ndarray) -> bool:
    return int(ds.get("SamplesPerPixel", 1) or 1) > 1 and array.ndim == 3


def open_instance(path: str | os.PathLike) -> Instance:
    """Open a DICOM file (or a PNG/JPEG X-ray) without decoding its pixels."""
    path = Path(path)
    from medviewer.dicom import images  # local import: images imports this module

    if images.is_plain_image(path):
        return images.open_plain_image(path)
    header = read_header(path)
    for keyword in ("Rows", "Columns"):
        value = header.get(keyword)
        if value is not None and not isinstance(value, int):
            raise LoadError(path, f"its {keyword} value is not a number")
    return Instance(path, header, _make_frame_loader(path, header), _file_key(path))
