"""Local validation: the job, its figures, the records, a site's own operating point, and
`medviewer evaluate` reproducing the shipped card on the Kermany test split."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from medviewer.app import validation
from medviewer.cli import main
from medviewer.inference import registry, runtime
from medviewer.inference.audit import AuditLog
from medviewer.inference.predict import predict_paths
from medviewer.jobs import CancelFlag, JobCancelled, Progress, run_to_end
from medviewer.paths import BUILTIN_MODELS_DIR
from medviewer.training import metrics
from tests.inference import onnx_models
from tests.inference.conftest import kermany_images  # noqa: F401 - a fixture


@pytest.fixture
def chest_model(tmp_path, monkeypatch):
    """The tests' mean model (finding probability = mean intensity) as the only model."""
    monkeypatch.setattr("medviewer.paths.BUILTIN_MODELS_DIR", tmp_path / "no-builtin")
    runtime.clear_session_cache()
    path = onnx_models.mean_model(tmp_path / "src" / "chest.onnx")
    onnx_models.write_card(path, name="chest", no_finding_class="normal",
                           operating_points={"finding": {"threshold": 0.5,
                                                         "method": "fixed for tests"}})
    yield registry.import_model(path)
    runtime.clear_session_cache()


def _labels_csv(folder: Path, rows: list[tuple[str, str]]) -> Path:
    path = folder / "labels.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        writer.writerows(rows)
    return path


def test_the_report_matches_the_figures_computed_by_hand(chest_model, kermany_images, tmp_path):
    rows = [(str(p), "sick" if "PNEUMONIA" in str(p) else "healthy") for p in kermany_images]
    csv_path = _labels_csv(tmp_path, rows + [("missing.png", "healthy")])
    pairs = validation.read_labels_csv(csv_path, chest_model.card.classes,
                                       validation.parse_mapping("sick=finding,healthy=normal"))
    assert pairs[-1] == (tmp_path / "missing.png", "normal")  # relative to the CSV
    events = []
    report = run_to_end(validation.validation_job(
        chest_model, pairs, user_thresholds={"finding": 0.45}, device="cpu"), events.append)
    assert any(isinstance(e, Progress) for e in events)
    assert (report.images, report.read) == (7, 6)
    assert report.unreadable[0]["reason"].startswith("Cannot open ")
    scores = np.array([p.score("finding").probability for p in
                       predict_paths(kermany_images, chest_model, audit=False)])
    truth = np.array(["PNEUMONIA" in str(p) for p in kermany_images])
    figures = report.findings["finding"]
    assert figures["auroc"]["value"] == pytest.approx(metrics.auroc(truth, scores))
    card_point = figures["at_card_point"]
    called = scores >= 0.5
    assert card_point["tp"] == int((called & truth).sum())
    assert card_point["sensitivity"]["value"] == pytest.approx(
        metrics.sensitivity_specificity(truth, scores, 0.5)[0])
    assert figures["at_user_point"]["threshold"] == 0.45
    assert sum(b["count"] for b in figures["reliability"]) == 6
    assert report.ood == {"available": False, "unusual": None, "fraction_unusual": None}
    lines = validation.report_lines(report)
    assert "No out-of-distribution check is available for this model." in lines
    assert not AuditLog().rows()  # a validation is not a read anyone saw


def test_labels_outside_the_model_are_refused_in_one_sentence(chest_model, tmp_path):
    csv_path = _labels_csv(tmp_path, [("a.png", "effusion")])
    with pytest.raises(validation.ValidationError, match="Row 2 of .* has the label "
                                                         "'effusion', which is not a class"):
        validation.read_labels_csv(csv_path, chest_model.card.classes)
    with pytest.raises(validation.ValidationError, match="is not CLASS=T"):
        validation.parse_thresholds(["finding:0.3"], chest_model.card.classes)


def test_cancel_stops_the_job(chest_model, kermany_images):
    cancel = CancelFlag()
    cancel.cancel()
    with pytest.raises(JobCancelled):
        run_to_end(validation.validation_job(chest_model, [(p, "normal") for p in
                                                           kermany_images], cancel=cancel))


def test_a_saved_record_lets_the_site_adopt_its_own_point(chest_model, kermany_images):
    pairs = [(p, "finding" if "PNEUMONIA" in str(p) else "normal") for p in kermany_images]
    report = run_to_end(validation.validation_job(chest_model, pairs,
                                                  user_thresholds={"finding": 0.3}))
    path = validation.save_validation(chest_model, report)
    assert path.is_file() and report.id
    assert [r.id for r in validation.list_validations(chest_model)] == [report.id]
    card_before = chest_model.card_path.read_bytes()

    point = validation.adopt_operating_point(chest_model, report, "finding")
    assert point["threshold"] == 0.3 and point["card_threshold"] == 0.5
    assert chest_model.card_path.read_bytes() == card_before  # the card is never rewritten
    [event] = AuditLog().events()
    assert event["kind"] == "site_operating_point" and event["detail"]["threshold"] == 0.3
    [prediction] = predict_paths(kermany_images[:1], chest_model)
    finding = prediction.score("finding")
    assert finding.threshold == 0.3 and finding.flagged == (finding.probability >= 0.3)
    assert prediction.operating_points_source == f"site (local validation {report.id})"
    assert AuditLog().rows()[0]["operating_points_source"] == prediction.operating_points_source

    validation.clear_site_operating_points(chest_model)
    [again] = predict_paths(kermany_images[:1], chest_model, audit=False)
    assert again.score("finding").threshold == 0.5 and again.operating_points_source == "card"


def test_evaluate_command_json(chest_model, kermany_images, tmp_path, capsys):
    csv_path = _labels_csv(tmp_path, [(str(p), "finding" if "PNEUMONIA" in str(p) else "normal")
                                      for p in kermany_images])
    code = main(["evaluate", "--model", "chest", "--labels", str(csv_path), "--threshold",
                 "finding=0.4", "--device", "cpu", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["read"] == 6 and Path(out["saved"]).is_file()
    assert out["findings"]["finding"]["at_user_point"]["threshold"] == 0.4
    code = main(["evaluate", "--model", "chest", "--labels", str(tmp_path / "none.csv")])
    assert code == 1 and "none.csv does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_on_the_kermany_test_split_reproduces_the_card(shared_data, tmp_path,
                                                                capsys):
    """The shipped model's card: AUROC, its interval and sensitivity/specificity at the
    card's point, reproduced by `medviewer evaluate` from a plain CSV of the test folder."""
    entry = max((e for e in registry.scan_models(include_user=False)[0]
                 if e.name == "pneumonia-demo"), key=lambda e: e.version)
    assert entry.onnx_path.is_relative_to(BUILTIN_MODELS_DIR)
    test_dir = shared_data / "xray/kermany224/test"
    rows = [(str(p), p.parent.name.lower()) for c in ("NORMAL", "PNEUMONIA")
            for p in sorted((test_dir / c).iterdir())]
    csv_path = _labels_csv(tmp_path, rows)
    code = main(["evaluate", "--model", entry.key, "--labels", str(csv_path), "--json",
                 "--no-save"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["read"] == 624 and report["unreadable"] == []
    card = entry.card.metrics
    figures = report["findings"]["PNEUMONIA"]
    assert figures["auroc"]["value"] == pytest.approx(card["auroc"]["PNEUMONIA"], abs=1e-6)
    assert figures["auroc"]["interval"] == pytest.approx(
        card["intervals"]["auroc"]["PNEUMONIA"], abs=1e-3)
    at = figures["at_card_point"]
    assert at["sensitivity"]["value"] == pytest.approx(
        card["operating_points"]["PNEUMONIA"]["sensitivity"], abs=1e-9)
    assert at["specificity"]["value"] == pytest.approx(
        card["operating_points"]["PNEUMONIA"]["specificity"], abs=1e-9)
    assert at["specificity"]["interval"] == pytest.approx(
        card["intervals"]["specificity"]["PNEUMONIA"], abs=1e-9)
    assert report["ood"]["fraction_unusual"] == pytest.approx(
        entry.card.ood.detail["measured"]["kermany_test_flagged_unusual"], abs=1e-9)
