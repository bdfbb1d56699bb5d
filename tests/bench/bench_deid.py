"""De-identification throughput: ``deidentify_job`` on 1,000 files against a plain pydicom
read + write loop over the same files in the same run (target: >= 0.5x its throughput).

The files are 1,000 small CT-like images (256 x 256, 16-bit, ~130 KB) of 50 patients that
carry ~100 header attributes each, private tags and nested sequences, written once into a
temporary folder. The job's figure includes finding the files, de-identifying, writing
through pydicom's FileSet and the DICOMDIR; the baseline only reads and writes each file.
Warm page cache: the figures compare CPU cost. Best of 2 interleaved repeats.

    .venv/bin/python -m tests.bench deid
"""

from __future__ import annotations

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
REPEATS = 2
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


def time_baseline(paths: list[Path], out: Path) -> float:
    out.mkdir()
    started = time.perf_counter()
    for index, path in enumerate(paths):
        pydicom.dcmread(path).save_as(out / f"{index:05d}.dcm")
    return time.perf_counter() - started


def time_deid(folder: Path, out: Path) -> float:
    profile = Profile(frozenset({"retain-modified-dates"}))
    started = time.perf_counter()
    result = run_to_end(deidentify_job(DeidRequest([folder], out, profile)))
    elapsed = time.perf_counter() - started
    assert result.written == FILES, result.refused[:3]
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        paths = make_files(root / "in")
        baseline, deid = [], []
        for repeat in range(REPEATS):
            baseline.append(time_baseline(paths, root / f"plain{repeat}"))
            shutil.rmtree(root / f"plain{repeat}")
            deid.append(time_deid(root / "in", root / f"deid{repeat}"))
            shutil.rmtree(root / f"deid{repeat}")
        best_base, best_deid = min(baseline), min(deid)
        ratio = best_base / best_deid
        print(f"files: {FILES} ({PATIENTS} patients), best of {REPEATS}")
        print(f"baseline pydicom read + write: {FILES / best_base:7.0f} files/s "
              f"({best_base:.2f} s)")
        print(f"deidentify_job (+ DICOMDIR):   {FILES / best_deid:7.0f} files/s "
              f"({best_deid:.2f} s)")
        print(f"throughput vs baseline: {ratio:.2f}x (target >= {TARGET_RATIO}x) "
              f"{'OK' if ratio >= TARGET_RATIO else 'BELOW TARGET'}")


if __name__ == "__main__":
    main()
