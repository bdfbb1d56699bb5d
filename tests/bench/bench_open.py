"""Opening images: from ``open_instance`` to the displayed 8-bit image, against plain pydicom.

Ours: ``open_instance(path).display_frame(0)`` with the default VOI, the pixel cache cleared
before every run. Baseline, on the same files in the same run: ``pydicom.dcmread(path)``,
``.pixel_array`` and ``pydicom.pixels.apply_voi_lut`` (which stops short of an 8-bit image).
Files: the WG04 set (uncompressed REF and every syntax plain pydicom decodes) and radiographs
derived from Kermany chest X-rays (upscaled to 2048 x 2048, 12 bits, with a window), written
uncompressed, RLE, JPEG-LS, JPEG 2000 and JPEG baseline into a temporary folder.

Each file is timed ``REPEATS`` times per side, alternating, after one warm-up; a group's time
is the sum of its files' medians. Target: overall ratio (ours / baseline) <= 1.15.

    .venv/bin/python -m tests.bench bench_open
"""

from __future__ import annotations

import io
import logging
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
REPEATS = int(os.environ.get("MEDVIEWER_BENCH_REPEATS", "5"))
TARGET_RATIO = 1.15
KERMANY_IMAGES = 6

WG04_GROUPS = [
    ("WG04 uncompressed (REF)", "REF"),
    ("WG04 RLE", "RLE"),
    ("WG04 JPEG lossless (JPLL)", "JPLL"),
    ("WG04 JPEG-LS lossless (JLSL)", "JLSL"),
    ("WG04 JPEG-LS near-lossless (JLSN)", "JLSN"),
    ("WG04 JPEG 2000 lossless (J2KR)", "J2KR"),
    ("WG04 JPEG 2000 lossy (J2KI)", "J2KI"),
]


def _kermany_radiographs(folder: Path) -> list[tuple[str, list[Path]]]:
    """DX-like files made from Kermany chest X-rays, one group per encoding."""
    import pydicom
    from PIL import Image
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import (JPEG2000Lossless, JPEGBaseline8Bit, JPEGLSLossless, RLELossless,
                             DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian,
                             generate_uid)

    sources = sorted((SHARED_DATA / "xray" / "kermany224" / "test" / "NORMAL").glob("*.jpeg"))
    sources = sources[: KERMANY_IMAGES // 2] + sorted(
        (SHARED_DATA / "xray" / "kermany224" / "test" / "PNEUMONIA").glob("*.jpeg"))[
            : KERMANY_IMAGES // 2]
    rng = np.random.default_rng(0)
    groups: dict[str, list[Path]] = {}
    for number, source in enumerate(sources):
        with Image.open(source) as image:
            grey = image.convert("L").resize((2048, 2048), Image.Resampling.BICUBIC)
        eight_bit = np.asarray(grey)
        twelve_bit = (eight_bit.astype(np.uint16) * 16 + rng.integers(0, 16, eight_bit.shape,
                                                                      dtype=np.uint16))

        def dataset(pixels: np.ndarray, bits: int) -> Dataset:
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = Dataset()
            ds.file_meta = meta
            ds.SOPClassUID = meta.MediaStorageSOPClassUID
            ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
            ds.Modality, ds.PatientID = "DX", f"BENCH{number}"
            ds.Rows, ds.Columns = pixels.shape
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated = 8 if bits == 8 else 16
            ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, 0
            ds.WindowCenter, ds.WindowWidth = (128, 256) if bits == 8 else (2048, 4096)
            ds.ImagerPixelSpacing = [0.15, 0.15]
            ds.PixelData = pixels.tobytes()
            return ds

        for label, syntax in (("uncompressed", None), ("RLE", RLELossless),
                              ("JPEG-LS lossless", JPEGLSLossless),
                              ("JPEG 2000 lossless", JPEG2000Lossless)):
            ds = dataset(twelve_bit, 12)
            if syntax is not None:
                ds.compress(syntax, twelve_bit)
            path = folder / f"kermany-{number}-{label.replace(' ', '-')}.dcm"
            ds.save_as(path, enforce_file_format=True)
            groups.setdefault(f"Kermany DX 2048² 12-bit {label}", []).append(path)
        ds = dataset(eight_bit, 8)
        buffer = io.BytesIO()
        Image.fromarray(eight_bit).save(buffer, format="JPEG", quality=90)
        ds.PixelData = encapsulate([buffer.getvalue()])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        path = folder / f"kermany-{number}-jpeg.dcm"
        ds.save_as(path, enforce_file_format=True)
        groups.setdefault("Kermany DX 2048² 8-bit JPEG baseline", []).append(path)
        pydicom.dcmread(path).pixel_array  # the files must decode before they are timed
    return list(groups.items())


def _ours(path: Path) -> float:
    from medviewer.dicom.reader import open_instance, pixel_cache

    pixel_cache.clear()
    started = time.perf_counter()
    image = open_instance(path).display_frame(0)
    elapsed = time.perf_counter() - started
    assert image.dtype == np.uint8
    return elapsed


def _baseline(path: Path) -> float:
    import pydicom
    from pydicom.pixels import apply_voi_lut

    started = time.perf_counter()
    ds = pydicom.dcmread(path)
    apply_voi_lut(ds.pixel_array, ds)
    return time.perf_counter() - started


def _median_pair(path: Path) -> tuple[float, float]:
    runs: dict[Callable[[Path], float], list[float]] = {_ours: [], _baseline: []}
    _ours(path), _baseline(path)  # warm-up: page cache, lazy imports, decoder set-up
    for _ in range(REPEATS):
        for run in runs:
            runs[run].append(run(path))
    return statistics.median(runs[_ours]), statistics.median(runs[_baseline])


def _browse_frames(folder: Path) -> None:
    """Stepping through every frame of a multi-frame file, once open, against re-reading the
    file per frame (what the reader did before: dcmread + one frame's pixel_array)."""
    import pydicom
    from pydicom.pixels import apply_voi_lut, pixel_array

    from medviewer.dicom.reader import open_instance, pixel_cache
    from tests.dicom import write_dicom

    frames = (np.arange(512 * 512, dtype=np.uint32).reshape(512, 512) % 4096).astype(np.uint16)
    stack = np.stack([np.roll(frames, 7 * i, axis=1) for i in range(120)])
    print(f"\n{'120 frames of 512 x 512, 12-bit':<42} {'ours ms':>9} {'re-read ms':>11} {'ratio':>6}")
    for label, syntax in (("uncompressed", None), ("RLE", pydicom.uid.RLELossless)):
        path = write_dicom(folder / f"frames-{label}.dcm", stack, transfer_syntax=syntax,
                           BitsStored=12, WindowCenter=2048, WindowWidth=4096)

        def ours() -> float:
            pixel_cache.clear()
            started = time.perf_counter()
            instance = open_instance(path)
            for index in range(len(stack)):
                instance.display_frame(index)
            return time.perf_counter() - started

        def reread() -> float:
            started = time.perf_counter()
            for index in range(len(stack)):
                ds = pydicom.dcmread(path)
                apply_voi_lut(pixel_array(ds, index=index), ds)
            return time.perf_counter() - started

        mine = statistics.median(ours() for _ in range(3))
        theirs = statistics.median(reread() for _ in range(3))
        print(f"{'  all frames, ' + label:<42} {mine * 1e3:>9.1f} {theirs * 1e3:>11.1f} "
              f"{mine / theirs:>6.2f}", flush=True)


def main() -> None:
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    groups = [(label, sorted((SHARED_DATA / "dicom" / "wg04" / folder).iterdir()))
              for label, folder in WG04_GROUPS]
    total_ours = total_base = 0.0
    print(f"{'group':<42} {'files':>5} {'ours ms':>9} {'pydicom ms':>11} {'ratio':>6}")
    with tempfile.TemporaryDirectory(prefix="medviewer-bench-") as folder:
        groups += _kermany_radiographs(Path(folder))
        for label, paths in groups:
            ours = base = 0.0
            for path in paths:
                mine, theirs = _median_pair(path)
                ours, base = ours + mine, base + theirs
            total_ours, total_base = total_ours + ours, total_base + base
            print(f"{label:<42} {len(paths):>5} {ours * 1e3:>9.1f} {base * 1e3:>11.1f} "
                  f"{ours / base:>6.2f}", flush=True)
        ratio = total_ours / total_base
        verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
        print(f"{'overall':<42} {'':>5} {total_ours * 1e3:>9.1f} {total_base * 1e3:>11.1f} "
              f"{ratio:>6.2f}  ({verdict} the target <= {TARGET_RATIO}; median of {REPEATS})")
        _browse_frames(Path(folder))


if __name__ == "__main__":
    main()
