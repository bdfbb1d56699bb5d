"""Compare with prior: the same patient's most recent earlier study, from real catalogs."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from medviewer.app.priors import StudyKey, find_prior, is_earlier, same_patient
from medviewer.dicom.catalog import index_path
from medviewer.jobs import run_to_end
from medviewer.paths import SAMPLE_STUDY_DIR


def write_study(folder: Path, name: str, *, patient_id: str, date: str, time: str = "",
                issuer: str = "", modality: str = "DX") -> Path:
    """A copy of a sample image as its own study (new UIDs), dated as asked."""
    ds = pydicom.dcmread(SAMPLE_STUDY_DIR / "S01_I01.dcm")
    ds.PatientID = patient_id
    if issuer:
        ds.IssuerOfPatientID = issuer
    ds.StudyDate = date
    ds.StudyTime = time
    ds.Modality = modality
    ds.StudyInstanceUID = pydicom.uid.generate_uid()
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.dcm"
    ds.save_as(path)
    return path


def catalog_of(folder: Path):
    return run_to_end(index_path(folder))


def key_of(path: Path) -> StudyKey:
    return StudyKey.from_header(pydicom.dcmread(path, stop_before_pixels=True))


def test_most_recent_earlier_study_of_the_same_patient(tmp_path):
    current = write_study(tmp_path / "a", "current", patient_id="P1", date="20240301")
    write_study(tmp_path / "a", "oldest", patient_id="P1", date="20200101")
    recent = write_study(tmp_path / "b", "recent", patient_id="P1", date="20231115")
    write_study(tmp_path / "b", "later", patient_id="P1", date="20240401")  # after: no
    write_study(tmp_path / "b", "other", patient_id="P2", date="20240201")  # not the patient
    catalogs = [catalog_of(tmp_path / "a"), catalog_of(tmp_path / "b")]
    prior = find_prior(catalogs, key_of(current))
    assert prior is not None
    assert prior.image.path == recent.resolve()
    assert prior.study.date == "20231115" and prior.patient.patient_id == "P1"
    assert prior.catalog_root == (tmp_path / "b").resolve()


def test_same_day_needs_both_times(tmp_path):
    current = write_study(tmp_path, "noon", patient_id="P1", date="20240301", time="120000")
    morning = write_study(tmp_path, "morning", patient_id="P1", date="20240301", time="0815")
    write_study(tmp_path, "evening", patient_id="P1", date="20240301", time="183000")
    catalogs = [catalog_of(tmp_path)]
    assert find_prior(catalogs, key_of(current)).image.path == morning.resolve()
    untimed = StudyKey("P1", study_uid="x", date="20240301")
    assert find_prior(catalogs, untimed) is None


def test_issuer_separates_patients_only_when_both_say_one(tmp_path):
    current = write_study(tmp_path, "current", patient_id="P1", issuer="HOSP-A",
                          date="20240301")
    write_study(tmp_path, "other_issuer", patient_id="P1", issuer="HOSP-B", date="20240201")
    no_issuer = write_study(tmp_path, "no_issuer", patient_id="P1", date="20230101")
    catalogs = [catalog_of(tmp_path)]
    assert find_prior(catalogs, key_of(current)).image.path == no_issuer.resolve()
    assert same_patient("P1", "A", "P1", "A") and same_patient("P1", "", "P1", "A")
    assert not same_patient("P1", "A", "P1", "B") and not same_patient("", "", "", "")


def test_prefers_an_image_of_the_same_modality(tmp_path):
    folder = tmp_path / "prior"
    current = write_study(tmp_path / "now", "current", patient_id="P1", date="20240301",
                          modality="CR")
    write_study(folder, "dx", patient_id="P1", date="20230101", modality="DX")
    catalog = catalog_of(folder)
    # Add a CR series to the same study by copying the DX file with a new series.
    ds = pydicom.dcmread(folder / "dx.dcm")
    ds.Modality = "CR"
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    ds.SeriesNumber = 99
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(folder / "cr.dcm")
    catalog = catalog_of(folder)
    prior = find_prior([catalog], key_of(current))
    assert prior.image.path == (folder / "cr.dcm").resolve()


def test_the_sample_study_has_no_prior_of_itself():
    catalog = run_to_end(index_path(SAMPLE_STUDY_DIR))
    key = key_of(SAMPLE_STUDY_DIR / "S02_I01.dcm")
    # Both sample studies are dated the same day without a time: neither is earlier.
    assert find_prior([catalog], key) is None


@pytest.mark.parametrize("date, time, than_date, than_time, expected", [
    ("20240101", "", "20240102", "", True),
    ("20240102", "", "20240101", "", False),
    ("20240101", "0930", "20240101", "093000.5", True),
    ("20240101", "1", "20240101", "12", False),  # not a time
    ("", "", "20240101", "", False),
    ("2024-01-01", "", "20240102", "", False),
])
def test_is_earlier(date, time, than_date, than_time, expected):
    assert is_earlier(date, time, than_date, than_time) is expected
