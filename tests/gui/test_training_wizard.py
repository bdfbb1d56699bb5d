"""The training wizard driven through its pages on real chest X-rays (Kermany, 32 px, smallcnn).

Every page is used as a user would: the data folder is read and split on a worker, the model
trains on a worker with live curves, the ROC operating point is dragged beside the
reliability diagram, the model is exported to ONNX and registered, and it then shows up as a
fine-tuning source. Closing or stopping mid-run is checked to stop the worker (the fixture
fails on a leftover thread). The guards: a finished run from the runs folder is evaluated
and exported later, a model whose test AUROC cannot beat chance is registered only after an
explicit tick, and finishing with a model not exported asks first.
"""

from __future__ import annotations

import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt, QTimer
from PySide6.QtWidgets import QMessageBox, QWizard

from medviewer.app import training as app_training
from medviewer.app.training_export import FINE_TUNE_CHECKPOINT_NAME
from medviewer.gui import training_wizard as tw
from medviewer.gui import workers
from medviewer.jobs import CancelFlag, Progress
from tests.gui.helpers import mouse_drag

TOOLS_TIMEOUT_MS = 180_000  # the first import of torch in this process, on a busy machine
TRAIN_TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def kermany_folder(shared_data, tmp_path_factory) -> Path:
    """48 real chest X-rays (24 per class, different patients) in a folder per class."""
    rng = random.Random(5)
    root = tmp_path_factory.mktemp("kermany-wizard")
    for class_name in ("NORMAL", "PNEUMONIA"):
        files = sorted((shared_data / "xray/kermany224/train" / class_name).iterdir())
        (root / class_name).mkdir()
        for path in rng.sample(files, 24):
            shutil.copyfile(path, root / class_name / path.name)
    return root


@pytest.fixture
def wizard(qtbot):
    wizard = tw.TrainingWizard()
    wizard.show()
    qtbot.waitExposed(wizard)
    yield wizard
    wizard.shutdown()
    QWizard.reject(wizard)
    wizard.deleteLater()


def click(qtbot, wizard: tw.TrainingWizard, which: QWizard.WizardButton) -> None:
    button = wizard.button(which)
    assert button.isVisible() and button.isEnabled(), f"{button.text()} is not clickable"
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def read_folder(qtbot, wizard: tw.TrainingWizard, folder: Path) -> app_training.DataSummary:
    page = wizard.data_page
    page.path_edit.setText(str(folder))  # as if pasted; read after a short pause
    qtbot.waitUntil(page.isComplete, timeout=TOOLS_TIMEOUT_MS)
    return page.summary


def go_to_training(qtbot, wizard: tw.TrainingWizard, folder: Path, epochs: int,
                   batch_size: int) -> None:
    summary = read_folder(qtbot, wizard, folder)
    assert sum(summary.total(s) for s in ("train", "val", "test")) == 48
    click(qtbot, wizard, QWizard.WizardButton.NextButton)
    assert wizard.currentId() == tw.PAGE_MODEL
    qtbot.waitUntil(wizard.model_page.isComplete, timeout=TOOLS_TIMEOUT_MS)
    model = wizard.model_page
    model.arch_combo.setCurrentIndex(model.arch_combo.findData("smallcnn"))
    model.input_spin.setValue(32)
    click(qtbot, wizard, QWizard.WizardButton.NextButton)
    settings = wizard.settings_page
    settings.epochs_spin.setValue(epochs)
    settings.batch_spin.setValue(batch_size)
    settings.device_combo.setCurrentIndex(settings.device_combo.findData("cpu"))
    settings.threads_spin.setValue(1)
    click(qtbot, wizard, QWizard.WizardButton.NextButton)
    assert wizard.currentId() == tw.PAGE_TRAIN
    assert wizard.is_running("train")


def answer_stop_question(wizard: tw.TrainingWizard, answer: QMessageBox.StandardButton) -> None:
    """Click ``answer`` in the wizard's stop question as soon as it is shown."""

    def click_when_shown() -> None:
        box = wizard.stop_question
        if box is None or not box.isVisible():
            QTimer.singleShot(20, click_when_shown)
            return
        box.button(answer).click()

    QTimer.singleShot(0, click_when_shown)


def answer_export_question(wizard: tw.TrainingWizard, answer: str) -> list[str]:
    """Click the button ``answer`` of the "close without exporting?" question once shown;
    the returned list then holds the texts of all its buttons (in the platform's order)."""
    shown: list[str] = []

    def click_when_shown() -> None:
        box = wizard.export_question
        if box is None or not box.isVisible():
            QTimer.singleShot(20, click_when_shown)
            return
        shown.extend(button.text() for button in box.buttons())
        next(button for button in box.buttons() if button.text() == answer).click()

    QTimer.singleShot(0, click_when_shown)
    return shown


def confusion_at(scores: np.ndarray, positive: np.ndarray, threshold: float) -> tuple:
    predicted = scores >= threshold
    return (int((predicted & positive).sum()), int((~predicted & positive).sum()),
            int((predicted & ~positive).sum()), int((~predicted & ~positive).sum()))


# ---------------------------------------------------------------- the whole way


@pytest.mark.slow
def test_every_page_from_a_folder_to_a_registered_model(qtbot, wizard, kermany_folder,
                                                        tmp_path):
    go_to_training(qtbot, wizard, kermany_folder, epochs=1, batch_size=8)
    train = wizard.train_page
    # Back is blocked while training runs (the previous page is made a commit page).
    assert not wizard.button(QWizard.WizardButton.BackButton).isEnabled()
    qtbot.waitUntil(lambda: train.outcome == "finished", timeout=TRAIN_TIMEOUT_MS)
    assert train.best_checkpoint is not None and train.best_checkpoint.is_file()
    # Weight averaging is on by default; the checkpoint's model is the averaged one.
    import torch

    best = torch.load(train.best_checkpoint, map_location="cpu", weights_only=True)
    assert best["config"]["ema_decay"] == app_training.WEIGHT_AVERAGE_DECAY
    wizard.settings_page.average_check.setChecked(False)
    assert wizard.choices()["ema_decay"] == 0.0
    wizard.settings_page.average_check.setChecked(True)
    assert train.started.counts["train"] + train.started.counts["val"] \
        + train.started.counts["test"] == 48
    qtbot.waitUntil(lambda: train.curves.plotted_points()["val"] == 1)
    assert train.curves.plotted_points()["batch"] == train.curves.batch_count >= 4
    assert train.curves.plotted_points()["auroc"] == 1
    assert wizard.button(QWizard.WizardButton.BackButton).isEnabled()

    click(qtbot, wizard, QWizard.WizardButton.NextButton)
    evaluate = wizard.evaluate_page
    qtbot.waitUntil(lambda: evaluate.evaluation is not None, timeout=TRAIN_TIMEOUT_MS)
    evaluation = evaluate.evaluation
    assert evaluate.positive_class == "PNEUMONIA"
    val_probabilities, val_labels = evaluation.scores["val"]
    assert val_probabilities.shape == (train.started.counts["val"], 2)
    positive = val_labels == 1
    scores = val_probabilities[:, 1]
    trained = evaluation.trained_points["PNEUMONIA"]["threshold"]
    assert evaluate.thresholds["PNEUMONIA"] == trained
    assert evaluate.matrix.counts == confusion_at(scores, positive, trained)

    # Drag the operating point on the ROC to another point of the curve.
    fpr, tpr, thresholds, _, _ = evaluate._roc("val", "PNEUMONIA")
    target = next(i for i in range(len(thresholds) - 1, 0, -1)
                  if thresholds[i] != trained and (fpr[i], tpr[i]) != tuple(
                      evaluate.roc.marker_position()))
    viewport = evaluate.roc.plot.viewport()
    start = evaluate.roc.widget_position(*evaluate.roc.marker_position())
    end = evaluate.roc.widget_position(fpr[target], tpr[target])
    mouse_drag(qtbot, viewport, start, end, Qt.MouseButton.LeftButton)
    moved = evaluate.thresholds["PNEUMONIA"]
    assert moved != trained
    assert evaluate.roc.marker_position() == pytest.approx(
        (fpr[evaluate.roc.point_index], tpr[evaluate.roc.point_index]))
    assert evaluate.matrix.counts == confusion_at(scores, positive, moved)
    assert "(moved)" in evaluate.threshold_label.text()
    # The slider moves it one ROC point at a time; the figures follow.
    evaluate.slider.setFocus()
    before = evaluate.slider.value()
    key = Qt.Key.Key_Left if before > evaluate.slider.minimum() else Qt.Key.Key_Right
    qtbot.keyClick(evaluate.slider, key)
    assert evaluate.slider.value() != before
    chosen = evaluate.thresholds["PNEUMONIA"]
    index = evaluate.slider.value()
    # Halfway to the next lower score: the same ROC point, robust to float noise.
    assert thresholds[index] > chosen >= (thresholds[index + 1] if index + 1 < len(thresholds)
                                          else 0.0)
    assert (fpr[index], tpr[index]) == evaluate.roc.marker_position()
    assert evaluate.matrix.counts == confusion_at(scores, positive, chosen)
    tp, fn, fp, tn = confusion_at(scores, positive, chosen)
    # Each figure with its 95 % interval below it (Wilson; bootstrap for the AUROC).
    from medviewer.training.metrics import auroc_interval, proportion_interval

    low, high = proportion_interval(tp, tp + fn)
    assert evaluate.figures.item(0, 0).text() == f"{tp / (tp + fn):.3f}\n{low:.2f}–{high:.2f}"
    low, high = proportion_interval(tn, tn + fp)
    assert evaluate.figures.item(0, 1).text() == f"{tn / (tn + fp):.3f}\n{low:.2f}–{high:.2f}"
    low, high = auroc_interval(positive, scores)
    assert evaluate.figures.item(0, 4).text().endswith(f"\n{low:.2f}–{high:.2f}")
    assert f"[{low:.3f}–{high:.3f}]" in evaluate.roc.plot.getPlotItem().titleLabel.text
    # Beside the ROC: the reliability diagram of the same split and class, its bins computed
    # on the scoring worker with metrics.reliability_bins, ECE and Brier score in words.
    from medviewer.training import metrics

    assert evaluate.reliability.isVisible()
    assert evaluate.reliability.bins == metrics.reliability_bins(val_probabilities, val_labels,
                                                                 1)
    assert "validation: PNEUMONIA" in evaluate.reliability.title
    words = evaluate.calibration_note.text()
    ece = metrics.expected_calibration_error(val_probabilities, val_labels, 1)
    assert f"ECE {ece:.3f}" in words and "raw PNEUMONIA scores" in words
    assert f"Brier score {metrics.brier_score(val_probabilities, val_labels):.3f}" in words
    assert f"T = {evaluation.temperature:.2f}" in words and "before and after" in words
    # The test split shows the same threshold's point on its own curve, and its own bins.
    evaluate.split_combo.setCurrentIndex(evaluate.split_combo.findData("test"))
    test_probabilities, test_labels = evaluation.scores["test"]
    assert evaluate.matrix.counts == confusion_at(test_probabilities[:, 1], test_labels == 1,
                                                  chosen)
    assert evaluate.reliability.bins == metrics.reliability_bins(test_probabilities,
                                                                 test_labels, 1)
    assert "on the test images" in evaluate.calibration_note.text()

    click(qtbot, wizard, QWizard.WizardButton.NextButton)
    export = wizard.export_page
    assert export.version_edit.text() == "1"
    # The threshold the card will store, in both scales.
    stored = evaluation.calibrated_threshold("PNEUMONIA", chosen)
    assert f"PNEUMONIA: threshold {chosen:.4f} on the trainer's raw scores, chosen on the " \
        f"Evaluate page" in export.points_label.text()
    assert f"calibrated scale, at about {stored:.4f}" in export.points_label.text()
    # Whatever these 7 test images say, the page shows the export's warnings exactly when
    # the Evaluate page's scores give some, and registering then waits for a tick.
    assert export.warnings == evaluation.warnings
    assert export.warning_label.isVisible() == bool(evaluation.warnings)
    assert export.register_check.isChecked() == (not evaluation.warnings)
    # Finish before exporting asks first; staying keeps the wizard and exports nothing.
    offered = answer_export_question(wizard, "Stay")
    click(qtbot, wizard, QWizard.WizardButton.FinishButton)
    assert sorted(offered) == ["Close without exporting", "Export now", "Stay"]
    assert wizard.isVisible() and export.outcome is None and not wizard.is_running("export")
    export.register_check.setChecked(True)  # with a warning shown: the explicit confirmation
    export.name_edit.setText("wizard-test")
    saved_in = tmp_path / "saved models"
    export.folder_edit.setText(str(saved_in))
    with qtbot.waitSignal(wizard.model_registered, timeout=TRAIN_TIMEOUT_MS) as registered:
        qtbot.mouseClick(export.export_button, Qt.MouseButton.LeftButton)
    entry = registered.args[0]
    assert entry.key == "wizard-test@1"
    from medviewer.inference import registry

    installed = {e.key: e for e in registry.list_models()}
    assert "wizard-test@1" in installed and installed["wizard-test@1"].source == "user"
    card = installed["wizard-test@1"].card
    point = card.operating_points["PNEUMONIA"]
    # Chosen on the trainer's raw scores; the card's probabilities are calibrated, so the
    # same operating point sits at the calibrated threshold (the test figures below agree).
    from medviewer.training.gates import calibrated_threshold

    assert point.threshold == pytest.approx(calibrated_threshold(
        chosen, card.classes.index("PNEUMONIA"), 2, card.calibration.temperature))
    assert point.threshold == pytest.approx(stored, abs=1e-4)  # as the page said before
    assert f"at threshold {point.threshold:.4f} (calibrated scale; {chosen:.4f} on the " \
        f"trainer's raw scores)" in export.result_label.text()
    assert "training wizard" in point.method
    assert point.metrics["val_sensitivity"] == pytest.approx(tp / (tp + fn))
    tested = card.metrics["operating_points"]["PNEUMONIA"]
    expected = evaluate.figures_at("test", "PNEUMONIA", chosen)
    assert tested["sensitivity"] == pytest.approx(expected["sensitivity"])
    assert tested["specificity"] == pytest.approx(expected["specificity"])
    low, high = card.metrics["intervals"]["sensitivity"]["PNEUMONIA"]  # of the moved point
    assert low <= tested["sensitivity"] <= high
    assert f"sensitivity {tested['sensitivity']:.3f} [{low:.3f}–{high:.3f}]" in \
        export.result_label.text()
    assert (installed["wizard-test@1"].onnx_path.parent / FINE_TUNE_CHECKPOINT_NAME).is_file()
    assert "wizard-test@1" in export.result_label.text()
    assert "PNEUMONIA at threshold" in export.result_label.text()
    assert "NORMAL at threshold" not in export.result_label.text()  # never flagged
    saved = saved_in / "wizard-test-1"
    assert (saved / "wizard-test.onnx").is_file() and (saved / "wizard-test.json").is_file()
    assert registry.ModelCard.load(saved / "wizard-test.json").operating_points[
        "PNEUMONIA"].threshold == pytest.approx(point.threshold)
    assert card.training["weights"] == "float32"

    # The same run again with 8-bit weights: a quarter of the file, said in the card.
    export.version_edit.setText("2")
    export.register_check.setChecked(True)
    export.weights_combo.setCurrentIndex(export.weights_combo.findData("int8"))
    with qtbot.waitSignal(wizard.model_registered, timeout=TRAIN_TIMEOUT_MS) as registered:
        qtbot.mouseClick(export.export_button, Qt.MouseButton.LeftButton)
    small = registered.args[0]
    assert small.card.training["weights"].startswith("int8")
    assert small.onnx_path.stat().st_size < 0.3 * installed["wizard-test@1"].onnx_path.stat(
        ).st_size

    click(qtbot, wizard, QWizard.WizardButton.FinishButton)
    qtbot.waitUntil(lambda: not wizard.isVisible())

    # The registered model is offered for fine-tuning by the next wizard.
    again = tw.TrainingWizard()
    try:
        qtbot.waitUntil(lambda: again.tools is not None, timeout=TOOLS_TIMEOUT_MS)
        model = again.model_page
        index = next(i for i in range(model.source_combo.count())
                     if "wizard-test@1" in model.source_combo.itemText(i))
        model.fine_tune_radio.setChecked(True)
        model.source_combo.setCurrentIndex(index)
        model._source_chosen(index)
        qtbot.waitUntil(lambda: model.checkpoint is not None)
        assert model.arch == "smallcnn" and model.input_spin.value() == 32
        assert not model.arch_combo.isEnabled()
        read_folder(qtbot, again, kermany_folder)
        assert again.choices()["init_checkpoint"].endswith(FINE_TUNE_CHECKPOINT_NAME)
    finally:
        again.shutdown()
        again.deleteLater()


# ---------------------------------------------------------------- stopping


@pytest.mark.slow
def test_stop_keeps_the_best_checkpoint_and_allows_evaluating_it(qtbot, wizard,
                                                                  kermany_folder):
    go_to_training(qtbot, wizard, kermany_folder, epochs=40, batch_size=4)
    train = wizard.train_page
    qtbot.waitUntil(lambda: train.best_checkpoint is not None, timeout=TRAIN_TIMEOUT_MS)
    assert wizard.is_running("train")
    qtbot.mouseClick(train.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: train.outcome == "cancelled", timeout=60_000)
    assert not wizard.is_running("train") and not workers.running_workers()
    assert train.curves.epoch_count < 40
    assert "is kept" in train.headline.text()
    from medviewer.training import trainer

    kept = trainer.load_checkpoint(train.best_checkpoint)
    assert kept["best_epoch"] == train.best_epoch
    # A stopped run with a checkpoint can be evaluated and exported.
    assert wizard.button(QWizard.WizardButton.NextButton).isEnabled()


@pytest.mark.slow
def test_closing_mid_run_asks_then_stops_the_worker(qtbot, wizard, kermany_folder):
    go_to_training(qtbot, wizard, kermany_folder, epochs=40, batch_size=4)
    train = wizard.train_page
    qtbot.waitUntil(lambda: train.curves.batch_count > 0, timeout=TRAIN_TIMEOUT_MS)

    answer_stop_question(wizard, QMessageBox.StandardButton.No)
    assert not wizard.close()
    assert wizard.isVisible() and wizard.is_running("train") and not wizard.closing

    answer_stop_question(wizard, QMessageBox.StandardButton.Yes)
    wizard.close()
    assert wizard.closing  # it waits for the worker without blocking the GUI thread
    qtbot.waitUntil(lambda: not wizard.isVisible(), timeout=60_000)
    assert not wizard.is_running("train") and not workers.running_workers()
    assert train.outcome == "cancelled"
    assert train.curves.epoch_count < 40


# ---------------------------------------------------------------- the guards


@pytest.fixture(scope="module")
def chance_run(shared_data, tmp_path_factory) -> Path:
    """A finished run trained (1 epoch, 32 px) on 48 copies of one X-ray, half labelled
    each class: every image scores alike, so its validation and test AUROC are exactly 0.5
    and the export must warn."""
    from medviewer.jobs import run_to_end
    from medviewer.training import trainer

    root = tmp_path_factory.mktemp("chance")
    source = sorted((shared_data / "xray/kermany224/train/NORMAL").iterdir())[0]
    for index in range(48):
        folder = root / "data" / ("NORMAL", "PNEUMONIA")[index % 2]
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, folder / f"IM-{index + 1:04d}-0001.jpeg")  # a patient each
    config = trainer.TrainConfig(data=str(root / "data"), arch="smallcnn", epochs=1,
                                 batch_size=8, input_size=32, seed=2, device="cpu",
                                 num_threads=1)
    run_to_end(trainer.train(config, root / "20250102-030405-smallcnn"))
    return root / "20250102-030405-smallcnn"


@pytest.mark.slow
def test_a_finished_run_is_exported_later_and_its_warning_needs_a_tick(qtbot, wizard,
                                                                       chance_run):
    from medviewer.app.training import runs_dir
    from medviewer.inference import registry

    shutil.copytree(chance_run, runs_dir() / chance_run.name)
    (runs_dir() / "20250101-000000-smallcnn" / "checkpoints").mkdir(parents=True)  # no best
    page = wizard.data_page
    page.finished_radio.setChecked(True)
    qtbot.waitUntil(lambda: page.runs_table.rowCount() == 1 and page.isComplete(),
                    timeout=TOOLS_TIMEOUT_MS)
    assert not page.training_part.isVisible() and page.runs_part.isVisible()
    row = [page.runs_table.item(0, column).text() for column in range(6)]
    run = page.finished_run
    assert run.run_dir == str(runs_dir() / chance_run.name)
    assert row == [run.started, "chance0/data", "smallcnn, 32 px", "1",
                   f"{run.best_val_auroc:.3f}", "finished"]

    # Straight to Evaluate with that run's checkpoint and split, then Export.
    click(qtbot, wizard, QWizard.WizardButton.NextButton)
    assert wizard.currentId() == tw.PAGE_EVALUATE
    evaluate = wizard.evaluate_page
    qtbot.waitUntil(lambda: evaluate.evaluation is not None, timeout=TRAIN_TIMEOUT_MS)
    evaluation = evaluate.evaluation
    assert evaluation.checkpoint == str(runs_dir() / chance_run.name / "checkpoints/best.pt")
    assert evaluation.data == str(chance_run.parent / "data")
    val_probabilities = evaluation.scores["val"][0]
    assert np.ptp(val_probabilities[:, 1]) == 0  # one image: one score
    assert evaluate.reliability.bins and sum(b["count"] for b in evaluate.reliability.bins) \
        == len(val_probabilities)
    assert any("includes 0.5" in line for line in evaluation.warnings)
    click(qtbot, wizard, QWizard.WizardButton.NextButton)
    export = wizard.export_page
    assert export.name_edit.text() == "data-smallcnn"
    assert export.warning_label.isVisible()
    assert "PNEUMONIA: the test AUROC is 0.500 (95 % interval 0.50–0.50)" in \
        export.warning_label.text()
    assert not export.register_check.isChecked()
    assert export.register_check.text() == "Add it to the model list anyway: I have read " \
        "the warning above"
    folder = runs_dir() / chance_run.name / "export"
    # Exported without the tick: written, not registered, and the page says so.
    qtbot.mouseClick(export.export_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not wizard.is_running("export"), timeout=TRAIN_TIMEOUT_MS)
    assert export.outcome is not None and export.outcome.entry is None
    assert (folder / "data-smallcnn-1" / "data-smallcnn.onnx").is_file()
    assert "Not added to the model list" in export.result_label.text()
    assert "data-smallcnn@1" not in {e.key for e in registry.list_models()}
    # The tick registers it.
    export.register_check.setChecked(True)
    with qtbot.waitSignal(wizard.model_registered, timeout=TRAIN_TIMEOUT_MS) as registered:
        qtbot.mouseClick(export.export_button, Qt.MouseButton.LeftButton)
    assert registered.args[0].key == "data-smallcnn@1"
    assert "Registered as <b>data-smallcnn@1</b>" in export.result_label.text()
    # Nothing was trained here, so Finish closes without a question.
    click(qtbot, wizard, QWizard.WizardButton.FinishButton)
    qtbot.waitUntil(lambda: not wizard.isVisible())


@pytest.mark.slow
def test_finishing_or_closing_with_an_unexported_model_asks_first(qtbot, wizard,
                                                                  kermany_folder):
    go_to_training(qtbot, wizard, kermany_folder, epochs=1, batch_size=8)
    train = wizard.train_page
    qtbot.waitUntil(lambda: train.outcome == "finished", timeout=TRAIN_TIMEOUT_MS)
    first_run = train.run_dir
    click(qtbot, wizard, QWizard.WizardButton.NextButton)
    qtbot.waitUntil(lambda: wizard.evaluate_page.evaluation is not None,
                    timeout=TRAIN_TIMEOUT_MS)
    click(qtbot, wizard, QWizard.WizardButton.NextButton)
    assert wizard.unexported_run() == first_run
    # Cancel asks as Finish does; "Export now" exports with the page's choices and stays.
    offered = answer_export_question(wizard, "Export now")
    click(qtbot, wizard, QWizard.WizardButton.CancelButton)
    assert sorted(offered) == ["Close without exporting", "Export now", "Stay"]
    assert wizard.isVisible() and wizard.is_running("export")
    qtbot.waitUntil(lambda: not wizard.is_running("export"), timeout=TRAIN_TIMEOUT_MS)
    assert wizard.export_page.outcome is not None and wizard.unexported_run() is None

    # Back to the settings and train again: a new run, not exported yet.
    click(qtbot, wizard, QWizard.WizardButton.BackButton)
    click(qtbot, wizard, QWizard.WizardButton.BackButton)
    click(qtbot, wizard, QWizard.WizardButton.BackButton)
    assert wizard.currentId() == tw.PAGE_SETTINGS
    click(qtbot, wizard, QWizard.WizardButton.NextButton)
    qtbot.waitUntil(lambda: train.outcome == "finished", timeout=TRAIN_TIMEOUT_MS)
    second_run = train.run_dir
    assert second_run != first_run and wizard.unexported_run() == second_run
    # The window closing (its close guard) cannot export: it offers closing or staying.
    offered = answer_export_question(wizard, "Stay")
    assert wizard.confirm_close() == "stay"
    assert sorted(offered) == ["Close without exporting", "Stay"]
    answer_export_question(wizard, "Close without exporting")
    click(qtbot, wizard, QWizard.WizardButton.CancelButton)
    qtbot.waitUntil(lambda: not wizard.isVisible())
    # Nothing trained is gone: both runs can still be exported later.
    from medviewer.app.training import list_finished_runs

    assert {first_run, second_run} <= {Path(r.run_dir) for r in list_finished_runs()}


# ---------------------------------------------------------------- main window, data page


def test_training_menu_opens_the_wizard_and_closing_the_window_closes_it(qtbot, main_window):
    action = main_window.train_model_action
    assert action in main_window.menus["training"].actions()
    action.trigger()
    wizard = tw.training_wizard_of(main_window)
    assert isinstance(wizard, tw.TrainingWizard) and wizard.isVisible()
    action.trigger()  # a second time: the same wizard comes to the front
    assert tw.training_wizard_of(main_window) is wizard
    assert not hasattr(main_window, "_training_wizard")  # the opener keeps it, not the window
    qtbot.waitUntil(lambda: wizard.tools is not None, timeout=TOOLS_TIMEOUT_MS)
    assert "smallcnn" in wizard.tools.architectures
    main_window.close()
    assert not wizard.isVisible() and not wizard.running_jobs()


def test_viewer_edition_explains_what_studio_adds(qtbot, main_window, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    assert not app_training.studio_available()
    box = main_window.open_training_wizard()
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert box.windowTitle() == tw.STUDIO_TITLE
    assert "Studio" in box.text() and "PyTorch" in box.text()
    assert tw.training_wizard_of(main_window) is None
    box.button(QMessageBox.StandardButton.Ok).click()


def test_every_trainer_event_is_handled_or_deliberately_ignored_by_cli_and_wizard():
    """One dispatcher, no silent drop: each event type a run may yield has an on_<type>
    method in `medviewer train`'s printer and the Train page, or is in their ignore list."""
    import dataclasses

    from medviewer.commands.training import TrainPrinter
    from medviewer.gui.training_wizard.export_page import ExportPage
    from medviewer.gui.training_wizard.train_page import TrainPage
    from medviewer.jobs import unhandled_events
    from medviewer.training import events

    defined = {value for value in vars(events).values() if isinstance(value, type)
               and dataclasses.is_dataclass(value) and value.__module__ == events.__name__}
    assert defined <= set(events.TRAINER_EVENTS)  # the list names every event type
    assert unhandled_events(TrainPrinter, events.TRAINER_EVENTS) == []
    assert unhandled_events(TrainPage, events.TRAINER_EVENTS) == []
    assert unhandled_events(ExportPage, [Progress]) == []  # the export job's only event


def waiting_job(cancel: CancelFlag):
    """A job that runs until it is cancelled (stands in for a long training run)."""
    while not cancel.cancelled:
        time.sleep(0.01)
        yield Progress(0, None, "waiting")


def test_the_wizard_opens_in_any_shell_asks_before_it_closes_and_reports_new_models(qtbot):
    """No main window: a StandaloneShell and a Session are all the opener needs."""
    from medviewer.app.session import Session
    from medviewer.gui.shell import StandaloneShell
    from medviewer.inference import registry

    shell, session = StandaloneShell(), Session()
    shell.show()
    qtbot.waitExposed(shell)
    changes = []
    session.events.models_changed.connect(changes.append)
    wizard = tw.open_training_wizard(shell, session)
    assert tw.training_wizard_of(shell) is wizard and wizard.parent() is shell
    assert tw.open_training_wizard(shell, session) is wizard  # one per window
    assert not hasattr(shell, "_training_wizard")

    entry = registry.list_models()[0]  # the bundled model, as the export page would send
    wizard.model_registered.emit(entry)
    assert changes == [None]
    assert shell.messages[-1] == f"Model {entry.key} was added to the model list."

    wizard.start_job("train", waiting_job, "training a model")
    answer_stop_question(wizard, QMessageBox.StandardButton.No)
    assert not shell.close()  # the user keeps the run: the window stays
    assert shell.isVisible() and wizard.is_running("train")
    answer_stop_question(wizard, QMessageBox.StandardButton.Yes)
    assert shell.close()
    assert not wizard.isVisible() and not workers.running_workers()
    shell.deleteLater()


def test_data_page_shows_one_sentence_for_unusable_data(qtbot, wizard, tmp_path,
                                                        kermany_folder):
    one_class = tmp_path / "one-class"
    shutil.copytree(kermany_folder / "NORMAL", one_class / "NORMAL")
    page = wizard.data_page
    page.set_source("folder", str(one_class))
    qtbot.waitUntil(lambda: bool(page.status_label.text()) and not wizard.is_running("data"),
                    timeout=TOOLS_TIMEOUT_MS)
    assert "needs one sub-folder per class" in page.status_label.text()
    assert not page.isComplete()
    assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()


def test_csv_source_and_seed_change_resplit_by_patient(qtbot, wizard, tmp_path,
                                                       kermany_folder):
    rows = ["path,label"] + [f"{p},{p.parent.name}" for p in sorted(kermany_folder.rglob("*.jpeg"))]
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    page = wizard.data_page
    page.set_source("csv", str(csv_path))
    qtbot.waitUntil(page.isComplete, timeout=TOOLS_TIMEOUT_MS)
    first = page.summary
    assert first.class_names == ["NORMAL", "PNEUMONIA"] and first.split_by == "patient"
    assert {c: sum(first.counts[s][c] for s in first.counts) for c in first.class_names} == \
        {"NORMAL": 24, "PNEUMONIA": 24}
    assert page.table.item(2, 3).text() == "48"  # the "All images" row, "All" column
    wizard.settings_page.seed_spin.setValue(7)
    qtbot.waitUntil(lambda: page.summary is not None and page.summary.seed == 7)
    assert page.summary.labelled is first.labelled  # split again, not read again
    from medviewer.training import data

    expected = data.split_records(first.labelled.records, 0.15, 0.15, 7)
    assert page.summary.total("val") == len(expected.val)
    assert page.summary.total("test") == len(expected.test)


def test_label_set_source_lists_the_store_and_reads_its_labels(qtbot, kermany_folder):
    from medviewer.dicom.reader import open_instance
    from medviewer.labels.store import ImageRef, LabelStore

    files = sorted(kermany_folder.rglob("*.jpeg"))
    with LabelStore() as store:  # the default store, under this test's MEDVIEWER_HOME
        store.create_label_set("chest", ["NORMAL", "PNEUMONIA"])
        for path in files:
            store.set_label("chest", ImageRef.from_instance(open_instance(path)),
                            path.parent.name)
    wizard = tw.TrainingWizard()
    try:
        qtbot.waitUntil(lambda: wizard.tools is not None, timeout=TOOLS_TIMEOUT_MS)
        page = wizard.data_page
        assert page.label_set_combo.findData("chest") >= 0
        page.set_source("labelset", "chest")
        qtbot.waitUntil(page.isComplete, timeout=60_000)
        summary = page.summary
        assert summary.spec == "labelset:chest" and summary.split_by == "patient"
        assert summary.class_names == ["NORMAL", "PNEUMONIA"]
        assert sum(summary.total(s) for s in ("train", "val", "test")) == len(files) == 48
        assert wizard.choices()["data"] == "labelset:chest"
    finally:
        wizard.shutdown()
        wizard.deleteLater()


# ---------------------------------------------------------------- the plots


def test_curves_redraw_a_few_times_per_second_whatever_the_event_rate(qtbot):
    from medviewer.gui.curves import TrainingCurves

    curves = TrainingCurves(redraws_per_second=4)
    curves.show()
    qtbot.waitExposed(curves)
    qtbot.wait(300)
    before = curves.redraw_count
    for batch in range(2000):
        curves.add_batch(batch / 100, 1.0 / (1 + batch))
    curves.add_epoch(1, 0.5, 0.6, 0.8, 1)
    assert curves.redraw_count == before  # nothing drawn while the events came in
    qtbot.wait(700)
    assert 1 <= curves.redraw_count - before <= 4
    assert curves.plotted_points() == {"batch": 2000, "train": 1, "val": 1, "auroc": 1}
    redraws = curves.redraw_count
    qtbot.wait(600)
    assert curves.redraw_count == redraws  # no redraw without new figures
    curves.close()


def test_roc_plot_picks_the_curve_point_nearest_a_click(qtbot):
    from medviewer.gui.curves import RocPlot

    plot = RocPlot()
    plot.resize(400, 400)
    plot.show()
    qtbot.waitExposed(plot)
    fpr = np.array([0.0, 0.0, 0.25, 0.5, 1.0])
    tpr = np.array([0.0, 0.5, 0.75, 1.0, 1.0])
    plot.set_curve(fpr, tpr, "test curve")
    plot.set_point(1)
    qtbot.wait(50)
    with qtbot.waitSignal(plot.point_picked) as picked:
        qtbot.mouseClick(plot.plot.viewport(), Qt.MouseButton.LeftButton,
                         pos=plot.widget_position(0.3, 0.7).toPoint())
    assert picked.args == [2]
    assert plot.marker_position() == (0.0, 0.5)  # the owner moves the marker, not the plot


def test_names_versions_and_durations():
    assert app_training.suggest_model_name("/data/chest x-rays",
                                           "resnet18") == "chest-x-rays-resnet18"
    assert app_training.suggest_model_name("labelset:pneumonia",
                                           "smallcnn") == "pneumonia-smallcnn"
    assert app_training.next_free_version("m", {"m@1", "M@2", "other@3"}) == "3"
    assert app_training.format_duration(42) == "42 s"
    assert app_training.format_duration(150) == "2 min"
    assert app_training.format_duration(3 * 3600 + 5 * 60) == "3 h 05 min"
    assert app_training.format_duration(float("nan")) == ""
