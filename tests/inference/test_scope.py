"""Intended use: a header against the card's scope, in sentences; predict withholds."""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset

from medviewer.dicom.reader import open_instance
from medviewer.inference.model_card import IntendedScope
from medviewer.inference.predict import predict_paths
from medviewer.inference.scope import check_header, check_scope, patient_age_years
from tests.inference.conftest import write_grey_png

CHEST = {"modalities": ["CR", "DX"], "body_parts": ["CHEST"], "views": ["AP", "PA"],
         "patient_age_years": [1, 5], "age_source": "the dataset's publication",
         "minimum_size": 224, "photometric": ["MONOCHROME1", "MONOCHROME2"],
         "summary": "chest CR/DX"}


def _header(**values) -> Dataset:
    header = Dataset()
    header.Modality, header.Rows, header.Columns = "CR", 2000, 1800
    header.PhotometricInterpretation = "MONOCHROME2"
    for key, value in values.items():
        setattr(header, key, value)
    return header


def _card(install):
    return install("mean", intended_scope=CHEST).card


def test_a_ct_slice_is_outside_in_one_sentence(install):
    card = _card(install)
    assert card.intended_scope == IntendedScope(
        ["CR", "DX"], ["CHEST"], ["AP", "PA"], (1.0, 5.0), "the dataset's publication", 224,
        ["MONOCHROME1", "MONOCHROME2"], "chest CR/DX")
    check = check_header(_header(Modality="CT", Rows=512, Columns=512), card)
    assert check.in_scope is False
    assert check.reasons == ["Outside this model's intended use: CT (this model reads chest "
                             "CR/DX)."]


def test_each_mismatch_has_its_sentence_and_missing_values_are_not_reasons(install):
    card = _card(install)
    assert check_header(_header(), card).in_scope is True  # no body part, view or age given
    check = check_header(_header(BodyPartExamined="HAND", ViewPosition="LL", PatientAge="045Y",
                                 PhotometricInterpretation="RGB", Rows=64, Columns=64), card)
    assert check.reasons == [
        "Outside this model's intended use: body part HAND (this model reads chest CR/DX).",
        "Outside this model's intended use: LL view (this model reads AP/PA views).",
        "Outside this model's intended use: a patient aged 45 years (this model was made for "
        "ages 1 to 5 years).",
        "Outside this model's intended use: colour pixels (this model reads "
        "MONOCHROME1/MONOCHROME2 images).",
        "Outside this model's intended use: an image of 64 x 64 pixels (this model needs at "
        "least 224 pixels on each side).",
    ]


def test_patient_age_from_the_age_tag_or_the_dates():
    assert patient_age_years(_header(PatientAge="018M")) == 1.5
    age = patient_age_years(_header(PatientBirthDate="20200101", StudyDate="20230101"))
    assert abs(age - 3.0) < 0.01
    assert patient_age_years(_header()) is None


def test_a_card_without_scope_checks_nothing(install):
    assert check_header(_header(Modality="CT"), install("mean").card).in_scope is None


def test_a_thumbnail_png_is_out_of_scope_and_predict_flags_nothing_unless_asked(install,
                                                                               tmp_path):
    entry = install("mean", intended_scope=CHEST,
                    operating_points={"finding": {"threshold": 0.1, "method": "fixed"}},
                    no_finding_class="normal")
    small = write_grey_png(tmp_path / "thumb.png", np.full((64, 64), 200, np.uint8))
    assert check_scope(open_instance(small), entry.card).in_scope is False
    [withheld] = predict_paths([small], entry, device="cpu")
    assert withheld.in_scope is False and withheld.flagged == [] and withheld.offered == []
    assert withheld.scope_reasons[0].startswith("Outside this model's intended use: an image")
    assert withheld.decision.withheld.startswith("Not read as a finding: ")
    [anyway] = predict_paths([small], entry, device="cpu", read_out_of_scope=True)
    assert anyway.flagged == ["finding"] and anyway.read_out_of_scope
    big = write_grey_png(tmp_path / "big.png", np.full((256, 256), 10, np.uint8))
    [inside] = predict_paths([big], entry, device="cpu")
    assert inside.in_scope is True and inside.offered in (["normal"], ["finding"])


def test_predict_text_of_a_withheld_read_states_the_true_comparison(install, tmp_path,
                                                                     capsys):
    """'not read' says the image is not read as a finding; the score beside it must still
    compare the probability with the threshold truthfully (it said '<' for 0.193 vs 0.112)."""
    from medviewer.cli import main

    entry = install("mean", intended_scope=CHEST,
                    operating_points={"finding": {"threshold": 0.1, "method": "fixed"}})
    small = write_grey_png(tmp_path / "thumb.png", np.full((64, 64), 200, np.uint8))
    capsys.readouterr()
    assert main(["predict", str(small), "--model", entry.name]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if "thumb.png" in line)
    [withheld] = predict_paths([small], entry, device="cpu")
    probability = withheld.score("finding").probability
    assert probability >= 0.1
    assert "not read: outside intended use" in line
    assert f"finding {probability:.3f} (>= 0.100)" in line, line


def test_a_ct_dicom_is_withheld(install, shared_data):
    entry = install("mean", intended_scope=CHEST,
                    operating_points={"finding": {"threshold": 0.0, "method": "fixed"}})
    [ct] = predict_paths([shared_data / "dicom/wg04/REF/CT1_UNC"], entry, device="cpu")
    assert ct.ok and ct.in_scope is False and ct.flagged == []
    assert ct.scope_reasons == ["Outside this model's intended use: CT (this model reads chest "
                                "CR/DX)."]


def test_reading_out_of_scope_is_recorded_in_the_audit_log(install, tmp_path):
    from medviewer.inference.audit import AuditLog

    entry = install("mean", intended_scope=CHEST,
                    operating_points={"finding": {"threshold": 0.1, "method": "fixed"}})
    small = write_grey_png(tmp_path / "thumb.png", np.full((64, 64), 200, np.uint8))
    predict_paths([small], entry, device="cpu")
    predict_paths([small], entry, device="cpu", read_out_of_scope=True)
    anyway, withheld = AuditLog().rows()  # newest first
    assert (withheld["in_scope"], withheld["read_out_of_scope"]) == (0, 0)
    assert withheld["decision"]["offered"] == [] and withheld["scope_reasons"]
    assert (anyway["in_scope"], anyway["read_out_of_scope"]) == (0, 1)
    assert anyway["decision"]["flagged"] == ["finding"]
