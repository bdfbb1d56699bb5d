"""The main window end to end: opening files and folders, errors, recent items, drag and drop,
tag search, menus and shortcuts, all with real files and real workers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from medviewer.paths import SAMPLE_STUDY_DIR
from medviewer.settings import load_settings

from .conftest import pydicom_file
from .helpers import mouse_move


def open_and_wait_for_image(qtbot, window, paths) -> None:
    with qtbot.waitSignal(window.image_view.image_shown, timeout=20_000):
        window.open_paths(paths)
    qtbot.waitUntil(lambda: not window.is_indexing, timeout=20_000)


def wait_for_thumbnails(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.study_browser.is_busy, timeout=20_000)


def sample_copy(tmp_path: Path) -> Path:
    if not SAMPLE_STUDY_DIR.is_dir() or not any(SAMPLE_STUDY_DIR.iterdir()):
        pytest.fail(f"the bundled sample study is missing from {SAMPLE_STUDY_DIR}")
    return Path(shutil.copytree(SAMPLE_STUDY_DIR, tmp_path / "sample"))


# ---------------------------------------------------------------- opening


def test_open_folder_fills_browser_image_tags_status_and_recent(qtbot, main_window, tmp_path):
    folder = sample_copy(tmp_path)
    open_and_wait_for_image(qtbot, main_window, [folder])
    browser = main_window.study_browser
    files = sorted(p.name for p in folder.iterdir())
    assert sorted(r.path.name for r in browser.records()) == files
    wait_for_thumbnails(qtbot, main_window)
    for record in browser.records():
        icon = browser.item_for(record.path).icon(0).pixmap(64, 64).toImage()
        brightest = max(icon.pixelColor(x, y).value() for x in range(0, icon.width(), 4)
                        for y in range(0, icon.height(), 4))
        assert brightest > 50, f"thumbnail of {record.path.name} is still the black placeholder"
    shown = main_window.image_view.instance
    assert shown is not None and shown.path.parent == folder
    assert browser.tree.currentItem() is browser.item_for(shown.path)
    tag_rows = main_window.tag_browser.visible_rows()
    assert ("(0010,0020)", "Patient ID", "LO", str(shown.header.PatientID)) in tag_rows
    assert main_window.zoom_label.text().startswith("Zoom ")
    assert "C " in main_window.voi_label.text() and "W " in main_window.voi_label.text()
    assert main_window.frame_label.text() == "Frame 1/1"
    assert main_window.problems.count() == 0 and main_window.problems_button.isHidden()
    assert load_settings().recent_paths[0] == str(folder.resolve())


def test_selecting_another_image_in_the_browser_opens_it(qtbot, main_window, tmp_path):
    folder = sample_copy(tmp_path)
    open_and_wait_for_image(qtbot, main_window, [folder])
    browser = main_window.study_browser
    other = [r for r in browser.records() if r.path != main_window.image_view.instance.path][-1]
    with qtbot.waitSignal(main_window.image_view.image_shown, timeout=10_000) as shown:
        browser.select_path(other.path)
    assert shown.args[0].path == other.path
    expected = shown.args[0].display_frame(0)
    assert np.array_equal(main_window.image_view.displayed_image(), expected)


def test_open_single_file(qtbot, main_window):
    path = pydicom_file("CT_small.dcm")
    open_and_wait_for_image(qtbot, main_window, [path])
    assert [r.path for r in main_window.study_browser.records()] == [path.resolve()]
    assert main_window.image_view.instance.path == path.resolve()
    assert "CT_small.dcm" in main_window.windowTitle()


def test_folder_with_broken_files_lists_each_sentence_without_a_dialog(qtbot, main_window,
                                                                        tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(pydicom_file("CT_small.dcm"), folder / "good.dcm")
    (folder / "garbage.dcm").write_bytes(b"this is not an image" * 50)
    (folder / "empty.dcm").write_bytes(b"")
    data = pydicom_file("MR_small.dcm").read_bytes()
    (folder / "truncated.dcm").write_bytes(data[: len(data) - 3000])  # header fine, pixels cut
    open_and_wait_for_image(qtbot, main_window, [folder])
    wait_for_thumbnails(qtbot, main_window)
    sentences = main_window.problems.sentences()
    by_file = {name: [s for s in sentences if name in s] for name in
               ("garbage.dcm", "empty.dcm", "truncated.dcm")}
    assert all(len(found) == 1 for found in by_file.values()), sentences
    for sentence in sentences:
        assert sentence.startswith("Cannot open ") and sentence.endswith(".")
        assert "\n" not in sentence and "Traceback" not in sentence
    assert "empty" in by_file["empty.dcm"][0]
    button = main_window.problems_button
    assert button.isVisibleTo(main_window)
    assert button.text() == "⚠ 3 files could not be opened"
    assert QApplication.activeModalWidget() is None
    assert not main_window.docks["problems"].isVisibleTo(main_window)
    button.click()
    assert main_window.docks["problems"].isVisibleTo(main_window)
    # The good file is on screen and the app keeps working.
    assert main_window.image_view.instance.path.name == "good.dcm"
    main_window.image_view.rotate_right()
    assert main_window.image_view.orientation.quarter_turns_clockwise == 1


def test_a_folder_with_only_broken_files_says_so_in_one_sentence(qtbot, main_window, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.dcm").write_bytes(b"nope" * 100)
    (folder / "b.dcm").write_bytes(b"nada" * 100)
    with qtbot.waitSignal(main_window.indexing_ended, timeout=20_000):
        main_window.open_paths([folder])
    expected = f"None of the 2 files in {folder} could be opened."
    assert main_window.image_view.message == expected
    assert main_window.statusBar().currentMessage() == expected
    assert main_window.problems.count() == 2


def test_missing_path_is_one_sentence(qtbot, main_window, tmp_path):
    missing = tmp_path / "gone"
    with qtbot.waitSignal(main_window.indexing_ended, timeout=10_000):
        main_window.open_paths([missing])
    assert main_window.image_view.message == f"Cannot open {missing}: it does not exist."


def test_cancel_indexing_a_large_folder(qtbot, main_window, shared_data):
    folder = shared_data / "xray" / "kermany224" / "train"
    cancelled: list[bool] = []
    with qtbot.waitSignal(main_window.indexing_ended, timeout=30_000):
        main_window.open_paths([folder])
        assert main_window.is_indexing
        assert main_window.cancel_button.isVisibleTo(main_window)
        assert main_window.progress_bar.isVisibleTo(main_window)
        main_window._indexer.cancelled.connect(lambda: cancelled.append(True))
        main_window.cancel_button.click()
    assert cancelled == [True]
    assert not main_window.is_indexing
    assert main_window.study_browser.records() == []
    assert not main_window.cancel_button.isVisibleTo(main_window)
    assert "cancelled" in main_window.statusBar().currentMessage()


# ---------------------------------------------------------------- recent items


def test_recent_items_menu_reopens_and_reports_missing(qtbot, main_window, tmp_path):
    path = pydicom_file("MR_small.dcm")
    open_and_wait_for_image(qtbot, main_window, [path])
    main_window.close_all()
    assert main_window.study_browser.records() == []
    main_window._fill_recent_menu()
    entries = [a for a in main_window.recent_menu.actions() if a.data()]
    assert [a.data() for a in entries] == [str(path.resolve())]
    with qtbot.waitSignal(main_window.image_view.image_shown, timeout=10_000):
        entries[0].trigger()
    assert main_window.image_view.instance.path == path.resolve()

    main_window.open_recent(str(tmp_path / "moved-away.dcm"))
    assert main_window.image_view.message == \
        f"Cannot open {tmp_path / 'moved-away.dcm'}: it no longer exists."


def test_recent_items_survive_a_new_window(qtbot, main_window):
    from medviewer.gui.main_window import MainWindow

    path = pydicom_file("CT_small.dcm")
    open_and_wait_for_image(qtbot, main_window, [path])
    second = MainWindow()
    try:
        second._fill_recent_menu()
        assert [a.data() for a in second.recent_menu.actions() if a.data()] == \
            [str(path.resolve())]
    finally:
        second.close()
        second.deleteLater()


def test_panel_layout_and_size_come_back_in_a_new_window(qtbot):
    from medviewer.gui.main_window import MainWindow
    from medviewer.settings import save_settings

    first = MainWindow()
    qtbot.addWidget(first)
    first.resize(700, 500)
    first.show()
    first.docks["tags"].hide()  # a reader closed the tags to get room
    first.removeDockWidget(first.docks["studies"])
    first.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, first.docks["studies"])
    first.docks["studies"].show()
    size = (first.width(), first.height())
    first.close()
    saved = load_settings()
    assert saved.window_state and saved.window_geometry

    second = MainWindow()
    qtbot.addWidget(second)
    second.show()
    assert second.docks["tags"].isHidden()
    assert second.dockWidgetArea(second.docks["studies"]) == Qt.DockWidgetArea.RightDockWidgetArea
    # Offscreen Qt has a small virtual screen, so compare with what the window really had.
    assert (second.width(), second.height()) == size

    second.reset_layout_action.trigger()  # View > Reset panel layout
    assert not second.docks["tags"].isHidden()
    assert second.dockWidgetArea(second.docks["studies"]) == Qt.DockWidgetArea.LeftDockWidgetArea
    second.close()

    # A damaged saved value is ignored: the default layout, no error.
    broken = load_settings()
    broken.window_state, broken.window_geometry = "not base64 at all ✗", "%%%"
    save_settings(broken)
    third = MainWindow()
    qtbot.addWidget(third)
    third.show()
    assert not third.docks["tags"].isHidden()
    assert third.dockWidgetArea(third.docks["studies"]) == Qt.DockWidgetArea.LeftDockWidgetArea
    third.close()


# ---------------------------------------------------------------- drag and drop


def drag_enter_event(position: QPointF, mime: QMimeData) -> QDragEnterEvent:
    """PySide6 before 6.12 takes a QPoint here, later ones a QPointF."""
    try:
        return QDragEnterEvent(position, Qt.DropAction.CopyAction, mime,
                               Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    except TypeError:
        return QDragEnterEvent(position.toPoint(), Qt.DropAction.CopyAction, mime,
                               Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)


def url_mime(paths) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def test_drop_files_and_folders_opens_them(qtbot, main_window, tmp_path):
    folder = sample_copy(tmp_path)
    extra = pydicom_file("CT_small.dcm")
    mime = url_mime([folder, extra])
    position = QPointF(main_window.width() / 2, main_window.height() / 2)
    enter = drag_enter_event(position, mime)
    QApplication.sendEvent(main_window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(position, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(main_window.indexing_ended, timeout=30_000):
        QApplication.sendEvent(main_window, drop)
    assert drop.isAccepted()
    names = sorted(r.path.name for r in main_window.study_browser.records())
    assert names == sorted([p.name for p in folder.iterdir()] + ["CT_small.dcm"])


def test_drag_of_plain_text_is_refused(qtbot, main_window):
    mime = QMimeData()
    mime.setText("not a file")
    enter = drag_enter_event(QPointF(main_window.rect().center()), mime)
    enter.setAccepted(False)
    QApplication.sendEvent(main_window, enter)
    assert not enter.isAccepted()


# ---------------------------------------------------------------- tag browser


def test_tag_search_by_keyword_tag_value_and_nested_sequences(qtbot, main_window, tmp_path):
    folder = sample_copy(tmp_path)
    open_and_wait_for_image(qtbot, main_window, [folder])
    tags = main_window.tag_browser
    header = main_window.image_view.instance.header
    assert tags.set_filter("PatientSex") == 1
    assert [row[:3] for row in tags.visible_rows()] == [("(0010,0040)", "Patient's Sex", "CS")]
    tags.set_filter("(0028,0010)")
    assert [row[1] for row in tags.visible_rows()] == ["Rows"]
    tags.set_filter("0028,0011")
    assert [row[1] for row in tags.visible_rows()] == ["Columns"]
    tags.set_filter(str(header.SOPInstanceUID))
    assert "SOP Instance UID" in [row[1] for row in tags.visible_rows()]
    # A nested element: shown with its sequence and item, which are expanded.
    sequence = next(e for e in header if e.VR == "SQ" and len(e.value))
    nested = next(iter(sequence.value[0]))
    tags.set_filter(nested.keyword)
    rows = tags.visible_rows()
    assert any(row[1] == sequence.name for row in rows)
    assert any(row[1] == "Item 1" for row in rows)
    assert any(row[1] == nested.name for row in rows)
    found = tags.tree.findItems(sequence.name, Qt.MatchFlag.MatchExactly | Qt.MatchFlag.MatchRecursive, 1)
    assert found and found[0].isExpanded()
    assert tags.set_filter("no such thing anywhere") == 0
    assert tags.visible_rows() == [] and tags.summary.text() == "No element matches"
    tags.set_filter("")
    assert len(tags.visible_rows()) > 20


def test_ctrl_f_focuses_tag_search(qtbot, main_window):
    open_and_wait_for_image(qtbot, main_window, [pydicom_file("MR_small.dcm")])
    main_window.activateWindow()
    main_window.tag_search_action.trigger()
    assert main_window.tag_browser.search.hasFocus() or \
        QApplication.focusWidget() is main_window.tag_browser.search


def test_tag_panel_behind_a_tab_is_filled_when_shown_not_on_every_image(qtbot, main_window,
                                                                        tmp_path):
    """The tags share a tab with the label panel; filling a tree nobody sees would cost the
    GUI thread milliseconds per image. Brought to the front, it shows the current header."""
    tags = main_window.tag_browser
    assert main_window.tabifiedDockWidgets(main_window.docks["tags"]), "tags expected in a tab"
    folder = sample_copy(tmp_path)
    open_and_wait_for_image(qtbot, main_window, [folder])
    assert tags.tree.topLevelItemCount() == 0
    main_window.docks["tags"].raise_()
    qtbot.waitUntil(lambda: tags.tree.topLevelItemCount() > 0, timeout=2000)
    shown = main_window.image_view.instance
    assert tags.tree.topLevelItemCount() > 20
    assert ("(0008,0018)", "SOP Instance UID", "UI", str(shown.header.SOPInstanceUID)) \
        in tags.visible_rows()


def test_tag_browser_never_shows_pixel_bytes(qtbot):
    from medviewer.gui.tag_browser import TagBrowser

    browser = TagBrowser()
    qtbot.addWidget(browser)
    dataset = pydicom.dcmread(pydicom_file("CT_small.dcm"))  # with its pixel data
    browser.set_dataset(dataset)
    rows = browser.visible_rows()
    pixel_rows = [row for row in rows if row[0] == "(7FE0,0010)"]
    assert pixel_rows == [("(7FE0,0010)", "Pixel Data", "OW",
                           f"<binary data, {len(dataset.PixelData)} bytes>")]
    assert not any("\\x" in row[3] or "b'" in row[3] for row in rows)


# ---------------------------------------------------------------- status bar, menus, shortcuts


def test_status_bar_readout_follows_the_cursor(qtbot, main_window):
    path = pydicom_file("CT_small.dcm")
    open_and_wait_for_image(qtbot, main_window, [path])
    qtbot.wait(50)
    view = main_window.image_view
    ds = pydicom.dcmread(path)
    value = ds.pixel_array[10, 100] * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    mouse_move(qtbot, view.graphics_view.viewport(), view.map_image_to_widget(100.5, 10.5))
    assert main_window.readout_label.text() == f"x 100, y 10: {value:g} HU"


def test_keyboard_shortcuts_work_and_are_listed(qtbot, main_window):
    open_and_wait_for_image(qtbot, main_window, [pydicom_file("MR_small.dcm")])
    main_window.activateWindow()
    view = main_window.image_view
    view.graphics_view.setFocus()
    qtbot.keyClick(view.graphics_view, Qt.Key.Key_R)
    assert view.orientation.quarter_turns_clockwise == 1
    qtbot.keyClick(view.graphics_view, Qt.Key.Key_H)
    assert view.orientation.is_mirrored
    qtbot.keyClick(view.graphics_view, Qt.Key.Key_I)
    assert view.user_invert
    qtbot.keyClick(view.graphics_view, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert view.preset_key == "full"
    qtbot.keyClick(view.graphics_view, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert view.preset_key == "file" and not view.user_invert
    assert view.orientation.quarter_turns_clockwise == 0 and not view.orientation.is_mirrored

    # Letters typed into the tag search are text, not image shortcuts.
    search = main_window.tag_browser.search
    search.setFocus()
    qtbot.keyClicks(search, "RHI")
    assert search.text() == "RHI"
    assert view.orientation.quarter_turns_clockwise == 0 and not view.user_invert
    search.clear()

    dialog = main_window.show_shortcuts()
    rows = dict(dialog.rows())
    assert not dialog.isModal()
    assert rows["Rotate right 90°"] == "R"
    assert rows["Rotate left 90°"] == "L"
    assert rows["Flip horizontal"] == "H" and rows["Flip vertical"] == "V"
    assert rows["Invert grey scale"] == "I"
    assert rows["Fit to window"] == "F" and rows["Actual size (1:1)"] == "1"
    assert rows["Measure distance"] == "M"
    assert rows["Play / pause cine"] == "Space"
    assert "Right" in rows["Next frame"]
    assert rows["Open file"] == "Ctrl+O" and rows["Quit"] == "Ctrl+Q"
    assert "Right drag" in rows and "Wheel" in rows


def test_extension_menus_stay_hidden_until_used(qtbot, main_window):
    # The panels fill the extension menus at start-up; emptied, a menu hides itself.
    for key in ("models", "labels", "training"):
        menu = main_window.menus[key]
        installed = menu.actions()
        for action in installed:
            menu.removeAction(action)
        assert not menu.menuAction().isVisible(), key
        action = QAction("Run model", main_window)
        menu.addAction(action)
        assert menu.menuAction().isVisible(), key
        menu.removeAction(action)
        assert not menu.menuAction().isVisible(), key
        menu.addActions(installed)
        assert menu.menuAction().isVisible() == any(not a.isSeparator() for a in installed)


def test_panels_and_status_fields_can_be_added(qtbot, main_window):
    from PySide6.QtWidgets import QLabel

    dock = main_window.add_panel("results", "AI results", QLabel("results"),
                                 tabify_with="tags")
    assert main_window.docks["results"] is dock
    assert dock.toggleViewAction() in main_window.panels_menu.actions()
    field = QLabel("Provider: CPU")
    main_window.add_status_field(field)
    assert field.isVisibleTo(main_window)
    assert field.parent() is not None


def test_reopening_does_not_duplicate_and_a_new_folder_is_shown(qtbot, main_window, tmp_path):
    folder = sample_copy(tmp_path)
    open_and_wait_for_image(qtbot, main_window, [folder])
    count = len(main_window.study_browser.records())
    rows = main_window.study_browser.tree.topLevelItemCount()
    with qtbot.waitSignal(main_window.indexing_ended, timeout=20_000):
        main_window.open_paths([folder])
    assert len(main_window.study_browser.records()) == count
    assert main_window.study_browser.tree.topLevelItemCount() == rows
    assert main_window.statusBar().currentMessage() == f"{folder} is already open."
    # Another file opened afterwards is the one shown.
    ct = pydicom_file("CT_small.dcm")
    open_and_wait_for_image(qtbot, main_window, [ct])
    assert main_window.image_view.instance.path == ct.resolve()


def test_open_dicomdir(qtbot, main_window):
    dicomdir = pydicom_file("dicomdirtests/DICOMDIR")
    with qtbot.waitSignal(main_window.catalog_opened, timeout=30_000) as opened:
        main_window.open_paths([dicomdir])
    catalog = opened.args[0]
    assert len(main_window.study_browser.records()) == len(catalog.instances()) == 31
    qtbot.waitUntil(lambda: main_window.image_view.instance is not None, timeout=20_000)
    assert main_window.image_view.instance.path == catalog.instances()[0].path


def test_dicomdir_whose_files_are_missing(qtbot, main_window, shared_data):
    dicomdir = shared_data / "dicom" / "fo-dicom" / "DICOMDIR"  # lists files not shipped
    with qtbot.waitSignal(main_window.indexing_ended, timeout=30_000):
        main_window.open_paths([dicomdir])
    count = main_window.problems.count()
    assert count > 1
    assert main_window.image_view.message == \
        f"None of the {count} files in {dicomdir} could be opened."
    assert all("the file is missing although" in s for s in main_window.problems.sentences())
