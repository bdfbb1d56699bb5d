"""The Evaluate dialog runs the local validation on a worker and the model dialog lists it."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox

from medviewer.app import validation
from medviewer.gui.evaluate_dialog import EvaluateDialog
from medviewer.gui.models_dialog import CardView, card_html, validation_test_differences
from medviewer.inference import registry
from medviewer.inference.audit import AuditLog
from tests.gui.ai_helpers import install_mean_model, no_builtin_models  # noqa: F401
from tests.inference.conftest import kermany_images  # noqa: F401 - a fixture


def _pairs(images):
    return [(p, "finding" if "PNEUMONIA" in str(p) else "normal") for p in images]


def test_a_label_set_is_evaluated_saved_listed_and_its_point_adopted(
        qtbot, tmp_path, no_builtin_models, kermany_images, monkeypatch):
    entry = install_mean_model(tmp_path, "chest", no_finding_class="normal")
    dialog = EvaluateDialog([entry], entry.key, pairs=_pairs(kermany_images),
                            source="label set 'ward'")
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.finding_combo.currentText() == "finding"
    assert dialog.threshold_spin.value() == 0.5
    dialog.threshold_spin.setValue(0.4)
    with qtbot.waitSignal(dialog.validation_saved, timeout=60_000) as saved:
        assert dialog.start() is not None
        assert not dialog.run_button.isEnabled() and dialog.cancel_button.isEnabled()
    assert saved.args == [entry.key]
    report = dialog.report
    assert report is not None and report.read == 6 and report.source == "label set 'ward'"
    assert "AUROC" in dialog.report_view.toPlainText()
    assert sum(b["count"] for b in dialog.diagram.bins) == 6
    assert [r.id for r in validation.list_validations(entry)] == [report.id]

    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: QMessageBox.StandardButton.Yes)
    dialog.adopt()
    assert "is now flagged at 0.400" in dialog.status.text()
    assert AuditLog().events()[0]["kind"] == "site_operating_point"

    view = CardView()
    qtbot.addWidget(view)
    view.show_entry(entry)
    text = view.toPlainText()
    assert "Local validations at this site" in text and report.id in text
    assert "Site operating point in force: finding at 0.400" in text
    assert "No out-of-distribution check is available for this model" in text


def test_a_missing_csv_is_one_sentence_and_nothing_runs(qtbot, tmp_path, no_builtin_models):
    entry = install_mean_model(tmp_path, "chest")
    dialog = EvaluateDialog([entry], entry.key)
    qtbot.addWidget(dialog)
    dialog.csv_edit.setText(str(tmp_path / "none.csv"))
    assert dialog.start() is None
    assert dialog.status.text().endswith("none.csv does not exist.")


def test_cancel_stops_the_job(qtbot, tmp_path, no_builtin_models, kermany_images):
    entry = install_mean_model(tmp_path, "chest")
    dialog = EvaluateDialog([entry], entry.key, pairs=_pairs(kermany_images * 20))
    qtbot.addWidget(dialog)
    worker = dialog.start()
    with qtbot.waitSignal(worker.ended, timeout=60_000):
        dialog.cancel()
    assert dialog.run_button.isEnabled() and dialog.report is None


def test_the_shipped_card_explains_validation_against_test_and_its_checks():
    entry = max((e for e in registry.scan_models(include_user=False)[0]
                 if e.name == "pneumonia-demo"), key=lambda e: e.version)
    [specificity, auroc] = validation_test_differences(entry.card)
    assert specificity.startswith("PNEUMONIA: the specificity at the operating point was "
                                  "0.99 on the validation images but 0.61 [0.55-0.67]")
    text = card_html(entry, validations=[])
    assert "temperature scaling" in text and "out-of-distribution score" in text
    assert "1 to 5 years" in text and "CR, DX" in text
    assert "Validation and test disagree" in text
