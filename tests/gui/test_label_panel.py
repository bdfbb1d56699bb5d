"""Labelling in the main window, driven by the keyboard as a reader would: real Kermany
X-rays, the real label store on disk, the real worker threads.

What is checked is what the store committed (classes, source, AI suggestion, reader), and
that the panel shows a label as saved only once the store's call returned."""

from __future__ import annotations

import os
import resource
import shutil
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication

from medviewer.app.labelling import AiSuggestion
from medviewer.labels.store import ImageRef, LabelStore, default_store_path
from medviewer.settings import load_settings

KERMANY_TEST = ("xray", "kermany224", "test")


# ---------------------------------------------------------------- helpers (test_regions uses them)


def kermany_folder(shared_data: Path, target: Path, per_class: int = 3) -> Path:
    """A folder of real chest X-rays: the first ``per_class`` NORMAL and PNEUMONIA images."""
    target.mkdir(parents=True, exist_ok=True)
    for kind in ("NORMAL", "PNEUMONIA"):
        source = shared_data.joinpath(*KERMANY_TEST, kind)
        files = sorted(source.glob("*.jpeg"))[:per_class]
        if len(files) < per_class:
            pytest.fail(f"the Kermany test images are missing from {source}")
        for file in files:
            shutil.copy2(file, target / file.name)
    return target


def open_folder(qtbot, window, folder: Path) -> None:
    with qtbot.waitSignal(window.image_view.image_shown, timeout=20_000):
        window.open_paths([folder])
    qtbot.waitUntil(lambda: not window.is_indexing, timeout=20_000)
    settle(qtbot, window.label_panel)


def settle(qtbot, panel) -> None:
    """Until every store call the panel made has its reply (and prefetching stopped)."""
    qtbot.waitUntil(lambda: not panel.busy, timeout=20_000)


def create_label_set(qtbot, panel, name: str, classes: list[str], multi: bool = False) -> None:
    """Through the New label set dialog, as a reader would."""
    dialog = panel.show_new_label_set_dialog()
    dialog.name_edit.setText(name)
    dialog.classes_edit.setPlainText("\n".join(classes))
    dialog.multi_check.setChecked(multi)
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton, pos=QPoint(5, 5))
    qtbot.waitUntil(lambda: panel.label_set is not None and panel.label_set.name == name,
                    timeout=10_000)
    assert not dialog.isVisible()
    settle(qtbot, panel)


def press(qtbot, window, key, modifier=Qt.KeyboardModifier.NoModifier, wait: bool = True):
    """A key press on the image, where the reader's focus is while labelling."""
    target = window.image_view.graphics_view
    if QApplication.activeWindow() is not window:  # e.g. just after a dialog closed
        window.activateWindow()
        qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=20_000)
    target.setFocus()
    # Under load, focus can arrive a turn after activation; a key sent before it is lost.
    # (A view hidden because its image failed cannot take focus; the keys still reach
    # the window's shortcuts.)
    qtbot.waitUntil(lambda: target.hasFocus() or not target.isVisible(), timeout=20_000)
    qtbot.keyClick(target, key, modifier)
    if wait:
        settle(qtbot, window.label_panel)


def stored(path: Path | None = None) -> LabelStore:
    """A second connection to the store file the panel writes (what is really on disk)."""
    return LabelStore(path or default_store_path(), reader="test-inspector")


def scope_paths(panel) -> list[Path]:
    return panel.state.scope_of(panel.current_path).paths


def suggest(panel, probabilities: dict, model: str, offered: tuple[str, ...],
            image_path: Path | None = None) -> None:
    """What the AI panel's read of an image tells the label panel, through the session:
    the probabilities and what the decision offers (flagged findings, else no finding)."""
    panel.state.set_suggestion(image_path or panel.current_path,
                               AiSuggestion(model, probabilities, offered))


def key_of(panel, path: Path) -> str:
    key = panel.key_for(path)
    assert key is not None, f"no image key for {path.name}"
    return key


def button_state(panel) -> list[tuple[str, bool]]:
    return [(b.text(), b.isChecked()) for b in panel.class_buttons]


@pytest.fixture
def folder(shared_data, tmp_path) -> Path:
    return kermany_folder(shared_data, tmp_path / "kermany")


# ---------------------------------------------------------------- keyboard labelling


def test_label_a_folder_by_keyboard_alone(qtbot, main_window, folder):
    window, panel = main_window, main_window.label_panel
    reader = load_settings().reader_name
    open_folder(qtbot, window, folder)
    create_label_set(qtbot, panel, "pneumonia", ["normal", "pneumonia"])
    paths = scope_paths(panel)
    assert len(paths) == 6 and panel.current_path == paths[0]
    assert panel.progress_label.text() == f"Labelled 0 / 6 in {folder.name}"

    press(qtbot, window, Qt.Key.Key_1)  # image 1: normal
    press(qtbot, window, Qt.Key.Key_2)  # changed my mind: pneumonia (single-label)
    assert button_state(panel)[1][1] and not button_state(panel)[0][1]
    assert panel.class_buttons[1].text().startswith("✓")
    assert panel.saved_label.text().startswith("✓ Saved: pneumonia (manual)")
    press(qtbot, window, Qt.Key.Key_N)
    assert panel.current_path == paths[1]
    press(qtbot, window, Qt.Key.Key_1)  # image 2: normal

    # U skips to the next image without my label; Enter takes the AI's suggestion there.
    press(qtbot, window, Qt.Key.Key_P)
    assert panel.current_path == paths[0]
    press(qtbot, window, Qt.Key.Key_U)
    assert panel.current_path == paths[2]
    suggest(panel, {"NORMAL": 0.08, "PNEUMONIA": 0.92}, "demo@1", ("PNEUMONIA",))
    assert "suggests pneumonia" in panel.ai_label.text()
    press(qtbot, window, Qt.Key.Key_Return)
    press(qtbot, window, Qt.Key.Key_N)
    suggest(panel, {"NORMAL": 0.7, "PNEUMONIA": 0.3}, "demo@1", ("NORMAL",))
    press(qtbot, window, Qt.Key.Key_2)  # image 4: overrides the AI's "normal"
    press(qtbot, window, Qt.Key.Key_N)
    suggest(panel, {"normal": 0.6, "pneumonia": 0.4}, "demo@1", ("normal",))
    press(qtbot, window, Qt.Key.Key_1)  # image 5: agrees with the AI by key
    assert panel.progress_label.text() == f"Labelled 5 / 6 in {folder.name}"

    with stored() as store:
        labels = {l.image_key: l for l in store.current_labels("pneumonia")}
    expected = {
        0: (("pneumonia",), "manual", None),
        1: (("normal",), "manual", None),
        2: (("pneumonia",), "ai_accepted", ("pneumonia",)),
        3: (("pneumonia",), "ai_overridden", ("normal",)),
        4: (("normal",), "ai_accepted", ("normal",)),
    }
    assert set(labels) == {key_of(panel, paths[i]) for i in expected}
    for index, (classes, source, ai) in expected.items():
        label = labels[key_of(panel, paths[index])]
        assert (label.classes, label.source, label.ai_classes, label.reader) == \
            (classes, source, ai, reader), paths[index].name
        assert label.path == str(paths[index].resolve())

    # Ctrl+Z undoes my last action (image 5) and only that, wherever I am.
    press(qtbot, window, Qt.Key.Key_P)
    press(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    with stored() as store:
        assert store.label_for("pneumonia", key_of(panel, paths[4]), reader) is None
        assert store.label_for("pneumonia", key_of(panel, paths[3]), reader) is not None
        assert store.history("pneumonia", limit=1)[0].kind == "undo"
    assert "Undone: set label on " + paths[4].name in window.statusBar().currentMessage()
    assert panel.progress_label.text() == f"Labelled 4 / 6 in {folder.name}"
    # Ctrl+Shift+Z (or Ctrl+Y) re-applies it; Ctrl+Z then takes the redo back again.
    press(qtbot, window, Qt.Key.Key_Z,
          Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert "Redone: your undo on " + paths[4].name in window.statusBar().currentMessage()
    assert panel.progress_label.text() == f"Labelled 5 / 6 in {folder.name}"
    with stored() as store:
        assert store.label_for("pneumonia", key_of(panel, paths[4]), reader) is not None
    press(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    press(qtbot, window, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert panel.progress_label.text() == f"Labelled 5 / 6 in {folder.name}"
    press(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert panel.progress_label.text() == f"Labelled 4 / 6 in {folder.name}"
    # Image 4 is on screen: its saved state comes from the store.
    assert panel.current_path == paths[3]
    assert button_state(panel)[1][1] and "AI overridden" in panel.saved_label.text()

    press(qtbot, window, Qt.Key.Key_U)
    assert panel.current_path == paths[4]
    press(qtbot, window, Qt.Key.Key_U)
    assert panel.current_path == paths[5]
    assert [t for t, _checked in button_state(panel)] == ["    1   normal",
                                                          "    2   pneumonia"]


def test_enter_without_a_model_only_says_so(qtbot, main_window, folder):
    window, panel = main_window, main_window.label_panel
    open_folder(qtbot, window, folder)
    create_label_set(qtbot, panel, "pneumonia", ["normal", "pneumonia"])
    with stored() as store:
        before = len(store.history())
    press(qtbot, window, Qt.Key.Key_Return)
    assert window.statusBar().currentMessage() == \
        "No AI suggestion for this image (no model has read it)."
    assert panel.saved_label.text() == "Not labelled by you yet."
    assert not panel.accept_button.isEnabled()
    with stored() as store:
        assert len(store.history()) == before
    # A model whose classes are not in the set is explained, not applied.
    suggest(panel, {"cat": 0.9, "dog": 0.1}, "pets@2", ("cat",))
    press(qtbot, window, Qt.Key.Key_Enter)
    assert "its classes (cat, dog) are not in label set 'pneumonia'" in \
        window.statusBar().currentMessage()
    with stored() as store:
        assert len(store.history()) == before


def test_multi_label_keys_toggle_and_the_note_is_kept(qtbot, main_window, folder):
    window, panel = main_window, main_window.label_panel
    open_folder(qtbot, window, folder)
    create_label_set(qtbot, panel, "findings", ["opacity", "effusion", "device"], multi=True)
    key = panel.current_key
    press(qtbot, window, Qt.Key.Key_3)
    press(qtbot, window, Qt.Key.Key_1)
    assert [checked for _t, checked in button_state(panel)] == [True, False, True]
    panel.note_edit.setFocus()
    qtbot.keyClicks(panel.note_edit, "faint left base")
    qtbot.keyClick(panel.note_edit, Qt.Key.Key_Return)  # Enter in the note saves the note
    settle(qtbot, panel)
    press(qtbot, window, Qt.Key.Key_1)  # toggles opacity off; the note stays
    with stored() as store:
        label = store.label_for("findings", key, panel.reader)
        kinds = [h.kind for h in store.history("findings")]
    assert label.classes == ("device",) and label.note == "faint left base"
    assert label.source == "manual"
    assert kinds.count("set_note") == 1
    press(qtbot, window, Qt.Key.Key_3)  # the last class off: no decision left
    with stored() as store:
        assert store.label_for("findings", key, panel.reader) is None
    assert panel.saved_label.text().startswith("✓ Saved: label cleared")


def test_saved_is_shown_only_after_the_store_committed(qtbot, main_window, folder):
    window, panel = main_window, main_window.label_panel
    open_folder(qtbot, window, folder)
    create_label_set(qtbot, panel, "pneumonia", ["normal", "pneumonia"])
    key = panel.current_key
    # Hold the store thread (as a slow disk would) while the reader presses 1.
    release = threading.Event()
    panel.client.call(lambda _store: release.wait(20))
    press(qtbot, window, Qt.Key.Key_1, wait=False)
    qtbot.wait(100)
    assert panel.saved_label.text() == "Saving…"
    assert not any(checked for _t, checked in button_state(panel))
    assert not panel.class_buttons[0].text().startswith("✓")
    release.set()
    settle(qtbot, panel)
    assert button_state(panel)[0] == ("✓  1   normal", True)
    with stored() as store:
        assert store.label_for("pneumonia", key, panel.reader).classes == ("normal",)


def test_a_label_given_just_before_closing_is_written(qtbot, shared_data, tmp_path):
    from medviewer.gui.main_window import MainWindow
    from medviewer.gui.workers import running_workers

    folder = kermany_folder(shared_data, tmp_path / "k", per_class=1)
    window = MainWindow()
    window.show()
    qtbot.waitExposed(window)
    panel = window.label_panel
    open_folder(qtbot, window, folder)
    create_label_set(qtbot, panel, "pneumonia", ["normal", "pneumonia"])
    key = panel.current_key
    release = threading.Event()
    panel.client.call(lambda _store: release.wait(20))
    press(qtbot, window, Qt.Key.Key_2, wait=False)
    threading.Timer(0.3, release.set).start()
    window.close()  # waits for the write the reader already asked for
    window.deleteLater()
    assert not running_workers()
    with stored() as store:
        assert store.label_for("pneumonia", key, load_settings().reader_name).classes == \
            ("pneumonia",)


# ---------------------------------------------------------------- failures


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_FSIZE"), reason="needs POSIX file limits")
def test_a_failed_write_shows_one_sentence_and_nothing_as_saved(qtbot, main_window, folder):
    window, panel = main_window, main_window.label_panel
    open_folder(qtbot, window, folder)
    create_label_set(qtbot, panel, "pneumonia", ["normal", "pneumonia"])
    key = panel.current_key
    press(qtbot, window, Qt.Key.Key_1)
    assert button_state(panel)[0][1]
    # The kernel refuses to grow any file past its current size: the store's next commit
    # fails exactly as on a full disk (Python ignores SIGXFSZ, so write() returns EFBIG).
    wal = Path(str(default_store_path()) + "-wal")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(wal), hard))
    try:
        with qtbot.waitSignal(panel.write_failed, timeout=10_000) as failed:
            press(qtbot, window, Qt.Key.Key_2, wait=False)
        settle(qtbot, panel)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    sentence = failed.args[0]
    assert sentence.startswith(f"Cannot save to the label store {default_store_path()}")
    assert sentence.endswith(".") and sentence.count(". ") == 0 and "\n" not in sentence
    assert "Traceback" not in sentence
    assert panel.error_label.text() == sentence and panel.error_label.isVisible()
    assert window.statusBar().currentMessage() == sentence
    # Still the committed decision on screen: normal ✓, pneumonia not saved.
    assert button_state(panel) == [("✓  1   normal", True), ("    2   pneumonia", False)]
    assert "pneumonia" not in panel.saved_label.text()
    with stored() as store:
        assert store.label_for("pneumonia", key, panel.reader).classes == ("normal",)
    # The disk has room again: the same key works and the sentence goes away.
    press(qtbot, window, Qt.Key.Key_2)
    assert button_state(panel)[1] == ("✓  2   pneumonia", True)
    assert not panel.error_label.isVisible()


def test_an_unwritable_store_path_is_one_sentence_and_creates_nothing(qtbot, main_window,
                                                                    folder, tmp_path):
    window, panel = main_window, main_window.label_panel
    open_folder(qtbot, window, folder)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    bad_store = blocker / "labels.sqlite"
    panel.set_store_path(bad_store)
    dialog = panel.show_new_label_set_dialog()
    dialog.name_edit.setText("pneumonia")
    dialog.classes_edit.setPlainText("normal\npneumonia")
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton, pos=QPoint(5, 5))
    qtbot.waitUntil(lambda: dialog.error_label.isVisible(), timeout=10_000)
    sentence = dialog.error_label.text()
    assert sentence == f"Cannot open the label store {bad_store}: {blocker} is a file, not a " \
                       f"folder."
    assert dialog.isVisible() and dialog.ok_button.isEnabled()
    assert panel.label_set is None and not panel.class_buttons
    assert panel.class_actions[0].shortcuts() == []  # no label set: 1 stays the viewer's
    panel.press_class("normal")  # (what a key would do) only a hint, nothing is written
    assert window.statusBar().currentMessage() == \
        "Choose or create a label set first (Labels > New label set)."
    assert not bad_store.exists()
    dialog.reject()


# ---------------------------------------------------------------- filter, readers, keys


def test_study_filter_labelled_unlabelled_and_disagreeing(qtbot, main_window, folder):
    window, panel = main_window, main_window.label_panel
    open_folder(qtbot, window, folder)
    create_label_set(qtbot, panel, "pneumonia", ["normal", "pneumonia"])
    paths = scope_paths(panel)
    # Another reader (and a stored AI read) labelled some images in the same store.
    with stored() as store:
        for index, classes in ((0, "normal"), (1, "pneumonia"), (2, "pneumonia")):
            store.set_label("pneumonia", ImageRef(key_of(panel, paths[index])), classes,
                            reader="dr-other")
        store.set_label("pneumonia", ImageRef(key_of(panel, paths[3])), "pneumonia",
                        reader="ai:demo")
    panel._load_labels(paths)
    settle(qtbot, panel)
    press(qtbot, window, Qt.Key.Key_1)  # 0: normal, agrees with dr-other
    press(qtbot, window, Qt.Key.Key_N)
    press(qtbot, window, Qt.Key.Key_1)  # 1: normal, dr-other said pneumonia
    press(qtbot, window, Qt.Key.Key_N)
    press(qtbot, window, Qt.Key.Key_N)
    press(qtbot, window, Qt.Key.Key_1)  # 3: normal, the stored AI read said pneumonia
    press(qtbot, window, Qt.Key.Key_N)
    suggest(panel, {"normal": 0.9, "pneumonia": 0.1}, "demo@1", ("normal",))
    press(qtbot, window, Qt.Key.Key_2)  # 4: overrides the AI
    browser = window.study_browser
    browser.select_path(paths[5])
    qtbot.waitUntil(lambda: panel.current_path == paths[5], timeout=10_000)
    settle(qtbot, panel)

    def shown(mode: str) -> set[str]:
        window.study_filter.set_mode(mode)
        return {p.name for p in window.study_filter.visible_paths()}

    names = [p.name for p in paths]
    current = names[5]  # the image on screen always stays visible
    assert shown("labelled") == {names[0], names[1], names[3], names[4], current}
    assert shown("unlabelled") == {names[2], names[5]}
    assert shown("disagreeing") == {names[1], names[3], names[4], current}
    assert window.study_filter.count_label.text() == "4 of 6"
    # Hidden rows are really hidden in the tree, with their series/study/patient rows.
    hidden = [p for p in paths if p.name not in shown("unlabelled")]
    for path in hidden:
        item = browser.item_for(path)
        assert item.isHidden() or item.parent().isHidden()
    assert shown("all") == set(names)
    # U with the filter on still goes by my labels: to image 3, the one I have not labelled.
    browser.select_path(paths[0])
    qtbot.waitUntil(lambda: panel.current_path == paths[0], timeout=10_000)
    press(qtbot, window, Qt.Key.Key_U)
    assert panel.current_path == paths[2]


def test_reader_name_in_status_bar_and_labels_saved_under_it(qtbot, main_window, folder):
    window, panel = main_window, main_window.label_panel
    open_folder(qtbot, window, folder)
    create_label_set(qtbot, panel, "pneumonia", ["normal", "pneumonia"])
    first = load_settings().reader_name
    assert panel.reader_button.text() == f"Reader: {first}"
    assert panel.reader_button.isVisibleTo(window)
    press(qtbot, window, Qt.Key.Key_1)
    dialog = panel.show_reader_dialog()
    assert not dialog.isModal() or dialog.windowModality() != Qt.WindowModality.ApplicationModal
    dialog.setTextValue("dr-b")
    dialog.accept()
    settle(qtbot, panel)
    assert panel.reader_button.text() == "Reader: dr-b"
    assert load_settings().reader_name == "dr-b"
    assert window.settings.reader_name == "dr-b"
    # dr-b has not labelled this image: the buttons show dr-b's (empty) decision.
    assert not any(checked for _t, checked in button_state(panel))
    press(qtbot, window, Qt.Key.Key_2)
    with stored() as store:
        decisions = store.decisions("pneumonia")[panel.current_key]
        actor = store.history("pneumonia", limit=1)[0].actor
    assert decisions == {first: ("normal",), "dr-b": ("pneumonia",)}
    assert actor == "dr-b"
    assert not panel.set_reader_name("  ")
    assert panel.reader == "dr-b"


def test_a_reader_name_saved_in_preferences_is_the_one_labels_are_saved_under(
        qtbot, main_window, folder):
    """Preferences saves the name through the session's settings; the panel, its store
    client and the store take it from settings_changed, as from the reader dialog."""
    window, panel = main_window, main_window.label_panel
    open_folder(qtbot, window, folder)
    create_label_set(qtbot, panel, "pneumonia", ["normal", "pneumonia"])
    window.session.update_settings(reader_name="dr-c")  # what Preferences > Save does
    assert panel.reader == "dr-c" and panel.client.reader == "dr-c"
    assert panel.reader_button.text() == "Reader: dr-c"
    press(qtbot, window, Qt.Key.Key_2)
    with stored() as store:
        assert store.decisions("pneumonia")[panel.current_key] == {"dr-c": ("pneumonia",)}
    window.session.update_settings(overlay_opacity=0.5)  # another setting: no change
    assert panel.reader == "dr-c"


def test_labelling_keys_take_1_and_r_only_while_labelling(qtbot, main_window, folder):
    window, panel = main_window, main_window.label_panel
    view = window.image_view
    keys = {name: [k.toString() for k in view.actions_by_name[name].shortcuts()]
            for name in ("actual_size", "rotate_right")}
    assert keys == {"actual_size": ["1"], "rotate_right": ["R"]}  # no label set yet
    assert panel.region_action.shortcuts() == []
    open_folder(qtbot, window, folder)
    create_label_set(qtbot, panel, "pneumonia", ["normal", "pneumonia"])
    assert view.actions_by_name["actual_size"].shortcuts() == []
    assert [k.toString() for k in view.actions_by_name["rotate_right"].shortcuts()] == \
        ["Shift+R"]
    press(qtbot, window, Qt.Key.Key_R, Qt.KeyboardModifier.ShiftModifier, wait=False)
    assert view.orientation.quarter_turns_clockwise == 1
    rows = dict(window.show_shortcuts().rows())
    assert rows["Label 1: normal"] == "1" and rows["Label 2: pneumonia"] == "2"
    assert rows["Next image"] == "N" and rows["Next unlabelled image"] == "U"
    assert rows["Accept AI suggestion"] == "Return, Enter"
    assert rows["Draw regions"] == "R" and rows["Rotate right 90°"] == "Shift+R"
    assert "Class 3" not in rows
    # Closing the Labels panel gives the viewer its keys back.
    window.docks["labels"].toggleViewAction().trigger()
    assert [k.toString() for k in view.actions_by_name["actual_size"].shortcuts()] == ["1"]
    assert [k.toString() for k in view.actions_by_name["rotate_right"].shortcuts()] == ["R"]
    assert panel.class_actions[0].shortcuts() == []
    press(qtbot, window, Qt.Key.Key_R, wait=False)
    assert view.orientation.quarter_turns_clockwise == 2


def test_next_image_is_prefetched_and_shown_at_once(qtbot, main_window, folder):
    window, panel = main_window, main_window.label_panel
    open_folder(qtbot, window, folder)
    create_label_set(qtbot, panel, "pneumonia", ["normal", "pneumonia"])
    paths = scope_paths(panel)
    qtbot.waitUntil(lambda: panel.prefetcher.is_ready(paths[1]), timeout=10_000)
    assert all(panel.prefetcher.is_ready(p) for p in paths[1:4])
    hits = panel.prefetcher.hits
    press(qtbot, window, Qt.Key.Key_N, wait=False)
    # Shown within the key press itself: no worker round trip.
    assert window.image_view.instance.path == paths[1]
    assert not window.image_view.is_loading
    assert panel.prefetcher.hits == hits + 1
    assert window.study_browser.tree.currentItem() is window.study_browser.item_for(paths[1])


def test_an_image_that_cannot_be_shown_is_never_labelled(qtbot, main_window, folder):
    window, panel = main_window, main_window.label_panel
    first = sorted(folder.glob("*.jpeg"))[0]
    data = first.read_bytes()
    (folder / "zz_cut_short.jpeg").write_bytes(data[: len(data) // 3])  # header intact
    open_folder(qtbot, window, folder)
    create_label_set(qtbot, panel, "pneumonia", ["normal", "pneumonia"])
    paths = scope_paths(panel)
    broken = next(p for p in paths if p.name == "zz_cut_short.jpeg")
    with qtbot.waitSignal(window.image_view.load_failed, timeout=10_000):
        window.study_browser.select_path(broken)
    settle(qtbot, panel)
    with stored() as store:
        before = len(store.history())
    press(qtbot, window, Qt.Key.Key_1)
    # The view shows nothing (pixels failed) or still the previous image (file failed):
    # either way the key must not label an image the reader is not looking at.
    assert window.statusBar().currentMessage() in (
        "Open an image to label it.", f"{broken.name} could not be shown, so it cannot be "
                                      f"labelled.")
    suggest(panel, {"normal": 0.9}, "demo@1", ("normal",), broken)
    press(qtbot, window, Qt.Key.Key_Return)
    with stored() as store:
        assert len(store.history()) == before
    assert panel.current_path != broken
