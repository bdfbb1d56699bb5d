"""Opening files: one header parse, lazy frames read from their own bytes, a bounded cache,
and one clear LoadError for every way a file can be wrong."""

from __future__ import annotations

import os
import shutil
import struct
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from medviewer.dicom import load_errors
from medviewer.dicom.reader import LoadError, PixelCache, open_instance, pixel_cache, read_header
from medviewer.errors import UserError
from tests.dicom import PYDICOM_DATA, PYDICOM_TEST_FILES, SHARED_DICOM, wg04, write_dicom

FO_DICOM = SHARED_DICOM / "fo-dicom"


@pytest.fixture(autouse=True)
def empty_cache():
    pixel_cache.clear()
    yield
    pixel_cache.clear()


def _frames(count: int, rows: int = 64, cols: int = 80) -> np.ndarray:
    ramp = np.arange(rows * cols, dtype=np.uint16).reshape(rows, cols)
    return np.stack([(ramp + 100 * i) % 4096 for i in range(count)]).astype(np.uint16)


def _bytes_read() -> int:
    """Bytes this process has read through read() calls so far (Linux /proc/self/io)."""
    with open("/proc/self/io") as io_stats:
        for line in io_stats:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


needs_proc_io = pytest.mark.skipif(not Path("/proc/self/io").exists(),
                                   reason="counting bytes read needs Linux /proc/self/io")


# ---------------------------------------------------------------- the error itself


def test_load_error_is_one_sentence_naming_file_and_reason(tmp_path):
    error = LoadError(tmp_path / "x.dcm", "it is broken.")
    assert isinstance(error, UserError)
    assert str(error) == f"Cannot open {tmp_path / 'x.dcm'}: it is broken."
    assert error.reason == "it is broken" and error.path == tmp_path / "x.dcm"


# ---------------------------------------------------------------- header only, pixels lazily


def test_header_is_read_without_pixel_data():
    header = read_header(wg04("REF", "CT1_UNC"))
    assert header.Rows == 512 and "PixelData" not in header


def test_open_does_not_decode_a_broken_codestream():
    """966.dcm's JPEG 2000 stream is broken: opening works, showing it names the syntax."""
    path = SHARED_DICOM / "pylibjpeg" / "ljdata" / "ds" / "JPEG2000Lossless" / "966.dcm"
    instance = open_instance(path)
    assert instance.has_pixels and (instance.rows, instance.columns) == (2128, 2000)
    assert instance.transfer_syntax == "JPEG 2000 Image Compression (Lossless Only)"
    with pytest.raises(LoadError, match=r"JPEG 2000 Image Compression \(Lossless Only\) pixel "
                                        r"data cannot be decoded"):
        instance.stored_frame(0)


def test_frames_decode_without_parsing_the_header_again(tmp_path):
    """Wipe the header after opening: frames still decode from their recorded offsets."""
    for syntax in (ExplicitVRLittleEndian, RLELossless):
        frames = _frames(5)
        path = write_dicom(tmp_path / f"{syntax.name}.dcm", frames, transfer_syntax=syntax,
                           BitsStored=12)
        instance = open_instance(path)
        data = bytearray(path.read_bytes())
        data[:132] = b"\0" * 132  # no preamble, no DICM: parsing the file now would fail
        path.write_bytes(bytes(data))
        with pytest.raises(LoadError, match="not a DICOM file"):
            read_header(path)
        for frame in (4, 0, 2):
            assert np.array_equal(instance.stored_frame(frame), frames[frame]), (syntax, frame)


@needs_proc_io
@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, RLELossless])
def test_a_late_frame_reads_only_its_own_bytes(tmp_path, syntax):
    frames = _frames(300, rows=128, cols=128)  # 300 frames of 32 KB
    path = write_dicom(tmp_path / "many.dcm", frames, transfer_syntax=syntax, BitsStored=12)
    size = path.stat().st_size
    instance = open_instance(path)
    instance.stored_frame(0)  # any one-off work (the fragment index) happens here
    before = _bytes_read()
    last = instance.stored_frame(299)
    read = _bytes_read() - before
    assert np.array_equal(last, frames[299])
    # One frame plus one read buffer (256 KB), not the whole file (several MB).
    assert read < 2 * frames[0].nbytes + 300_000 < size / 5, (read, size)


def test_multi_frame_file_frames_in_any_order():
    path = PYDICOM_DATA / "emri_small_jpeg_2k_lossless.dcm"
    reference = pydicom.dcmread(path).pixel_array
    instance = open_instance(path)
    for frame in (9, 3, 0, 9, 5):
        assert np.array_equal(instance.stored_frame(frame), reference[frame])


def test_frame_out_of_range_is_a_load_error():
    instance = open_instance(PYDICOM_DATA / "emri_small.dcm")
    with pytest.raises(LoadError, match="frame 11 does not exist"):
        instance.stored_frame(10)
    no_image = open_instance(PYDICOM_TEST_FILES / "rtplan.dcm")
    assert not no_image.has_pixels
    with pytest.raises(LoadError, match="holds no image"):
        no_image.display_frame(0)


# ---------------------------------------------------------------- the cache and its budget


def test_pixel_cache_is_lru_and_keeps_to_its_budget():
    cache = PixelCache(budget_bytes=1000)
    arrays = {name: np.zeros(400, dtype=np.uint8) for name in "abc"}
    cache.put(("a",), arrays["a"])
    cache.put(("b",), arrays["b"])
    assert cache.get(("a",)) is arrays["a"]  # now "b" is the least recently used
    cache.put(("c",), arrays["c"])
    assert cache.get(("b",)) is None and cache.get(("a",)) is not None
    assert cache.used_bytes == 800
    cache.put(("big",), np.zeros(2000, dtype=np.uint8))  # larger than the budget: not kept
    assert cache.get(("big",)) is None and cache.used_bytes <= 1000


def test_a_smaller_budget_drops_the_oldest_frames_at_once():
    cache = PixelCache(budget_bytes=1000)
    for name in "abc":
        cache.put((name,), np.zeros(300, dtype=np.uint8))
    cache.set_budget(700)
    assert cache.used_bytes == 600 and cache.get(("a",)) is None
    assert cache.get(("b",)) is not None and cache.get(("c",)) is not None


def test_browsing_all_frames_stays_within_the_budget(tmp_path, monkeypatch):
    frames = _frames(40, rows=128, cols=128)  # 40 x 32 KB
    instance = open_instance(write_dicom(tmp_path / "mf.dcm", frames, BitsStored=12))
    monkeypatch.setattr(pixel_cache, "budget_bytes", 10 * frames[0].nbytes)
    for frame in range(40):
        instance.display_frame(frame)
        assert pixel_cache.used_bytes <= pixel_cache.budget_bytes
    assert instance.stored_frame(39) is instance.stored_frame(39)  # the latest stay cached


def test_cached_frames_are_read_only():
    instance = open_instance(wg04("REF", "MR1_UNC"))
    with pytest.raises(ValueError):
        instance.stored_frame(0)[0, 0] = 1


# ---------------------------------------------------------------- unusual but valid files


def test_acr_nema_file_without_meta_infers_its_transfer_syntax():
    instance = open_instance(FO_DICOM / "CR-MONO1-10-chest")
    assert instance.transfer_syntax == ""  # the file does not say
    assert instance.display_frame(0).shape == (440, 440)


def test_files_without_preamble_open():
    for name in ("ExplVR_LitEndNoMeta.dcm", "ExplVR_BigEndNoMeta.dcm", "rtstruct.dcm"):
        header = read_header(PYDICOM_TEST_FILES / name)
        assert "SOPInstanceUID" in header, name


def test_deflated_file_decodes_like_pydicom():
    path = PYDICOM_TEST_FILES / "image_dfl.dcm"
    instance = open_instance(path)
    assert instance.transfer_syntax == "Deflated Explicit VR Little Endian"
    assert np.array_equal(instance.stored_frame(0), pydicom.dcmread(path).pixel_array)


def test_packed_12_bit_acr_nema_pixels():
    """fo-dicom GH340: Bits Allocated 12, two pixels in three bytes (low nibbles first)."""
    path = FO_DICOM / "GH340.dcm"
    raw = pydicom.dcmread(path, force=True).PixelData[:6]
    stored = open_instance(path).stored_frame(0)
    assert stored.shape == (256, 256)
    b = list(raw)
    assert stored[0, :4].tolist() == [b[0] | (b[1] & 0x0F) << 8, b[1] >> 4 | b[2] << 4,
                                      b[3] | (b[4] & 0x0F) << 8, b[4] >> 4 | b[5] << 4]
    assert 0 < stored.max() < 4096


def test_mislabelled_encapsulated_jpeg_is_decoded_by_what_it_is():
    """fo-dicom GH1376 says Explicit VR Little Endian but holds lossless JPEG fragments."""
    instance = open_instance(FO_DICOM / "GH1376.dcm")
    stored = instance.stored_frame(0)
    assert stored.shape == (2457, 1890) and 0 < stored.max() < 4096  # 12 bits stored


def test_wg04_jply_decodes_through_gdcm_like_the_repaired_file():
    """WG04's JPLY streams carry an encoder defect pydicom's plugins refuse; GDCM reads it.

    pylibjpeg's RG2_JPLY_fixed.dcm is the same stream repaired: the two must agree (IDCT
    rounding aside)."""
    broken = open_instance(wg04("JPLY", "RG2_JPLY")).stored_frame(0)
    fixed_path = SHARED_DICOM / "pylibjpeg" / "ljdata" / "ds" / "JPEGExtended" / "RG2_JPLY_fixed.dcm"
    fixed = pydicom.dcmread(fixed_path).pixel_array
    assert broken.shape == fixed.shape
    assert np.abs(broken.astype(int) - fixed).max() <= 1


def test_big_endian_matches_little_endian():
    big = open_instance(PYDICOM_TEST_FILES / "MR_small_bigendian.dcm").stored_frame(0)
    little = open_instance(PYDICOM_TEST_FILES / "MR_small.dcm").stored_frame(0)
    assert np.array_equal(big, little)


# ---------------------------------------------------------------- bad input


def test_not_files(tmp_path):
    with pytest.raises(LoadError, match="it is a folder"):
        open_instance(tmp_path)
    with pytest.raises(LoadError, match="it does not exist"):
        open_instance(tmp_path / "missing.dcm")
    (tmp_path / "empty.dcm").write_bytes(b"")
    with pytest.raises(LoadError, match="the file is empty"):
        open_instance(tmp_path / "empty.dcm")
    (tmp_path / "notes.txt").write_text("Patient was seen on Tuesday.\n" * 20)
    with pytest.raises(LoadError, match="not a DICOM file"):
        open_instance(tmp_path / "notes.txt")


def test_truncated_pixel_data(tmp_path):
    frames = _frames(4)
    path = write_dicom(tmp_path / "cut.dcm", frames, BitsStored=12)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - frames[0].nbytes - 10])  # the last frame is cut
    instance = open_instance(path)
    with pytest.raises(LoadError, match=r"truncated: Pixel Data declares \d+ bytes but only"):
        instance.stored_frame(0)


def test_pixel_data_shorter_than_the_image_attributes(tmp_path):
    frames = _frames(3)
    path = write_dicom(tmp_path / "short.dcm", frames, BitsStored=12, NumberOfFrames=5)
    instance = open_instance(path)
    assert np.array_equal(instance.stored_frame(2), frames[2])  # the frames that are there
    with pytest.raises(LoadError, match=r"shorter than its image attributes require "
                                        r"\(\d+ of \d+ bytes\)"):
        instance.stored_frame(3)


def test_truncated_inside_compressed_data(tmp_path):
    path = write_dicom(tmp_path / "rle.dcm", _frames(3), transfer_syntax=RLELossless,
                       BitsStored=12)
    data = path.read_bytes()
    path.write_bytes(data[:-2000])
    instance = open_instance(path)
    with pytest.raises(LoadError, match="truncated inside its RLE Lossless pixel data"):
        instance.stored_frame(2)


def _declare_length(path: Path, tag: tuple[int, int], length: int) -> None:
    """Overwrite the 4-byte length of an explicit-VR OB/OW element in place."""
    data = bytearray(path.read_bytes())
    position = data.index(struct.pack("<HH", *tag), 132)
    data[position + 8:position + 12] = struct.pack("<L", length)
    path.write_bytes(bytes(data))


def test_absurd_declared_lengths_allocate_nothing_like_them(tmp_path):
    """4 GB declared in a private element and in Pixel Data: clear errors, little memory."""
    frames = _frames(1)
    private = write_dicom(tmp_path / "private.dcm", frames, BitsStored=12)
    ds = pydicom.dcmread(private)
    ds.add_new(0x00091010, "OB", b"\0" * 64)
    ds.save_as(private)
    _declare_length(private, (0x0009, 0x1010), 0xFFFFFFF0)
    pixel = write_dicom(tmp_path / "pixel.dcm", frames, BitsStored=12)
    _declare_length(pixel, (0x7FE0, 0x0010), 0xFFFFFFF0)
    tracemalloc.start()
    try:
        with pytest.raises(LoadError, match="truncated or damaged"):
            open_instance(private).display_frame(0)
        with pytest.raises(LoadError, match="truncated: Pixel Data declares 4294967280 bytes"):
            open_instance(pixel).display_frame(0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 1024**2, f"peak {peak / 1e6:.0f} MB"


def test_deeply_nested_sequences_are_refused_cleanly(tmp_path):
    """Sequences nested far deeper than any real file: a LoadError, not a RecursionError."""
    frames = _frames(1)
    path = write_dicom(tmp_path / "deep.dcm", frames, BitsStored=12)
    data = path.read_bytes()
    # Undefined-length sequence (0009,1001) SQ, item, sequence, item... 5000 levels deep.
    opening = struct.pack("<HH2sHL", 0x0009, 0x1001, b"SQ", 0, 0xFFFFFFFF) + \
        struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
    closing = struct.pack("<HHL", 0xFFFE, 0xE00D, 0) + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    position = data.index(struct.pack("<HH", 0x0028, 0x0002), 132)  # before the image module
    path.write_bytes(data[:position] + opening * 5000 + closing * 5000 + data[position:])
    limit = sys.getrecursionlimit()
    with pytest.raises(LoadError, match="its sequences are nested too deeply to be valid"):
        open_instance(path)
    assert sys.getrecursionlimit() == limit
    # A hundred levels is odd but legal: the file opens.
    path.write_bytes(data[:position] + opening * 100 + closing * 100 + data[position:])
    assert open_instance(path).display_frame(0).shape == (64, 80)


def test_invalid_image_attributes(tmp_path):
    frames = _frames(1)
    cases = {
        "rows.dcm": ({"Rows": 0}, "Rows value 0 is outside 1..65535"),
        "bits.dcm": ({"BitsAllocated": 7}, "Bits Allocated value 7 is not 1, 12 or a multiple"),
        "stored.dcm": ({"BitsStored": 17}, r"Bits Stored \(17\) exceeds Bits Allocated \(16\)"),
        "frames.dcm": ({"NumberOfFrames": 7}, "Number of Frames value '7x' is not a whole"),
    }
    for name, (attributes, reason) in cases.items():
        path = write_dicom(tmp_path / name, frames, **attributes)
        if name == "frames.dcm":  # pydicom refuses to write a bad IS: break it afterwards
            path.write_bytes(path.read_bytes().replace(b"IS\x02\x007 ", b"IS\x02\x007x"))
        with pytest.raises(LoadError, match=reason):
            open_instance(path)


def test_huge_declared_image_is_refused_before_decoding(tmp_path):
    path = write_dicom(tmp_path / "huge.dcm", _frames(1), Rows=60000, Columns=60000)
    with pytest.raises(LoadError, match="60000 x 60000 pixels, too large"):
        open_instance(path)


def test_copy_of_a_file_is_cached_apart(tmp_path):
    """The cache key is the path and its stat: a changed file is never served stale."""
    path = write_dicom(tmp_path / "a.dcm", _frames(1), BitsStored=12)
    first = open_instance(path).stored_frame(0).copy()
    shutil.copy(write_dicom(tmp_path / "b.dcm", _frames(2)[1:], BitsStored=12), path)
    os.utime(path, ns=(1, 1))
    assert not np.array_equal(open_instance(path).stored_frame(0), first)


def test_reasons_from_decoder_plugins_name_the_cause():
    text = ("Unable to decode as exceptions were raised by all available plugins:\n"
            "  gdcm: 'NoneType' object has no attribute 'encode'\n"
            "  pylibjpeg: libjpeg error code '-1038' returned from Decode(): A misplaced "
            "marker segment was found\n"
            "  pillow: cannot identify image file")
    reason = load_errors.reason_from_exception(RuntimeError(text))
    assert reason == "pylibjpeg: A misplaced marker segment was found"
    unsupported = ("Unable to decode as exceptions were raised by all available plugins:\n"
                   "  gdcm: GDCM does not support 'JPEG Extended' for 12-bit\n")
    assert load_errors.reason_from_exception(RuntimeError(unsupported)).startswith(
        "none of the installed decoders supports it")


def test_unconvertible_values_stay_readable_as_raw_bytes(tmp_path):
    """An unknown VR makes plain pydicom raise on every access; here it reads as UN bytes."""
    path = write_dicom(tmp_path / "vr.dcm", _frames(1), BitsStored=12)
    ds = pydicom.dcmread(path)
    ds.add_new(0x00090010, "LO", "ACME")
    ds.add_new(0x00091010, "LO", "CHEST")
    ds.save_as(path)
    marker = struct.pack("<HH", 0x0009, 0x1010)
    path.write_bytes(path.read_bytes().replace(marker + b"LO", marker + b"QQ"))
    instance = open_instance(path)
    element = instance.header[0x00091010]
    assert element.VR == "UN" and element.value == b"CHEST "
    assert instance.display_frame(0).shape == (64, 80)
    assert len(list(instance.header)) > 5  # the whole header can be walked (tag browser)
