"""Cleaning free text (Clean Descriptors and the other C actions on text): this file's own
identifying values, and the heuristic for what looks like a person's name, a date, an ID
or a UID, which also keeps what the chosen options keep."""

from __future__ import annotations

import pydicom
import pytest

from medviewer.dicom.deid.dataset import deidentify_dataset
from medviewer.dicom.deid.keys import ProjectKey
from medviewer.dicom.deid.profile import Profile
from medviewer.dicom.deid.text import text_cleaner
from tests.dicom.deid_helpers import core_dataset, write

DESCRIPTORS = Profile(frozenset({"clean-descriptors"}))

CLEANED = [
    # the standard's own example (PS3.15 E.3.5): age and sex, a titled name
    ("CT chest abdomen pelvis - 55F Dr. Smith", "CT chest abdomen pelvis - * *"),
    # this file's names, in any case and in parts
    ("johnathan DOE at st elsewhere general hospital", "* * at *"),
    # names after a title or a label
    ("Mrs Jane Smith and Prof. Ada Lovelace", "* and *"),
    ("Referring: Jones; technologist= Peters", "Referring: *; technologist= *"),
    # dates in many spellings
    ("prior 2019-03-01, 01.03.2019, 3/1/19 and 20190301", "prior *, *, * and *"),
    ("seen 12 Jan 2020, January 15, 2020 and in May 2019", "seen *, * and in *"),
    # IDs: long digit runs, mixed tokens, labelled values, phone numbers
    ("MRN: A1234567 / 4815162342 / ref PID-48151623", "MRN: * / * / ref *"),
    ("accession# 77AB12 tel 555-123-4567", "accession# * tel *"),
    # UIDs, also at the end of a sentence
    ("prior study 1.2.840.113619.2.55.3.604688119.", "prior study *."),
]
KEPT = [
    "Head^Routine",  # a protocol in DICOM's name form, as Siemens writes it
    "L3-S1^L1-L4",
    "ISOVUE300/100",
    "DMJ2K 7.0.0.25, DCMTK 3.6.4",
    "AXIAL 1.25mm STANDARD",
    "ep2d_diff_b1000 TRACEW 512x512",
    "T2 FLAIR SAG 3D",
    "CHEST PA/LAT",
    "Series no 5, 120 kV, 2.5 mGy",
    "Lesion 45 mm in segment 7",
]


def cleaner(profile: Profile = DESCRIPTORS):
    return text_cleaner(core_dataset(), profile)


@pytest.mark.parametrize("text, expected", CLEANED, ids=[t for t, _ in CLEANED])
def test_what_looks_like_identity_is_removed(text, expected):
    assert cleaner().clean(text) == expected


@pytest.mark.parametrize("text", KEPT)
def test_technique_text_stays(text):
    assert cleaner().clean(text) == text


def test_what_an_option_keeps_is_not_removed_from_text():
    text = "2020-01-15 55F uid 1.2.840.10008.1.2 at St Elsewhere General Hospital on CT01"
    assert cleaner().clean(text) == "* * uid * at * on CT01"  # no station in this header
    keep_all = Profile(frozenset({"clean-descriptors", "retain-full-dates",
                                  "retain-patient-characteristics", "retain-uids",
                                  "retain-institution-identity", "retain-device-identity"}))
    ds = core_dataset()
    ds.StationName = "CT01"
    assert text_cleaner(ds, keep_all).clean(text) == text
    assert text_cleaner(ds, DESCRIPTORS).clean(text) == "* * uid * at * on *"


def test_descriptions_lose_identity_the_header_does_not_hold(tmp_path):
    ds = core_dataset()
    ds.StudyDescription = "CT chest - 62 M, Dr. Who, acc 99-1234567, 03/04/2021"
    ds.SeriesDescription = "AXIAL 1.25mm"
    ds.ImageComments = "compare 1.2.826.0.1.3680043.2.1125.1.2 (Dr Bob Jones)"
    read = pydicom.dcmread(write(ds, tmp_path / "in.dcm"))
    deidentify_dataset(read, DESCRIPTORS, ProjectKey(b"k" * 32))
    out = pydicom.dcmread(write(read, tmp_path / "out.dcm"))
    assert out.StudyDescription == "CT chest - *, *, acc *, *"
    assert out.SeriesDescription == "AXIAL 1.25mm"
    assert out.ImageComments == "compare * (*)"


def test_uuid_form_uids_are_removed():
    assert cleaner().clean("see 2.25.329800735698586629295641978511506172918 now") == "see * now"
