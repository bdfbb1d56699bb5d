"""Decoding one frame at a time from where the pixel data lies in the file."""

from __future__ import annotations

import io
import logging
import math
import struct
import threading
import zlib
from bisect import bisect_right
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID

from medviewer.dicom.header import (DEFLATED_IMAGE_FRAME_COMPRESSION, BoundedReader,
                                    PixelLocation, transfer_syntax_name)
from medviewer.dicom.image_geometry import ImageGeometry
from medviewer.dicom.load_errors import (UNDECODABLE, LoadError, is_decoder_panic,
                                         log_library_text, plugin_failure_reason)

log = logging.getLogger(__name__)

_ITEM_TAG = b"\xfe\xff\x00\xe0"
_SEQUENCE_END_TAG = b"\xfe\xff\xdd\xe0"


class PixelSource:
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
        return BoundedReader(self.path)

    def _data_end(self) -> int:
        """Offset just past the pixel data value (or the end of the file if sooner)."""
        size = len(self._inflated) if self._inflated is not None else self.path.stat().st_size
        if self.location.length is None:
            return size
        return min(size, self.location.value_offset + self.location.length)

    def decode(self, frame: int) -> np.ndarray:
        syntax = self.transfer_syntax
        name = _syntax_name(syntax)
        if syntax == DEFLATED_IMAGE_FRAME_COMPRESSION:
            return self._finish(self._decode_deflated_frame(frame, name))
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

    # -- Deflated Image Frame Compression: each frame is its native bytes, raw-deflated
    def _decode_deflated_frame(self, frame: int, name: str) -> np.ndarray:
        if not (self.location.length is None or self._starts_with_item()):
            raise LoadError(self.path, f"its {name} pixel data is not encapsulated as "
                                       "compressed data must be")
        fragments = self._fragments_of(frame, self.transfer_syntax, name)
        if any(offset + length > self._data_end() for offset, length in fragments):
            raise LoadError(self.path, f"the file is truncated inside its {name} pixel data")
        single = self._read_as_single_frame(fragments)
        geometry = self.geometry
        expected = math.ceil(geometry.frame_bytes)
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            native = inflater.decompress(memoryview(single)[16:-8], expected)
        except zlib.error as exc:
            log_library_text(self.path, "inflating a frame", exc)
            raise LoadError(self.path, f"its {name} frame {frame + 1} is damaged (its "
                                       "deflated data cannot be inflated)") from None
        if len(native) < expected:
            raise LoadError(self.path, f"its {name} frame {frame + 1} holds "
                                       f"{len(native)} bytes, fewer than the {expected} its "
                                       "image attributes require")
        decoder = pydicom.pixels.get_decoder(pydicom.uid.ExplicitVRLittleEndian)
        options = dict(self._options, number_of_frames=1, pixel_vr="OB"
                       if geometry.bits_allocated <= 8 else "OW")
        array, _ = decoder.as_array(native, index=0, validate=True, **options)
        return array

    # -- compressed
    def _decode_encapsulated(self, decoder: Any, syntax: UID, frame: int,
                             name: str) -> np.ndarray:
        fragments = self._fragments_of(frame, syntax, name)
        end = self._data_end()
        if any(offset + length > end for offset, length in fragments):
            raise LoadError(self.path, f"the file is truncated inside its {name} pixel data")
        single = self._read_as_single_frame(fragments)
        codestream = memoryview(single)[16:-8]
        options = dict(self._options, number_of_frames=1)
        failures = []
        suspect: np.ndarray | None = None
        for plugin in self._plugins_for(decoder, syntax, codestream):
            try:
                array, _ = decoder.as_array(single, index=0, validate=True,
                                            decoding_plugin=plugin, **options)
            except BaseException as exc:  # noqa: BLE001 - plugins raise anything, Rust panics
                if not isinstance(exc, Exception) and not is_decoder_panic(exc):
                    raise
                failures.append(f"{plugin}: {str(exc).strip() or type(exc).__name__}")
                continue
            if self._suspiciously_constant(syntax, array, codestream):
                # One decoder gives a flat frame for lossless JPEG with a point transform,
                # where another decodes it: believe a flat frame only if all agree.
                log.info("%s: %s decoded a constant frame from a %d-byte %s stream; "
                         "asking the next decoder", self.path, plugin, len(codestream), name)
                suspect = array if suspect is None else suspect
                continue
            return array
        if suspect is not None:
            return suspect
        array = self._fallback_decode(syntax, frame, codestream)
        if array is None:
            log.info("%s: no decoder could decode its %s pixel data: %s", self.path, name,
                     plugin_failure_reason("\n" + "\n".join(failures)))
            raise LoadError(self.path, f"its {name} pixel data cannot be decoded: {UNDECODABLE}")
        return array

    def _suspiciously_constant(self, syntax: UID, array: np.ndarray,
                               codestream: memoryview) -> bool:
        """A constant lossless frame from a stream larger than a constant frame needs.

        Lossless JPEG spends at least one bit per sample even on a flat image, so a stream
        far beyond that (plus its headers) holds more than one value.
        """
        if syntax not in _CROSS_CHECKED or array.size == 0:
            return False
        flat = array.reshape(-1)
        if flat[0] != flat[-1] or not np.all(flat == flat[0]):
            return False
        return len(codestream) > array.size / 8 + 1024

    def _plugins_for(self, decoder: Any, syntax: UID, codestream: memoryview) -> list[str]:
        """The decoding plugins to try, fastest first, GDCM only where it is safe.

        For lossless JPEG, GDCM goes first when the stream's frame header matches the file
        exactly, and last (to cross-check a flat frame) when only its precision differs.
        """
        preference = list(_PLUGIN_PREFERENCE)
        if syntax in _GDCM_FIRST:
            match = self._frame_header_match(codestream)
            if match == "exact":
                preference.insert(0, "gdcm")
            elif match == "size":
                preference.append("gdcm")
        available = decoder.available_plugins
        return [name for name in preference if name in available]

    def _frame_header_match(self, codestream: memoryview) -> str | None:
        """How a grey JPEG stream's frame header agrees with the file's: 'exact', 'size'
        (all but the precision, which is within Bits Allocated) or None.

        Fuzzing found GDCM aborting on more pixels than declared and on colour data whose
        Bits Stored differs from Bits Allocated; grey streams whose size matches the
        header are what it gets.
        """
        header = _jpeg_frame_header(codestream)
        geometry = self.geometry
        if header is None or geometry.samples != 1 or geometry.bits_allocated not in (8, 16) \
                or header[1:] != (geometry.rows, geometry.columns, 1):
            return None
        if header[0] == geometry.bits_stored:
            return "exact"
        return "size" if 2 <= header[0] <= geometry.bits_allocated else None

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
                log_library_text(self.path, "applying its palette", exc)
                raise LoadError(self.path, "its palette colour table does not fit its "
                                           "pixel data") from None
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
# Lossless syntaxes whose flat frames are checked against the next decoder.
_CROSS_CHECKED = _GDCM_FIRST


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
    return transfer_syntax_name(syntax)
