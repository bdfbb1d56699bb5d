"""The de-identified output as a File-set: the DICOMDIR written by FileSetLayout (its records
linked by byte offsets, read by pydicom, MedViewer's catalog, DCMTK and dicom3tools), the
raw element writer (the same bytes as pydicom's), inputs in every encoding, and the file
meta and preamble replaced."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.fileset import FileSet
from pydicom.filewriter import write_dataset
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian

from medviewer.dicom.catalog import index_path
from medviewer.dicom.deid import raw
from medviewer.dicom.deid.fileset import FileSetLayout
from medviewer.dicom.deid.job import DeidRequest, deidentify_job
from medviewer.dicom.deid.profile import Profile
from medviewer.jobs import run_to_end
from tests.dicom import corpus_files
from tests.dicom.deid_helpers import core_dataset, rich_dataset, write

ITEM = b"\xfe\xff\x00\xe0"


def study_folder(folder: Path) -> int:
    """Three patients: two studies of one series, one study of two series, one study of
    one series; two images per series except the last one's: 9 files."""
    count = 0
    for patient in (1, 2, 3):
        for study in range(1, 3 if patient == 1 else 2):
            for series in range(1, 3 if patient == 2 else 2):
                for instance in (1, 2) if patient != 3 else (1,):
                    ds = core_dataset(patient_id=f"PID-{patient}", study=str(study),
                                      series=str(series), instance=instance)
                    write(ds, folder / f"p{patient}s{study}e{series}i{instance}.dcm")
                    count += 1
    return count


def deid(inputs, output, **options):
    return run_to_end(deidentify_job(DeidRequest(list(inputs), output, **options)))


def run_tool(*command: object) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True,
                          timeout=60, check=False)


def only_file(folder: Path) -> Path:
    (path,) = [p for p in folder.rglob("*") if p.is_file() and p.name != "DICOMDIR"]
    return path


def records_by_offset(path: Path) -> tuple[pydicom.Dataset, dict[int, pydicom.Dataset]]:
    """The DICOMDIR and its records by the byte offset of their item tags, found by walking
    the encoded bytes (not by trusting the offsets under test)."""
    data = path.read_bytes()
    ds = pydicom.dcmread(path)
    records = list(ds.DirectoryRecordSequence)
    # The record sequence is the last element; walk its items by their lengths.
    start = data.index(b"\x04\x00\x20\x12SQ\x00\x00") + 12
    offsets, position = [], start
    while position < len(data):
        assert data[position:position + 4] == ITEM
        length = struct.unpack("<I", data[position + 4:position + 8])[0]
        offsets.append(position)
        position += 8 + length
    assert position == len(data) and len(offsets) == len(records)
    return ds, dict(zip(offsets, records))


def test_dicomdir_records_are_linked_by_their_byte_offsets(tmp_path):
    files = study_folder(tmp_path / "in")
    result = deid([tmp_path / "in"], tmp_path / "out")
    assert result.written == files == 9
    ds, by_offset = records_by_offset(result.dicomdir)

    def chain(offset: int) -> list[pydicom.Dataset]:
        found = []
        while offset:
            record = by_offset[offset]  # a KeyError here: an offset points between records
            found.append(record)
            offset = record.OffsetOfTheNextDirectoryRecord
        return found

    patients = chain(ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity)
    assert by_offset[ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity] is patients[-1]
    assert [p.DirectoryRecordType for p in patients] == ["PATIENT"] * 3
    images = []
    shape = []
    for patient in patients:
        studies = chain(patient.OffsetOfReferencedLowerLevelDirectoryEntity)
        for study in studies:
            assert study.DirectoryRecordType == "STUDY" and study.StudyDate
            series_list = chain(study.OffsetOfReferencedLowerLevelDirectoryEntity)
            for series in series_list:
                assert series.DirectoryRecordType == "SERIES"
                leaves = chain(series.OffsetOfReferencedLowerLevelDirectoryEntity)
                assert all(leaf.OffsetOfReferencedLowerLevelDirectoryEntity == 0
                           for leaf in leaves)
                images += leaves
                shape.append(len(leaves))
    assert len(by_offset) == 3 + 4 + 5 + 9 == len(patients) + 4 + len(shape) + len(images)
    assert sorted(shape) == [1, 2, 2, 2, 2]
    for image in images:
        assert image.DirectoryRecordType == "IMAGE" and image.RecordInUseFlag == 0xFFFF
        target = result.output.joinpath(*image.ReferencedFileID)
        instance = pydicom.dcmread(target)
        assert instance.SOPInstanceUID == image.ReferencedSOPInstanceUIDInFile
        assert instance.SOPClassUID == image.ReferencedSOPClassUIDInFile
        assert instance.file_meta.TransferSyntaxUID == image.ReferencedTransferSyntaxUIDInFile
    # pydicom's FileSet and MedViewer's catalog read the same File-set.
    file_set = FileSet(ds)
    assert len(file_set) == 9 and len(file_set.find_values("PatientID")) == 3
    catalog = run_to_end(index_path(result.dicomdir))
    assert len(catalog.instances()) == 9 and not catalog.errors


@pytest.mark.skipif(shutil.which("dcmdump") is None, reason="DCMTK is not installed")
def test_dcmtk_reads_the_dicomdir(tmp_path):
    study_folder(tmp_path / "in")
    result = deid([tmp_path / "in"], tmp_path / "out")
    dump = run_tool("dcmdump", "-q", result.dicomdir)
    assert dump.returncode == 0, dump.stderr
    assert dump.stdout.count('"Directory Record" IMAGE') == 9
    assert dump.stdout.count('"Directory Record" PATIENT') == 3


@pytest.mark.skipif(shutil.which("dciodvfy") is None or shutil.which("dcdirdmp") is None,
                    reason="dicom3tools is not installed")
def test_dicom3tools_finds_no_error_in_the_dicomdir(tmp_path):
    study_folder(tmp_path / "in")
    result = deid([tmp_path / "in"], tmp_path / "out")
    check = run_tool("dciodvfy", result.dicomdir)
    report = check.stdout + check.stderr
    assert "BasicDirectory" in report and "Error" not in report, report
    listing = run_tool("dcdirdmp", result.dicomdir)
    # dcdirdmp follows the offsets from the root: every file is reached.
    assert (listing.stdout + listing.stderr).count("-> PT") == 9


def test_records_are_encoded_in_the_files_character_set(tmp_path):
    layout = FileSetLayout()
    ds = core_dataset(name="Ωmega^Élise")
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.StudyDescription = "Étude thoracique"
    write(ds, tmp_path / "in.dcm")
    file_id = layout.add(pydicom.dcmread(tmp_path / "in.dcm"))
    assert file_id == ("PT000000", "ST000000", "SE000000", "IM000000")
    layout.write(tmp_path / "DICOMDIR")
    records = pydicom.dcmread(tmp_path / "DICOMDIR").DirectoryRecordSequence
    assert str(records[0].PatientName) == "Ωmega^Élise"
    assert records[1].StudyDescription == "Étude thoracique"
    assert all(r.SpecificCharacterSet == "ISO_IR 192" for r in records)


def test_a_file_that_could_not_be_written_leaves_no_record(tmp_path):
    layout = FileSetLayout()
    kept = layout.add(core_dataset(patient_id="PID-1", instance=1))
    lost = layout.add(core_dataset(patient_id="PID-2", instance=1))
    second = layout.add(core_dataset(patient_id="PID-1", instance=2))
    layout.remove(lost)
    assert layout.file_ids() == [kept, second] and second[-1] == "IM000001"
    layout.write(tmp_path / "DICOMDIR")
    records = pydicom.dcmread(tmp_path / "DICOMDIR").DirectoryRecordSequence
    assert [r.DirectoryRecordType for r in records] == ["PATIENT", "STUDY", "SERIES", "IMAGE",
                                                         "IMAGE"]
    after = layout.add(core_dataset(patient_id="PID-3", instance=1))
    assert after[0] == "PT000002"  # a name once handed out is never reused


@pytest.mark.parametrize("name, path", corpus_files(), ids=[n for n, _ in corpus_files()])
def test_the_raw_writer_writes_what_pydicom_writes(name, path):
    try:
        original = pydicom.dcmread(path)
        copy = pydicom.dcmread(path)
    except Exception:  # noqa: BLE001 - unreadable corpus files test the reader, not this
        pytest.skip("pydicom cannot read it")
    implicit, little = original.original_encoding
    if implicit is None:
        pytest.skip("no dataset encoding")
    expected, written = DicomBytesIO(), DicomBytesIO()
    for buffer in (expected, written):
        buffer.is_implicit_VR, buffer.is_little_endian = implicit, little
    try:
        write_dataset(expected, original)
    except Exception as exc:  # noqa: BLE001 - then the raw writer must fail as well
        with pytest.raises(type(exc)):
            raw.write_elements(written, copy)
        return
    raw.write_elements(written, copy)
    assert written.getvalue() == expected.getvalue()


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRBigEndian],
                         ids=["implicit VR", "big endian"])
def test_every_encoding_gets_the_same_actions(tmp_path, syntax):
    """Raw values are changed only in little endian; other encodings go through pydicom.
    Both give the same de-identified values."""
    profile = Profile(frozenset({"retain-modified-dates", "clean-descriptors"}))
    reference = rich_dataset()
    other = rich_dataset()
    other.file_meta.TransferSyntaxUID = syntax
    write(reference, tmp_path / "a" / "in.dcm")
    write(other, tmp_path / "b" / "in.dcm")
    key = tmp_path / "k.key"
    deid([tmp_path / "a"], tmp_path / "out-a", profile=profile, key_file=key)
    deid([tmp_path / "b"], tmp_path / "out-b", profile=profile, key_file=key)
    a, b = (pydicom.dcmread(only_file(tmp_path / name)) for name in ("out-a", "out-b"))
    assert b.file_meta.TransferSyntaxUID == syntax
    assert b.original_encoding == (syntax.is_implicit_VR, syntax.is_little_endian)
    del a.PixelData, b.PixelData  # the test's pixel bytes are not swapped for big endian

    def values(ds: Dataset) -> list:
        return [(e.tag, str(e.value)) for e in ds.iterall() if e.VR != "SQ"]

    assert values(a) == values(b)


def test_file_meta_and_preamble_are_replaced(tmp_path):
    ds = core_dataset()
    ds.preamble = b"II*\x00" + b"Doe^Johnathan".ljust(124, b"\x00")  # e.g. a TIFF header
    ds.file_meta.add_new(0x00020026, "UR", "dicom://pacs.st-elsewhere.example:104")
    ds.file_meta.add_new(0x00020100, "UI", "1.2.3.4")
    ds.file_meta.add_new(0x00020102, "OB", b"private")
    write(ds, tmp_path / "in" / "ct.dcm")
    result = deid([tmp_path / "in"], tmp_path / "out")
    path = only_file(result.output)
    data = path.read_bytes()
    assert data[:132] == b"\x00" * 128 + b"DICM"
    out = pydicom.dcmread(path)
    assert sorted(int(t) for t in out.file_meta.keys()) == [  # noqa: SIM118
        0x00020000, 0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020012, 0x00020013]
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert out.file_meta.FileMetaInformationVersion == b"\x00\x01"
    assert b"st-elsewhere" not in data and b"Doe" not in data
