"""Test DICOM files for de-identification: real files carrying (nearly) every attribute of
PS3.15 Table E.1-1, nested sequences and private tags, and the expected action per attribute
written down independently of ``medviewer.dicom.deid.profile``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from medviewer.dicom.deid.table_e1_1 import TABLE_CSV

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
# The identity the byte search looks for.
PATIENT_NAME = "Doe^Johnathan"
PATIENT_ID = "PID-48151623"
BIRTH_DATE = "19610704"
ACCESSION = "ACC-99887766"
INSTITUTION = "St Elsewhere General Hospital"
UID_ROOT = "1.2.826.0.1.3680043.8.498.4242"
# Tags the rich file leaves out: command-set group 0000 never lives in files, group 0002 is
# the file meta, and these are the patient/study core, set explicitly below.
SKIPPED_GROUPS = (0x0000, 0x0002)
MARKER_LETTERS = str.maketrans("0123456789", "GHIJKLMNOP")
CORE = {0x00100010, 0x00100020, 0x00100030, 0x00080050, 0x00080080, 0x0020000D, 0x0020000E,
        0x00080018, 0x00200052, 0x00080020, 0x00080030}


def table_rows() -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(TABLE_CSV)))


def fixed_tag_rows() -> list[dict[str, str]]:
    return [row for row in table_rows() if "x" not in row["tag"] and row["tag"] != "private"
            and int(row["tag"], 16) >> 16 not in SKIPPED_GROUPS]


def expected_action(row: dict[str, str], columns: set[str]) -> str:
    """What the standard asks for, resolved the way docs/deidentification.md says."""
    chosen = [row[c] for c in columns if row.get(c)]
    if chosen:
        return sorted(chosen, key="XZDUCK".index)[0]
    return {"X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "D", "X/Z/U*": "U"}.get(
        row["basic"], row["basic"])


def value_for(tag: int, vr: str) -> object:
    """A recognisable value of the VR; dates and times are real ones (to test shifting).

    The marker spells the tag in letters only (digits 0-9 as G-P): a letter and eight
    digits would look like an ID, which cleaned text rightly loses."""
    marker = "V" + f"{tag:08X}".translate(MARKER_LETTERS)
    if vr == "SQ":
        item = Dataset()
        item.ReferencedSOPClassUID = CT_IMAGE
        item.ReferencedSOPInstanceUID = f"{UID_ROOT}.9.{tag}"
        item.InstitutionName = INSTITUTION
        item.add_new(0x00090010, "LO", "ACME NESTED")
        item.add_new(0x00091001, "LO", "nested private secret")
        return Sequence([item])
    return {
        "PN": "Smith^Jane^" + marker, "DA": "20200115", "TM": "101530.25",
        "DT": "20200115101530", "AS": "045Y", "IS": "7", "DS": "1.5",
        "UI": f"{UID_ROOT}.7.{tag}", "US": 7, "SS": 7, "UL": 7, "SL": 7, "FL": 1.5, "FD": 1.5,
        "OB": b"\x01\x02", "OW": b"\x01\x02", "UN": b"\x01\x02", "AT": 0x00100010,
        "CS": marker, "UR": "http://example.org/" + marker,
        "SH": f"{marker} Doe", "AE": marker,
    }.get(vr, f"{marker} text by {PATIENT_NAME}")


def core_dataset(patient_id: str = PATIENT_ID, name: str = PATIENT_NAME,
                 study: str = "1", series: str = "1", instance: int = 1,
                 sop_class: str = CT_IMAGE, modality: str = "CT",
                 rows: int = 16, columns: int = 16) -> Dataset:
    number = int("".join(ch for ch in patient_id if ch.isdigit()) or 0)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = f"{UID_ROOT}.3.{number}.{study}.{series}.{instance}"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.SourceApplicationEntityTitle = "HOSPITAL_PACS"
    ds.PatientName = name
    ds.PatientID = patient_id
    ds.PatientBirthDate = BIRTH_DATE
    ds.PatientSex = "M"
    ds.AccessionNumber = ACCESSION
    ds.InstitutionName = INSTITUTION
    ds.StudyInstanceUID = f"{UID_ROOT}.1.{number}.{study}"
    ds.SeriesInstanceUID = f"{UID_ROOT}.2.{number}.{study}.{series}"
    ds.FrameOfReferenceUID = f"{UID_ROOT}.4.{number}.{study}"
    ds.StudyDate = "20200115"
    ds.StudyTime = "101500"
    ds.StudyID = "ST77"
    ds.Modality = modality
    ds.SeriesNumber = series
    ds.InstanceNumber = instance
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    pixels = (np.arange(rows * columns, dtype=np.uint16).reshape(rows, columns) * 7) % 4096
    ds.PixelData = pixels.tobytes()
    ds.add_new(0x00090010, "LO", "ACME MEDICAL")
    ds.add_new(0x00091001, "LO", f"private copy of {PATIENT_NAME}")
    ds.add_new(0x00091002, "LO", "kept private value")
    return ds


def rich_dataset(**core: object) -> Dataset:
    """The core plus every fixed-tag attribute of Table E.1-1, a curve and an overlay."""
    ds = core_dataset(**core)
    for row in fixed_tag_rows():
        tag = int(row["tag"], 16)
        if tag in CORE:
            continue
        vr = dictionary_VR(tag).split(" or ")[0]
        ds.add_new(tag, vr, value_for(tag, vr))
    ds.add_new(0x50003000, "OW", b"\x00\x01" * 4)  # Curve Data (retired, still in the table)
    ds.add_new(0x60000010, "US", 16)  # Overlay Rows: goes with its overlay's data
    ds.add_new(0x60003000, "OW", b"\x00" * 32)
    # A sequence the table does not name, nesting table attributes two levels deep.
    inner = Dataset()
    inner.PatientName = PATIENT_NAME
    inner.ReferencedSOPInstanceUID = f"{UID_ROOT}.8.2"
    outer = Dataset()
    outer.ReferencedSOPInstanceUID = f"{UID_ROOT}.8.1"
    outer.ReferencedSOPClassUID = CT_IMAGE
    outer.InstitutionName = INSTITUTION
    outer.ReferencedImageSequence = Sequence([inner])
    outer.add_new(0x00110010, "LO", "DEEP CREATOR")
    outer.add_new(0x00111001, "LO", "deep private")
    ds.ReferencedSeriesSequence = Sequence([outer])
    return ds


def write(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def identity_strings(ds: Dataset) -> list[bytes]:
    """Byte strings that must not appear anywhere in a de-identified output."""
    uids = [ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID,
            ds.FrameOfReferenceUID]
    texts = [str(ds.PatientName), str(ds.PatientName).replace("^", " "), ds.PatientID,
             BIRTH_DATE, ACCESSION, INSTITUTION, *uids]
    return [t.encode() for t in texts]
