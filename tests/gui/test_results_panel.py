"""The AI reading workflow in the main window, end to end with real ONNX models and files.

Models are tiny real ONNX graphs with known outputs (tests/inference/onnx_models.py),
installed into the test's own MEDVIEWER_HOME with the registry's import; images are
generated PNGs, Kermany chest X-rays and a truncated real DICOM file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QImage

from medviewer.app.ai_reading import provider_name
from medviewer.gui.models_dialog import DEMO_BANNER
from medviewer.gui.results_view import FLAG_COLOUR
from medviewer.inference import runtime
from medviewer.inference.audit import AuditLog
from medviewer.inference.registry import file_sha256, list_models
from medviewer.settings import load_settings
from tests.inference import onnx_models

from .ai_helpers import (  # noqa: F401 - no_builtin_models is a fixture
    install_cam_model, install_mean_model, no_builtin_models, uniform_png,
)

LOAD_TIMEOUT_MS = 30_000


@pytest.fixture
def models(no_builtin_models, tmp_path) -> dict:
    sources = tmp_path / "model-sources"
    return {"mean": install_mean_model(sources), "cam": install_cam_model(sources)}


@pytest.fixture
def ai_window(models, main_window):
    """The main window, created after the test models were installed."""
    return main_window


def choose(qtbot, window, key: str):
    with qtbot.waitSignal(window.ai.model_ready, timeout=LOAD_TIMEOUT_MS):
        assert window.ai.choose_model(key)
    return window.ai.model


def show_and_read(qtbot, window, path: Path):
    with qtbot.waitSignal(window.ai.read_finished, timeout=LOAD_TIMEOUT_MS) as blocker:
        window.open_paths([path])
    return blocker.args[0]


def kermany(shared_data: Path, count: int) -> list[Path]:
    folder = shared_data / "xray" / "kermany224" / "test"
    files = sorted((folder / "NORMAL").glob("*.jpeg"))[: count // 2] + sorted(
        (folder / "PNEUMONIA").glob("*.jpeg"))[: count - count // 2]
    assert len(files) == count, f"kermany224 test images missing under {folder}"
    return files


def truncated_dicom(shared_data: Path, target: Path) -> Path:
    data = (shared_data / "dicom" / "wg04" / "REF" / "CT1_UNC").read_bytes()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data[: len(data) // 2])
    return target


def rgb_at(image: QImage, x: int, y: int) -> tuple[int, int, int]:
    colour = image.pixelColor(x, y)
    return colour.red(), colour.green(), colour.blue()


# ---------------------------------------------------------------- models and providers


def test_choosing_a_model_shows_the_provider_in_use(qtbot, ai_window, models):
    ai = ai_window.ai
    assert ai_window.menus["models"].menuAction().isVisible()
    action = next(a for a in ai.model_actions() if a.data() == models["mean"].key)
    with qtbot.waitSignal(ai.model_ready, timeout=LOAD_TIMEOUT_MS) as ready:
        action.trigger()
    session = ready.args[0]
    shown = provider_name(session.provider)
    assert shown in ("CUDA", "TensorRT", "CPU")
    assert ai.provider_field.text().startswith(f"AI: {shown}")
    assert ai.provider_field.isVisibleTo(ai_window)
    assert ai.panel.provider_label.text().startswith(f"Runs on {shown} (loaded in ")
    assert ai.panel.model_label.text() == "mean-test 1.0"
    # A GPU that was wanted but could not be used is announced, in one sentence, both places.
    if runtime.requested_providers()[0] != runtime.CPU and not session.on_gpu:
        assert session.notice
    if session.notice:
        assert ai.panel.notice_label.text() == session.notice
        assert not ai.panel.notice_label.isHidden()
        assert session.notice in ai.provider_field.toolTip()
        assert ai.provider_field.text().endswith("⚠")
        assert "\n" not in session.notice and "Traceback" not in session.notice
    else:
        assert ai.panel.notice_label.isHidden()
    assert session.warmed_up
    assert load_settings().default_model == models["mean"].key
    assert [a.isChecked() for a in ai.model_actions()] == [
        e.key == models["mean"].key for e in list_models()]


def test_default_model_loads_at_start_up(qtbot, models, no_builtin_models, tmp_path):
    from medviewer.gui.main_window import MainWindow
    from medviewer.settings import Settings, save_settings

    save_settings(Settings(default_model=models["cam"].key))
    window = MainWindow()
    try:
        window.show()
        assert window.ai.model is None  # nothing loads before the first image
        with qtbot.waitSignal(window.ai.read_finished, timeout=LOAD_TIMEOUT_MS) as read:
            window.open_paths([uniform_png(tmp_path / "a.png", 100)])
        # The model loaded on a worker once the first image was on screen, then read it.
        assert read.args[0].prediction.model_name == "cam-test"
        assert window.ai.model.card.key == models["cam"].key
        assert window.ai.panel.model_label.text() == "cam-test 1.0"
    finally:
        window.close()
        window.deleteLater()


def test_no_model_installed_is_one_sentence_and_the_viewer_works(
        qtbot, no_builtin_models, main_window, tmp_path):
    ai = main_window.ai
    ai.load_default_model()
    assert ai.panel.status_label.text() == ("No AI model is installed: import one with "
                                            "Models > Import model….")
    assert ai.provider_field.text() == "AI: no model"
    with qtbot.waitSignal(main_window.image_view.image_shown, timeout=20_000):
        main_window.open_paths([uniform_png(tmp_path / "a.png", 100)])
    ai.read_current()
    assert "No AI model" in main_window.statusBar().currentMessage()
    assert main_window.image_view.instance is not None


def test_a_model_that_fails_to_load_is_one_sentence(qtbot, ai_window, models):
    ai = ai_window.ai
    broken = models["cam"]
    with broken.onnx_path.open("ab") as handle:  # changed after it was installed
        handle.write(b"\0")
    with qtbot.waitSignal(ai.model_failed, timeout=LOAD_TIMEOUT_MS) as failed:
        ai.choose_model(broken.key)
    sentence = failed.args[0]
    assert sentence == (f"The model file {broken.onnx_path.name} is refused: its SHA-256 no "
                        "longer matches its card (the file was changed after it was installed).")
    assert ai.panel.status_label.text() == sentence
    assert ai_window.statusBar().currentMessage() == sentence
    assert ai.provider_field.text() == "AI: unavailable"
    assert ai.model is None
    # The app keeps working: another model loads and reads.
    choose(qtbot, ai_window, models["mean"].key)
    assert ai.provider_field.text().startswith("AI: ")
    assert ai.panel.status_label.text() != sentence


def test_use_tensorrt_is_saved_and_reloads_the_model(qtbot, ai_window, models):
    ai = ai_window.ai
    choose(qtbot, ai_window, models["mean"].key)
    with qtbot.waitSignal(ai.model_ready, timeout=120_000) as ready:
        ai.tensorrt_action.trigger()
    assert load_settings().use_tensorrt is True
    session = ready.args[0]
    # TensorRT where it can start; otherwise the provider actually used, and why.
    assert ai.provider_field.text().startswith(f"AI: {provider_name(session.provider)}")
    if session.provider != runtime.TENSORRT:
        assert session.notice
    with qtbot.waitSignal(ai.model_ready, timeout=LOAD_TIMEOUT_MS):
        ai.tensorrt_action.trigger()
    assert load_settings().use_tensorrt is False


# ---------------------------------------------------------------- the shown image


def test_shown_image_gets_bars_against_the_threshold_and_the_flag(
        qtbot, ai_window, models, tmp_path):
    ai = ai_window.ai
    suggestions: list[tuple[dict, str, Path]] = []
    labelling = ai_window.session.labelling

    def record_suggestion(path):  # what the label panel is told, through the session
        suggestion = labelling.suggestion(path)
        suggestions.append((dict(suggestion.probabilities), suggestion.model_name, path))

    labelling.events.suggestion_changed.connect(record_suggestion)
    choose(qtbot, ai_window, models["mean"].key)
    bright = uniform_png(tmp_path / "bright.png", 191)  # the model returns [1 - m, m]
    read = show_and_read(qtbot, ai_window, bright)
    panel = ai.panel
    bars = panel.visible_bars()
    assert [b.class_name for b in bars] == ["normal", "finding"]
    normal, finding = bars
    assert finding.probability == pytest.approx(191 / 255, abs=1e-5)
    assert normal.probability == pytest.approx(64 / 255, abs=1e-5)
    assert finding.threshold == 0.5 and finding.flagged
    assert normal.threshold is None and not normal.flagged
    rect = finding.bar_rect()
    assert finding.threshold_x() == pytest.approx(rect.left() + 0.5 * rect.width())
    assert finding.fill_width() == pytest.approx(rect.width() * 191 / 255)
    assert panel.finding_label.text() == "Flagged: finding (0.749 ≥ 0.500)"
    provider = provider_name(ai.model.provider)
    assert panel.timing_label.text().startswith("Inference ")
    assert panel.timing_label.text().endswith(f" ms on {provider}")
    assert panel.status_label.text() == "Result for bright.png"
    assert "flagged" in finding.toolTip() and "no operating point" in normal.toolTip()

    # What is painted: the flag colour fills the bar to the probability; a white marker
    # line sits at the threshold; the unfilled groove stays dark.
    image = finding.grab().toImage()
    y = int(rect.center().y())
    marker = int(round(finding.threshold_x()))
    assert rgb_at(image, int(rect.left() + 10), y) == (FLAG_COLOUR.red(), FLAG_COLOUR.green(),
                                                       FLAG_COLOUR.blue())
    assert min(rgb_at(image, marker, y)) > 200
    assert max(rgb_at(image, int(rect.right() - 6), y)) < 60

    dark = uniform_png(tmp_path / "dark.png", 64)
    show_and_read(qtbot, ai_window, dark)
    normal, finding = panel.visible_bars()
    assert finding.probability == pytest.approx(64 / 255, abs=1e-5) and not finding.flagged
    assert panel.finding_label.text() == "Not flagged: finding 0.251 < 0.500"

    rows = AuditLog().rows()
    assert len(rows) == 2  # one per read; the newest first
    assert rows[0]["input_uid"] == f"sha256:{file_sha256(dark)}"
    assert rows[1]["input_uid"] == f"sha256:{file_sha256(bright)}"
    assert rows[1]["outputs"]["finding"] == pytest.approx(191 / 255, abs=1e-5)
    assert rows[1]["operating_points"]["finding"]["flagged"] is True
    assert rows[1]["model_sha256"] == models["mean"].card.sha256
    assert rows[1]["provider"] == ai.model.provider
    assert read.prediction.input_uid == rows[1]["input_uid"]
    assert [s[1:] for s in suggestions] == [("mean-test@1.0", bright), ("mean-test@1.0", dark)]
    assert suggestions[0][0]["finding"] == pytest.approx(191 / 255, abs=1e-5)


def test_saving_another_setting_leaves_the_readers_toggles_alone(qtbot, ai_window):
    """Auto-read and the overlay are the reader's for this session; only a change of their
    own saved defaults (Preferences) moves them, not a saved opacity or model."""
    ai = ai_window.ai
    ai.auto_action.setChecked(False)
    ai.overlay_action.setChecked(not ai_window.settings.saliency_overlay)
    chosen = ai.overlay_action.isChecked()
    ai_window.session.update_settings(overlay_opacity=0.3)
    assert not ai.auto_action.isChecked() and ai.overlay_action.isChecked() == chosen
    ai_window.session.update_settings(ai_auto_run=False)  # the default itself: no change
    assert not ai.auto_action.isChecked()
    default = ai_window.settings.saliency_overlay
    ai.overlay_action.setChecked(default)
    ai_window.session.update_settings(saliency_overlay=not default)  # a new default: applies
    assert ai.overlay_action.isChecked() == (not default)


def test_run_ai_action_reads_the_shown_image_again(qtbot, ai_window, models, tmp_path):
    ai = ai_window.ai
    choose(qtbot, ai_window, models["mean"].key)
    ai.auto_action.setChecked(False)
    with qtbot.waitSignal(ai_window.image_view.image_shown, timeout=20_000):
        ai_window.open_paths([uniform_png(tmp_path / "a.png", 128)])
    assert ai.panel.status_label.text() == "Run AI (Ctrl+R) to read this image."
    assert not ai.panel.visible_bars()
    assert ai.run_action.shortcut().toString() == "Ctrl+R"
    ai_window.activateWindow()
    with qtbot.waitSignal(ai.read_finished, timeout=LOAD_TIMEOUT_MS):
        qtbot.keyClick(ai_window.image_view.graphics_view, Qt.Key.Key_R,
                       Qt.KeyboardModifier.ControlModifier)
    assert ai.panel.visible_bars()[1].probability == pytest.approx(128 / 255, abs=1e-5)
    assert ai_window.image_view.orientation.quarter_turns_clockwise == 0  # not R (rotate)


def test_moving_on_quickly_drops_stale_reads(qtbot, ai_window, models, tmp_path):
    ai = ai_window.ai
    choose(qtbot, ai_window, models["mean"].key)
    folder = tmp_path / "study"
    values = {"a.png": 40, "b.png": 120, "c.png": 220}
    for name, value in values.items():
        uniform_png(folder / name, value)
    show_and_read(qtbot, ai_window, folder)
    delivered = []
    ai.read_finished.connect(lambda read: delivered.append(read.instance.path.name))
    browser = ai_window.study_browser
    view = ai_window.image_view
    last = folder / "c.png"
    # Two reads started back to back: the first is cancelled, only the second is shown.
    with qtbot.waitSignal(ai.read_finished, timeout=20_000):
        first = ai.read_current()
        second = ai.read_current()
    assert first is not None and second is not None and first.cancel_flag.cancelled
    qtbot.waitUntil(lambda: not first.is_running(), timeout=20_000)
    qtbot.wait(50)  # anything the first read might still deliver
    assert delivered == ["a.png"] and ai.read.instance.path.name == "a.png"
    # Stepping through the study faster than the reads: the panel ends on the last image.
    for name in ("b.png", "a.png", "c.png"):
        browser.select_path(folder / name)
    qtbot.waitUntil(lambda: ai.read is not None and ai.read.instance.path == last
                    and view.instance.path == last, timeout=20_000)
    qtbot.waitUntil(lambda: not ai.is_busy, timeout=20_000)
    assert ai.read.instance is view.instance
    assert ai.panel.visible_bars()[1].probability == pytest.approx(220 / 255, abs=1e-5)
    assert ai.panel.status_label.text() == "Result for c.png"
    assert delivered[-1] == "c.png"


# ---------------------------------------------------------------- batch


def test_batch_over_a_folder_with_a_broken_file(qtbot, ai_window, models, tmp_path,
                                                shared_data):
    ai = ai_window.ai
    session = choose(qtbot, ai_window, models["mean"].key)
    folder = tmp_path / "batch"
    folder.mkdir()
    images = [Path(shutil.copy(f, folder / f.name)) for f in kermany(shared_data, 4)]
    broken = truncated_dicom(shared_data, folder / "CT1_truncated.dcm")
    from medviewer.inference.predict import predict_paths

    expected = {p.path.name: p for p in predict_paths(images, session, audit=False)}
    audit_before = len(AuditLog().rows())
    with qtbot.waitSignal(ai.batch.ended, timeout=60_000) as ended:
        assert ai.batch.run([folder], folder.name) is not None
    assert ended.args == ["finished"]
    assert not ai_window.docks["batch"].isHidden()
    # One column per finding (normal has no operating point), no "top class" column.
    assert ai.batch.panel.columns == ["Image", "Decision", "P(finding)", "Unusual", "Note"]
    rows = {row["Image"]: row for row in ai.batch.panel.rows()}
    assert set(rows) == {p.name for p in images} | {broken.name}
    for name, prediction in expected.items():
        row = rows[name]
        assert row["Decision"] == (", ".join(prediction.offered) or "—")
        assert row["P(finding)"] == f"{prediction.score('finding').probability:.3f}"
        assert (row["Unusual"], row["Note"]) == ("no check", "")
    sentence = rows[broken.name]["Note"]
    assert sentence.endswith(".") and broken.name in sentence and "\n" not in sentence
    assert {rows[broken.name][c] for c in ("Decision", "P(finding)", "Unusual")} == {"—"}
    assert sentence in ai_window.problems.sentences()
    flagged = sum(1 for p in expected.values() if p.flagged)
    assert ai.batch.panel.summary_label.text() == (
        f"4 images read, {flagged} flagged, 1 could not be read.")
    assert len(AuditLog().rows()) == audit_before + 4  # the broken file made no prediction

    # Sorting by a class's probability puts the rows in numeric order (no result first).
    table = ai.batch.panel.table
    table.sortItems(ai.batch.panel.columns.index("P(finding)"), Qt.SortOrder.AscendingOrder)
    ordered = [row["P(finding)"] for row in ai.batch.panel.rows()]
    assert ordered[0] == "—"
    assert [float(v) for v in ordered[1:]] == sorted(float(v) for v in ordered[1:])

    # Clicking a row shows that image (and reads it).
    target_row = next(r for r in range(table.rowCount()) if ai.batch.panel.path_at(r)
                      and ai.batch.panel.path_at(r).name == images[2].name)
    rect = table.visualItemRect(table.item(target_row, 0))
    with qtbot.waitSignal(ai.read_finished, timeout=20_000) as read:
        qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert read.args[0].instance.path.name == images[2].name
    assert ai_window.image_view.instance.path.name == images[2].name


def test_batch_can_be_cancelled(qtbot, ai_window, models, shared_data):
    ai = ai_window.ai
    choose(qtbot, ai_window, models["mean"].key)
    files = kermany(shared_data, 200)
    ai.batch.batch_size = 2

    def cancel_on_first_row(*_args):
        if ai.batch.panel.cancel_button.isVisible() and ai.batch.panel.cancel_button.isEnabled():
            qtbot.mouseClick(ai.batch.panel.cancel_button, Qt.MouseButton.LeftButton)

    ai.batch.panel.table.model().rowsInserted.connect(cancel_on_first_row)
    with qtbot.waitSignal(ai.batch.ended, timeout=60_000) as ended:
        ai.batch.run(files, "200 images")
    assert ended.args == ["cancelled"]
    done = ai.batch.panel.table.rowCount()
    assert 0 < done < len(files)
    assert ai.batch.panel.summary_label.text().startswith(f"Cancelled after {done} of 200 images")
    assert ai.batch.panel.cancel_button.isHidden()
    assert not ai.batch.cancel_action.isEnabled()
    # Everything delivered was audited (a batch is audited before its rows are handed out).
    audited = len(AuditLog().rows())
    assert done <= audited < done + ai.batch.batch_size


# ---------------------------------------------------------------- import and the model card


def _refused(tmp_path: Path, kind: str) -> tuple[Path, Path, str]:
    """A model the registry must refuse, its card, and words its sentence must contain."""
    folder = tmp_path / "refused" / kind
    if kind == "hash":
        onnx_path = onnx_models.mean_model(folder / "m.onnx")
        card = onnx_models.write_card(onnx_path, sha256="0" * 64)
        return onnx_path, card, "does not match the card's"
    if kind == "inputs":
        onnx_path = onnx_models.mean_model(folder / "m.onnx")
        card = onnx_models.write_card(onnx_path, input={"channels": 3})
        return onnx_path, card, "input channels is 1 in the model but 3 in the card"
    if kind == "invalid":
        folder.mkdir(parents=True)
        onnx_path = folder / "m.onnx"
        onnx_path.write_bytes(b"this is not a protobuf" * 10)
        card = onnx_models.write_card(onnx_path)
        return onnx_path, card, "is not a valid ONNX"
    if kind == "external":
        folder.parent.mkdir(parents=True, exist_ok=True)
        (folder.parent / "outside.bin").write_bytes(b"\0" * 4)
        onnx_path = onnx_models.external_data_model(folder / "m.onnx", "../outside.bin")
        card = onnx_models.write_card(onnx_path)
        return onnx_path, card, "outside the model's folder"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["hash", "inputs", "invalid", "external"])
def test_import_refusal_is_one_sentence_in_a_message_box(qtbot, ai_window, models, tmp_path,
                                                         kind):
    ai = ai_window.ai
    onnx_path, card, words = _refused(tmp_path, kind)
    before = [e.key for e in list_models()]
    with qtbot.waitSignal(ai.import_ended, timeout=LOAD_TIMEOUT_MS) as ended:
        ai.import_model_files(onnx_path, card)
    assert ended.args == ["failed"]
    box = ai.message_box
    assert box is not None and box.isVisible() and not box.isModal()
    sentence = box.text()
    assert words in sentence and "m.onnx" in sentence
    assert sentence.endswith(".") and "\n" not in sentence and "Traceback" not in sentence
    assert ai_window.statusBar().currentMessage() == sentence
    assert [e.key for e in list_models()] == before
    # The app keeps working.
    choose(qtbot, ai_window, models["mean"].key)


def test_import_installs_and_uses_the_model(qtbot, ai_window, models, tmp_path):
    ai = ai_window.ai
    onnx_path = onnx_models.mean_model(tmp_path / "new" / "fresh.onnx")
    card = onnx_models.write_card(onnx_path)
    with qtbot.waitSignal(ai.model_ready, timeout=LOAD_TIMEOUT_MS) as ready:
        ai.import_model_files(onnx_path, card)
    assert ready.args[0].card.key == "fresh@1.0"
    assert "fresh@1.0" in [a.data() for a in ai.model_actions()]
    assert load_settings().default_model == "fresh@1.0"
    assert ai.message_box is None


def test_model_information_shows_the_card_and_the_demo_warning(qtbot, ai_window, models,
                                                                tmp_path):
    ai = ai_window.ai
    demo = install_mean_model(
        tmp_path / "demo-src", name="pneumonia-demo-test",
        classes=["NORMAL", "PNEUMONIA"],
        operating_points={"PNEUMONIA": {"threshold": 0.43, "method": "youden on validation",
                                        "metrics": {"val_sensitivity": 0.95}}},
        intended_use="Demonstration model trained on a public pediatric chest X-ray set; "
                     "not for clinical use.",
        limitations="Paediatric images from one centre.",
        training={"data": {"source": "kermany224", "split_by": "patient"}, "epochs_run": 12},
        metrics={"auroc": {"PNEUMONIA": 0.9612}, "split": "test", "n": 624,
                 "operating_points": {"PNEUMONIA": {"threshold": 0.43, "sensitivity": 0.99,
                                                    "specificity": 0.61}},
                 "intervals": {"level": 0.95, "auroc": {"PNEUMONIA": [0.945, 0.975]},
                               "sensitivity": {"PNEUMONIA": [0.978, 0.997]},
                               "specificity": {"PNEUMONIA": "not a pair"}}})
    choose(qtbot, ai_window, demo.key)
    assert not ai.panel.demo_label.isHidden()
    assert ai.panel.demo_label.text() == "⚠ " + DEMO_BANNER
    dialog = ai.show_model_info()
    text = dialog.text()
    for expected in ("pneumonia-demo-test", "version 1.0", DEMO_BANNER, "NORMAL", "PNEUMONIA",
                     "0.430", "youden on validation", "val_sensitivity 0.95",
                     "not for clinical use", "Paediatric images from one centre.",
                     "data › source", "kermany224", "epochs_run", "auroc › PNEUMONIA",
                     "0.9612", "624", "no operating point", demo.card.sha256):
        assert expected in text, expected
    # The headline test figures, in words near the top, each with its interval if it has one.
    assert ("Test set (624 images; 95% intervals in brackets): AUROC PNEUMONIA 0.961 "
            "[0.945–0.975].") in text
    assert ("PNEUMONIA at threshold 0.430: sensitivity 0.990 [0.978–0.997], specificity "
            "0.610.") in text
    assert text.index("On the test set") < text.index("Training data")
    dialog.close()
    choose(qtbot, ai_window, models["mean"].key)
    assert ai.panel.demo_label.isHidden()
    assert DEMO_BANNER not in ai.show_model_info().text()


def test_manage_models_lists_them_and_switches(qtbot, ai_window, models):
    ai = ai_window.ai
    choose(qtbot, ai_window, models["mean"].key)
    dialog = ai.show_models_dialog()
    keys = [e.key for e in dialog.entries()]
    assert sorted(keys) == sorted([models["mean"].key, models["cam"].key])
    table = dialog.table
    in_use = {table.item(r, 0).text(): table.item(r, 5).text() for r in range(table.rowCount())}
    assert in_use == {"mean-test": "✓", "cam-test": ""}
    saliency = {table.item(r, 0).text(): table.item(r, 4).text() for r in range(table.rowCount())}
    assert saliency == {"mean-test": "occlusion", "cam-test": "CAM"}
    assert dialog.select_key(models["cam"].key)
    assert "cam-test" in dialog.card_view.toPlainText()
    assert dialog.use_button.isEnabled()
    with qtbot.waitSignal(ai.model_ready, timeout=LOAD_TIMEOUT_MS) as ready:
        qtbot.mouseClick(dialog.use_button, Qt.MouseButton.LeftButton, pos=QPoint(5, 5))
    assert ready.args[0].card.key == models["cam"].key
    in_use = {table.item(r, 0).text(): table.item(r, 5).text() for r in range(table.rowCount())}
    assert in_use == {"mean-test": "", "cam-test": "✓"}
    assert not dialog.use_button.isEnabled()


def test_probability_bar_without_operating_point_has_no_marker(qtbot):
    from medviewer.gui.results_view import ProbabilityBar

    bar = ProbabilityBar()
    qtbot.addWidget(bar)
    bar.resize(300, bar.sizeHint().height())
    bar.set_score("effusion", 0.8, None, None)
    assert bar.threshold_x() is None and not bar.flagged
    assert bar.describe() == ("effusion: probability 0.800; no operating point in the model "
                              "card, so never flagged.")
    image = bar.grab().toImage()
    rect = bar.bar_rect()
    y = int(rect.center().y())
    # No white marker anywhere on the bar row.
    assert all(min(rgb_at(image, x, y)) < 200 for x in range(int(rect.left()) + 2,
                                                             int(rect.right()) - 2))
    assert np.isclose(bar.fill_width(), rect.width() * 0.8)
