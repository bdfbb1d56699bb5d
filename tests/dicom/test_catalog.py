"""Study indexing on real data: fo-dicom, WG04, DICOMDIRs, broken files, PNG/JPEG, the cache."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageFile
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels.decoders.base import Decoder
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medviewer.dicom import catalog as catalog_module
from medviewer.dicom import images, index_cache, reader
from medviewer.dicom.catalog import Catalog, index_path, is_ignored_file
from medviewer.dicom.index_cache import cache_file_for
from medviewer.dicom.reader import LoadError
from medviewer.jobs import CancelFlag, JobCancelled, Progress, run_to_end
from medviewer.paths import SAMPLE_STUDY_DIR

PYDICOM_DIRTESTS = Path(pydicom.__file__).parent / "data" / "test_files" / "dicomdirtests"


@pytest.fixture(autouse=True)
def no_pixel_decoding(monkeypatch):
    """Indexing reads headers only: any pixel decode during a test here is a failure."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("the catalog decoded pixel data")

    monkeypatch.setattr(reader.Instance, "stored_frame", refuse)
    for name in ("as_array", "iter_array", "as_buffer", "iter_buffer"):
        monkeypatch.setattr(Decoder, name, refuse)
    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)  # Pillow: header only


def run_index(path: Path, cache_dir: Path | None = None,
              cancel: CancelFlag | None = None) -> tuple[Catalog, list[Progress]]:
    events: list[Progress] = []
    result = run_to_end(index_path(path, cancel=cancel, cache_dir=cache_dir), events.append)
    return result, events


def indexable_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not is_ignored_file(p.name))


def error_paths(result: Catalog) -> set[Path]:
    return {e.path for e in result.errors}


# ---------------------------------------------------------------- real folders


@pytest.mark.filterwarnings("ignore:.*(Invalid value|exceeds the maximum length):UserWarning")
def test_fo_dicom_folder_indexes_good_files_and_names_each_bad_one(shared_data, tmp_path):
    folder = shared_data / "dicom" / "fo-dicom"
    result, events = run_index(folder, tmp_path / "cache")

    files = indexable_files(folder)
    malformed = folder / "GH177_D_CLUNIE_CT1_IVRLE_BigEndian_undefined_length.dcm"
    assert malformed in error_paths(result)
    # every file is exactly one of: an instance, an error, the DICOMDIR
    instance_paths = {inst.path for inst in result.instances()}
    assert not instance_paths & error_paths(result)
    assert instance_paths | error_paths(result) | {folder / "DICOMDIR"} >= set(files)
    assert len(instance_paths) + len(error_paths(result) & set(files)) + 1 == len(files)
    for good in ("CT-MONO2-16-ankle", "DIRW0007", "TestPattern_RGB.dcm", "multiframe.dcm",
                 "charset/chrH32.dcm", "mr_brucker.dcm"):
        assert folder / good in instance_paths, good
    assert len(instance_paths) > 55
    # the DICOMDIR beside them references 20 files that are not there: each is listed
    missing = [e for e in result.errors if "DICOMDIR lists it" in e.reason]
    assert len(missing) == 20
    assert all(e.reason.startswith(f"Cannot open {e.path}: ") and e.reason.endswith(".")
               for e in result.errors)
    # clutter is ignored by suffix, and counted
    assert {p.name for p in result.ignored} == {"minimumdict.xml", "minimumdict.xml.gz",
                                                "abd1.zip", "LICENSE-fo-dicom.txt"}
    # the ACR-NEMA file without file meta is indexed like any other
    chest = next(i for i in result.instances() if i.path.name == "CR-MONO1-10-chest")
    assert chest.rows > 0 and chest.photometric == "MONOCHROME1"
    assert events[-1] == Progress(len(files), len(files), f"Indexed {len(files)} files")


def test_wg04_folder_every_transfer_syntax_indexes_without_decoding(shared_data, tmp_path):
    folder = shared_data / "dicom" / "wg04"
    result, events = run_index(folder, tmp_path / "cache")
    files = indexable_files(folder)
    assert len(files) > 100
    assert result.errors == []
    assert len(result.instances()) == len(files)
    # the defective 12-bit lossy JPEGs have valid headers: indexed, their decode fails later
    assert any(i.path.parent.name == "JPLY" for i in result.instances())
    # the same images in 8 syntaxes share patient IDs: grouped under one patient each
    rg = [p for p in result.patients if p.patient_id.endswith("RG1") or p.name.endswith("RG1")]
    assert rg and len({s.uid for p in rg for s in p.studies}) >= 1
    syntaxes = {i.transfer_syntax for i in result.instances()}
    assert "1.2.840.10008.1.2.5" in syntaxes  # RLE
    assert "1.2.840.10008.1.2.4.90" in syntaxes  # JPEG 2000 lossless
    done = [e.done for e in events if e.total]
    assert done[:2] == [50, 100] and done[-1] == len(files)


def test_sorting_series_by_number_instances_by_number_then_path(tmp_path):
    result, _ = run_index(PYDICOM_DIRTESTS / "DICOMDIR", tmp_path / "cache")
    checked = 0
    for patient in result.patients:
        for study in patient.studies:
            numbers = [s.number for s in study.series]
            known = [n for n in numbers if n is not None]
            assert known == sorted(known) and numbers[:len(known)] == known
            for series in study.series:
                keys = [(i.instance_number is None, i.instance_number or 0, str(i.path))
                        for i in series.instances]
                assert keys == sorted(keys)
                checked += len(series.instances) > 1
    assert checked >= 3


def test_sample_study_is_one_patient_one_study_two_series(tmp_path):
    result, _ = run_index(SAMPLE_STUDY_DIR, tmp_path / "cache")
    assert result.errors == []
    [patient] = result.patients
    assert (patient.patient_id, patient.name) == ("DEMO-0001", "DEMO^CHEST^NOT-A-PATIENT")
    [study] = patient.studies
    assert [s.number for s in study.series] == [1, 2]
    assert [[i.instance_number for i in s.instances] for s in study.series] == [[1, 2, 3]] * 2
    photometrics = [i.photometric for i in result.instances()]
    assert photometrics.count("MONOCHROME1") == 1


# ---------------------------------------------------------------- DICOMDIR


def test_dicomdir_file_indexes_exactly_the_referenced_files(tmp_path):
    dicomdir = PYDICOM_DIRTESTS / "DICOMDIR"
    result, _ = run_index(dicomdir, tmp_path / "cache")
    referenced = set()
    for record in pydicom.dcmread(dicomdir).DirectoryRecordSequence:
        if "ReferencedFileID" in record:
            referenced.add(PYDICOM_DIRTESTS.joinpath(*record.ReferencedFileID))
    assert result.errors == []
    assert {i.path for i in result.instances()} == referenced
    assert len(result.patients) == 2
    assert result.root == dicomdir
    # the folder holds more than the DICOMDIR lists (TINY_ALPHA, other DICOMDIRs)
    assert len(indexable_files(PYDICOM_DIRTESTS)) > len(referenced) + 1


def test_fo_dicom_dicomdir_lists_every_missing_reference(shared_data, tmp_path):
    dicomdir = shared_data / "dicom" / "fo-dicom" / "DICOMDIR"
    result, _ = run_index(dicomdir, tmp_path / "cache")
    assert result.instances() == []
    assert len(result.errors) == 20
    first = result.errors[0]
    assert first.path == dicomdir.parent / "IMAGES" / "RLE" / "SC1_RLE"
    assert first.reason == (f"Cannot open {first.path}: the file is missing although "
                            f"{dicomdir} lists it.")


def _write_dicomdir(path: Path, references: list[list[str]]) -> None:
    """A minimal DICOMDIR with one PATIENT/STUDY/SERIES and an IMAGE record per reference."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.FileSetID = "CRAFTED"
    records = []
    for kind in ("PATIENT", "STUDY", "SERIES"):
        record = Dataset()
        record.DirectoryRecordType = kind
        records.append(record)
    for reference in references:
        record = Dataset()
        record.DirectoryRecordType = "IMAGE"
        record.ReferencedFileID = reference
        records.append(record)
    ds.DirectoryRecordSequence = Sequence(records)
    ds.save_as(path, enforce_file_format=True)


def _write_instance(path: Path, patient_id: str, number: int = 1,
                    description: str = "series") -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(path), patient_id])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = patient_id
    ds.PatientName = f"TEST^{patient_id}"
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[patient_id, "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[patient_id, "series"])
    ds.SeriesDescription = description
    ds.Modality = "OT"
    ds.InstanceNumber = number
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = 8
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(range(64))
    ds.save_as(path, enforce_file_format=True)


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about the odd CS values
def test_dicomdir_reference_escaping_its_folder_is_refused(tmp_path):
    outside = tmp_path / "OUTSIDE.DCM"
    _write_instance(outside, "SECRET")
    cd = tmp_path / "cd"
    (cd / "IMAGES").mkdir(parents=True)
    _write_instance(cd / "IMAGES" / "IM1", "INSIDE")
    _write_dicomdir(cd / "DICOMDIR", [
        ["IMAGES", "IM1"],
        ["..", "OUTSIDE.DCM"],
        ["../OUTSIDE.DCM"],
        [str(outside)],  # absolute
    ])

    for target in (cd / "DICOMDIR", cd):  # the DICOMDIR itself, and its folder
        result, _ = run_index(target, tmp_path / "cache")
        patients = {p.patient_id for p in result.patients}
        assert "SECRET" not in patients, target
        assert "INSIDE" in patients
        refusals = [e for e in result.errors if "outside the DICOMDIR's folder" in e.reason]
        assert len(refusals) == 3, [e.reason for e in result.errors]
        assert all(e.path == cd / "DICOMDIR" for e in refusals)
        assert all(e.reason.startswith(f"Cannot open {cd / 'DICOMDIR'}: a directory record "
                                       "refers to") for e in refusals)
        assert refusals[0].reason.endswith("refers to '..\\OUTSIDE.DCM', which lies outside "
                                           "the DICOMDIR's folder, so it was not opened.")


def test_dicomdir_reference_through_a_link_leading_outside_is_refused(tmp_path):
    outside = tmp_path / "elsewhere" / "OUTSIDE.DCM"
    outside.parent.mkdir()
    _write_instance(outside, "SECRET")
    cd = tmp_path / "cd"
    (cd / "IMAGES").mkdir(parents=True)
    (cd / "IMAGES" / "LINK").symlink_to(outside)
    _write_dicomdir(cd / "DICOMDIR", [["IMAGES", "LINK"]])
    result, _ = run_index(cd / "DICOMDIR", tmp_path / "cache")
    assert result.instances() == []
    [error] = result.errors
    assert "a link that leads outside the DICOMDIR's folder" in error.reason


def test_dicomdir_references_survive_a_lower_case_copy(tmp_path):
    """CDs copied by some tools come out in lower case; the references still resolve."""
    cd = tmp_path / "cd"
    (cd / "images").mkdir(parents=True)
    _write_instance(cd / "images" / "im1", "LOWER")
    _write_dicomdir(cd / "DICOMDIR", [["IMAGES", "IM1"]])
    result, _ = run_index(cd / "DICOMDIR", tmp_path / "cache")
    assert result.errors == []
    assert [i.path for i in result.instances()] == [cd / "images" / "im1"]


# ---------------------------------------------------------------- broken and mixed folders


def test_mixed_folder_with_broken_files(shared_data, tmp_path):
    folder = tmp_path / "mixed"
    (folder / "sub").mkdir(parents=True)
    wg04 = shared_data / "dicom" / "wg04" / "REF"
    good = [wg04 / "CT1_UNC", wg04 / "MR1_UNC", SAMPLE_STUDY_DIR / "S01_I01.dcm"]
    for source in good:
        shutil.copy(source, folder / "sub" / source.name)
    xray = next((shared_data / "xray" / "kermany224" / "test" / "NORMAL").glob("*.jpeg"))
    shutil.copy(xray, folder / "xray.jpeg")
    data = (wg04 / "CT1_UNC").read_bytes()
    (folder / "truncated.dcm").write_bytes(data[:700])
    (folder / "empty.dcm").write_bytes(b"")
    (folder / "garbage").write_bytes(os.urandom(4096))
    (folder / "fake.png").write_text("not a picture")
    (folder / "notes.txt").write_text("clinic notes")
    (folder / "export.zip").write_bytes(b"PK\x03\x04")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")

    result, _ = run_index(folder, tmp_path / "cache")

    assert sorted(i.path.name for i in result.instances()) == sorted(
        [p.name for p in good] + ["xray.jpeg"])
    bad = {folder / n for n in ("truncated.dcm", "empty.dcm", "garbage", "fake.png")}
    assert error_paths(result) == bad
    reasons = {e.path.name: e.reason for e in result.errors}
    assert reasons["empty.dcm"] == f"Cannot open {folder / 'empty.dcm'}: the file is empty."
    assert "not a DICOM file" in reasons["garbage"]
    assert "PNG/JPEG" in reasons["fake.png"]
    assert "truncated" in reasons["truncated.dcm"] or "malformed" in reasons["truncated.dcm"]
    assert {p.name for p in result.ignored} == {"notes.txt", "export.zip", ".DS_Store"}


def test_png_and_jpeg_xrays_are_single_image_studies(shared_data, tmp_path):
    folder = tmp_path / "xrays"
    folder.mkdir()
    sources = sorted((shared_data / "xray" / "kermany224" / "test" / "PNEUMONIA").glob("*.jpeg"))[:3]
    for source in sources:
        shutil.copy(source, folder / source.name)
    gradient = np.tile(np.arange(224, dtype=np.uint8), (224, 1))
    Image.fromarray(gradient).save(folder / "as_png.png")  # no file decode: the guard is on

    result, _ = run_index(folder, tmp_path / "cache")

    assert result.errors == []
    assert len(result.instances()) == 4
    assert len(result.patients) == 4  # one synthetic study per image, keyed by content
    for patient in result.patients:
        [study] = patient.studies
        [series] = study.series
        [instance] = series.instances
        assert instance.content_hash == images.content_hash(instance.path)
        assert patient.patient_id == f"IMG-{instance.content_hash[:12]}"
        assert (instance.rows, instance.columns, instance.modality) == (224, 224, "OT")


def test_single_files(tmp_path):
    single = SAMPLE_STUDY_DIR / "S02_I01.dcm"
    result, events = run_index(single, tmp_path / "cache")
    [instance] = result.instances()
    assert instance.path == single and instance.instance_number == 1
    assert events[-1] == Progress(1, 1, "Indexed 1 file")

    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"\x00" * 10)
    result, _ = run_index(broken, tmp_path / "cache")
    assert result.instances() == []
    assert [e.path for e in result.errors] == [broken]


def test_missing_path_is_one_sentence(tmp_path):
    with pytest.raises(LoadError) as raised:
        run_index(tmp_path / "nowhere")
    assert str(raised.value) == f"Cannot open {tmp_path / 'nowhere'}: it does not exist."


# ---------------------------------------------------------------- the cache


def _copy_some(shared_data: Path, folder: Path) -> list[Path]:
    folder.mkdir(parents=True)
    sources = sorted((shared_data / "dicom" / "wg04" / "REF").iterdir())[:8]
    copies = [Path(shutil.copy(s, folder / s.name)) for s in sources]
    (folder / "bad.dcm").write_bytes(b"DICM but not really")
    return copies + [folder / "bad.dcm"]


def test_cache_reuse_change_add_delete(shared_data, tmp_path):
    folder = tmp_path / "study"
    files = _copy_some(shared_data, folder)
    cache = tmp_path / "cache"

    first, _ = run_index(folder, cache)
    assert first.from_cache == 0
    assert len(first.instances()) == len(files) - 1 and len(first.errors) == 1

    second, _ = run_index(folder, cache)
    assert second.from_cache == len(files)  # errors are cached too
    assert second.patients == first.patients and second.errors == first.errors

    # change one file: it must be read again and its new header shown
    changed = files[0]
    ds = pydicom.dcmread(changed)
    ds.SeriesDescription = "CHANGED AFTER INDEXING"
    ds.save_as(changed)
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    third, _ = run_index(folder, cache)
    assert third.from_cache == len(files) - 1
    descriptions = {s.description for p in third.patients for st in p.studies for s in st.series}
    assert "CHANGED AFTER INDEXING" in descriptions

    # delete one, add one
    files[1].unlink()
    _write_instance(folder / "new.dcm", "NEWCOMER")
    fourth, _ = run_index(folder, cache)
    paths = {i.path for i in fourth.instances()}
    assert files[1] not in paths and folder / "new.dcm" in paths
    assert fourth.from_cache == len(files) - 1  # all but the deleted one and the new one
    fifth, _ = run_index(folder, cache)
    assert fifth.from_cache == len(files)  # 9 files again: nothing stale left in the cache
    assert fifth.patients == fourth.patients


def test_cache_is_keyed_by_resolved_folder_and_in_user_cache_dir(shared_data, tmp_path,
                                                                  isolated_home):
    folder = tmp_path / "study"
    files = _copy_some(shared_data, folder)
    run_index(folder)  # default cache location
    assert cache_file_for(folder).is_relative_to(isolated_home)
    assert cache_file_for(folder).is_file()
    link = tmp_path / "link-to-study"
    link.symlink_to(folder)
    again, _ = run_index(link)
    assert again.from_cache == len(files)


def test_cache_holds_header_fields_and_never_pixels(shared_data, tmp_path):
    folder = tmp_path / "study"
    files = _copy_some(shared_data, folder)
    cache = tmp_path / "cache"
    run_index(folder, cache)
    db = cache_file_for(folder, cache)
    data_bytes = sum(f.stat().st_size for f in files)
    assert db.stat().st_size < 64 * 1024 < data_bytes
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT path, size, mtime_ns, record FROM files").fetchall()
        types = {t for (t,) in conn.execute("SELECT DISTINCT typeof(record) FROM files")}
    assert types == {"text"}
    assert len(rows) == len(files)
    for _path, _size, _mtime, record in rows:
        decoded = json.loads(record)
        assert len(record) < 2000
        assert not {"PixelData", "pixels", "pixel_data"} & set(decoded)


def test_corrupt_cache_is_discarded_and_rebuilt(shared_data, tmp_path):
    folder = tmp_path / "study"
    files = _copy_some(shared_data, folder)
    cache = tmp_path / "cache"
    run_index(folder, cache)
    db = cache_file_for(folder, cache)
    db.write_bytes(b"this is not an SQLite database" * 100)
    rebuilt, _ = run_index(folder, cache)
    assert rebuilt.from_cache == 0 and len(rebuilt.instances()) == len(files) - 1
    reused, _ = run_index(folder, cache)
    assert reused.from_cache == len(files)

    # one damaged row: only that file is read again
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE files SET record = '{not json' WHERE path = ?",
                     (os.fsencode(files[2].name),))  # paths are kept as bytes
    partly, _ = run_index(folder, cache)
    assert partly.from_cache == len(files) - 1
    assert partly.patients == reused.patients


def test_unusable_cache_folder_still_indexes(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    for _ in range(2):
        result, _ = run_index(SAMPLE_STUDY_DIR, blocker / "cache")
        assert len(result.instances()) == 6 and result.from_cache == 0


def test_old_caches_are_pruned(tmp_path, monkeypatch):
    monkeypatch.setattr(index_cache, "MAX_CACHE_FILES", 2)
    cache = tmp_path / "cache"
    folders = []
    for name in ("one", "two", "three"):
        folder = tmp_path / name
        folder.mkdir()
        shutil.copy(SAMPLE_STUDY_DIR / "S01_I01.dcm", folder)
        folders.append(folder)
    now = time.time()
    for age, folder in ((3000, folders[0]), (2000, folders[1])):
        run_index(folder, cache)
        os.utime(cache_file_for(folder, cache), (now - age, now - age))
    run_index(folders[2], cache)  # a third cache: the least recently used one goes
    assert sorted(cache.glob("*.sqlite")) == sorted(
        [cache_file_for(folders[1], cache), cache_file_for(folders[2], cache)])
    again, _ = run_index(folders[2], cache)
    assert again.from_cache == 1


def test_cancel_mid_way_keeps_the_work_done(shared_data, tmp_path):
    folder = shared_data / "dicom" / "wg04"
    cache = tmp_path / "cache"
    flag = CancelFlag()
    job = index_path(folder, cancel=flag, cache_dir=cache)
    seen = []
    with pytest.raises(JobCancelled):
        for event in job:
            seen.append(event)
            if event.total and event.done >= 50:
                flag.cancel()
    assert seen[-1].done == 50
    resumed, _ = run_index(folder, cache)
    assert resumed.from_cache == 50
    assert len(resumed.instances()) == len(indexable_files(folder))


def test_cancel_before_start(tmp_path):
    flag = CancelFlag()
    flag.cancel()
    with pytest.raises(JobCancelled):
        run_index(SAMPLE_STUDY_DIR, tmp_path / "cache", cancel=flag)


def test_records_never_hold_patient_data_in_cache_file_names(tmp_path):
    name = cache_file_for(SAMPLE_STUDY_DIR, tmp_path).name
    assert "sample" not in name and name.endswith(".sqlite")
    assert all(c in "0123456789abcdef" for c in name.removesuffix(".sqlite"))


def test_unexpected_reader_failure_becomes_an_error_entry(tmp_path, monkeypatch):
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("S01_I01.dcm", "S01_I02.dcm"):
        shutil.copy(SAMPLE_STUDY_DIR / name, folder / name)
    real_read_header = catalog_module.read_header

    def flaky(path):
        if Path(path).name == "S01_I02.dcm":
            raise ZeroDivisionError("bug")
        return real_read_header(path)

    monkeypatch.setattr(catalog_module, "read_header", flaky)
    result, _ = run_index(folder, tmp_path / "cache")
    assert len(result.instances()) == 1
    assert [e.reason for e in result.errors] == [
        f"Cannot open {folder / 'S01_I02.dcm'}: {catalog_module.UNEXPECTED_FAILURE}."]


# ---------------------------------------------------------------- links: one rule (#17)


def _linked_folder(tmp_path: Path) -> tuple[Path, Path]:
    outside = tmp_path / "elsewhere" / "OUTSIDE.DCM"
    outside.parent.mkdir()
    _write_instance(outside, "SECRET")
    folder = tmp_path / "opened"
    (folder / "sub").mkdir(parents=True)
    _write_instance(folder / "IM1", "INSIDE")
    (folder / "sub" / "to-inside").symlink_to(folder / "IM1")
    (folder / "to-outside").symlink_to(outside)
    (folder / "to-elsewhere").symlink_to(outside.parent, target_is_directory=True)
    (folder / "sub" / "loop").symlink_to(folder, target_is_directory=True)
    return folder, outside


def test_a_folder_does_not_follow_links_out_of_it_unless_asked(tmp_path):
    folder, outside = _linked_folder(tmp_path)
    result, _ = run_index(folder, tmp_path / "cache")
    assert {p.patient_id for p in result.patients} == {"INSIDE"}
    paths = sorted(i.path.name for i in result.instances())
    assert paths == ["IM1", "to-inside"]  # a link inside the folder is followed
    assert sorted(e.reason for e in result.errors) == [
        f"Cannot open {folder.resolve() / 'to-elsewhere'}: it is a link to a folder outside "
        "the opened folder, so it was not followed.",
        f"Cannot open {folder.resolve() / 'to-outside'}: it is a link to a file outside the "
        "opened folder, so it was not followed."]
    followed = run_to_end(index_path(folder, cache_dir=tmp_path / "cache", follow_links=True))
    assert {p.patient_id for p in followed.patients} == {"INSIDE", "SECRET"}
    # to-outside and elsewhere/OUTSIDE.DCM; the loop back to the folder is not walked again
    assert len([i for i in followed.instances() if i.sop_instance_uid
                == next(iter(p for p in followed.patients if p.patient_id == "SECRET"))
                .studies[0].series[0].instances[0].sop_instance_uid]) == 2
    assert followed.errors == []


def test_a_dicomdir_follows_the_same_rule(tmp_path):
    outside = tmp_path / "elsewhere" / "OUTSIDE.DCM"
    outside.parent.mkdir()
    _write_instance(outside, "SECRET")
    cd = tmp_path / "cd"
    (cd / "IMAGES").mkdir(parents=True)
    (cd / "IMAGES" / "LINK").symlink_to(outside)
    _write_dicomdir(cd / "DICOMDIR", [["IMAGES", "LINK"]])
    followed = run_to_end(index_path(cd / "DICOMDIR", cache_dir=tmp_path / "c", follow_links=True))
    assert {p.patient_id for p in followed.patients} == {"SECRET"}
    scanned, _ = run_index(cd, tmp_path / "cache")  # the same link met by a folder scan
    assert scanned.instances() == [] and len(scanned.errors) == 1
    assert "outside the opened folder" in scanned.errors[0].reason


# ---------------------------------------------------------------- DICOMDIR value types


@pytest.mark.parametrize("make_odd", [
    lambda r: r.add_new(0x00041500, "US", 7),
    lambda r: r.add_new(0x00041500, "SQ", Sequence([Dataset()])),
    lambda r: r.add_new(0x00041500, "OB", b"\xff\xfe\x80\x00"),
    lambda r: r.add_new(0x00041500, "FD", 1.5),
], ids=["number", "sequence", "binary", "float"])
def test_a_dicomdir_record_of_an_unexpected_type_is_one_error_entry(tmp_path, caplog, make_odd):
    cd = tmp_path / "cd"
    (cd / "IMAGES").mkdir(parents=True)
    _write_instance(cd / "IMAGES" / "IM1", "INSIDE")
    _write_dicomdir(cd / "DICOMDIR", [["IMAGES", "IM1"], ["IMAGES", "ODD"]])
    ds = pydicom.dcmread(cd / "DICOMDIR")
    odd = ds.DirectoryRecordSequence[-1]
    del odd[0x00041500]
    make_odd(odd)
    ds.save_as(cd / "DICOMDIR", enforce_file_format=True)
    with caplog.at_level(logging.WARNING):
        result, _ = run_index(cd / "DICOMDIR", tmp_path / "cache")
    assert [p.patient_id for p in result.patients] == ["INSIDE"]
    [error] = result.errors
    assert "a directory record could not be read" in error.reason
    assert caplog.text == ""  # nothing (let alone a traceback) for the terminal


def test_a_directory_record_sequence_that_is_not_a_sequence(tmp_path, caplog):
    cd = tmp_path / "cd"
    cd.mkdir()
    _write_dicomdir(cd / "DICOMDIR", [])
    ds = pydicom.dcmread(cd / "DICOMDIR")
    del ds.DirectoryRecordSequence
    ds.add_new(0x00041220, "LO", "not records")
    ds.save_as(cd / "DICOMDIR", enforce_file_format=True)
    with caplog.at_level(logging.WARNING):
        result = run_to_end(index_path(cd / "DICOMDIR", cache_dir=tmp_path / "cache"))
    assert not result.could_open and caplog.text == ""
    assert any("could not be read" in e.reason for e in result.errors)


def test_could_open_tells_what_is_worth_remembering(tmp_path):
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"\0" * 300)
    assert not run_to_end(index_path(bad, cache_dir=tmp_path / "cache")).could_open
    assert run_to_end(index_path(SAMPLE_STUDY_DIR, cache_dir=tmp_path / "cache")).could_open
