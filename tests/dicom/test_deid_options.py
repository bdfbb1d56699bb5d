"""The options beyond the first five: Retain Safe Private, Retain Institution Identity,
Retain Full Dates, Clean Structured Content and Clean Graphics. Each is recorded by its
CID 7050 code; the table's actions for each are checked in test_deid.py, and here what
cleaning a sequence, a private block or a graphic means, on real files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medviewer.cli import main
from medviewer.dicom.deid.dataset import deidentify_dataset
from medviewer.dicom.deid.job import DeidRequest, deidentify_job
from medviewer.dicom.deid.keys import ProjectKey
from medviewer.dicom.deid.pixels import MaskRect, PixelMask
from medviewer.dicom.deid.profile import OPTIONS, Profile
from medviewer.errors import UserError
from medviewer.jobs import run_to_end
from tests.dicom.deid_helpers import UID_ROOT, core_dataset, write

KEY = ProjectKey(b"k" * 32)
# PS3.16 CID 7050, written out here independently of profile.OPTIONS.
CID_7050 = {
    "clean-graphics": "113103", "clean-structured-content": "113104",
    "clean-descriptors": "113105", "retain-full-dates": "113106",
    "retain-modified-dates": "113107", "retain-patient-characteristics": "113108",
    "retain-device-identity": "113109", "retain-uids": "113110",
    "retain-safe-private": "113111", "retain-institution-identity": "113112",
}
SR_TEXT = "Seen by Dr. Smith on 2020-01-15, MRN 12345678, Doe^Johnathan; 45 mm mass"


def deidentified(tmp_path: Path, ds: Dataset, options: set[str], key=KEY) -> Dataset:
    read = pydicom.dcmread(write(ds, tmp_path / "in.dcm"))
    deidentify_dataset(read, Profile(frozenset(options)), key)
    return pydicom.dcmread(write(read, tmp_path / "out.dcm"))


def codes(ds: Dataset) -> list[str]:
    return [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_each_option_is_recorded_by_its_code(tmp_path, option):
    out = deidentified(tmp_path, core_dataset(), {option})
    assert codes(out) == ["113100", CID_7050[option]]
    assert OPTIONS[option][2] in list(out.DeidentificationMethod)


def test_full_and_modified_dates_cannot_be_chosen_together(tmp_path, capsys):
    with pytest.raises(UserError, match="retain-full-dates and retain-modified-dates cannot"):
        Profile(frozenset({"retain-full-dates", "retain-modified-dates"}))
    write(core_dataset(), tmp_path / "in" / "ct.dcm")
    code = main(["deid", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                 "--option", "retain-full-dates", "--option", "retain-modified-dates"])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1 and "not both" in err
    assert not (tmp_path / "out").exists()


def test_full_dates_are_kept_and_said_unmodified(tmp_path):
    ds = core_dataset()
    ds.SeriesDate, ds.AcquisitionDateTime = "20200116", "20200116083000"
    out = deidentified(tmp_path, ds, {"retain-full-dates"})
    assert (out.StudyDate, out.SeriesDate, out.AcquisitionDateTime) == \
        ("20200115", "20200116", "20200116083000")
    assert out.LongitudinalTemporalInformationModified == "UNMODIFIED"
    assert out.PatientBirthDate == ""  # not a date this option keeps


def test_institution_identity_is_kept(tmp_path):
    ds = core_dataset()
    ds.InstitutionAddress = "1 Hospital Road"
    ds.InstitutionalDepartmentName = "Radiology"
    out = deidentified(tmp_path, ds, {"retain-institution-identity"})
    assert out.InstitutionName == "St Elsewhere General Hospital"
    assert out.InstitutionAddress == "1 Hospital Road"
    assert out.InstitutionalDepartmentName == "Radiology"
    basic = deidentified(tmp_path / "b", ds, set())
    assert basic.InstitutionName == "REMOVED" and "InstitutionAddress" not in basic


# ---------------------------------------------------------------- structured content


def content_item(value_type: str, meaning: str, **values: object) -> Dataset:
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = value_type
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "121071", "DCM", meaning
    item.ConceptNameCodeSequence = Sequence([code])
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def report() -> Dataset:
    ds = core_dataset(sop_class="1.2.840.10008.5.1.4.1.1.88.11", modality="SR")
    for keyword in ("Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation",
                    "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
                    "PixelData"):
        delattr(ds, keyword)
    findings = content_item("CONTAINER", "Findings", ContinuityOfContent="SEPARATE")
    findings.ContentSequence = Sequence([
        content_item("TEXT", "Finding", TextValue=SR_TEXT),
        content_item("DATE", "Date of prior", Date="20190301"),
        content_item("TIME", "Time of prior", Time="093000"),
        content_item("PNAME", "Observer", PersonName="Roe^Richard"),
        content_item("UIDREF", "Prior study", UID=f"{UID_ROOT}.55"),
    ])
    ds.ValueType = "CONTAINER"
    ds.ContentSequence = Sequence([findings])
    context = content_item("TEXT", "Indication", TextValue="Referred by: Jones 45yo")
    ds.AcquisitionContextSequence = Sequence([context])
    return ds


def test_structured_content_is_dropped_without_the_option(tmp_path):
    out = deidentified(tmp_path, report(), set())
    assert len(out.ContentSequence) == 1 and len(out.ContentSequence[0]) == 0  # D
    assert len(out.AcquisitionContextSequence) == 0  # X/Z -> Z


@pytest.mark.parametrize("dates", [None, "retain-modified-dates", "retain-full-dates"])
def test_structured_content_is_kept_and_cleaned(tmp_path, dates):
    options = {"clean-structured-content"} | ({dates} if dates else set())
    out = deidentified(tmp_path, report(), options)
    items = out.ContentSequence[0].ContentSequence
    text, when, time, person, uid = items
    seen = "2020-01-15" if dates == "retain-full-dates" else "*"  # kept dates stay in text
    assert text.TextValue == f"Seen by * on {seen}, MRN *, *; 45 mm mass"
    assert person.PersonName == "ANONYMOUS"  # Person Name: D by the table
    assert uid.UID == KEY.uid(f"{UID_ROOT}.55")  # UID: U by the table
    assert text.ConceptNameCodeSequence[0].CodeMeaning == "Finding"  # codes stay
    if dates == "retain-full-dates":
        assert (when.Date, time.Time) == ("20190301", "093000")
    elif dates == "retain-modified-dates":
        shift = KEY.date_shift_days("PID-48151623")
        moved = (np.datetime64("2019-03-01") + np.timedelta64(shift, "D")).astype(str)
        assert when.Date == moved.replace("-", "") and time.Time == "093000"
    else:  # no date option: a date is a dummy value
        assert (when.Date, time.Time) == ("19000101", "000000")
    assert out.AcquisitionContextSequence[0].TextValue == "Referred by: *"


# ---------------------------------------------------------------- graphics


def with_graphics(ds: Dataset) -> Dataset:
    annotation = Dataset()
    text = Dataset()
    text.UnformattedTextValue = "Doe^Johnathan 1961-07-04 lesion"
    text.AnchorPointAnnotationUnits = "PIXEL"
    graphic = Dataset()
    graphic.GraphicAnnotationUnits = "PIXEL"
    graphic.GraphicDimensions = 2
    graphic.NumberOfGraphicPoints = 2
    graphic.GraphicData = [1.0, 2.0, 10.0, 12.0]
    graphic.GraphicType = "POLYLINE"
    annotation.GraphicLayer = "LAYER1"
    annotation.TextObjectSequence = Sequence([text])
    annotation.GraphicObjectSequence = Sequence([graphic])
    ds.GraphicAnnotationSequence = Sequence([annotation])
    ds.add_new(0x60000010, "US", 16)  # Overlay Rows
    ds.add_new(0x60000011, "US", 16)  # Overlay Columns
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60004000, "LT", "Drawn for Doe^Johnathan")  # Overlay Comments
    ds.add_new(0x60003000, "OW", b"\xff" * 32)  # every bit set
    return ds


def test_graphics_are_kept_and_their_text_cleaned(tmp_path):
    out = deidentified(tmp_path, with_graphics(core_dataset()), {"clean-graphics"})
    annotation = out.GraphicAnnotationSequence[0]
    assert annotation.TextObjectSequence[0].UnformattedTextValue == "* * lesion"
    assert list(annotation.GraphicObjectSequence[0].GraphicData) == [1.0, 2.0, 10.0, 12.0]
    assert out[0x60003000].value == b"\xff" * 32 and out[0x60000010].value == 16
    assert out[0x60004000].value == "Drawn for *"
    basic = deidentified(tmp_path / "b", with_graphics(core_dataset()), set())
    assert len(basic.GraphicAnnotationSequence[0]) == 0  # D: one empty item
    assert 0x60003000 not in basic and 0x60000010 not in basic  # the overlay goes


def test_kept_overlays_are_checked_like_burned_in_text(tmp_path):
    write(with_graphics(core_dataset()), tmp_path / "in" / "ct.dcm")
    profile = Profile(frozenset({"clean-graphics"}))

    def deid(output: str, source: Path = tmp_path / "in", **options):
        return run_to_end(deidentify_job(DeidRequest([source], tmp_path / output, profile,
                                                     **options)))

    refused = deid("refused")
    assert refused.written == 0 and "overlay" in refused.refused[0].reason
    basic = run_to_end(deidentify_job(DeidRequest([tmp_path / "in"], tmp_path / "basic")))
    assert basic.written == 1  # the Basic Profile removes the overlay: nothing to check
    mask = PixelMask((MaskRect(0, 0, 8, 4),), rows=16, columns=16)
    masked = deid("masked", mask=mask)
    assert masked.written == 1 and masked.masked == 1
    (path,) = [p for p in (tmp_path / "masked").rglob("*") if p.is_file()
               and p.name != "DICOMDIR"]
    out = pydicom.dcmread(path)
    bits = np.unpackbits(np.frombuffer(out[0x60003000].value, np.uint8),
                         bitorder="little").reshape(16, 16)
    assert not bits[:4, :8].any() and bits[4:, :].all() and bits[:4, 8:].all()
    assert {"113101", "113103"} <= set(codes(out))
    again = deid("again", source=tmp_path / "masked")  # recorded as cleaned: not refused
    assert again.written == 1 and not again.refused


# ---------------------------------------------------------------- safe private attributes


def with_private_blocks(ds: Dataset) -> Dataset:
    ds.add_new(0x00190010, "LO", "GEMS_ACQU_01")
    ds.add_new(0x00191023, "DS", "12.5")  # Table E.3.10-1: Table Speed
    ds.add_new(0x00191001, "LO", "not in the table")
    ds.add_new(0x00990010, "LO", "NQHeader")
    ds.add_new(0x00991002, "UI", f"{UID_ROOT}.77")  # Table E.3.10-1: Analyzed Series UID
    ds.add_new(0x00110010, "LO", "ACME DECLARED")
    ds.add_new(0x00111001, "LO", "declared safe value")
    ds.add_new(0x00130010, "LO", "ACME MIXED")
    ds.add_new(0x00131001, "LO", "listed as nonidentifying")
    ds.add_new(0x00131002, "LO", "Doe^Johnathan")
    declared, mixed = Dataset(), Dataset()
    declared.add_new(0x00080301, "US", 0x0011)  # Private Group Reference
    declared.add_new(0x00080302, "LO", "ACME DECLARED")  # Private Creator Reference
    declared.add_new(0x00080303, "CS", "SAFE")  # Block Identifying Information Status
    mixed.add_new(0x00080301, "US", 0x0013)
    mixed.add_new(0x00080302, "LO", "ACME MIXED")
    mixed.add_new(0x00080303, "CS", "MIXED")
    mixed.add_new(0x00080304, "US", [0x01])  # Nonidentifying Private Elements
    ds.add_new(0x00080300, "SQ", Sequence([declared, mixed]))
    return ds


def test_safe_private_attributes_are_kept_and_the_rest_removed(tmp_path):
    out = deidentified(tmp_path, with_private_blocks(core_dataset()), {"retain-safe-private"})
    assert out[0x00190010].value == "GEMS_ACQU_01" and out[0x00191023].value == 12.5
    assert 0x00191001 not in out
    assert out[0x00991002].value == KEY.uid(f"{UID_ROOT}.77")  # kept, its UID replaced
    assert out[0x00111001].value == "declared safe value"
    assert out[0x00131001].value == "listed as nonidentifying" and 0x00131002 not in out
    assert 0x00090010 not in out and 0x00091001 not in out  # ACME MEDICAL: not known safe
    basic = deidentified(tmp_path / "b", with_private_blocks(core_dataset()), set())
    assert not [e for e in basic if e.tag.is_private]


def test_cli_offers_every_option(tmp_path, capsys):
    write(with_graphics(core_dataset()), tmp_path / "in" / "ct.dcm")
    options = ["retain-safe-private", "retain-institution-identity", "retain-full-dates",
               "clean-structured-content", "clean-graphics"]
    arguments = [item for option in options for item in ("--option", option)]
    code = main(["deid", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--json",
                 "--confirm-burned-in", *arguments])
    assert code == 0
    report_json = json.loads(capsys.readouterr().out)
    assert report_json["options"] == sorted(options) and report_json["written"] == 1
    (path,) = [p for p in (tmp_path / "out").rglob("*") if p.is_file() and p.name != "DICOMDIR"]
    assert set(codes(pydicom.dcmread(path))) == {"113100", *(CID_7050[o] for o in options)}
