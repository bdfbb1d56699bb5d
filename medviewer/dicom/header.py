"""Parsing a DICOM file's header once, up to (not including) its pixel data.

``parse_file`` also notes where the pixel data lies (:class:`PixelLocation`), so that frames
are later decoded straight from their own bytes without parsing the header again.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset, FileDataset
from pydicom.uid import UID

from medviewer.dicom.load_errors import LoadError, as_load_error, caused_by
from medviewer.files import open_regular, os_error_reason

log = logging.getLogger(__name__)

# Values larger than this are skipped while parsing headers and read only when used, so an
# absurd declared length never allocates its size.
HEADER_DEFER_SIZE = "256 KB"
# A deflated dataset may not expand beyond this (a corrupt or hostile stream could).
MAX_INFLATED_BYTES = 512 * 1024**2

_PIXEL_KEYWORDS = {0x0010: "PixelData", 0x0008: "FloatPixelData", 0x0009: "DoubleFloatPixelData"}
_LONG_LENGTH_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR",
                              "UT", "UV"})
_VALID_VRS = _LONG_LENGTH_VRS | {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS",
                                 "LO", "LT", "PN", "SH", "SL", "SS", "ST", "TM", "UI", "UL",
                                 "US"}
_DEFLATED = "1.2.840.10008.1.2.1.99"

# Transfer syntaxes newer than the pydicom we run on, by their standard names (PS3.6
# Table A-1), so a file using one is named truly instead of by the encoding it implies.
DEFLATED_IMAGE_FRAME_COMPRESSION = UID("1.2.840.10008.1.2.8.1")
NEWER_TRANSFER_SYNTAXES = {
    DEFLATED_IMAGE_FRAME_COMPRESSION: "Deflated Image Frame Compression",
    UID("1.2.840.10008.1.2.4.110"): "JPEG XL Lossless",
    UID("1.2.840.10008.1.2.4.111"): "JPEG XL JPEG Recompression",
    UID("1.2.840.10008.1.2.4.112"): "JPEG XL",
}


def transfer_syntax_name(uid: UID | str) -> str:
    """A transfer syntax's standard name, or 'transfer syntax <UID>' for one we do not know."""
    uid = UID(str(uid))
    if uid in NEWER_TRANSFER_SYNTAXES:
        return NEWER_TRANSFER_SYNTAXES[uid]
    return uid.name if uid.is_transfer_syntax else f"transfer syntax {uid}"


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


# ---------------------------------------------------------------- reading the header
#
# A run of zero bytes inside a header parses as one empty element per 8 bytes, each costing
# the parser microseconds: a 64 MB run took 46 s before the file was refused. The readers
# the parser reads files (and inflated datasets) through watch the element headers go by
# (8-byte reads) and stop a header that repeats itself: thousands of empty elements in a
# row, or the same element (or element and 8-byte value) over and over, which no real
# header holds. The first HEAD_CHUNK bytes are parsed from memory unwatched (that much
# costs little); the work on any file is then bounded however large it is.

MAX_EMPTY_ELEMENTS_IN_A_ROW = 4096
MAX_REPEATED_ELEMENTS = 20_000
_REPEATING_HEADER = ("its header repeats one element thousands of times (such as a long run "
                     "of zero bytes), which is not valid DICOM")


class RepeatingHeader(Exception):
    """Raised by a reader when the parser is reading the same element again and again."""


class _RepeatWatch:
    """Counts element headers that repeat: empty ones in a row (nothing read or skipped in
    between) and any that equal one of the two 8-byte reads before them."""

    empty_run = 0
    repeats = 0
    _previous = _before_previous = b""

    def _watch(self, data: bytes) -> bytes:
        if len(data) != 8:
            self.empty_run = 0
            return data
        if data[6:8] == b"\0\0":  # zero length (or a long VR's reserved bytes)
            self.empty_run += 1
            if self.empty_run > MAX_EMPTY_ELEMENTS_IN_A_ROW:
                raise RepeatingHeader()
        else:
            self.empty_run = 0
        if data == self._previous or data == self._before_previous:
            self.repeats += 1
            if self.repeats > MAX_REPEATED_ELEMENTS:
                raise RepeatingHeader()
        else:
            self.repeats = 0
        self._before_previous, self._previous = self._previous, data
        return data


class WatchedBytesIO(_RepeatWatch, io.BytesIO):
    """A header held in memory, read through the repeat watch."""

    def read(self, size: int | None = -1) -> bytes:
        return self._watch(super().read(size))

    def seek(self, offset: int, whence: int = 0) -> int:
        self.empty_run = 0
        return super().seek(offset, whence)


class BoundedReader(_RepeatWatch, io.BufferedReader):
    """A binary file whose ``read(n)`` never asks for more than what is left in it.

    A corrupt length field may declare gigabytes, and Python allocates the requested size
    before reading; asking only for what exists keeps memory bounded by the file's size.
    ``ran_short`` records that a value was cut off by the end of the file (the parser
    itself treats that as a normal end). pydicom re-opens files for deferred values with
    ``type(fp)(path, "rb")``, so the signature matches ``open``.
    """

    def __init__(self, path: str | os.PathLike, mode: str = "rb") -> None:
        super().__init__(open_regular(path, "rb", buffering=0), buffer_size=256 * 1024)
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
        return self._watch(super().read(size))

    def seek(self, offset: int, whence: int = 0) -> int:
        self.empty_run = 0
        return super().seek(offset, whence)


@dataclass(frozen=True)
class PixelLocation:
    """Where a file's Pixel Data element lies, as read from its element header."""

    keyword: str  # PixelData, FloatPixelData or DoubleFloatPixelData
    vr: str
    value_offset: int  # offset of the first value byte (in the file or the inflated buffer)
    length: int | None  # declared length; None when undefined (encapsulated)


@dataclass
class ParsedFile:
    """A parsed header and what decoding its frames needs without parsing it again."""

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
        if uid.is_transfer_syntax or uid.is_private or uid in NEWER_TRANSFER_SYNTAXES:
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


def _read_deflated(path: Path, handle: BoundedReader) -> ParsedFile | None:
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
    buffer = WatchedBytesIO(inflated)
    dataset = read_dataset(buffer, False, True, stop_when=_at_pixel_data)
    header = FileDataset(str(path), dataset, preamble, file_meta, False, True)
    header.set_original_encoding(False, True, dataset._character_set)
    location = _pixel_location(buffer, implicit=False, little=True)
    return ParsedFile(header, UID(_DEFLATED), location, inflated)


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


def parse_file(path: Path) -> ParsedFile:
    """Parse the header once and note where the pixel data starts, or raise LoadError."""
    try:
        with open_regular(path, "rb", buffering=0) as raw:
            stat = os.fstat(raw.fileno())
            head = raw.read(HEAD_CHUNK)
    except OSError as exc:
        raise LoadError(path, os_error_reason(exc)) from None
    size = stat.st_size
    if size == 0:
        raise LoadError(path, "the file is empty")
    has_preamble = head[128:132] == b"DICM"
    if not has_preamble and not _looks_like_raw_dataset(head[:1024], size):
        raise LoadError(path, "it is not a DICOM file (no DICM preamble and no "
                              "recognisable data elements)")
    with as_load_error(path, "reading its header", {RepeatingHeader: _REPEATING_HEADER}):
        parsed = None
        if has_preamble and _DEFLATED.encode() in head[:4096]:
            with BoundedReader(path) as handle:
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
                       has_preamble: bool) -> ParsedFile | None:
    whole = len(head) == size
    # Not watched: at most HEAD_CHUNK bytes, so even a run of empty elements costs little
    # here, while watching every read would slow every ordinary header by a third.
    buffer = io.BytesIO(head + _END_SENTINEL if whole else head)
    try:
        header = pydicom.dcmread(buffer, stop_before_pixels=True, defer_size=HEADER_DEFER_SIZE,
                                 force=not has_preamble)
    except Exception as exc:  # noqa: BLE001 - the chunk may end inside an element: read the file
        if whole or caused_by(exc, RepeatingHeader):
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
    header.fileobj_type = BoundedReader
    header.buffer = None
    header.timestamp = mtime
    return ParsedFile(header, _transfer_syntax(header), location, None)


def _parse_from_file(path: Path, has_preamble: bool) -> ParsedFile:
    with BoundedReader(path) as handle:
        header = pydicom.dcmread(handle, stop_before_pixels=True,
                                 defer_size=HEADER_DEFER_SIZE, force=not has_preamble)
        if handle.ran_short:
            raise LoadError(path, _TRUNCATED)
        implicit, little = _encoding(header)
        location = _pixel_location(handle, implicit, little)
    return ParsedFile(header, _transfer_syntax(header), location, None)


def read_header(path: str | os.PathLike) -> Dataset:
    """Parse a DICOM file up to (not including) its pixel data, or raise LoadError."""
    return parse_file(Path(path)).header
