"""Hostile input: what refusing it costs, against plain library calls in the same run.

1. A header with a run of zero bytes: ``read_header`` (which refuses it once the parser
   has read thousands of empty elements) against ``pydicom.dcmread(stop_before_pixels=True)``,
   which parses every one of them (8 bytes each).
2. An ordinary header (pydicom's CT_small.dcm): the same pair, to show what the repeat
   watch costs when there is nothing to refuse.
3. A label CSV whose rows all name missing files: ``validate_csv``'s time and peak traced
   memory against reading the same file into a list of rows with ``csv.reader`` (the first
   thing the check did before it streamed).

    .venv/bin/python -m tests.bench hostile
"""

from __future__ import annotations

import csv
import io
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pydicom

from medviewer.dicom.header import read_header
from medviewer.dicom.reader import LoadError
from medviewer.labels import io as label_io
from medviewer.labels.store import LabelStore
from tests.dicom import PYDICOM_TEST_FILES, write_dicom

ZERO_RUN_MB = 4
ORDINARY_REPEATS = 200
CSV_ROWS = 200_000


def _seconds(action, repeats: int = 1) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        action()
    return (time.perf_counter() - started) / repeats


def _zero_run_file(folder: Path) -> Path:
    source = write_dicom(folder / "source.dcm", np.arange(64, dtype=np.uint16).reshape(8, 8))
    data = source.read_bytes()
    at = pydicom.dcmread(io.BytesIO(data))["SOPClassUID"].file_tell
    path = folder / "zeros.dcm"
    path.write_bytes(data[:at] + b"\0" * (ZERO_RUN_MB << 20) + data[at:])
    return path


def _refuse(path: Path) -> None:
    try:
        read_header(path)
    except LoadError:
        return
    raise AssertionError(f"{path} was not refused")


def _peak(action) -> tuple[float, int]:
    tracemalloc.start()
    try:
        seconds = _seconds(action)
        return seconds, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> None:
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory(prefix="medviewer-bench-hostile-") as scratch:
        folder = Path(scratch)
        zeros = _zero_run_file(folder)
        baseline = _seconds(lambda: pydicom.dcmread(zeros, stop_before_pixels=True))
        ours = _seconds(lambda: _refuse(zeros), 5)
        print(f"{ZERO_RUN_MB} MB zero run in a header: dcmread {baseline:.2f} s, read_header "
              f"refuses in {ours * 1000:.1f} ms ({baseline / ours:.0f}x faster)")

        ordinary = PYDICOM_TEST_FILES / "CT_small.dcm"
        plain = _seconds(lambda: pydicom.dcmread(ordinary, stop_before_pixels=True),
                         ORDINARY_REPEATS)
        watched = _seconds(lambda: read_header(ordinary), ORDINARY_REPEATS)
        print(f"ordinary header (CT_small): dcmread {plain * 1e3:.2f} ms, read_header "
              f"{watched * 1e3:.2f} ms ({watched / plain:.2f}x the baseline)")

        rows = folder / "bad-rows.csv"
        with open(rows, "w", encoding="utf-8") as handle:
            handle.write("path,label,reader\n")
            for number in range(CSV_ROWS):
                handle.write(f"{folder}/missing/scan-{number:07d}-{'x' * 60}.dcm,normal,bob\n")
        size_mb = rows.stat().st_size / 1024**2

        def read_all() -> None:
            with open(rows, newline="", encoding="utf-8") as handle:
                list(csv.reader(handle))

        base_s, base_peak = _peak(read_all)
        with LabelStore(folder / "labels.sqlite", reader="bench") as store:
            check_s, check_peak = _peak(lambda: label_io.validate_csv(
                store, rows, "bench", classes=["normal", "sick"]))
        print(f"label CSV, {CSV_ROWS} rows naming missing files ({size_mb:.0f} MB): "
              f"csv.reader into a list {base_s:.1f} s, peak {base_peak / 1024**2:.0f} MB; "
              f"validate_csv {check_s:.1f} s ({check_s / CSV_ROWS * 1e6:.0f} us a row), peak "
              f"{check_peak / 1024**2:.1f} MB ({check_peak / base_peak:.2f}x the baseline)")


if __name__ == "__main__":
    main()
