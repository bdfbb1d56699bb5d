"""De-identification throughput: ``deidentify_job`` on 1,000 files against a plain pydicom
read + write loop over the same files in the same run (target: >= 0.5x its throughput).

The files are 1,000 small CT-like images (256 x 256, 16-bit, ~130 KB) of 50 patients that
carry ~100 header attributes each, private tags and nested sequences, written once into a
temporary folder. The job's figure includes finding the files, de-identifying, writing
each file into the File-set layout and the DICOMDIR; the baseline only reads and writes
each file. Warm page cache: the figures compare CPU cost. Best of 3 interleaved repeats,
in wall time (the headline) and in this process's CPU time (less disturbed by other work
on a busy machine); the load average is printed before and after.

    .venv/bin/python -m tests.bench deid
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pydicom

from medviewer.dicom.deid.job import DeidRequest, deidentify_job
from medviewer.dicom.deid.profile import Profile
from medviewer.jobs import run_to_end
from tests.dicom.deid_helpers import core_dataset, write

FILES = 1000
PATIENTS = 50
REPEATS = 3
TARGET_RATIO = 0.5


def make_files(folder: Path) -> list[Path]:
    paths = []
    for index in range(FILES):
        patient = index % PATIENTS
        ds = core_dataset(patient_id=f"PID-{patient:04d}", name=f"Patient^{patient}",
                          instance=index + 1, rows=256, columns=256)
        ds.SeriesDescription = "AXIAL 1.25mm"
        ds.ReferringPhysicianName = "Who^Doctor"
        ds.OperatorsName = "Tech^Nician"
        ds.StationName = "CT01"
        ds.SourceImageSequence = pydicom.Sequence([pydicom.Dataset()])
        ds.SourceImageSequence[0].ReferencedSOPClassUID = ds.SOPClassUID
        ds.SourceImageSequence[0].ReferencedSOPInstanceUID = ds.SOPInstanceUID + ".1"
        paths.append(write(ds, folder / f"p{patient:03d}" / f"im{index:04d}.dcm"))
    return paths


def time_baseline(paths: list[Path], out: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of a plain pydicom read + write of every file."""
    out.mkdir()
    started, cpu = time.perf_counter(), time.process_time()
    for index, path in enumerate(paths):
        pydicom.dcmread(path).save_as(out / f"{index:05d}.dcm")
    return time.perf_counter() - started, time.process_time() - cpu


def time_deid(folder: Path, out: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of deidentify_job on the folder."""
    profile = Profile(frozenset({"retain-modified-dates"}))
    started, cpu = time.perf_counter(), time.process_time()
    result = run_to_end(deidentify_job(DeidRequest([folder], out, profile)))
    elapsed = time.perf_counter() - started, time.process_time() - cpu
    assert result.written == FILES, result.refused[:3]
    return elapsed


def load_average() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def main() -> None:
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        paths = make_files(root / "in")
        print(f"load average before: {load_average()} ({os.cpu_count()} CPUs)")
        baseline, deid = [], []
        for repeat in range(REPEATS):
            baseline.append(time_baseline(paths, root / f"plain{repeat}"))
            shutil.rmtree(root / f"plain{repeat}")
            deid.append(time_deid(root / "in", root / f"deid{repeat}"))
            shutil.rmtree(root / f"deid{repeat}")
        print(f"load average after:  {load_average()}")
        print(f"files: {FILES} ({PATIENTS} patients), best of {REPEATS}")
        for index, kind in ((0, "wall"), (1, "CPU")):
            best_base = min(run[index] for run in baseline)
            best_deid = min(run[index] for run in deid)
            ratio = best_base / best_deid
            print(f"[{kind}] baseline pydicom read + write: {FILES / best_base:7.0f} files/s "
                  f"({best_base:.2f} s)")
            print(f"[{kind}] deidentify_job (+ DICOMDIR):   {FILES / best_deid:7.0f} files/s "
                  f"({best_deid:.2f} s)")
            print(f"[{kind}] throughput vs baseline: {ratio:.2f}x (target >= {TARGET_RATIO}x) "
                  f"{'OK' if ratio >= TARGET_RATIO else 'BELOW TARGET'}")


if __name__ == "__main__":
    main()
