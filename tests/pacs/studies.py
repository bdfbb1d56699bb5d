"""Synthetic DICOM studies for the PACS tests and benchmarks (real files, made with pydicom)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)


@dataclass
class MadeStudy:
    study_uid: str
    patient_id: str
    series_uids: list[str] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)


def make_instance(path: Path, *, patient_id: str, patient_name: str, study_uid: str,
                  series_uid: str, series_number: int, instance_number: int,
                  study_date: str = "20240315", modality: str = "CT", accession: str = "",
                  description: str = "Chest", size: int = 64, seed: int = 0) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.PatientName = patient_id, patient_name
    ds.PatientBirthDate, ds.PatientSex = "19600101", "F"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.StudyDate, ds.StudyTime, ds.SeriesDate = study_date, "101500", study_date
    ds.ContentDate, ds.ContentTime = study_date, "101500"
    ds.AccessionNumber, ds.StudyID = accession, "1"
    ds.StudyDescription, ds.SeriesDescription = description, f"Series {series_number}"
    ds.ReferringPhysicianName = ""
    ds.Modality, ds.Manufacturer = modality, "MedViewer tests"
    ds.SeriesNumber, ds.InstanceNumber = series_number, instance_number
    ds.FrameOfReferenceUID = generate_uid(entropy_srcs=[study_uid])
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImagePositionPatient = [0.0, 0.0, float(instance_number)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [0.7, 0.7]
    ds.SliceThickness = 1.0
    ds.PositionReferenceIndicator = ""
    ds.KVP = 120
    ds.AcquisitionNumber = 1
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows = ds.Columns = size
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    rng = np.random.default_rng(seed + instance_number)
    ds.PixelData = rng.integers(0, 4095, (size, size), dtype=np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def make_study(folder: Path, instances: int, *, series: int = 1, patient_id: str = "PAT-1",
               patient_name: str = "Doe^Jane", study_date: str = "20240315",
               modality: str = "CT", accession: str = "ACC-1", description: str = "Chest",
               size: int = 64) -> MadeStudy:
    """A study of ``instances`` images spread over ``series`` series."""
    study = MadeStudy(generate_uid(), patient_id)
    study.series_uids = [generate_uid() for _ in range(series)]
    for n in range(instances):
        s = n % series
        study.paths.append(make_instance(
            folder / f"{study.study_uid}-{n:04d}.dcm", patient_id=patient_id,
            patient_name=patient_name, study_uid=study.study_uid,
            series_uid=study.series_uids[s], series_number=s + 1, instance_number=n + 1,
            study_date=study_date, modality=modality, accession=accession,
            description=description, size=size, seed=n))
    return study


def read(path: Path) -> Dataset:
    return pydicom.dcmread(path)
