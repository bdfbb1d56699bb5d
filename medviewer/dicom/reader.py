"""Guarded opening of DICOM files: a header now, pixels lazily, or one clear LoadError.

``open_instance(path)`` parses the header once, up to (not including) the pixel data, and
notes where the pixel data lies in the file; no pixel byte is read. A frame decodes on first
use straight from its own bytes in the file (the header is never parsed again), and decoded
frames live in a process-wide cache bounded by a memory budget. Every failure a file can
cause becomes a :class:`LoadError` naming the file and the reason.
"""

from __future__ import annotations

import io
import logging
import os
import re
import struct
import threading
import zlib
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset
from pydicom.uid import UID

from medviewer.dicom import pixels
from medviewer.errors import UserError

log = logging.getLogger(__name__)

# Values larger than this are skipped while parsing headers and read only when used, so an
# absurd declared length never allocates its size.
HEADER_DEFER_SIZE = "256 KB"
# Refuse images whose declared size is beyond any radiograph we could display.
MAX_DECODED_BYTES = 2 * 1024**3
MAX_FRAME_PIXELS = 100_000_000  # about 10,000 x 10,000; larger frames are refused
# A deflated dataset may not expand beyond this (a corrupt or hostile stream could).
MAX_INFLATED_BYTES = 512 * 1024**2

_PIXEL_KEYWORDS = {0x0010: "PixelData", 0x0008: "FloatPixelData", 0x0009: "DoubleFloatPixelData"}
_LONG_LENGTH_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR",
                              "UT", "UV"})
_VALID_VRS = _LONG_LENGTH_VRS | {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS",
                                 "LO", "LT", "PN", "SH", "SL", "SS", "ST", "TM", "UI", "UL",
                                 "US"}
_ITEM_TAG = b"\xfe\xff\x00\xe0"
_SEQUENCE_END_TAG = b"\xfe\xff\xdd\xe0"
_DEFLATED = "1.2.840.10008.1.2.1.99"


class LoadError(UserError):
    """A file that cannot be opened or decoded; ``str()`` is one sentence for the user."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason.rstrip(".")
        super().__init__(f"Cannot open {self.path}: {self.reason}.")


# ---------------------------------------------------------------- tolerant values
#
# pydicom converts element values lazily, on first access, and raises for values it cannot
# convert (an unknown VR, a corrupt length). Such a header would then fail wherever it is
# read (the GUI's tag browser, the catalog...). This hook, installed once for the process,
# keeps such a value as raw bytes with VR UN instead, as pydicom already does for values of
# the wrong length.


def _install_tolerant_value_hook() -> None:
    from pydicom import hooks as pydicom_hooks

    convert = pydicom_hooks.hooks.raw_element_value
    if getattr(convert, "medviewer_tolerant", False):
        return

    def tolerant_value(raw: Any, data: dict[str, Any], **kwargs: Any) -> None:
        try:
            convert(raw, data, **kwargs)
        except Exception:  # noqa: BLE001 - any value pydicom cannot convert stays raw
            log.debug("Keeping element %s as raw bytes", raw.tag, exc_info=True)
            data["VR"] = "UN"
            data["value"] = raw.value

    tolerant_value.medviewer_tolerant = True  # type: ignore[attr-defined]
    pydicom_hooks.hooks.register_callback("raw_element_value", tolerant_value)


_install_tolerant_value_hook()


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


# ---------------------------------------------------------------- guarding


def _reason_from_exception(exc: BaseException) -> str:
    """The first informative line of an exception's message (decoders add detail below)."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    if "exceptions were raised by all available plugins" in text:
        return _plugin_failure_reason(text)
    return text.splitlines()[0].strip()[:300]


# Messages some decoding plugins give that say nothing about the file.
_UNINFORMATIVE = ("'NoneType' object has no attribute", "does not support", "is not available",
                  "missing required", "no module named")
_PLUGIN_PREFIXES = (re.compile(r"^libjpeg error code '?-?\d+'? returned from Decode\(\):\s*"),
                    re.compile(r"^Error decoding the J2K data:\s*"),
                    re.compile(r"^Unable to decode the .* data:\s*"))


def _plugin_failure_reason(text: str) -> str:
    """pydicom lists one line per decoding plugin; keep the one that explains the failure."""
    messages: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        name, _, message = line.strip().partition(": ")
        if message:
            messages[name] = message.strip()
    informative = {name: message for name, message in messages.items()
                   if not any(bit in message.lower() for bit in map(str.lower, _UNINFORMATIVE))}
    for name in ("pylibjpeg", "pillow", "pydicom", "gdcm", *informative):
        if name in informative:
            message = informative[name]
            for prefix in _PLUGIN_PREFIXES:
                message = prefix.sub("", message)
            return f"{name}: {message}"[:300]
    if messages:
        return "none of the installed decoders supports it (" + "; ".join(
            f"{name}: {message}" for name, message in messages.items())[:280] + ")"
    return "no decoder is installed for it"


@contextmanager
def _guard(path: Path, doing: str) -> Iterator[None]:
    """Turn whatever a damaged file makes the libraries raise into one LoadError."""
    try:
        yield
    except LoadError:
        raise
    except MemoryError:
        raise LoadError(path, f"{doing} needs more memory than is available") from None
    except RecursionError:
        raise LoadError(path, "its sequences are nested too deeply to be valid") from None
    except BaseException as exc:  # noqa: BLE001 - the file's content decides what is raised
        if not isinstance(exc, Exception) and not _is_panic(exc):
            raise  # KeyboardInterrupt, SystemExit...
        log.debug("%s failed", doing, exc_info=True)
        if _caused_by(exc, RecursionError):  # pydicom re-raises some as OSError
            raise LoadError(path, "its sequences are nested too deeply to be valid") from None
        raise LoadError(path, f"{doing} failed ({_reason_from_exception(exc)})") from None


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 50:
        if isinstance(current, kind):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


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
        return _int_or(self.header, "Rows", 0)

    @property
    def columns(self) -> int:
        return _int_or(self.header, "Columns", 0)

    @property
    def n_frames(self) -> int:
        return max(1, _int_or(self.header, "NumberOfFrames", 1))

    @property
    def is_colour(self) -> bool:
        return pixels.is_colour(self.header)

    @property
    def modality(self) -> str:
        return str(self.header.get("Modality", "") or "")

    @property
    def transfer_syntax(self) -> str:
        """The transfer syntax's name ('' for plain images and files that do not say)."""
        uid = getattr(self.header, "file_meta", Dataset()).get("TransferSyntaxUID")
        return uid.name if isinstance(uid, UID) else str(uid or "")

    def pixel_spacing(self, frame: int = 0) -> pixels.Spacing | None:
        with _guard(self.path, "reading its pixel spacing"):
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
            with _guard(self.path, "decoding its pixel data"):
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
            with _guard(self.path, "applying its Modality LUT"):
                array = pixels.modality_lut(stored, self.header, frame)
            if array is not stored:
                array.setflags(write=False)
                pixel_cache.put(key, array)
        return array

    def file_windows(self, frame: int = 0) -> list[pixels.Window]:
        with _guard(self.path, "reading its windows"):
            return pixels.file_windows(self.header, frame)

    def voi_luts(self) -> list[pixels.VoiLut]:
        with _guard(self.path, "reading its VOI LUTs"):
            return pixels.file_voi_luts(self.header)

    def default_voi(self, frame: int = 0) -> pixels.Voi | None:
        """The file's first window, else its first VOI LUT, else the frame's full range."""
        if self.is_colour:
            return None
        stored = self.stored_frame(frame)
        with _guard(self.path, "choosing its window"):
            voi = pixels.default_voi_for_stored(self.header, stored, frame)
        if voi is None:
            values = self.modality_frame(frame)
            with _guard(self.path, "choosing its window"):
                voi = pixels.default_voi(self.header, values, frame)
        return voi

    def full_range_voi(self, frame: int = 0) -> pixels.Window:
        stored = self.stored_frame(frame)
        with _guard(self.path, "measuring its value range"):
            value_range = None if self.is_colour else \
                pixels.modality_value_range(stored, self.header, frame)
            if value_range is not None:
                return pixels.window_for_range(*value_range)
        values = self.modality_frame(frame)
        with _guard(self.path, "measuring its value range"):
            return pixels.full_range_window(values)

    @property
    def inverted(self) -> bool:
        return not self.is_colour and pixels.needs_inversion(self.header)

    def display_frame(self, frame: int = 0, voi: pixels.Voi | None = None,
                      invert: bool = False) -> np.ndarray:
        """The 8-bit image as displayed: grey (rows, cols) or RGB (rows, cols, 3).

        ``invert`` is the user's extra inversion on top of what the file asks for.
        """
        stored = self.stored_frame(frame)
        if self.is_colour:
            with _guard(self.path, "rendering its image"):
                window = voi if isinstance(voi, pixels.Window) else None
                out = pixels.colour_to_display(stored, window, pixels.colour_bits(self.header))
                return 255 - out if invert else out
        if voi is None:
            voi = self.default_voi(frame)
        assert voi is not None
        with _guard(self.path, "rendering its image"):
            # 8/16-bit data: the whole pipeline as one table lookup (same values, faster).
            image = pixels.display_from_stored(stored, self.header, frame, voi,
                                               self.inverted != invert)
        if image is None:
            values = self.modality_frame(frame)
            with _guard(self.path, "rendering its image"):
                image = pixels.to_display(values, voi, self.inverted != invert)
        return image


def _int_or(ds: Dataset, keyword: str, default: int) -> int:
    try:
        value = ds.get(keyword, default)
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError, OverflowError):
        return default


# ---------------------------------------------------------------- reading the header


class _BoundedReader(io.BufferedReader):
    """A binary file whose ``read(n)`` never asks for more than what is left in it.

    A corrupt length field may declare gigabytes, and Python allocates the requested size
    before reading; asking only for what exists keeps memory bounded by the file's size.
    ``ran_short`` records that a value was cut off by the end of the file (the parser
    itself treats that as a normal end). pydicom re-opens files for deferred values with
    ``type(fp)(path, "rb")``, so the signature matches ``open``.
    """

    def __init__(self, path: str | os.PathLike, mode: str = "rb") -> None:
        super().__init__(io.FileIO(path, "r"), buffer_size=256 * 1024)
        self.size = os.fstat(self.fileno()).st_size
        self.ran_short = False

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size > 0:
            position = self.tell()
            left = self.size - position
            if size > left:
                # Tag and length reads (8 bytes or less) at the very end are how a parser
                # finds the end; a longer value cut short means the file is truncated.
                if position > self.size or (size > 8 and position > 0):
                    self.ran_short = True
                size = max(0, left)
                if size == 0:
                    return b""
        return super().read(size)


@dataclass(frozen=True)
class PixelLocation:
    """Where a file's Pixel Data element lies, as read from its element header."""

    keyword: str  # PixelData, FloatPixelData or DoubleFloatPixelData
    vr: str
    value_offset: int  # offset of the first value byte (in the file or the inflated buffer)
    length: int | None  # declared length; None when undefined (encapsulated)


@dataclass
class _ParsedFile:
    header: FileDataset
    transfer_syntax: UID
    location: PixelLocation | None
    inflated: bytes | None  # the whole dataset of a deflated file, else None


def _encoding(ds: Dataset) -> tuple[bool, bool]:
    implicit, little = getattr(ds, "original_encoding", (None, None))[:2]
    return bool(implicit) if implicit is not None else True, little is not False


def _transfer_syntax(ds: Dataset) -> UID:
    """The file's transfer syntax, or the one its encoding implies when it does not say."""
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid:
        uid = UID(str(uid).strip().rstrip("\0"))
        if uid.is_transfer_syntax or uid.is_private:
            return uid
    implicit, little = _encoding(ds)
    if implicit:
        return pydicom.uid.ImplicitVRLittleEndian
    return pydicom.uid.ExplicitVRLittleEndian if little else pydicom.uid.ExplicitVRBigEndian


def _looks_like_raw_dataset(head: bytes, size: int) -> bool:
    """A file without preamble (ACR-NEMA style) must start with a plausible data element."""
    if len(head) < 8:
        return False
    for order in "<>":
        group, element = struct.unpack(order + "HH", head[:4])
        if group not in (0x0002, 0x0004, 0x0008):
            continue
        vr = head[4:6].decode("ascii", "replace")
        if vr in _VALID_VRS:
            return True
        (length,) = struct.unpack(order + "L", head[4:8])
        if order == "<" and length <= size - 8 and (element != 0 or length == 4):
            return True
    return False


def _pixel_location(handle: io.BufferedIOBase, implicit: bool, little: bool) -> PixelLocation | None:
    """Read the element header the parser stopped at (if it is a pixel data element)."""
    start = handle.tell()
    head = handle.read(8)
    if len(head) < 8:
        return None
    order = "<" if little else ">"
    group, element = struct.unpack(order + "HH", head[:4])
    keyword = _PIXEL_KEYWORDS.get(element) if group == 0x7FE0 else None
    if keyword is None:
        return None
    if implicit:
        (length,) = struct.unpack(order + "L", head[4:8])
        vr, value_offset = ("OF" if "Float" in keyword else "OW"), start + 8
    else:
        vr = head[4:6].decode("ascii", "replace")
        if vr in _LONG_LENGTH_VRS:
            extra = handle.read(4)
            if len(extra) < 4:
                return None
            (length,) = struct.unpack(order + "L", extra)
            value_offset = start + 12
        else:
            (length,) = struct.unpack(order + "H", head[6:8])
            value_offset = start + 8
    return PixelLocation(keyword, vr, value_offset, None if length == 0xFFFFFFFF else length)


def _read_deflated(path: Path, handle: _BoundedReader) -> _ParsedFile | None:
    """Deflated files: inflate the dataset (bounded) and parse it from memory.

    Returns None when the file's transfer syntax is not Deflated after all.
    """
    from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble

    handle.seek(0)
    preamble = read_preamble(handle, True)
    file_meta = _read_file_meta_info(handle)
    if str(file_meta.get("TransferSyntaxUID", "")).strip("\0 ") != _DEFLATED:
        handle.seek(0)
        return None
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(handle.read(), MAX_INFLATED_BYTES)
    except zlib.error as exc:
        raise LoadError(path, f"its deflated data is corrupt ({exc})") from None
    if inflater.unconsumed_tail:
        raise LoadError(path, f"its deflated data expands beyond "
                              f"{MAX_INFLATED_BYTES // 1024**2} MB")
    buffer = io.BytesIO(inflated)
    dataset = read_dataset(buffer, False, True, stop_when=_at_pixel_data)
    header = FileDataset(str(path), dataset, preamble, file_meta, False, True)
    header.set_original_encoding(False, True, dataset._character_set)
    location = _pixel_location(buffer, implicit=False, little=True)
    return _ParsedFile(header, UID(_DEFLATED), location, inflated)


def _at_pixel_data(tag: Any, vr: str | None, length: int) -> bool:
    return tag in (0x7FE00010, 0x7FE00009, 0x7FE00008)


# Headers are parsed from memory: the file's first HEAD_CHUNK bytes (the whole file when it
# is smaller) are read at once and parsed from a BytesIO, whose reads are never larger than
# what it holds. Appended to a whole file, this element header makes a clean end of the
# dataset look like a stop at pixel data exactly at the file's size, while a value cut
# short by the end of the file runs into it and past the size: truncation is told apart
# from a clean end without watching every read.
HEAD_CHUNK = 256 * 1024
_END_SENTINEL = b"\xe0\x7f\x10\x00OB\x00\x00\x00\x00\x00\x00"
_TRUNCATED = "the file is truncated or damaged (a header element runs past the end of the file)"


def _parse(path: Path) -> _ParsedFile:
    """Parse the header once and note where the pixel data starts, or raise LoadError."""
    if path.is_dir():
        raise LoadError(path, "it is a folder, not a file")
    try:
        with open(path, "rb", buffering=0) as raw:
            stat = os.fstat(raw.fileno())
            head = raw.read(HEAD_CHUNK)
    except OSError as exc:
        raise LoadError(path, f"the file cannot be read ({exc.strerror or exc})") from None
    size = stat.st_size
    if size == 0:
        raise LoadError(path, "the file is empty")
    has_preamble = head[128:132] == b"DICM"
    if not has_preamble and not _looks_like_raw_dataset(head[:1024], size):
        raise LoadError(path, "it is not a DICOM file (no DICM preamble and no "
                              "recognisable data elements)")
    with _guard(path, "reading its header"):
        parsed = None
        if has_preamble and _DEFLATED.encode() in head[:4096]:
            with _BoundedReader(path) as handle:
                parsed = _read_deflated(path, handle)
        if parsed is None:
            parsed = _parse_from_memory(path, head, size, stat.st_mtime, has_preamble)
        if parsed is None:  # a header larger than HEAD_CHUNK, or skipped values beyond it
            parsed = _parse_from_file(path, has_preamble)
    header = parsed.header
    if parsed.location is None and not any(tag.group not in (0x0000, 0x0002)
                                           for tag in header.keys()):
        raise LoadError(path, "it holds no DICOM data elements")
    return parsed


def _parse_from_memory(path: Path, head: bytes, size: int, mtime: float,
                       has_preamble: bool) -> _ParsedFile | None:
    whole = len(head) == size
    buffer = io.BytesIO(head + _END_SENTINEL if whole else head)
    try:
        header = pydicom.dcmread(buffer, stop_before_pixels=True, defer_size=HEADER_DEFER_SIZE,
                                 force=not has_preamble)
    except Exception:  # noqa: BLE001 - the chunk may end inside an element: read the file
        if whole:
            raise
        return None
    implicit, little = _encoding(header)
    position = buffer.tell()
    if not little and whole and position >= size:
        return None  # the sentinel is little endian: let the file parser judge the end
    if whole:
        if position > size:
            raise LoadError(path, _TRUNCATED)
        location = _pixel_location(buffer, implicit, little) if position < size else None
    elif position + 12 <= len(head):
        location = _pixel_location(buffer, implicit, little)
    else:
        return None
    # Deferred values (over HEADER_DEFER_SIZE) are read from the file when first used.
    header.filename = str(path)
    header.fileobj_type = _BoundedReader
    header.buffer = None
    header.timestamp = mtime
    return _ParsedFile(header, _transfer_syntax(header), location, None)


def _parse_from_file(path: Path, has_preamble: bool) -> _ParsedFile:
    with _BoundedReader(path) as handle:
        header = pydicom.dcmread(handle, stop_before_pixels=True,
                                 defer_size=HEADER_DEFER_SIZE, force=not has_preamble)
        if handle.ran_short:
            raise LoadError(path, _TRUNCATED)
        implicit, little = _encoding(header)
        location = _pixel_location(handle, implicit, little)
    return _ParsedFile(header, _transfer_syntax(header), location, None)


def read_header(path: str | os.PathLike) -> Dataset:
    """Parse a DICOM file up to (not including) its pixel data, or raise LoadError."""
    return _parse(Path(path)).header


# ---------------------------------------------------------------- pixel geometry


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


def _image_geometry(path: Path, ds: Dataset, keyword: str) -> ImageGeometry:
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


# ---------------------------------------------------------------- decoding frames


class _PixelSource:
    """Decodes one frame at a time from where the pixel data lies; never re-parses the file.

    Uncompressed frames are read at their computed offset. Compressed (encapsulated) data is
    indexed once, from fragment headers only, so frame ``i`` reads just its own fragments.
    """

    def __init__(self, path: Path, header: Dataset, transfer_syntax: UID,
                 location: PixelLocation, geometry: ImageGeometry,
                 inflated: bytes | None) -> None:
        self.path = path
        self.header = header
        self.transfer_syntax = transfer_syntax
        self.location = location
        self.geometry = geometry
        self._inflated = inflated
        self._frame_index: list[list[tuple[int, int]]] | None = None
        self._lock = threading.Lock()
        self._options = {
            "rows": geometry.rows,
            "columns": geometry.columns,
            "samples_per_pixel": geometry.samples,
            "bits_allocated": geometry.bits_allocated,
            "bits_stored": geometry.bits_stored,
            "pixel_representation": int(geometry.signed),
            "photometric_interpretation": geometry.photometric,
            "planar_configuration": geometry.planar_configuration,
            "number_of_frames": geometry.frames,
            "pixel_keyword": location.keyword,
            "pixel_vr": location.vr,
        }

    def _open(self) -> io.BufferedIOBase:
        if self._inflated is not None:
            return io.BytesIO(self._inflated)
        return _BoundedReader(self.path)

    def _data_end(self) -> int:
        """Offset just past the pixel data value (or the end of the file if sooner)."""
        size = len(self._inflated) if self._inflated is not None else self.path.stat().st_size
        if self.location.length is None:
            return size
        return min(size, self.location.value_offset + self.location.length)

    def decode(self, frame: int) -> np.ndarray:
        syntax = self.transfer_syntax
        name = _syntax_name(syntax)
        try:
            decoder = pydicom.pixels.get_decoder(syntax)
        except NotImplementedError:
            raise LoadError(self.path, f"its pixel data uses {name}, which this viewer "
                                       "cannot decode") from None
        if not decoder.is_available:
            raise LoadError(self.path, f"no decoder for {name} is installed")
        encapsulated = self.location.length is None or self._starts_with_item()
        if decoder.is_encapsulated:
            if not encapsulated:
                raise LoadError(self.path, f"its {name} pixel data is not encapsulated as "
                                           "compressed data must be")
            array = self._decode_encapsulated(decoder, syntax, frame, name)
        elif encapsulated:
            array = self._decode_mislabelled(frame)
        else:
            array = self._decode_native(decoder, frame)
        return self._finish(array)

    def _starts_with_item(self) -> bool:
        with self._open() as handle:
            handle.seek(self.location.value_offset)
            return handle.read(4) == _ITEM_TAG

    # -- uncompressed
    def _decode_native(self, decoder: Any, frame: int) -> np.ndarray:
        geometry = self.geometry
        declared = self.location.length or 0
        available = self._data_end() - self.location.value_offset
        if declared > available:
            raise LoadError(self.path, f"the file is truncated: Pixel Data declares {declared} "
                                       f"bytes but only {max(available, 0)} remain")
        needed = int(np.ceil(geometry.frame_bytes * geometry.frames))
        if declared == 0:
            raise LoadError(self.path, "its Pixel Data element is empty")
        if declared < needed:
            # A short multi-frame object still shows the frames it holds in full.
            whole_frames = int(declared // geometry.frame_bytes) if geometry.frame_bytes else 0
            if geometry.frames == 1 or frame >= whole_frames or geometry.bits_allocated == 1:
                raise LoadError(self.path, f"its pixel data is shorter than its image "
                                           f"attributes require ({declared} of {needed} bytes)")
        if geometry.bits_allocated == 12:
            return self._unpack_12_bit(frame)
        with self._open() as handle:
            handle.seek(self.location.value_offset)
            array, _ = decoder.as_array(handle, index=frame, validate=True, **self._options)
        return array

    def _unpack_12_bit(self, frame: int) -> np.ndarray:
        """ACR-NEMA packed 12-bit pixels: two pixels in three bytes, low nibbles first."""
        geometry = self.geometry
        count = geometry.rows * geometry.columns
        if count % 2 or self.transfer_syntax != pydicom.uid.ImplicitVRLittleEndian \
                and self.transfer_syntax != pydicom.uid.ExplicitVRLittleEndian:
            raise LoadError(self.path, "its packed 12-bit pixel data has a layout this viewer "
                                       "does not read")
        frame_bytes = count * 3 // 2
        with self._open() as handle:
            handle.seek(self.location.value_offset + frame * frame_bytes)
            raw = np.frombuffer(handle.read(frame_bytes), dtype=np.uint8).astype(np.uint16)
        low, middle, high = raw[0::3], raw[1::3], raw[2::3]
        array = np.empty(count, dtype=np.uint16)
        array[0::2] = low | ((middle & 0x0F) << 8)
        array[1::2] = (middle >> 4) | (high << 4)
        array &= (1 << geometry.bits_stored) - 1
        if geometry.signed:
            sign = 1 << (geometry.bits_stored - 1)
            array = ((array.astype(np.int32) ^ sign) - sign).astype(np.int16)
        return array.reshape(geometry.rows, geometry.columns)

    # -- compressed
    def _decode_encapsulated(self, decoder: Any, syntax: UID, frame: int,
                             name: str) -> np.ndarray:
        fragments = self._fragments_of(frame, syntax, name)
        end = self._data_end()
        if any(offset + length > end for offset, length in fragments):
            raise LoadError(self.path, f"the file is truncated inside its {name} pixel data")
        single = self._read_as_single_frame(fragments)
        options = dict(self._options, number_of_frames=1)
        failures = []
        for plugin in self._plugins_for(decoder, syntax, memoryview(single)[16:-8]):
            try:
                array, _ = decoder.as_array(single, index=0, validate=True,
                                            decoding_plugin=plugin, **options)
                return array
            except BaseException as exc:  # noqa: BLE001 - plugins raise anything, Rust panics
                if not isinstance(exc, Exception) and not _is_panic(exc):
                    raise
                failures.append(f"{plugin}: {str(exc).strip() or type(exc).__name__}")
        array = self._fallback_decode(syntax, frame, memoryview(single)[16:-8])
        if array is None:
            reason = _plugin_failure_reason("\n" + "\n".join(failures))
            raise LoadError(self.path, f"its {name} pixel data cannot be decoded ({reason})")
        return array

    def _plugins_for(self, decoder: Any, syntax: UID, codestream: memoryview) -> list[str]:
        """The decoding plugins to try, fastest first, GDCM only where it is safe."""
        preference = list(_PLUGIN_PREFERENCE)
        if syntax in _GDCM_FIRST and self._frame_header_matches(codestream):
            preference.insert(0, "gdcm")
        available = decoder.available_plugins
        return [name for name in preference if name in available]

    def _frame_header_matches(self, codestream: memoryview) -> bool:
        """Whether a grey JPEG stream's frame header agrees exactly with the file's.

        Fuzzing found GDCM aborting on more pixels than declared and on colour data whose
        Bits Stored differs from Bits Allocated; grey streams whose size and precision
        match the header are what it gets.
        """
        header = _jpeg_frame_header(codestream)
        geometry = self.geometry
        return header is not None and geometry.samples == 1 \
            and header == (geometry.bits_stored, geometry.rows, geometry.columns, 1) \
            and geometry.bits_allocated in (8, 16)

    def _read_as_single_frame(self, fragments: list[tuple[int, int]]) -> bytearray:
        """The frame's fragments as one encapsulated value: empty offset table, one item."""
        size = sum(length for _, length in fragments)
        padded = size + size % 2  # items have even length
        buffer = bytearray(16 + padded + 8)
        buffer[0:8] = _ITEM_TAG + b"\0\0\0\0"
        buffer[8:16] = _ITEM_TAG + struct.pack("<L", padded)
        buffer[16 + padded:] = _SEQUENCE_END_TAG + b"\0\0\0\0"
        view = memoryview(buffer)
        position = 16
        with self._open() as handle:
            for offset, length in fragments:
                handle.seek(offset)
                got = handle.readinto(view[position:position + length])
                if got != length:
                    raise LoadError(self.path, "the file is truncated inside its compressed "
                                               "pixel data")
                position += length
        return buffer

    def _fragments_of(self, frame: int, syntax: UID, name: str) -> list[tuple[int, int]]:
        with self._lock:
            if self._frame_index is None:
                self._frame_index = self._index_frames(syntax, name)
            index = self._frame_index
        if frame >= len(index):
            raise LoadError(self.path, f"its {name} pixel data holds {len(index)} frame(s), "
                                       f"not the {self.geometry.frames} it declares")
        return index[frame]

    def _index_frames(self, syntax: UID, name: str) -> list[list[tuple[int, int]]]:
        """Frame -> [(offset, length) of its fragments], from item headers only."""
        end = self._data_end()
        fragments: list[tuple[int, int, int]] = []  # (item start, data offset, length)
        with self._open() as handle:
            handle.seek(self.location.value_offset)
            basic_offsets = self._read_basic_offsets(handle, name)
            first_item = handle.tell()
            while handle.tell() + 8 <= end:
                item_start = handle.tell()
                head = handle.read(8)
                if head[:4] == _SEQUENCE_END_TAG:
                    break
                if head[:4] != _ITEM_TAG:
                    raise LoadError(self.path, f"its {name} pixel data is damaged (no item "
                                               f"tag at byte {item_start})")
                (length,) = struct.unpack("<L", head[4:8])
                fragments.append((item_start, item_start + 8, length))
                if item_start + 8 + length >= end:
                    break  # the last fragment, or one the file cuts short
                handle.seek(item_start + 8 + length)
        if not fragments:
            raise LoadError(self.path, f"its {name} pixel data holds no compressed frames")
        frames = self.geometry.frames
        pieces = [(offset, length) for _, offset, length in fragments]
        extended = self._extended_offsets()
        if extended is not None:
            return [[(first_item + offset + 8, length)] for offset, length in zip(*extended)]
        if basic_offsets and len(basic_offsets) == frames:
            index: list[list[tuple[int, int]]] = [[] for _ in range(frames)]
            for (item_start, _, _), piece in zip(fragments, pieces):
                slot = bisect_right(basic_offsets, item_start - first_item) - 1
                index[max(0, slot)].append(piece)
            return index
        if frames == 1:
            return [pieces]
        if len(pieces) == frames:
            return [[piece] for piece in pieces]
        if len(pieces) > frames:
            return self._group_by_end_of_image(pieces, syntax, name)
        raise LoadError(self.path, f"its {name} pixel data holds {len(pieces)} fragment(s) "
                                   f"for {frames} frames")

    def _read_basic_offsets(self, handle: io.BufferedIOBase, name: str) -> list[int]:
        head = handle.read(8)
        if len(head) < 8 or head[:4] != _ITEM_TAG:
            raise LoadError(self.path, f"its {name} pixel data does not start with an offset "
                                       "table item")
        (length,) = struct.unpack("<L", head[4:8])
        table = handle.read(length)
        if len(table) < length:
            raise LoadError(self.path, f"the file is truncated inside its {name} pixel data")
        if length % 4 or length > 4 * self.geometry.frames:
            return []  # not a table of frame offsets: the fragments themselves will tell
        offsets = list(struct.unpack(f"<{length // 4}L", table))
        if offsets and (offsets[0] != 0 or offsets != sorted(offsets)):
            return []  # an unusable table: the fragments themselves will tell
        return offsets

    def _extended_offsets(self) -> tuple[list[int], list[int]] | None:
        table = self.header.get("ExtendedOffsetTable")
        lengths = self.header.get("ExtendedOffsetTableLengths")
        if not isinstance(table, bytes) or not isinstance(lengths, bytes):
            return None
        offsets = list(struct.unpack(f"<{len(table) // 8}Q", table[: len(table) // 8 * 8]))
        sizes = list(struct.unpack(f"<{len(lengths) // 8}Q", lengths[: len(lengths) // 8 * 8]))
        if len(offsets) != self.geometry.frames or len(sizes) != len(offsets):
            return None
        return offsets, sizes

    def _group_by_end_of_image(self, pieces: list[tuple[int, int]], syntax: UID,
                               name: str) -> list[list[tuple[int, int]]]:
        """No offset table and several fragments per frame: a JPEG frame ends with EOI."""
        if syntax not in pydicom.uid.JPEGTransferSyntaxes \
                and syntax not in pydicom.uid.JPEGLSTransferSyntaxes:
            raise LoadError(self.path, f"its {name} pixel data has several fragments per frame "
                                       "and no offset table, so its frames cannot be told apart")
        index: list[list[tuple[int, int]]] = [[]]
        with self._open() as handle:
            for offset, length in pieces:
                index[-1].append((offset, length))
                handle.seek(offset + max(0, length - 3))
                if b"\xff\xd9" in handle.read(min(length, 3)):
                    index.append([])
        return [frame for frame in index if frame]

    def _fallback_decode(self, syntax: UID, frame: int, codestream: memoryview) -> np.ndarray | None:
        """GDCM's 12-bit JPEG codec reads streams pydicom's plugins reject (WG04 JPLY).

        Only the frame's codestream goes to GDCM, never the file (its own parser is slow
        and memory-hungry on damaged headers), and only when the stream's frame header
        matches the file's: GDCM aborts the whole process on a stream larger than declared.
        """
        geometry = self.geometry
        if syntax != pydicom.uid.JPEGExtended12Bit or geometry.samples != 1 \
                or geometry.bits_allocated != 16 or not 8 < geometry.bits_stored <= 16:
            return None
        header = _jpeg_frame_header(codestream)
        if header is None or header[1:] != (geometry.rows, geometry.columns, 1) \
                or not 8 < header[0] <= 16:
            return None
        try:
            import gdcm
        except ImportError:
            return None
        gdcm.Trace.ErrorOff()
        gdcm.Trace.WarningOff()
        fragment = gdcm.Fragment()
        fragment.SetByteStringValue(bytes(codestream))
        fragments = gdcm.SequenceOfFragments.New()
        fragments.AddFragment(fragment)
        element = gdcm.DataElement(gdcm.Tag(0x7FE0, 0x0010))
        element.SetValue(fragments.__ref__())
        image = gdcm.Image()
        image.SetNumberOfDimensions(2)
        image.SetDimensions((geometry.columns, geometry.rows, 1))
        image.SetDataElement(element)
        image.SetPhotometricInterpretation(
            gdcm.PhotometricInterpretation(gdcm.PhotometricInterpretation.MONOCHROME2))
        image.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGExtendedProcess2_4))
        image.SetPixelFormat(gdcm.PixelFormat(1, 16, geometry.bits_stored,
                                              geometry.bits_stored - 1, int(geometry.signed)))
        buffer = image.GetBuffer()
        if buffer is None:
            return None
        data = buffer.encode("utf-8", "surrogateescape")
        if len(data) != geometry.rows * geometry.columns * 2:
            return None
        log.info("Decoded a 12-bit JPEG frame with GDCM after the other decoders refused it")
        dtype = np.int16 if geometry.signed else np.uint16
        return np.frombuffer(data, dtype=dtype).reshape(geometry.rows, geometry.columns).copy()

    def _decode_mislabelled(self, frame: int) -> np.ndarray:
        """Compressed data in a file whose transfer syntax says uncompressed."""
        said = _syntax_name(self.transfer_syntax)
        guessed = self._guess_compression(said)
        if guessed is None:
            raise LoadError(self.path, f"its pixel data is encapsulated like compressed data "
                                       f"but its transfer syntax says {said}")
        log.warning("Pixel data labelled %s holds %s data; decoding it as such", said,
                    guessed.name)
        decoder = pydicom.pixels.get_decoder(guessed)
        return self._decode_encapsulated(decoder, guessed, frame,
                                         f"{guessed.name} (labelled {said})")

    def _guess_compression(self, name: str) -> UID | None:
        """The transfer syntax a codestream's first bytes reveal, if any."""
        first_offset, first_length = self._fragments_of(0, self.transfer_syntax, name)[0]
        with self._open() as handle:
            handle.seek(first_offset)
            head = handle.read(min(first_length, 4096))
        uid = pydicom.uid
        if head.startswith(b"\xff\x4f\xff\x51") or head[4:8] == b"jP  ":
            return uid.JPEG2000
        if head.startswith(b"\xff\xd8"):
            for marker, syntax in ((b"\xff\xf7", uid.JPEGLSNearLossless),
                                   (b"\xff\xc3", uid.JPEGLossless),
                                   (b"\xff\xc1", uid.JPEGExtended12Bit),
                                   (b"\xff\xc0", uid.JPEGBaseline8Bit)):
                if marker in head:
                    return syntax
        return None

    # -- after decoding
    def _finish(self, array: np.ndarray) -> np.ndarray:
        geometry = self.geometry
        if geometry.photometric == "PALETTE COLOR":
            try:
                array = pydicom.pixels.apply_color_lut(array, self.header)
            except Exception as exc:  # noqa: BLE001
                raise LoadError(self.path, f"its palette colour table is unusable "
                                           f"({_reason_from_exception(exc)})") from None
        expected = (geometry.rows, geometry.columns)
        if array.shape[:2] != expected:
            raise LoadError(self.path, f"its decoded image is {array.shape[1]} x "
                                       f"{array.shape[0]} pixels, not the declared "
                                       f"{geometry.columns} x {geometry.rows}")
        return array


# Decoding plugins in the order tried (CharLS first for JPEG-LS). GDCM's plugin aborts the
# whole process (an uncaught C++ exception) on a codestream larger than the header declares,
# so it is only used, first, for lossless JPEG (where it is the fastest) and only after the
# stream's frame header has been checked against the file's.
_PLUGIN_PREFERENCE = ("pyjpegls", "pylibjpeg", "pillow", "pydicom")
_GDCM_FIRST = frozenset({pydicom.uid.JPEGLossless, pydicom.uid.JPEGLosslessSV1})


def _is_panic(exc: BaseException) -> bool:
    """pyo3 (Rust) decoders raise PanicException, a BaseException, on corrupt input."""
    return type(exc).__name__ == "PanicException"


_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD,
                          0xCE, 0xCF})


def _jpeg_frame_header(codestream: memoryview | bytes) -> tuple[int, int, int, int] | None:
    """(precision, rows, columns, components) from a JPEG stream's SOF marker, or None."""
    data = bytes(codestream[:65536])
    if not data.startswith(b"\xff\xd8"):
        return None
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        (length,) = struct.unpack(">H", data[position + 2:position + 4])
        if marker in _SOF_MARKERS:
            if position + 10 > len(data):
                return None
            rows, columns = struct.unpack(">HH", data[position + 5:position + 9])
            return data[position + 4], rows, columns, data[position + 9]
        if marker == 0xDA or length < 2:
            return None
        position += 2 + length
    return None


def _syntax_name(syntax: UID) -> str:
    return syntax.name if syntax.is_transfer_syntax else f"transfer syntax {syntax}"


def open_instance(path: str | os.PathLike) -> Instance:
    """Open a DICOM file (or a PNG/JPEG X-ray) without decoding its pixels."""
    path = Path(path)
    from medviewer.dicom import images  # local import: images imports this module

    if images.is_plain_image(path):
        return images.open_plain_image(path)
    parsed = _parse(path)
    header = parsed.header
    load_frame: FrameLoader | None = None
    if parsed.location is not None:
        geometry = _image_geometry(path, header, parsed.location.keyword)
        source = _PixelSource(path, header, parsed.transfer_syntax, parsed.location, geometry,
                              parsed.inflated)
        load_frame = source.decode
    return Instance(path, header, load_frame, _file_key(path))


def _file_key(path: Path) -> tuple:
    stat = path.stat()
    return (str(path), stat.st_mtime_ns, stat.st_size)
