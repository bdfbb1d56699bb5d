"""De-identifying files, folders and DICOMDIRs into a new folder: the output opens in the
viewer and in pydicom, its DICOMDIR lists it, no byte of it names the patient, burned-in
files are refused or masked, the inputs are never touched, and `medviewer deid` reports."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.fileset import FileSet

from medviewer.cli import main
from medviewer.dicom.catalog import index_path
from medviewer.dicom.deid.job import DeidRequest, deidentify_job
from medviewer.dicom.deid.pixels import MaskRect, PixelMask, burned_in_reason
from medviewer.dicom.deid.profile import Profile
from medviewer.dicom.reader import open_instance
from medviewer.errors import UserError
from medviewer.jobs import CancelFlag, JobCancelled, run_to_end
from tests.dicom.deid_helpers import (
    US_IMAGE,
    core_dataset,
    identity_strings,
    rich_dataset,
    write,
)


def make_study(folder: Path) -> list[pydicom.Dataset]:
    """Two patients: a rich CT of three images and a plain CT of one."""
    originals = []
    for instance in (1, 2, 3):
        ds = rich_dataset(instance=instance)
        write(ds, folder / "patient1" / f"ct{instance}.dcm")
        originals.append(ds)
    other = core_dataset(patient_id="PID-777", name="Roe^Richard", instance=1)
    write(other, folder / "patient2" / "ct.dcm")
    originals.append(other)
    return originals


def digest_tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def deid(inputs, output, **options):
    return run_to_end(deidentify_job(DeidRequest(list(inputs), output, **options)))


def output_files(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.rglob("*")) if p.is_file()]


def test_a_folder_becomes_a_deidentified_fileset(tmp_path):
    originals = make_study(tmp_path / "in")
    before = digest_tree(tmp_path / "in")
    result = deid([tmp_path / "in"], tmp_path / "out",
                  profile=Profile(frozenset({"retain-modified-dates"})),
                  key_file=tmp_path / "project.key")
    assert digest_tree(tmp_path / "in") == before  # the input is never written to
    assert result.written == 4 and result.refused == [] and result.patients == 2
    assert result.dicomdir == tmp_path / "out" / "DICOMDIR"
    assert result.changes[("Patient's Name", "P")] == 4
    assert result.changes[("Private attributes", "X")] == 4
    file_set = FileSet(pydicom.dcmread(result.dicomdir))
    assert len(file_set) == 4
    assert len(file_set.find_values("PatientID")) == 2
    images = [p for p in output_files(tmp_path / "out") if p.name != "DICOMDIR"]
    by_uid = {}
    for path in images:
        ds = pydicom.dcmread(path)
        assert ds.PatientIdentityRemoved == "YES"
        by_uid[ds.SOPInstanceUID] = ds
        instance = open_instance(path)  # the viewer opens it and decodes its pixels
        assert instance.stored_frame(0).shape == (16, 16)
    for original in originals:  # pixel data unchanged
        from medviewer.dicom.deid.keys import load_or_create_key

        key, _ = load_or_create_key(tmp_path / "project.key")
        assert by_uid[key.uid(original.SOPInstanceUID)].PixelData == original.PixelData
    catalog = run_to_end(index_path(result.dicomdir))  # the app's own DICOMDIR indexing
    assert len(catalog.instances()) == 4 and not catalog.errors
    assert result.mapping_file is not None and result.mapping_file.stat().st_mode & 0o077 == 0
    assert "PID-48151623" in result.mapping_file.read_text()


def test_no_output_byte_names_the_patient(tmp_path):
    originals = make_study(tmp_path / "in")
    result = deid([tmp_path / "in"], tmp_path / "out",
                  profile=Profile(frozenset({"retain-modified-dates", "clean-descriptors"})),
                  key_file=tmp_path / "project.key")
    assert result.written == 4
    needles = {n for ds in originals for n in identity_strings(ds)}
    files = output_files(tmp_path / "out")
    assert any(p.name == "DICOMDIR" for p in files)
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"{needle!r} found in {path}"
            assert needle.upper() not in data.upper(), f"{needle!r} found in {path}"


def test_same_key_gives_the_same_uids_across_exports(tmp_path):
    make_study(tmp_path / "in")
    key = tmp_path / "project.key"
    deid([tmp_path / "in" / "patient1"], tmp_path / "a", key_file=key)
    deid([tmp_path / "in"], tmp_path / "b", key_file=key)

    def uids(folder):
        return {pydicom.dcmread(p).SOPInstanceUID for p in output_files(folder)
                if p.name != "DICOMDIR"}

    assert uids(tmp_path / "a") < uids(tmp_path / "b")
    deid([tmp_path / "in" / "patient1"], tmp_path / "c")  # no key: a one-run key
    assert uids(tmp_path / "c").isdisjoint(uids(tmp_path / "a"))


def test_a_dicomdir_input_is_followed(tmp_path):
    make_study(tmp_path / "in")
    first = deid([tmp_path / "in"], tmp_path / "first")
    second = deid([first.dicomdir], tmp_path / "second")
    assert second.written == 4 and second.skipped_dicomdirs == 0


def ultrasound(path: Path) -> pydicom.Dataset:
    ds = core_dataset(sop_class=US_IMAGE, modality="US", rows=20, columns=30, instance=9)
    ds.BurnedInAnnotation = "YES"
    write(ds, path)
    return ds


def test_burned_in_files_are_refused_unless_confirmed(tmp_path):
    ultrasound(tmp_path / "in" / "us.dcm")
    write(core_dataset(), tmp_path / "in" / "ct.dcm")
    result = deid([tmp_path / "in"], tmp_path / "out")
    assert result.written == 1 and len(result.refused) == 1
    sentence = str(result.refused[0])
    assert "us.dcm" in sentence and "Burned In Annotation" in sentence
    confirmed = deid([tmp_path / "in"], tmp_path / "out2", confirm_burned_in=True)
    assert confirmed.written == 2 and not confirmed.refused


def test_masks_black_out_every_frame(tmp_path):
    original = ultrasound(tmp_path / "in" / "us.dcm")
    mask = PixelMask((MaskRect(0, 0, 30, 4), MaskRect(25, 10, 10, 10)), rows=20, columns=30)
    result = deid([tmp_path / "in"], tmp_path / "out", mask=mask)
    assert result.written == 1 and result.masked == 1
    (path,) = [p for p in output_files(tmp_path / "out") if p.name != "DICOMDIR"]
    ds = pydicom.dcmread(path)
    assert ds.BurnedInAnnotation == "NO"
    assert "113101" in [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]
    before = original.pixel_array
    after = ds.pixel_array
    fill = before.min()
    assert (after[:4] == fill).all() and (after[10:20, 25:30] == fill).all()
    assert np.array_equal(after[4:10, :25], before[4:10, :25])
    wrong_size = PixelMask((MaskRect(0, 0, 5, 5),), rows=64, columns=64)
    refused = deid([tmp_path / "in"], tmp_path / "out2", mask=wrong_size)
    assert refused.written == 0 and len(refused.refused) == 1


def test_unreadable_files_are_refused_with_a_sentence(tmp_path):
    write(core_dataset(), tmp_path / "in" / "ct.dcm")
    (tmp_path / "in" / "junk.dcm").write_bytes(b"not dicom at all" * 10)
    result = deid([tmp_path / "in"], tmp_path / "out")
    assert result.written == 1
    (refused,) = result.refused
    assert str(refused).startswith(str(tmp_path / "in" / "junk.dcm"))


def test_the_output_must_be_new_and_outside_the_input(tmp_path):
    write(core_dataset(), tmp_path / "in" / "ct.dcm")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("x")
    with pytest.raises(UserError, match="not empty"):
        deid([tmp_path / "in"], tmp_path / "busy")
    with pytest.raises(UserError, match="inside the input"):
        deid([tmp_path / "in"], tmp_path / "in" / "out")


def test_cancel_leaves_nothing_behind(tmp_path):
    make_study(tmp_path / "in")
    flag = CancelFlag()
    job = deidentify_job(DeidRequest([tmp_path / "in"], tmp_path / "out"), flag)
    with pytest.raises(JobCancelled):
        for event in job:
            if getattr(event, "done", 0) >= 1:
                flag.cancel()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_cli_deid_reports_in_json(tmp_path, capsys):
    make_study(tmp_path / "in")
    ultrasound(tmp_path / "in" / "us.dcm")
    code = main(["deid", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--option",
                 "retain-modified-dates", "--key-file", str(tmp_path / "k.key"), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["written"] == 4 and len(report["refused"]) == 1
    assert report["changes"]["Patient's Name"] == {"pseudonym": 4}
    assert report["changes"]["Study Date"] == {"cleaned": 4}
    assert report["key_created"] is True and report["options"] == ["retain-modified-dates"]
    code = main(["deid", str(tmp_path / "in" / "us.dcm"), "-o", str(tmp_path / "none")])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("medviewer: No file was de-identified")
    assert len(err.strip().splitlines()) == 1


def test_a_masked_file_can_be_exported_again(tmp_path):
    """The masking is recorded in the output and honoured: a masked ultrasound re-exported
    (e.g. into a research dataset) is not refused as an ultrasound again."""
    ultrasound(tmp_path / "in" / "us.dcm")
    mask = PixelMask((MaskRect(0, 0, 30, 4), MaskRect(25, 10, 10, 10)), rows=20, columns=30)
    first = deid([tmp_path / "in"], tmp_path / "once", mask=mask)
    assert first.written == 1 and first.masked == 1
    (masked,) = [p for p in output_files(tmp_path / "once") if p.name != "DICOMDIR"]
    ds = pydicom.dcmread(masked)
    assert ds.BurnedInAnnotation == "NO"
    assert ("DCM", "113101") in {(item.CodingSchemeDesignator, item.CodeValue)
                                 for item in ds.DeidentificationMethodCodeSequence}
    methods = list(ds.DeidentificationMethod)
    assert "Pixels masked (x,y,w,h): 0,0,30,4" in methods
    assert "Pixels masked (x,y,w,h): 25,10,10,10" in methods
    assert burned_in_reason(ds) is None
    again = deid([tmp_path / "once"], tmp_path / "twice")  # no mask, no confirmation
    assert again.written == 1 and not again.refused and again.masked == 0
    (twice,) = [p for p in output_files(tmp_path / "twice") if p.name != "DICOMDIR"]
    ds2 = pydicom.dcmread(twice)
    assert ds2.PixelData == ds.PixelData  # not masked again: the same pixels
    assert ds2.BurnedInAnnotation == "NO"
    assert "113101" in [item.CodeValue for item in ds2.DeidentificationMethodCodeSequence]
    assert [m for m in ds2.DeidentificationMethod if m.startswith("Pixels masked")] == \
        methods[-2:]  # the record goes on, so a third export passes too
    third = deid([tmp_path / "twice"], tmp_path / "thrice")
    assert third.written == 1 and not third.refused


def test_only_a_complete_record_of_cleaned_pixels_is_honoured(tmp_path):
    claims_no = core_dataset(sop_class=US_IMAGE, modality="US", instance=1)
    claims_no.BurnedInAnnotation = "NO"  # says NO, but nothing says the pixels were cleaned
    code_only = core_dataset(sop_class=US_IMAGE, modality="US", instance=2)
    code_only.BurnedInAnnotation = "YES"
    item = pydicom.Dataset()
    item.CodeValue, item.CodingSchemeDesignator = "113101", "DCM"
    item.CodeMeaning = "Clean Pixel Data Option"
    code_only.DeidentificationMethodCodeSequence = pydicom.Sequence([item])
    faces = core_dataset(instance=3)
    faces.BurnedInAnnotation = "NO"
    faces.RecognizableVisualFeatures = "YES"
    faces.DeidentificationMethodCodeSequence = pydicom.Sequence([item])
    for number, ds in enumerate((claims_no, code_only, faces)):
        write(ds, tmp_path / "in" / f"{number}.dcm")
    result = deid([tmp_path / "in"], tmp_path / "out")
    assert result.written == 0 and len(result.refused) == 3
    reasons = {refused.path.name: refused.reason for refused in result.refused}
    assert "ultrasound" in reasons["0.dcm"]
    assert "Burned In Annotation says YES" in reasons["1.dcm"]
    assert "Recognizable Visual Features" in reasons["2.dcm"]
