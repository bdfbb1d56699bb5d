"""The main window's own dialogs and the actions panels add for the features that came as
standalone dialogs: Preferences, De-identify, research dataset export, the PDF report."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from medviewer.labels.store import LabelStore, default_store_path

from .ai_helpers import grey_png, install_mean_model, no_builtin_models  # noqa: F401


def test_preferences_and_deid_open_from_the_file_menu(qtbot, main_window, tmp_path):
    preferences = main_window.show_preferences()
    assert preferences.isVisible() and preferences.windowTitle() == "Preferences"
    deid = main_window.show_deid_dialog()
    assert deid.isVisible() and deid.windowTitle() == "De-identify DICOM"
    assert main_window.preferences_action.shortcut().toString() == "Ctrl+,"
    main_window.close()  # the window's close closes (and joins) the dialogs it keeps
    qtbot.waitUntil(lambda: not deid.isVisible() and not preferences.isVisible(),
                    timeout=5_000)


def test_deid_dialog_starts_with_the_open_folders(qtbot, main_window, shared_data, tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    for source in sorted((shared_data / "xray/kermany224/test/NORMAL").glob("*.jpeg"))[:2]:
        shutil.copy2(source, folder / source.name)
    with qtbot.waitSignal(main_window.indexing_ended, timeout=20_000):
        main_window.open_paths([folder])
    dialog = main_window.show_deid_dialog()
    assert [dialog.inputs.item(i).text() for i in range(dialog.inputs.count())] == \
        [str(folder)]
    dialog.done(0)


def test_research_dataset_export_opens_for_the_chosen_label_set(qtbot, main_window):
    with LabelStore(default_store_path(), reader="setup") as store:
        store.create_label_set("chest", ["normal", "pneumonia"])
    panel = main_window.label_panel
    panel.reload_label_sets("chest")
    qtbot.waitUntil(lambda: panel.label_set is not None, timeout=10_000)
    assert panel.dataset_action in main_window.menus["labels"].actions()
    dialog = panel.show_dataset_dialog()
    assert dialog.isVisible() and dialog.windowTitle() == "Export research dataset"
    qtbot.waitUntil(lambda: dialog.label_set.currentText() == "chest", timeout=10_000)
    dialog.done(0)


def test_report_of_the_shown_read_is_written_as_a_pdf(
        qtbot, main_window, no_builtin_models, tmp_path):  # noqa: F811 - a fixture
    entry = install_mean_model(tmp_path / "models")
    ai = main_window.ai
    with qtbot.waitSignal(ai.model_ready, timeout=30_000):
        ai.choose_model(entry.key)
    image = grey_png(tmp_path / "bright.png", np.full((32, 32), 191, np.uint8))
    with qtbot.waitSignal(ai.read_finished, timeout=30_000):
        main_window.image_view.open_path(image)
    output = tmp_path / "report.pdf"
    worker = ai.save_report(output)
    assert worker is not None
    with qtbot.waitSignal(worker.ended, timeout=60_000):
        pass
    assert output.read_bytes().startswith(b"%PDF")
    assert main_window.statusBar().currentMessage().startswith(f"Wrote the AI report {output}")


@pytest.mark.parametrize("with_image", [False])
def test_report_without_an_image_says_what_is_missing(main_window, with_image):
    assert main_window.ai.save_report(Path("/nonexistent/report.pdf")) is None
    assert "Show an image and load a model first" in main_window.statusBar().currentMessage()


def test_pacs_panel_is_built_on_first_use_and_tabbed_with_the_studies(qtbot, main_window):
    assert "pacs" not in main_window.docks  # start-up does not pay for it
    panel = main_window.show_pacs_panel()
    assert main_window.docks["pacs"].isVisible()
    assert main_window.show_pacs_panel() is panel  # one panel per window
    assert main_window.tabifiedDockWidgets(main_window.docks["studies"]) == [
        main_window.docks["pacs"]]


def test_a_read_is_sent_to_the_pacs_as_an_sr_through_the_session(
        qtbot, main_window, no_builtin_models, tmp_path):  # noqa: F811 - a fixture
    from pydicom import dcmread

    from medviewer.paths import SAMPLE_STUDY_DIR

    entry = install_mean_model(tmp_path / "models")
    ai = main_window.ai
    with qtbot.waitSignal(ai.model_ready, timeout=30_000):
        ai.choose_model(entry.key)
    image = sorted(SAMPLE_STUDY_DIR.glob("*.dcm"))[0]
    with qtbot.waitSignal(ai.read_finished, timeout=30_000):
        main_window.image_view.open_path(image)
    asked: list[list[Path]] = []
    main_window.session.events.send_requested.connect(asked.append)
    worker = ai.send_read_as_sr()
    with qtbot.waitSignal(worker.ended, timeout=30_000):
        pass
    (sr_path,) = asked[0]
    report = dcmread(sr_path)
    assert report.Modality == "SR"
    assert report.StudyInstanceUID == dcmread(image, stop_before_pixels=True).StudyInstanceUID
    # The main window answers with its PACS panel, which needs a server chosen first.
    assert main_window.docks["pacs"].isVisible()


def test_evaluate_opens_from_the_models_menu_and_from_a_label_set(
        qtbot, main_window, no_builtin_models, shared_data, tmp_path):  # noqa: F811
    entry = install_mean_model(tmp_path / "models")
    ai = main_window.ai
    with qtbot.waitSignal(ai.model_ready, timeout=30_000):
        ai.choose_model(entry.key)
    dialog = ai.show_evaluate_dialog()
    assert dialog.isVisible() and dialog.pairs is None  # a CSV of path,label
    dialog.done(0)

    images = sorted((shared_data / "xray/kermany224/test/NORMAL").glob("*.jpeg"))[:2]
    from medviewer.labels.identity import resolve_image

    with LabelStore(default_store_path(), reader="dr-a") as store:
        store.create_label_set("chest", ["normal", "finding"])
        for path, cls in zip(images, ("normal", "finding")):
            store.set_label("chest", resolve_image(path), cls)
    panel = main_window.label_panel
    panel.reload_label_sets("chest")
    qtbot.waitUntil(lambda: panel.label_set is not None, timeout=10_000)
    opened = []
    main_window.session.events.evaluation_requested.connect(opened.append)
    panel.evaluate_on_label_set()
    qtbot.waitUntil(lambda: bool(opened), timeout=10_000)
    pairs, source = opened[0]
    assert sorted((p.name, c) for p, c in pairs) == sorted(
        (p.name, c) for p, c in zip(images, ("normal", "finding")))
    assert source == "label set 'chest'"
    qtbot.waitUntil(lambda: any(w.windowTitle().startswith("Evaluate")
                                for w in main_window._dialogs), timeout=10_000)
    (dialog,) = [w for w in main_window._dialogs if w.windowTitle().startswith("Evaluate")]
    assert len(dialog.pairs) == 2
    dialog.done(0)
