"""Hostile and unusual files: what the reader refuses early, decodes truly, or names truly."""

from __future__ import annotations

import io
import logging
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGLossless, JPEGLosslessSV1, RLELossless, generate_uid

from medviewer.dicom import header as header_module
from medviewer.dicom.reader import LoadError, open_instance, pixel_cache
from tests.dicom import PYDICOM_TEST_FILES, write_dicom
from tests.dicom.lossless_jpeg import encode

DEFLATED_FRAMES = "1.2.840.10008.1.2.8.1"


@pytest.fixture(autouse=True)
def fresh_cache():
    pixel_cache.clear()
    yield
    pixel_cache.clear()


def _encapsulated_file(path: Path, fragments: list[bytes], transfer_syntax: str,
                       **attributes) -> Path:
    """A file whose pixel data is ``fragments`` (one per frame) under ``transfer_syntax``,
    which may be one pydicom does not know: it is written as RLE and relabelled."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = pydicom.uid.SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = RLELossless
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "OT", "TEST"
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelRepresentation = 1, \
        "MONOCHROME2", 0
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.PixelData = encapsulate(fragments)
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    if transfer_syntax != RLELossless:
        _relabel(path, transfer_syntax)
    return path


def _relabel(path: Path, transfer_syntax: str) -> None:
    def element(uid: str) -> bytes:
        value = uid.encode() + (b"\0" if len(uid) % 2 else b"")
        return b"\x02\x00\x10\x00UI" + struct.pack("<H", len(value)) + value

    data = bytearray(path.read_bytes())
    old, new = element(str(RLELossless)), element(transfer_syntax)
    at = data.index(old)
    data[at:at + len(old)] = new
    (length,) = struct.unpack("<L", data[140:144])  # (0002,0000) group length
    data[140:144] = struct.pack("<L", length + len(new) - len(old))
    path.write_bytes(bytes(data))


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


# ---------------------------------------------------------------- only regular files


def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path):
    for name in ("pipe.dcm", "pipe.png"):
        os.mkfifo(tmp_path / name)
        started = time.monotonic()
        with pytest.raises(LoadError, match="it is a named pipe \\(FIFO\\), not a regular file"):
            open_instance(tmp_path / name)
        assert time.monotonic() - started < 2


# ---------------------------------------------------------------- repeating headers


def _with_inserted(tmp_path: Path, name: str, junk: bytes) -> Path:
    source = write_dicom(tmp_path / "source.dcm", np.arange(64, dtype=np.uint16).reshape(8, 8))
    data = source.read_bytes()
    at = pydicom.dcmread(io.BytesIO(data))["SOPClassUID"].file_tell
    path = tmp_path / name
    path.write_bytes(data[:at] + junk + data[at:])
    return path


@pytest.mark.parametrize("junk", [
    b"\0" * (16 << 20),  # a 16 MB run of zero bytes: 46 s to refuse at 0.7 s per MB before
    struct.pack("<HHL", 0x0008, 0x0001, 0) * (1 << 20),  # one empty element, a million times
    (struct.pack("<HH2sH", 0x0008, 0x0001, b"LO", 2) + b"AB") * 300_000,  # and a tiny one
], ids=["zero-bytes", "empty-element", "tiny-element"])
def test_a_header_that_repeats_itself_is_refused_in_bounded_time(tmp_path, junk):
    path = _with_inserted(tmp_path, "repeats.dcm", junk)
    started = time.monotonic()
    with pytest.raises(LoadError) as raised:
        open_instance(path)
    seconds = time.monotonic() - started
    assert seconds < 5, f"{seconds:.1f} s"
    assert "repeats one element" in raised.value.reason or "truncated" in raised.value.reason


def test_a_long_run_of_empty_elements_is_refused_by_the_watch_itself(tmp_path):
    path = _with_inserted(tmp_path, "zeros.dcm", b"\0" * (1 << 20))
    with pytest.raises(LoadError, match="repeats one element thousands of times"):
        open_instance(path)


def test_real_headers_with_many_items_still_open(tmp_path):
    """Thousands of small, different items (a per-frame sequence) are not a repetition."""
    items = []
    for number in range(6000):
        item = Dataset()
        item.ReferencedFrameNumber = number + 1
        items.append(item)
    path = write_dicom(tmp_path / "items.dcm", np.zeros((4, 4), np.uint16),
                       ReferencedImageSequence=pydicom.sequence.Sequence(items))
    assert len(open_instance(path).header.ReferencedImageSequence) == 6000


# ---------------------------------------------------------------- transfer syntaxes


def test_deflated_image_frame_compression_is_decoded(tmp_path):
    frames = (np.arange(3 * 6 * 5, dtype=np.uint16).reshape(3, 6, 5) * 700)
    path = _encapsulated_file(tmp_path / "deflated.dcm",
                              [_raw_deflate(f.tobytes()) for f in frames], DEFLATED_FRAMES,
                              Rows=6, Columns=5, BitsAllocated=16, BitsStored=16, HighBit=15,
                              NumberOfFrames=3)
    instance = open_instance(path)
    assert instance.transfer_syntax == "Deflated Image Frame Compression"
    for index, frame in enumerate(frames):
        assert np.array_equal(instance.stored_frame(index), frame)
    assert instance.display_frame(2).shape == (6, 5)


def test_deflated_single_bit_frames_start_on_their_own_bytes(tmp_path):
    frames = np.random.default_rng(3).integers(0, 2, size=(2, 5, 7)).astype(np.uint8)
    packed = [np.packbits(f.reshape(-1), bitorder="little").tobytes() for f in frames]
    path = _encapsulated_file(tmp_path / "mask.dcm", [_raw_deflate(b) for b in packed],
                              DEFLATED_FRAMES, Rows=5, Columns=7, BitsAllocated=1,
                              BitsStored=1, HighBit=0, NumberOfFrames=2)
    instance = open_instance(path)
    for index, frame in enumerate(frames):
        assert np.array_equal(instance.stored_frame(index), frame)


def test_damaged_deflated_frames_are_refused_in_the_users_words(tmp_path):
    path = _encapsulated_file(tmp_path / "bad.dcm", [b"\xff" * 40], DEFLATED_FRAMES, Rows=6,
                              Columns=5, BitsAllocated=16, BitsStored=16, HighBit=15)
    with pytest.raises(LoadError, match="Deflated Image Frame Compression frame 1 is damaged"):
        open_instance(path).stored_frame(0)
    short = _encapsulated_file(tmp_path / "short.dcm", [_raw_deflate(b"\0" * 10)],
                               DEFLATED_FRAMES, Rows=6, Columns=5, BitsAllocated=16,
                               BitsStored=16, HighBit=15)
    with pytest.raises(LoadError, match="holds 10 bytes, fewer than the 60"):
        open_instance(short).stored_frame(0)


@pytest.mark.parametrize("uid, name", [("1.2.840.10008.1.2.4.110", "JPEG XL Lossless"),
                                       ("1.2.840.10008.1.2.4.111", "JPEG XL JPEG Recompression"),
                                       ("1.2.840.10008.1.2.4.112", "JPEG XL")])
def test_jpeg_xl_is_refused_by_its_name(tmp_path, uid, name):
    path = _encapsulated_file(tmp_path / "jxl.dcm", [b"\xff\x0a" + b"\0" * 30], uid, Rows=4,
                              Columns=4, BitsAllocated=8, BitsStored=8, HighBit=7)
    instance = open_instance(path)
    assert instance.transfer_syntax == name
    with pytest.raises(LoadError) as raised:
        instance.stored_frame(0)
    assert raised.value.reason == f"its pixel data uses {name}, which this viewer cannot decode"
    assert "Explicit VR Little Endian" not in str(raised.value)


# ---------------------------------------------------------------- lossless JPEG cross-check


def _ramp(bits: int, point_transform: int) -> np.ndarray:
    y, x = np.mgrid[0:40, 0:48]
    image = ((x * 37 + y * 11) % (1 << bits)).astype(np.uint16)
    return (image >> point_transform) << point_transform


@pytest.mark.parametrize("syntax", [JPEGLossless, JPEGLosslessSV1], ids=["p14", "sv1"])
@pytest.mark.parametrize("precision, point_transform, bits_stored", [
    (12, 0, 12), (12, 2, 12), (16, 4, 16), (16, 3, 12), (16, 0, 12), (8, 2, 8)])
def test_lossless_jpeg_with_a_point_transform_decodes_truly(tmp_path, syntax, precision,
                                                           point_transform, bits_stored):
    """pylibjpeg gives a constant 4095 for point-transform streams; another decoder is asked."""
    image = _ramp(min(bits_stored, precision), point_transform)
    stream = encode(image, precision, point_transform)
    path = _encapsulated_file(tmp_path / "lj.dcm", [stream], syntax, Rows=40, Columns=48,
                              BitsAllocated=16 if bits_stored > 8 else 8,
                              BitsStored=bits_stored, HighBit=bits_stored - 1)
    assert np.array_equal(open_instance(path).stored_frame(0), image)


def test_a_truly_constant_lossless_frame_stays_constant(tmp_path):
    image = np.full((40, 48), 1234, np.uint16)
    path = _encapsulated_file(tmp_path / "flat.dcm", [encode(image, 16, 1)], JPEGLosslessSV1,
                              Rows=40, Columns=48, BitsAllocated=16, BitsStored=16, HighBit=15)
    assert np.array_equal(open_instance(path).stored_frame(0), image)


# ---------------------------------------------------------------- no library text


def test_a_decoder_failure_is_said_in_the_users_words_and_logged(tmp_path, caplog):
    path = _encapsulated_file(tmp_path / "broken.dcm", [b"\xff\xd8\xff\xc3\0\x0bjunkjunk"],
                              JPEGLosslessSV1, Rows=8, Columns=8, BitsAllocated=16,
                              BitsStored=16, HighBit=15)
    with caplog.at_level(logging.INFO, logger="medviewer"):
        with pytest.raises(LoadError) as raised:
            open_instance(path).stored_frame(0)
    reason = raised.value.reason
    assert reason.endswith("pixel data cannot be decoded: the compressed data is damaged or "
                           "uses a feature no installed decoder supports")
    for internal in ("pylibjpeg", "libjpeg", "gdcm", "plugin", "Error"):
        assert internal not in reason
    assert "no decoder could decode" in caplog.text  # the decoders' words are in the log


def test_a_palette_that_does_not_fit_says_so(tmp_path, caplog):
    path = write_dicom(tmp_path / "palette.dcm", np.zeros((4, 4), np.uint8),
                       PhotometricInterpretation="PALETTE COLOR",
                       RedPaletteColorLookupTableDescriptor=[256, 0, 0],
                       GreenPaletteColorLookupTableDescriptor=[256, 0, 0],
                       BluePaletteColorLookupTableDescriptor=[256, 0, 0],
                       RedPaletteColorLookupTableData=b"\0" * 3,
                       GreenPaletteColorLookupTableData=b"\0" * 3,
                       BluePaletteColorLookupTableData=b"\0" * 3)
    with caplog.at_level(logging.INFO, logger="medviewer"):
        with pytest.raises(LoadError) as raised:
            open_instance(path).display_frame(0)
    assert "uint0" not in str(raised.value) and "broadcast" not in str(raised.value)
    assert raised.value.reason.startswith(("its palette colour table does not fit",
                                           "decoding its pixel data failed"))


def test_the_repeat_watch_costs_nothing_on_ordinary_files():
    started = time.perf_counter()
    for _ in range(20):
        header_module.read_header(PYDICOM_TEST_FILES / "CT_small.dcm")
    assert (time.perf_counter() - started) / 20 < 0.05
