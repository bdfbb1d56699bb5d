"""Labels > Import labels… and Export labels… in the main window: real Kermany X-rays, the
real label store on disk, the real worker threads.

What is checked is what the store committed (read through a second connection), what the
panel then shows, and the files written (read back)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt

from medviewer.labels.identity import resolve_image
from medviewer.labels.store import Rectangle
from tests.gui.test_label_panel import (
    kermany_folder, key_of, open_folder, press, scope_paths, settle, stored,
)


@pytest.fixture
def folder(shared_data, tmp_path) -> Path:
    return kermany_folder(shared_data, tmp_path / "kermany", per_class=2)


def click(qtbot, button) -> None:
    assert button.isVisible() and button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton, pos=QPoint(5, 5))


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def reads_csv(folder: Path, paths: list[Path]) -> Path:
    """Four reads, row 4 with a class the set does not have; row 5 names no reader."""
    return write_csv(folder.parent / "reads.csv", [
        ["path", "label", "reader"],
        [str(paths[0]), "normal", "dr_a"],
        [paths[1].name, "normal", "dr_a"],  # relative to the CSV's folder: not found there
        [str(paths[2]), "cat", "dr_a"],
        [str(paths[3]), "pneumonia", ""],
    ])


@pytest.fixture
def status_messages(main_window) -> list[str]:
    """Every status bar message, in order. The AI panel's own messages (the model loading
    on its provider) may replace ours at any moment, so a test asks whether a message was
    shown, not whether it is still there."""
    shown: list[str] = []
    main_window.statusBar().messageChanged.connect(shown.append)
    return shown


def one_sentence(text: str) -> bool:
    return bool(text) and "\n" not in text and "Traceback" not in text \
        and text.rstrip().endswith(".")


# ---------------------------------------------------------------- import


def test_csv_import_lists_the_problem_rows_and_imports_the_others_on_consent(
        qtbot, main_window, folder, status_messages):
    window, panel = main_window, main_window.label_panel
    open_folder(qtbot, window, folder)
    paths = scope_paths(panel)
    source = reads_csv(folder, paths)

    dialog = panel.transfer.open_import(source)
    assert dialog.isVisible() and dialog.kind == "csv"
    dialog.set_combo.setCurrentText("pneumonia")
    assert dialog.classes_edit.isVisibleTo(dialog)  # a new set needs its classes
    click(qtbot, dialog.import_button)
    assert dialog.state == "ready" and dialog.error_label.text() == \
        "A new label set 'pneumonia' needs its classes: type them, separated by commas."
    dialog.classes_edit.setText("normal, pneumonia")
    click(qtbot, dialog.import_button)
    qtbot.waitUntil(lambda: dialog.state == "problems", timeout=20_000)

    problems = dialog.problems_dialog
    assert problems.isVisible()
    assert problems.problem_list.toPlainText().splitlines() == [
        f"row 3: the file {paths[1].name} does not exist",
        "row 4: unknown class 'cat' (classes: normal, pneumonia)"]
    assert problems.summary_label.text().startswith("2 rows of 4 in reads.csv have problems")
    assert problems.import_button.text() == "Import the other 2 rows"
    assert problems.cancel_button.isDefault()
    with stored() as store:
        assert store.label_sets() == []  # nothing before consent

    click(qtbot, problems.import_button)
    qtbot.waitUntil(lambda: dialog.state == "done", timeout=20_000)
    qtbot.waitUntil(lambda: panel.label_set is not None and panel.label_set.name == "pneumonia",
                    timeout=10_000)
    settle(qtbot, panel)
    summary = ("Imported 2 labels and 0 regions into 'pneumonia' (a new label set, 2 problem "
               "rows left out); Undo reverts the whole import.")
    assert dialog.status_label.text() == f"✓ {summary}"
    assert summary in status_messages
    assert dialog.cancel_button.text() == "Close" and not dialog.import_button.isVisible()

    keys = [key_of(panel, p) for p in paths]
    with stored() as store:
        assert store.decisions("pneumonia") == {keys[0]: {"dr_a": ("normal",)},
                                                keys[3]: {panel.reader: ("pneumonia",)}}
    # The panel shows them: another reader's label, and the reader's own (the open image's
    # buttons follow the store).
    assert panel.committed_labels(keys[0])["dr_a"].classes == ("normal",)
    assert panel.my_label(keys[3]).source == "imported"
    assert panel.progress_label.text() == f"Labelled 1 / 4 in {folder.name}"

    # "Undo reverts the whole import": the reader's Ctrl+Z takes back both labels.
    panel.undo()
    settle(qtbot, panel)
    with stored() as store:
        assert store.decisions("pneumonia") == {}
    assert panel.my_label(keys[3]) is None and panel.committed_labels(keys[0]) == {}
    click(qtbot, dialog.cancel_button)
    assert not dialog.isVisible()


def test_declining_or_cancelling_an_import_writes_nothing(qtbot, main_window, folder, status_messages):
    window, panel = main_window, main_window.label_panel
    open_folder(qtbot, window, folder)
    source = reads_csv(folder, scope_paths(panel))
    dialog = panel.transfer.open_import(source)
    dialog.set_combo.setCurrentText("pneumonia")
    dialog.classes_edit.setText("normal,pneumonia")
    click(qtbot, dialog.import_button)
    qtbot.waitUntil(lambda: dialog.state == "problems", timeout=20_000)

    click(qtbot, dialog.problems_dialog.cancel_button)
    assert dialog.state == "ready" and dialog.isVisible()
    assert dialog.import_button.text() == "Check again"
    assert dialog.status_label.text().startswith("Nothing was imported")

    # Closing the dialog while the file is being checked cancels the check.
    assert dialog.start_check()
    dialog.reject()
    qtbot.waitUntil(lambda: "Import of reads.csv cancelled; nothing was imported."
                    in status_messages, timeout=20_000)
    settle(qtbot, panel)
    with stored() as store:
        assert store.label_sets() == []
    assert panel.label_set is None


def test_coco_import_adds_regions_to_the_files_own_label_set(qtbot, main_window, folder, status_messages):
    window, panel = main_window, main_window.label_panel
    open_folder(qtbot, window, folder)
    shown = panel.current_path
    other = next(p for p in scope_paths(panel) if p != shown)
    coco = folder / "boxes.json"
    coco.write_text(json.dumps({
        "images": [{"id": 1, "file_name": shown.name, "width": 224, "height": 224},
                   {"id": 2, "file_name": other.name, "width": 224, "height": 224}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [20, 30, 60, 40]},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [100, 100, 30, 30],
             "segmentation": [[100, 100, 130, 100, 115, 130]]},
            {"id": 3, "image_id": 2, "category_id": 1, "bbox": [0, 0, 10, 10]}],
        "categories": [{"id": 1, "name": "opacity", "supercategory": "lesions"},
                       {"id": 2, "name": "nodule", "supercategory": "lesions"}]}))

    # Not a label file at all: one sentence, no dialog.
    assert panel.transfer.open_import(folder.parent / "notes.txt") is None
    assert (f"Cannot import {folder.parent / 'notes.txt'}: only .csv and .json files can be "
            f"imported.") in status_messages

    dialog = panel.transfer.open_import(coco)
    assert dialog.kind == "json" and dialog.chosen_label_set() is None
    assert not dialog.classes_edit.isVisibleTo(dialog)  # the file brings its classes
    click(qtbot, dialog.import_button)
    qtbot.waitUntil(lambda: dialog.state == "done", timeout=20_000)
    assert dialog.problems_dialog is None  # no problems: imported at once
    qtbot.waitUntil(lambda: panel.label_set is not None and panel.label_set.name == "lesions",
                    timeout=10_000)
    settle(qtbot, panel)
    assert dialog.status_label.text() == (
        "✓ Imported 0 labels and 3 regions into 'lesions' (a new label set); Undo reverts "
        "the whole import.")
    assert panel.label_set.classes == ("opacity", "nodule")
    with stored() as store:
        regions = store.regions("lesions")
    assert sorted((r.image_key, r.class_name, r.shape) for r in regions) == sorted([
        (key_of(panel, shown), "opacity", "rectangle"),
        (key_of(panel, shown), "nodule", "polygon"),
        (key_of(panel, other), "opacity", "rectangle")])
    on_screen = panel.regions_on_screen()
    assert sorted(r.class_name for r in on_screen.values()) == ["nodule", "opacity"]
    assert panel.region_list.count() == 2


# ---------------------------------------------------------------- export


@pytest.fixture
def labelled(qtbot, main_window, folder) -> list[Path]:
    """Three labels of dr_a and one region, written through a second connection."""
    panel = main_window.label_panel
    open_folder(qtbot, main_window, folder)
    paths = scope_paths(panel)
    with stored() as store:
        store.create_label_set("pneumonia", ["normal", "pneumonia"])
        for path, class_name in zip(paths, ("normal", "pneumonia", "normal")):
            store.set_label("pneumonia", resolve_image(path), (class_name,), reader="dr_a")
        store.add_region("pneumonia", resolve_image(paths[1]), "pneumonia",
                         Rectangle(10, 20, 30, 40), reader="dr_a")
    panel.reload_from_store("pneumonia")
    qtbot.waitUntil(lambda: panel.label_set is not None, timeout=10_000)
    settle(qtbot, panel)
    return paths


def export(qtbot, panel, path: Path, fmt: str | None = None):
    dialog = panel.transfer.show_export_dialog()
    assert dialog.label_set == "pneumonia"  # the current set
    if fmt is not None:
        dialog.set_format(fmt)
    dialog.set_path(path)
    click(qtbot, dialog.export_button)
    qtbot.waitUntil(lambda: dialog.state in ("done", "failed"), timeout=20_000)
    return dialog


def test_export_writes_each_format_and_includes_the_last_key_pressed(
        qtbot, main_window, labelled, tmp_path, status_messages):
    window, panel = main_window, main_window.label_panel
    # A key pressed just before Export is in the file: the export waits for the store thread.
    press(qtbot, window, Qt.Key.Key_2, wait=False)
    target = tmp_path / "out" / "reads.csv"
    target.parent.mkdir()
    dialog = export(qtbot, panel, target)
    assert dialog.state == "done" and not dialog.isVisible()
    assert f"Wrote 4 rows of label set 'pneumonia' to {target} (CSV)." in status_messages
    with target.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted((Path(r["path"]).name, r["label"], r["reader"]) for r in rows) == sorted([
        (labelled[0].name, "normal", "dr_a"), (labelled[1].name, "pneumonia", "dr_a"),
        (labelled[2].name, "normal", "dr_a"), (panel.current_path.name, "pneumonia",
                                               panel.reader)])

    # The format follows a typed suffix; the file dialog's filter picks JSON or COCO.
    dialog = panel.transfer.show_export_dialog()
    dialog.path_edit.clear()
    qtbot.keyClicks(dialog.path_edit, str(tmp_path / "x.csv"))
    assert dialog.format == "csv"
    files = dialog.show_file_dialog()
    files.filterSelected.emit("COCO JSON, regions (*.json)")
    assert dialog.format == "coco"
    files.reject()
    dialog.reject()

    export(qtbot, panel, tmp_path / "reads.json", "json")
    document = json.loads((tmp_path / "reads.json").read_text())
    assert document["format"] == "medviewer-labels"
    assert document["label_set"]["classes"] == ["normal", "pneumonia"]
    assert sum(len(image["labels"]) for image in document["images"]) == 4
    assert any(m.startswith("Wrote 3 images of label set") for m in status_messages)

    export(qtbot, panel, tmp_path / "regions.json", "coco")
    coco = json.loads((tmp_path / "regions.json").read_text())
    assert [a["bbox"] for a in coco["annotations"]] == [[10.0, 20.0, 30.0, 40.0]]
    assert [c["name"] for c in coco["categories"]] == ["normal", "pneumonia"]
    assert any(m.startswith("Wrote 1 region of label set") for m in status_messages)


def test_export_into_a_folder_that_cannot_be_written_says_so_in_one_sentence(
        qtbot, main_window, labelled, tmp_path, status_messages):
    window, panel = main_window, main_window.label_panel
    not_a_folder = tmp_path / "report.txt"
    not_a_folder.write_text("a file where the folder should be\n")
    dialog = export(qtbot, panel, not_a_folder / "reads.csv")
    assert dialog.state == "failed" and dialog.isVisible()
    sentence = dialog.error_label.text()
    assert sentence.startswith(f"Cannot write {not_a_folder / 'reads.csv'}: ")
    assert one_sentence(sentence) and sentence in status_messages
    assert not_a_folder.read_text() == "a file where the folder should be\n"

    # The app keeps working: the same dialog exports once given a usable folder.
    dialog.set_path(tmp_path / "reads.csv")
    click(qtbot, dialog.export_button)
    qtbot.waitUntil(lambda: dialog.state == "done", timeout=20_000)
    assert (tmp_path / "reads.csv").read_text().startswith("path,label,reader")
