"""Mutation fuzzing of the reader: every mutant opens or gives a LoadError, in bounded time and memory.

Mutants are made from a handful of small corpus files (one per kind of encoding) by
truncation, flipped bytes, absurd declared lengths (4 GB included), deeply nested sequences,
extreme image attributes and random splices, and by structure-aware mutations: item and
element lengths at any depth, nested sequences of defined (and wrong) lengths, damaged
fragment and offset tables, and image attributes, rescale and window values set to
extremes (1e308, 1e-308, 4e38, nan) by rewriting the dataset. Mutant ``n`` is fully
determined by ``n``.

Each mutant runs in a worker process (``open_instance``, ``display_frame(0)``, then the
checks on what was rendered: integer data must give finite modality values, and non-constant
data must not render as a constant image with the full-range window) with a 10 s limit and
a peak-RSS check, so a hang, a crash of a C decoder, a silently wrong image or a runaway
allocation is reported with its seed instead of freezing or killing the test run.

    MEDVIEWER_FUZZ_MUTANTS=20000 pytest tests/dicom/test_fuzz.py   (``make fuzz``)
    python -m tests.dicom.test_fuzz SEED [SEED...]   re-runs mutants here, with tracebacks
"""

from __future__ import annotations

import io
import multiprocessing
import multiprocessing.connection
import os
import random
import resource
import struct
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.dicom import PYDICOM_DATA, PYDICOM_TEST_FILES, SHARED_DICOM

MUTANTS = int(os.environ.get("MEDVIEWER_FUZZ_MUTANTS", "3000"))
FIRST_SEED = int(os.environ.get("MEDVIEWER_FUZZ_SEED", "0"))
WORKERS = int(os.environ.get("MEDVIEWER_FUZZ_WORKERS", str(min(2, os.cpu_count() or 1))))
MUTANT_TIMEOUT_S = 10.0
MAX_RSS_BYTES = 1536 * 1024**2
# Virtual memory cap per worker: a safety net so a runaway allocation fails inside the
# worker (and is reported) instead of pushing the whole machine into swap.
ADDRESS_SPACE_LIMIT = 8 * 1024**3

SEED_FILES = [
    PYDICOM_TEST_FILES / "CT_small.dcm",  # native, explicit VR little endian
    PYDICOM_TEST_FILES / "MR_small_RLE.dcm",
    PYDICOM_TEST_FILES / "MR_small_jp2klossless.dcm",
    PYDICOM_TEST_FILES / "MR_small_jpeg_ls_lossless.dcm",
    PYDICOM_TEST_FILES / "JPEGLSNearLossless_16.dcm",
    PYDICOM_TEST_FILES / "SC_rgb_jpeg_gdcm.dcm",  # lossless JPEG, colour: the GDCM plugin
    PYDICOM_DATA / "JPEG-LL.dcm",  # lossless JPEG, 16-bit grey
    PYDICOM_TEST_FILES / "SC_rgb_small_odd_jpeg.dcm",  # JPEG baseline, YBR
    PYDICOM_TEST_FILES / "SC_rgb_rle_2frame.dcm",  # colour, multi-frame
    PYDICOM_TEST_FILES / "image_dfl.dcm",  # deflated
    PYDICOM_TEST_FILES / "JPEG-lossy.dcm",  # 12-bit JPEG: the GDCM fallback
    PYDICOM_TEST_FILES / "rtplan.dcm",  # no pixels, nested sequences
    PYDICOM_DATA / "emri_small_jpeg_2k_lossless.dcm",  # multi-frame JPEG 2000
    PYDICOM_DATA / "OBXXXX1A_rle_2frame.dcm",  # palette colour
    SHARED_DICOM / "fo-dicom" / "GH340.dcm",  # ACR-NEMA, packed 12-bit
]

_ABSURD_LENGTHS = (0xFFFFFFF0, 0xFFFFFFFE, 0x7FFFFFFF, 0x10000000, 0xFFFFFFFF, 0)
_ITEM = b"\xfe\xff\x00\xe0"
_SEQUENCE_END = b"\xfe\xff\xdd\xe0"
# Values the structure-aware mutations give image attributes and rescale / window values.
_EXTREME_ATTRIBUTES = {
    "Rows": ("US", (0, 1, 2, 3, 32768, 65535)),
    "Columns": ("US", (0, 1, 2, 3, 32768, 65535)),
    "BitsAllocated": ("US", (0, 1, 8, 12, 16, 24, 32, 64, 255)),
    "BitsStored": ("US", (0, 1, 7, 12, 16, 17, 31, 32, 64)),
    "HighBit": ("US", (0, 7, 11, 15, 31, 63, 65535)),
    "SamplesPerPixel": ("US", (0, 1, 2, 3, 4, 255)),
    "PixelRepresentation": ("US", (0, 1, 2)),
    "PlanarConfiguration": ("US", (0, 1, 2)),
    "NumberOfFrames": ("IS", ("0", "1", "2", "7", "1000", "-1", "2147483648")),
    "PhotometricInterpretation": ("CS", ("MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL",
                                         "YBR_FULL_422", "PALETTE COLOR", "", "XYZ")),
}
_EXTREME_NUMBERS = ("1e308", "-1e308", "1e-308", "-1e-308", "4e38", "-4e38", "3.4e38", "nan",
                    "inf", "-inf", "0", "-0", "1e-30", "1e-6", "0.002", "65535", "-1e20")
_VALUE_ATTRIBUTES = {
    "RescaleSlope": "DS", "RescaleIntercept": "DS", "WindowCenter": "DS",
    "WindowWidth": "DS",
}


# ---------------------------------------------------------------- making mutants


@dataclass
class _Seed:
    name: str
    data: bytes
    # (offset of the length field, its size in bytes) of every top-level element
    lengths: list[tuple[int, int]] = field(default_factory=list)
    # offsets where a data element starts (places to insert things)
    boundaries: list[int] = field(default_factory=list)
    # (value offset, value length) of small numeric image attributes (Rows, Columns...)
    image_values: list[tuple[int, int]] = field(default_factory=list)
    # offsets of item headers at any depth (sequence items and pixel data fragments)
    items: list[int] = field(default_factory=list)
    # offsets of the item headers inside the (encapsulated) pixel data
    fragments: list[int] = field(default_factory=list)


def _load_seed(path: Path) -> _Seed:
    import pydicom

    data = path.read_bytes()
    seed = _Seed(path.name, data)
    pixel_data = data.rfind(b"\xe0\x7f\x10\x00")
    position = data.find(_ITEM)
    while position != -1:
        seed.items.append(position)
        if pixel_data != -1 and position > pixel_data:
            seed.fragments.append(position)
        position = data.find(_ITEM, position + 4)
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception:  # noqa: BLE001 - a seed we cannot map is mutated blindly
        return seed
    deflated = "1.2.840.10008.1.2.1.99" in str(
        getattr(ds, "file_meta", {}).get("TransferSyntaxUID", ""))
    if deflated:
        return seed  # offsets in the inflated stream do not match the file
    for element in ds._dict.values():
        tell = getattr(element, "value_tell", None)
        if tell is None:
            continue
        implicit = getattr(element, "is_implicit_VR", True)
        vr = getattr(element, "VR", None)
        long_form = implicit or vr in ("OB", "OW", "OF", "OD", "OL", "OV", "SQ", "UN", "UT",
                                       "UC", "UR", "SV", "UV")
        size = 4 if long_form else 2
        seed.lengths.append((tell - size, size))
        seed.boundaries.append(tell - (8 if implicit or not long_form else 12))
        if element.tag in (0x00280010, 0x00280011, 0x00280100, 0x00280101, 0x00280002,
                           0x00280103, 0x00280006, 0x00280008):
            seed.image_values.append((tell, element.length))
    return seed


def _nested_sequences(depth: int) -> bytes:
    opening = struct.pack("<HH2sHL", 0x0009, 0x1001, b"SQ", 0, 0xFFFFFFFF) + \
        struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
    closing = struct.pack("<HHL", 0xFFFE, 0xE00D, 0) + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    return opening * depth + closing * depth


def _nested_defined(depth: int, rng: random.Random) -> bytes:
    """Sequences of defined length nested ``depth`` deep, one length wrong now and then."""
    body = struct.pack("<HH2sH", 0x0009, 0x1002, b"LO", 2) + b"AB"
    for level in range(depth):
        item = struct.pack("<HHL", 0xFFFE, 0xE000, len(body)) + body
        length = len(item)
        if rng.random() < 0.2:
            length += rng.choice((-8, -2, -1, 1, 2, 8, 4096, 0x7FFFFFFF))
        body = struct.pack("<HH2sHL", 0x0009, 0x1001 + level % 2, b"SQ", 0,
                           length & 0xFFFFFFFF) + item
    return body


def _rewritten(data: bytearray, rng: random.Random, kind: str) -> bytes | None:
    """The dataset with image attributes (or rescale and window values) set to extremes,
    written again by pydicom; None when the bytes no longer parse."""
    import pydicom
    from pydicom.dataelem import DataElement
    from pydicom.datadict import tag_for_keyword

    try:
        ds = pydicom.dcmread(io.BytesIO(bytes(data)), force=True)
        if kind == "attributes":
            for keyword in rng.sample(sorted(_EXTREME_ATTRIBUTES), rng.randint(1, 3)):
                vr, values = _EXTREME_ATTRIBUTES[keyword]
                ds[tag_for_keyword(keyword)] = DataElement(tag_for_keyword(keyword), vr,
                                                           rng.choice(values))
        else:
            for keyword in rng.sample(sorted(_VALUE_ATTRIBUTES), rng.randint(1, 3)):
                ds[tag_for_keyword(keyword)] = DataElement(
                    tag_for_keyword(keyword), "DS", rng.choice(_EXTREME_NUMBERS), validation_mode=0)
            if rng.random() < 0.3:
                ds.VOILUTFunction = rng.choice(("LINEAR", "LINEAR_EXACT", "SIGMOID", "BOGUS"))
        out = io.BytesIO()
        ds.save_as(out)
        return out.getvalue()
    except Exception:  # noqa: BLE001 - an earlier step broke the dataset: skip this one
        return None


def make_mutant(number: int, seeds: list[_Seed]) -> tuple[bytes, str]:
    """Mutant ``number``: its bytes and a short description of what was done."""
    rng = random.Random(number)
    seed = seeds[rng.randrange(len(seeds))]
    data = bytearray(seed.data)
    steps = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        kind = rng.choice(("truncate", "flip", "flip", "length", "length", "nest", "splice",
                           "value", "chunk", "item_length", "item_length", "nest_defined",
                           "fragment", "fragment", "attributes", "attributes", "rescale",
                           "rescale"))
        if kind == "truncate" and len(data) > 1:
            cut = rng.randrange(1, len(data))
            del data[cut:]
        elif kind == "flip":
            for _ in range(rng.randint(1, 16)):
                position = rng.randrange(len(data))
                data[position] = rng.randrange(256) if rng.random() < 0.5 else \
                    data[position] ^ (1 << rng.randrange(8))
        elif kind == "length" and seed.lengths:
            offset, size = rng.choice(seed.lengths)
            if offset + size <= len(data):
                value = rng.choice(_ABSURD_LENGTHS) if size == 4 else rng.choice((0xFFFF, 0xFFFE, 0))
                data[offset:offset + size] = value.to_bytes(size, "little")
        elif kind == "nest" and seed.boundaries:
            position = rng.choice(seed.boundaries)
            if position <= len(data):
                data[position:position] = _nested_sequences(rng.choice((50, 300, 2000, 20000)))
        elif kind == "splice":
            other = rng.choice(seeds).data
            start = rng.randrange(len(other))
            chunk = other[start:start + rng.randint(1, 4096)]
            position = rng.randrange(len(data) + 1)
            if rng.random() < 0.5:
                data[position:position] = chunk
            else:
                data[position:position + len(chunk)] = chunk
        elif kind == "value" and seed.image_values:
            offset, length = rng.choice(seed.image_values)
            if offset + length <= len(data) and length in (2, 4):
                value = rng.choice((0, 1, 7, 12, 17, 33, 255, 0x7FFF, 0xFFFF, 0xFFFFFFFF))
                data[offset:offset + length] = (value & (2 ** (8 * length) - 1)).to_bytes(
                    length, "little")
            elif offset + length <= len(data) and length > 0:  # IS strings such as frames
                text = rng.choice((b"0", b"-1", b"99999", b"1A", b"", b"4294967296"))
                data[offset:offset + length] = text.ljust(length)[:length]
        elif kind == "item_length" and seed.items:
            offset = rng.choice(seed.items) + 4
            if offset + 4 <= len(data):
                old_length = struct.unpack("<L", data[offset:offset + 4])[0]
                value = rng.choice((*_ABSURD_LENGTHS, old_length + 1, old_length - 1,
                                    old_length + 8, old_length // 2, 1, 3, 7))
                data[offset:offset + 4] = (value & 0xFFFFFFFF).to_bytes(4, "little")
        elif kind == "nest_defined" and seed.boundaries:
            position = rng.choice(seed.boundaries)
            if position <= len(data):
                data[position:position] = _nested_defined(rng.choice((3, 40, 200)), rng)
        elif kind == "fragment" and seed.fragments:
            offset = rng.choice(seed.fragments)
            if offset + 8 > len(data):
                continue
            action = rng.randrange(4)
            if action == 0:  # the basic offset table: offsets anywhere, in any order
                count = rng.choice((1, 2, 3, 16))
                table = b"".join(struct.pack("<L", rng.choice((0, 1, 8, 0x7FFFFFFF,
                                                                rng.randrange(1 << 20))))
                                 for _ in range(count))
                first = seed.fragments[0]
                old_length = struct.unpack("<L", data[first + 4:first + 8])[0]
                data[first:first + 8 + old_length] = _ITEM + struct.pack("<L", len(table)) \
                    + table
            elif action == 1:  # a fragment of the wrong length
                value = rng.choice((0, 1, 2, 0xFFFFFFFF, 0x7FFFFFFF, rng.randrange(1 << 16)))
                data[offset + 4:offset + 8] = struct.pack("<L", value)
            elif action == 2:  # one more (empty or stray) fragment
                extra = _ITEM + struct.pack("<L", 4) + bytes(rng.randrange(256) for _ in range(4))
                data[offset:offset] = extra
            else:  # no sequence delimiter
                end = data.rfind(_SEQUENCE_END)
                if end != -1:
                    del data[end:end + 8]
        elif kind in ("attributes", "rescale"):
            rewritten = _rewritten(data, rng, kind)
            if rewritten is None:
                continue
            data = bytearray(rewritten)
        elif kind == "chunk" and len(data) > 16:
            start = rng.randrange(len(data))
            stop = min(len(data), start + rng.randint(1, 2048))
            if rng.random() < 0.5:
                del data[start:stop]
            else:
                data[stop:stop] = data[start:stop]
        else:
            continue
        steps.append(kind)
    return bytes(data), f"{seed.name}: {'+'.join(steps) or 'unchanged'}"


# ---------------------------------------------------------------- the worker process


def _worker(connection, seed_paths: list[str], work_dir: str) -> None:
    """Runs mutants sent as numbers; answers (number, outcome, detail, peak RSS bytes,
    description)."""
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))
    except (ValueError, OSError):
        pass
    from medviewer.dicom.reader import LoadError, open_instance, pixel_cache

    seeds = [_load_seed(Path(p)) for p in seed_paths]
    path = Path(work_dir) / f"mutant-{os.getpid()}.dcm"
    connection.send(("ready", None, None, 0, ""))
    while True:
        number = connection.recv()
        if number is None:
            return
        data, description = make_mutant(number, seeds)
        path.write_bytes(data)
        pixel_cache.clear()
        try:
            instance = open_instance(path)
            wrong = check_rendering(instance) if instance.has_pixels else None
            outcome, detail = ("wrong_image", f"{description}: {wrong}") if wrong \
                else ("ok", description)
        except LoadError as error:
            outcome, detail = "load_error", error.reason
        except BaseException:  # noqa: BLE001 - exactly what the test is looking for
            outcome, detail = "exception", f"{description}\n{traceback.format_exc()}"
        connection.send((number, outcome, detail, _peak_rss(), description))


def check_rendering(instance) -> str | None:
    """Display frame 0 and say what is silently wrong with it (None when nothing is).

    Integer stored values must give finite modality values, and data whose modality values
    differ must not show as one grey level with the full-range window.
    """
    import numpy as np

    instance.display_frame(0)
    if instance.is_colour:
        return None
    stored = instance.stored_frame(0)
    values = instance.modality_frame(0)
    if stored.dtype.kind in "iub" and values.dtype.kind == "f" \
            and not np.all(np.isfinite(values)):
        return "non-finite modality values from integer data"
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    if finite.size and finite.min() != finite.max():
        full = instance.display_frame(0, instance.full_range_voi(0))
        if full.min() == full.max():
            return "a constant image from data that is not constant (full-range window)"
    return None


def _peak_rss() -> int:
    """This process's peak resident memory in bytes.

    Linux's VmHWM starts afresh at exec; ``ru_maxrss`` would carry over the RSS of the
    pytest process the worker was forked from.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class _WorkerHandle:
    def __init__(self, context, work_dir: str) -> None:
        self.connection, child = context.Pipe()
        self.process = context.Process(
            target=_worker, args=(child, [str(p) for p in SEED_FILES], work_dir), daemon=True)
        self.process.start()
        child.close()
        self.current: int | None = None
        self.started = 0.0
        self.ready = False

    def send(self, number: int) -> None:
        self.current, self.started = number, time.monotonic()
        self.connection.send(number)

    def stop(self) -> None:
        try:
            self.connection.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.process.join(2)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


@dataclass
class FuzzReport:
    mutants: int = 0
    ok: int = 0
    load_errors: int = 0
    kinds: dict = field(default_factory=dict)  # mutation kind -> mutants using it
    failures: list[str] = field(default_factory=list)
    peak_rss: int = 0
    peak_mutant: int | None = None  # the mutant during which the highest peak was reached
    elapsed_s: float = 0.0


def run_fuzz(first: int, count: int, workers: int) -> FuzzReport:
    """Run mutants ``first .. first + count - 1`` over ``workers`` processes."""
    context = multiprocessing.get_context("spawn")  # no inherited threads or Qt state
    report = FuzzReport()
    started = time.monotonic()
    pending = list(range(first + count - 1, first - 1, -1))  # pop() from the end: ascending
    with tempfile.TemporaryDirectory(prefix="medviewer-fuzz-") as work_dir:
        handles = [_WorkerHandle(context, work_dir) for _ in range(max(1, workers))]
        try:
            while pending or any(h.current is not None for h in handles):
                for index, handle in enumerate(handles):
                    if handle.current is None and handle.ready and pending:
                        handle.send(pending.pop())
                    elif handle.current is not None and \
                            time.monotonic() - handle.started > MUTANT_TIMEOUT_S:
                        report.failures.append(f"mutant {handle.current}: no answer within "
                                               f"{MUTANT_TIMEOUT_S:.0f} s (hang)")
                        report.mutants += 1
                        handle.process.kill()
                        handles[index] = _WorkerHandle(context, work_dir)
                ready = multiprocessing.connection.wait(
                    [h.connection for h in handles] + [h.process.sentinel for h in handles],
                    timeout=0.5)
                for index, handle in enumerate(handles):
                    if handle.connection in ready:
                        try:
                            number, outcome, detail, peak, description = \
                                handle.connection.recv()
                        except (EOFError, OSError):
                            number = None
                        if number == "ready":
                            handle.ready = True
                            continue
                        if number is None:
                            ready.append(handle.process.sentinel)
                        else:
                            handle.current = None
                            report.mutants += 1
                            for kind in set(description.rpartition(": ")[2].split("+")):
                                report.kinds[kind] = report.kinds.get(kind, 0) + 1
                            if peak > report.peak_rss:
                                report.peak_rss, report.peak_mutant = peak, number
                            if outcome == "ok":
                                report.ok += 1
                            elif outcome == "load_error":
                                report.load_errors += 1
                            else:
                                report.failures.append(f"mutant {number}: {detail}")
                            if peak > MAX_RSS_BYTES:
                                report.failures.append(
                                    f"mutant {number}: peak RSS {peak / 1024**2:.0f} MB "
                                    f"> {MAX_RSS_BYTES / 1024**2:.0f} MB")
                                handle.stop()  # a fresh worker for a fresh peak
                                handles[index] = _WorkerHandle(context, work_dir)
                    if handle.process.sentinel in ready and not handle.process.is_alive():
                        if handle.current is not None:
                            report.mutants += 1
                            report.failures.append(
                                f"mutant {handle.current}: the worker died (exit code "
                                f"{handle.process.exitcode}), e.g. a crash in a C decoder")
                        elif not handle.ready:
                            raise RuntimeError("a fuzz worker failed to start")
                        handles[index] = _WorkerHandle(context, work_dir)
        finally:
            for handle in handles:
                handle.stop()
    report.elapsed_s = time.monotonic() - started
    return report


# ---------------------------------------------------------------- the tests


def test_mutants_are_deterministic():
    seeds = [_load_seed(p) for p in SEED_FILES]
    assert all(seed.data for seed in seeds)
    assert sum(bool(seed.lengths) for seed in seeds) >= len(seeds) - 2
    first = [make_mutant(n, seeds) for n in range(50)]
    assert first == [make_mutant(n, seeds) for n in range(50)]
    assert len({data for data, _ in first}) > 40  # and they do differ from one another
    kinds = " ".join(description for _, description in
                     (make_mutant(n, seeds) for n in range(300)))
    for kind in ("truncate", "flip", "length", "nest", "splice", "value", "chunk",
                 "item_length", "nest_defined", "fragment", "attributes", "rescale"):
        assert kind in kinds
    assert sum(bool(seed.fragments) for seed in seeds) >= 6
    assert sum(bool(seed.items) for seed in seeds) >= 10


def test_structure_aware_mutants_are_what_they_say(tmp_path):
    """A rescale mutant carries an extreme value; an attributes mutant an extreme attribute."""
    import pydicom

    seeds = [_load_seed(p) for p in SEED_FILES]
    seen = set()
    for number in range(400):
        data, description = make_mutant(number, seeds)
        if description.endswith(": rescale") and "rescale" not in seen:
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
            found = [str(ds[k].value) for k in ("RescaleSlope", "RescaleIntercept",
                                                 "WindowCenter", "WindowWidth") if k in ds]
            assert set(found) & set(_EXTREME_NUMBERS), found
            seen.add("rescale")
        if description.endswith(": attributes") and "attributes" not in seen:
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
            assert any(keyword in ds for keyword in _EXTREME_ATTRIBUTES)
            seen.add("attributes")
    assert seen == {"rescale", "attributes"}


def test_the_rendering_check_finds_a_flat_image_from_varied_data(tmp_path, monkeypatch):
    import numpy as np

    from medviewer.dicom import pixels
    from medviewer.dicom.reader import open_instance
    from tests.dicom import write_dicom

    path = write_dicom(tmp_path / "ramp.dcm", (np.arange(64, dtype=np.uint16) * 50)
                       .reshape(8, 8), RescaleSlope="1e-6")
    assert check_rendering(open_instance(path)) is None
    monkeypatch.setattr(pixels, "window_for_range",
                        lambda low, high: pixels.Window(0.0, 1e9, "LINEAR_EXACT"))
    assert "constant image" in check_rendering(open_instance(path))


@pytest.mark.slow
@pytest.mark.timeout(max(300, int(MUTANTS * 0.6)))
def test_every_mutant_opens_or_gives_a_load_error(capsys):
    report = run_fuzz(FIRST_SEED, MUTANTS, WORKERS)
    with capsys.disabled():
        print(f"\nfuzz: {report.mutants} mutants (seeds {FIRST_SEED}..{FIRST_SEED + MUTANTS - 1}"
              f", {WORKERS} workers): {report.ok} opened, {report.load_errors} LoadError, "
              f"{len(report.failures)} failures; peak worker RSS "
              f"{report.peak_rss / 1024**2:.0f} MB (reached in mutant {report.peak_mutant}); "
              f"{report.elapsed_s:.1f} s; mutants per kind: "
              + ", ".join(f"{k} {n}" for k, n in sorted(report.kinds.items())))
    assert report.mutants == MUTANTS
    assert report.ok > 0 and report.load_errors > 0  # the mutants exercise both outcomes
    assert not report.failures, (
        f"{len(report.failures)} mutant(s) failed; re-run one with "
        f"`python -m tests.dicom.test_fuzz SEED`:\n" + "\n".join(report.failures[:20]))


def main(argv: list[str]) -> int:
    """Re-run mutants in this process and show what happens (tracebacks included)."""
    from medviewer.dicom.reader import LoadError, open_instance

    seeds = [_load_seed(p) for p in SEED_FILES]
    for number in map(int, argv):
        data, description = make_mutant(number, seeds)
        path = Path(tempfile.gettempdir()) / f"medviewer-mutant-{number}.dcm"
        path.write_bytes(data)
        print(f"mutant {number} ({description}) -> {path}")
        try:
            instance = open_instance(path)
            if instance.has_pixels:
                wrong = check_rendering(instance)
                print("  displayed", instance.display_frame(0).shape,
                      f"WRONG: {wrong}" if wrong else "")
            else:
                print("  opened, no pixel data")
        except LoadError as error:
            print(f"  LoadError: {error}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
