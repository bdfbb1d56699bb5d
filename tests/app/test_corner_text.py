"""Corner text: field values from real headers, layouts, and what each corner shows."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.dataset import Dataset

from medviewer.app import corner_text as ct
from medviewer.dicom.display_text import dicom_time, patient_age, person_name
from medviewer.errors import UserError
from medviewer.paths import SAMPLE_STUDY_DIR
from tests.dicom import PYDICOM_TEST_FILES


def test_values_from_the_bundled_sample_study():
    ds = pydicom.dcmread(SAMPLE_STUDY_DIR / "S01_I01.dcm", stop_before_pixels=True)
    values = ct.header_values(ds)
    assert values["patient_name"] == person_name(str(ds.PatientName))
    assert values["patient_name"] == "DEMO, CHEST NOT-A-PATIENT"
    assert values["patient_id"] == f"ID {ds.PatientID}"
    assert values["modality"].startswith("DX")
    assert values["study_date_time"].startswith("2000-01-01")
    assert values["series_instance"] == f"Se {ds.SeriesNumber} / Im {ds.InstanceNumber}"


def test_values_from_a_ct_with_age_sex_institution():
    ds = pydicom.dcmread(PYDICOM_TEST_FILES / "CT_small.dcm", stop_before_pixels=True)
    values = ct.header_values(ds)
    assert values["institution"] == str(ds.InstitutionName)
    assert values["age_sex"].endswith(str(ds.PatientSex))
    hhmm = f"{str(ds.StudyTime)[:2]}:{str(ds.StudyTime)[2:4]}"
    assert values["study_date_time"] == (f"{str(ds.StudyDate)[:4]}-{str(ds.StudyDate)[4:6]}-"
                                         f"{str(ds.StudyDate)[6:]} {hhmm}")


def test_view_position_laterality_age_and_issuer():
    ds = Dataset()
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "P7"
    ds.IssuerOfPatientID = "HOSP-A"
    ds.PatientBirthDate = "19800615"
    ds.StudyDate = "20240614"
    ds.PatientSex = "F"
    ds.ViewPosition = "PA"
    ds.ImageLaterality = "L"
    ds.Modality = "DX"
    ds.BodyPartExamined = "CHEST"
    values = ct.header_values(ds)
    assert values["patient_id"] == "ID P7 (HOSP-A)"
    assert values["age_sex"] == "43 y, F"  # one day before the 44th birthday
    assert values["view"] == "PA L"
    assert values["modality"] == "DX CHEST"
    assert values["study_date_time"] == "2024-06-14"
    assert values["institution"] == ""


@pytest.mark.parametrize("age, expected", [("045Y", "45 y"), ("006M", "6 mo"),
                                           ("003W", "3 wk"), ("010D", "10 d"), ("45", "")])
def test_patient_age_as_people_say_it(age, expected):
    assert patient_age(age) == expected


def test_times_and_damaged_values():
    assert dicom_time("142233.123") == "14:22" and dicom_time("14:22:33") == "14:22"
    assert dicom_time("x") == "" and dicom_time("") == ""
    ds = Dataset()
    ds.add_new(0x00100010, "PN", None)
    assert ct.header_values(ds)["patient_name"] == ""


def test_view_values():
    values = ct.view_values("C 40 / W 400", 150.4, "Pixel Spacing", frame=2, frames=10)
    assert values == {"window_level": "C 40 / W 400", "zoom": "Zoom 150 %",
                      "spacing_source": "Spacing: Pixel Spacing", "frame": "Frame 3 / 10"}
    single = ct.view_values("C 1 / W 2", 100, "", frame=0, frames=1)
    assert single["frame"] == "" and single["spacing_source"] == "No pixel spacing (px)"


def test_layouts_are_checked_and_corners_skip_empty_fields():
    layout = ct.check_layout({"top_left": ["patient_name", "institution", "patient_name"],
                              "bottom_right": ["zoom"]})
    assert layout["top_left"] == ("patient_name", "institution")
    assert layout["top_right"] == () and layout["bottom_right"] == ("zoom",)
    lines = ct.corner_lines(layout, {"patient_name": "DOE, JANE", "institution": "",
                                     "zoom": "Zoom 100 %"})
    assert lines == {"top_left": ["DOE, JANE"], "top_right": [], "bottom_left": [],
                     "bottom_right": ["Zoom 100 %"]}
    assert set(ct.check_layout(ct.DEFAULT_LAYOUT)) == set(ct.CORNERS)


@pytest.mark.parametrize("layout, message", [
    ({"middle": ["zoom"]}, "corner 'middle' that does not exist"),
    ({"top_left": ["weight"]}, "field 'weight' that does not exist"),
    ({"top_left": "zoom"}, "must be a list of fields"),
])
def test_bad_layouts_are_refused_in_one_sentence(layout, message):
    with pytest.raises(UserError, match=message):
        ct.check_layout(layout)


def test_multi_valued_attributes_are_joined():
    ds = Dataset()
    ds.InstitutionName = "General"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.ViewPosition = "AP"
    ds.add_new(0x00200060, "CS", "R")  # Laterality (of a paired body part)
    values = ct.header_values(ds)
    assert values["view"] == "AP R" and values["institution"] == "General"


def test_a_plain_image_says_it_names_no_patient(tmp_path):
    from PIL import Image

    from medviewer.dicom.images import open_plain_image

    path = tmp_path / "chest.png"
    Image.new("L", (64, 64), 100).save(path)
    values = ct.header_values(open_plain_image(path).header)
    assert values == {"patient_name": "Plain image: no patient data"}
