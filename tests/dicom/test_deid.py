"""De-identification of one dataset: every attribute of Table E.1-1 gets its action, at any
depth; pseudonyms, UIDs and date shifts are consistent; private tags go; the method is
recorded. The files are written and read back, so values are what a reader sees."""

from __future__ import annotations

import os
import stat
from datetime import date, timedelta
from pathlib import Path

import pydicom
import pytest
from pydicom.datadict import dictionary_VR

from medviewer.dicom.deid.dataset import deidentify_dataset
from medviewer.dicom.deid.keys import ProjectKey, load_or_create_key
from medviewer.dicom.deid.profile import OPTIONS, PrivateTag, Profile
from medviewer.errors import UserError
from tests.dicom.deid_helpers import (
    CORE, INSTITUTION, UID_ROOT, core_dataset, expected_action, fixed_tag_rows,
    rich_dataset, table_rows, value_for, write,
)

KEY = ProjectKey(b"k" * 32)
# Every option that can go together: Retain Full Dates excludes Retain Modified Dates.
ALL_OPTIONS = frozenset(OPTIONS) - {"retain-full-dates"}
ALL_WITH_FULL_DATES = ALL_OPTIONS - {"retain-modified-dates"} | {"retain-full-dates"}


def deidentified(tmp_path: Path, ds: pydicom.Dataset, profile: Profile, key=KEY):
    """Write the original, read it, de-identify, write, read back (what a user gets)."""
    source = write(ds, tmp_path / "in.dcm")
    read = pydicom.dcmread(source)
    outcome = deidentify_dataset(read, profile, key)
    out = write(read, tmp_path / "out.dcm")
    return pydicom.dcmread(out), outcome


def test_the_table_is_well_formed():
    rows = table_rows()
    assert len(rows) == 460
    tags = [r["tag"] for r in rows]
    assert len(tags) == len(set(tags))
    codes = {"X", "Z", "D", "U", "K", "C", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"}
    for row in rows:
        assert row["basic"] in codes, row
        for column, value in row.items():
            if column not in ("tag", "name", "basic") and value:
                assert value in ("K", "C", "X"), row
    by_name = {r["name"]: r for r in rows}
    assert by_name["Patient's Name"]["basic"] == "Z"
    assert by_name["Study Date"]["retain_long_modified_dates"] == "C"
    assert by_name["SOP Instance UID"]["basic"] == "U"
    assert by_name["Referenced Image Sequence"]["basic"] == "X/Z/U*"


def _shift(value: str, days: int) -> str:
    moved = date(int(value[:4]), int(value[4:6]), int(value[6:8])) + timedelta(days=days)
    return moved.strftime("%Y%m%d") + value[8:]


def check_action(out: pydicom.Dataset, tag: int, action: str, outcome, key=KEY,
                 cleaned_as_date: bool = False, institution_kept: bool = False) -> None:
    vr = dictionary_VR(tag).split(" or ")[0]
    original = value_for(tag, vr)
    name = f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
    if action == "X":
        assert tag not in out, f"{name} should be removed"
        return
    assert tag in out, f"{name} should be present for action {action}"
    value = out[tag].value
    if action == "Z":
        assert value in (None, "", b"", []) or (vr == "SQ" and len(value) == 0), name
    elif action == "D":
        if vr == "SQ":
            assert len(value) == 1 and len(value[0]) == 0, name
        else:
            assert value not in (None, "", b""), name
            assert value != original or vr in ("US", "SS", "UL", "SL", "FL", "FD", "AT"), name
    elif action == "U":
        if vr == "SQ":  # X/Z/U*: kept, its UIDs replaced
            item = value[0]
            assert item.ReferencedSOPInstanceUID == key.uid(f"{UID_ROOT}.9.{tag}"), name
        else:
            assert value == key.uid(original), name
    elif action == "K":
        if vr == "SQ":
            assert len(value) == 1, name
        elif vr in ("OB", "OW", "UN"):
            assert bytes(value) == original, name
        else:
            assert str(value) == str(original), name
    elif action == "C":
        if vr in ("DA", "DT"):
            assert value == _shift(original, outcome.date_shift_days), name
        elif vr == "TM":  # a whole-day shift leaves times as they are
            assert value == original, name
        elif vr in ("OB", "OW", "UN"):  # a binary timestamp cannot be shifted: emptied
            assert value in (b"", None), name
        elif cleaned_as_date:  # the timezone offset: kept (text cleaning may still apply)
            assert str(value).startswith(original[:9]), name
        elif vr == "SQ" and institution_kept:  # Retain Institution Identity, in the items too
            assert len(value) == 1 and value[0].InstitutionName == INSTITUTION, name
        elif vr == "SQ":
            assert len(value) == 1 and INSTITUTION not in str(value[0]), name
        elif isinstance(original, str) and vr in ("LO", "SH", "ST", "LT", "UT", "UC", "PN"):
            assert "doe" not in str(value).lower() and "johnathan" not in str(value).lower(), name
            assert str(value).startswith(original[:9]), name  # the rest of the text stays
    else:
        raise AssertionError(f"unknown action {action}")


PROFILES = {
    "basic": frozenset(),
    **{option: frozenset({option}) for option in OPTIONS},
    "all options": ALL_OPTIONS,
    "all options, full dates": ALL_WITH_FULL_DATES,
}


@pytest.mark.parametrize("options", PROFILES.values(), ids=PROFILES.keys())
def test_every_table_attribute_gets_its_action(tmp_path, options):
    out, outcome = deidentified(tmp_path, rich_dataset(), Profile(options))
    columns = {OPTIONS[o][0] for o in options}
    checked = 0
    for row in fixed_tag_rows():
        tag = int(row["tag"], 16)
        if tag in CORE:
            continue
        date_only = row["retain_long_modified_dates"] == "C" and not (
            row["clean_descriptors"] and "clean_descriptors" in columns)
        check_action(out, tag, expected_action(row, columns), outcome,
                     cleaned_as_date=date_only,
                     institution_kept="retain_institution_identity" in columns)
        checked += 1
    assert checked > 420
    if "clean_graphics" in columns:  # C: the overlay and the curve stay (a pixel check follows)
        assert out[0x60003000].value == b"\x00" * 32 and out[0x60000010].value == 16
        assert out[0x50003000].value == b"\x00\x01" * 4
    else:
        # The repeating-group rows: curve data and overlay data are removed (the overlay's
        # other attributes go with it).
        assert 0x50003000 not in out and 0x60003000 not in out and 0x60000010 not in out


@pytest.mark.parametrize("options", [frozenset(), ALL_OPTIONS, ALL_WITH_FULL_DATES],
                         ids=["basic", "all options", "all options, full dates"])
def test_core_identity_attributes(tmp_path, options):
    original = core_dataset()
    out, outcome = deidentified(tmp_path, original, Profile(options))
    pseudonym = KEY.patient_id(original.PatientID)
    assert out.PatientID == pseudonym and str(out.PatientName) == pseudonym
    assert outcome.patient_pseudonym == pseudonym
    assert out.PatientBirthDate == "" and out.AccessionNumber == "" and out.StudyID == ""
    if "retain-uids" in options:
        assert out.StudyInstanceUID == original.StudyInstanceUID
    else:
        assert out.StudyInstanceUID == KEY.uid(original.StudyInstanceUID)
        assert out.SOPInstanceUID == KEY.uid(original.SOPInstanceUID)
        assert out.FrameOfReferenceUID == KEY.uid(original.FrameOfReferenceUID)
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert "SourceApplicationEntityTitle" not in out.file_meta
    if "retain-modified-dates" in options:
        assert out.StudyDate == _shift("20200115", outcome.date_shift_days)
        assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    elif "retain-full-dates" in options:
        assert out.StudyDate == "20200115" and out.StudyTime == "101500"
        assert out.LongitudinalTemporalInformationModified == "UNMODIFIED"
    else:
        assert out.StudyDate == "" and out.LongitudinalTemporalInformationModified == "REMOVED"
    assert out.PatientSex == ("M" if "retain-patient-characteristics" in options else "")
    if "retain-institution-identity" in options:
        assert out.InstitutionName == INSTITUTION
    else:
        assert out.InstitutionName == "REMOVED"  # X/Z/D -> D: a dummy value
    assert out.PixelData == original.PixelData


def test_nested_sequences_are_cleaned_at_every_depth(tmp_path):
    out, _ = deidentified(tmp_path, rich_dataset(), Profile())
    outer = out.ReferencedSeriesSequence[0]  # not in the table: kept, its items walked
    assert outer.ReferencedSOPInstanceUID == KEY.uid(f"{UID_ROOT}.8.1")
    assert outer.ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"  # class UIDs stay
    assert outer.InstitutionName == "REMOVED"
    assert 0x00110010 not in outer and 0x00111001 not in outer
    inner = outer.ReferencedImageSequence[0]
    assert str(inner.PatientName) == KEY.patient_id(core_dataset().PatientID)
    assert inner.ReferencedSOPInstanceUID == KEY.uid(f"{UID_ROOT}.8.2")
    # Source Image Sequence is X/Z/U*: kept, its UIDs replaced, its private tags gone.
    item = out.SourceImageSequence[0]
    assert item.ReferencedSOPInstanceUID == KEY.uid(f"{UID_ROOT}.9.{0x00082112}")
    assert 0x00090010 not in item and 0x00091001 not in item


def test_private_tags_are_removed_unless_kept(tmp_path):
    out, outcome = deidentified(tmp_path, rich_dataset(), Profile())
    assert not [e for e in out.iterall() if e.tag.is_private]
    assert outcome.changes[("Private attributes", "X")] >= 3
    kept = Profile(keep_private=frozenset({PrivateTag.parse("ACME MEDICAL,0009,02")}))
    out, _ = deidentified(tmp_path, core_dataset(), kept)
    assert out[0x00090010].value == "ACME MEDICAL"
    assert out[0x00091002].value == "kept private value"
    assert 0x00091001 not in out


def test_private_tag_to_keep_must_be_well_formed():
    with pytest.raises(UserError, match="CREATOR,GGGG,EE"):
        PrivateTag.parse("ACME")
    with pytest.raises(UserError, match="odd group"):
        PrivateTag.parse("ACME,0008,10")


def test_dates_shift_by_the_same_days_per_patient(tmp_path):
    profile = Profile(frozenset({"retain-modified-dates"}))
    first = core_dataset(patient_id="PAT-001", study="1")
    first.SeriesDate = "20200120"
    later = core_dataset(patient_id="PAT-001", study="2")
    later.StudyDate = "20210301"
    other = core_dataset(patient_id="PAT-002", study="1")
    a, outcome_a = deidentified(tmp_path / "a", first, profile)
    b, outcome_b = deidentified(tmp_path / "b", later, profile)
    c, outcome_c = deidentified(tmp_path / "c", other, profile)
    assert outcome_a.date_shift_days == outcome_b.date_shift_days
    assert outcome_a.date_shift_days != outcome_c.date_shift_days
    assert -3652 <= outcome_a.date_shift_days <= -365

    def day(text: str) -> date:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))

    assert (day(b.StudyDate) - day(a.StudyDate)).days == \
        (date(2021, 3, 1) - date(2020, 1, 15)).days
    assert (day(a.SeriesDate) - day(a.StudyDate)).days == 5


def test_uids_are_consistent_across_files_and_runs_and_differ_by_key(tmp_path):
    one, _ = deidentified(tmp_path / "1", core_dataset(instance=1), Profile())
    two, _ = deidentified(tmp_path / "2", core_dataset(instance=2), Profile())
    again, _ = deidentified(tmp_path / "3", core_dataset(instance=1), Profile())
    assert one.StudyInstanceUID == two.StudyInstanceUID  # same study, linked
    assert one.SOPInstanceUID != two.SOPInstanceUID
    assert again.SOPInstanceUID == one.SOPInstanceUID  # a re-export gives the same UIDs
    assert one.SOPInstanceUID.startswith("2.25.") and len(one.SOPInstanceUID) <= 64
    other, _ = deidentified(tmp_path / "4", core_dataset(instance=1), Profile(),
                            key=ProjectKey(b"o" * 32))
    assert other.SOPInstanceUID != one.SOPInstanceUID


def test_the_method_is_recorded(tmp_path):
    out, _ = deidentified(tmp_path, core_dataset(),
                          Profile(frozenset({"clean-descriptors", "retain-uids"})))
    assert out.PatientIdentityRemoved == "YES"
    codes = [item.CodeValue for item in out.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113105", "113110"]
    assert all(item.CodingSchemeDesignator == "DCM"
               for item in out.DeidentificationMethodCodeSequence)
    assert "Basic Application Confidentiality Profile" in list(out.DeidentificationMethod)


def test_unknown_option_is_one_sentence():
    with pytest.raises(UserError, match="not one of"):
        Profile(frozenset({"keep-everything"}))


def test_key_file_is_created_private_and_reused(tmp_path):
    path = tmp_path / "keys" / "project.key"
    key, created = load_or_create_key(path)
    assert created and path.is_file()
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, created_again = load_or_create_key(path)
    assert not created_again
    assert again.uid("1.2.3") == key.uid("1.2.3")
    assert again.patient_id("X") == key.patient_id("X")
    (tmp_path / "bad.key").write_text("not a key\n")
    with pytest.raises(UserError, match="does not hold a MedViewer project key"):
        load_or_create_key(tmp_path / "bad.key")
