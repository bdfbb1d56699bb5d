"""The one decision rule, at its boundaries, and every consumer built on it agreeing."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.inference.decision import Decision, at_or_above, decide
from medviewer.training import metrics

CLASSES = ["NORMAL", "PNEUMONIA", "EFFUSION"]


def test_probability_equal_to_the_threshold_is_flagged():
    decision = decide(CLASSES, [0.5, 0.25, 0.25], {"PNEUMONIA": 0.25}, "NORMAL")
    assert decision == Decision(("PNEUMONIA",), ("PNEUMONIA",), "PNEUMONIA")
    below = decide(CLASSES, [0.5, np.nextafter(0.25, 0), 0.25], {"PNEUMONIA": 0.25}, "NORMAL")
    assert below.flagged == () and below.offered == ("NORMAL",) and below.explain_class is None


def test_several_findings_are_offered_most_probable_first():
    decision = decide(CLASSES, [0.1, 0.3, 0.6], {"PNEUMONIA": 0.2, "EFFUSION": 0.5}, "NORMAL")
    assert decision.flagged == decision.offered == ("EFFUSION", "PNEUMONIA")
    assert decision.explain_class == "EFFUSION" and decision.suggestion == "EFFUSION"


def test_a_class_without_an_operating_point_is_never_flagged_even_when_most_probable():
    decision = decide(CLASSES, [0.9, 0.05, 0.05], {"PNEUMONIA": 0.5}, "NORMAL")
    assert decision.flagged == () and decision.offered == ("NORMAL",)
    nothing = decide(CLASSES, [0.2, 0.7, 0.1], {}, "NORMAL")  # no operating points at all
    assert nothing.flagged == () and nothing.offered == ("NORMAL",)


def test_without_a_no_finding_class_nothing_is_offered_when_nothing_is_flagged():
    decision = decide(CLASSES, [0.9, 0.05, 0.05], {"PNEUMONIA": 0.5}, None)
    assert decision.offered == () and decision.suggestion is None


def test_multilabel_findings_are_each_judged_by_their_own_point():
    # Independent sigmoid outputs: the probabilities need not sum to 1.
    decision = decide(["effusion", "nodule", "cardiomegaly"], [0.9, 0.31, 0.29],
                      {"effusion": 0.95, "nodule": 0.3, "cardiomegaly": 0.3})
    assert decision.flagged == ("nodule",)


def test_withheld_reads_offer_and_flag_nothing():
    decision = decide(CLASSES, [0.0, 1.0, 0.0], {"PNEUMONIA": 0.2}, "NORMAL",
                      withheld="Not read as a finding: CT.")
    assert decision.flagged == decision.offered == () and decision.withheld


def test_training_metrics_use_the_same_comparison_at_the_boundary():
    labels = np.array([1, 1, 0, 0])
    scores = np.array([0.25, 0.3, 0.25, 0.1])
    sensitivity, specificity = metrics.sensitivity_specificity(labels, scores, 0.25)
    # Both images at exactly 0.25 count as positive calls, as decide() flags them.
    assert sensitivity == 1.0 and specificity == 0.5
    flagged = [bool(decide(["n", "p"], [1 - s, s], {"p": 0.25}).flagged) for s in scores]
    assert flagged == list(at_or_above(scores, 0.25))


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError):
        decide(CLASSES, [0.5, 0.5], {})


def test_every_consumer_agrees_when_the_probability_equals_the_threshold(install, tmp_path,
                                                                        capsys):
    """predict's JSON and CSV, the audit log, the local validation and the training metrics
    all call an image whose probability is exactly the threshold positive."""
    import csv
    import json

    from medviewer.app import validation
    from medviewer.cli import main
    from medviewer.inference.audit import AuditLog
    from medviewer.inference.predict import predict_paths
    from tests.inference.conftest import write_grey_png

    pixels = np.full((16, 16), 128, np.uint8)
    pixels[0, 0], pixels[0, 1] = 0, 255
    image = write_grey_png(tmp_path / "edge.png", pixels)
    probe = install("mean", name="probe")
    [first] = predict_paths([image], probe, device="cpu", audit=False)
    exact = first.score("finding").probability
    entry = install("mean", name="edge", no_finding_class="normal",
                    operating_points={"finding": {"threshold": exact, "method": "exact"}})
    out_csv = tmp_path / "edge.csv"
    assert main(["predict", str(image), "--model", "edge", "--device", "cpu", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["predictions"][0]
    assert report["classes"]["finding"]["probability"] == exact
    assert report["decision"] == report["flagged"] == ["finding"]
    assert main(["predict", str(image), "--model", "edge", "--csv", str(out_csv)]) == 0
    [row] = list(csv.DictReader(out_csv.open()))
    assert row["flagged_finding"] == "1" and row["decision"] == "finding"
    assert AuditLog().rows()[0]["decision"]["flagged"] == ["finding"]
    figures = validation.figures_at(np.array([True]), np.array([exact]), exact, "card")
    assert figures["tp"] == 1
    assert metrics.sensitivity_specificity(np.array([1, 0]), np.array([exact, 0.0]),
                                           exact) == (1.0, 1.0)
