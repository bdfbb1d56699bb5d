"""The reading room in the main window: the viewport grid as the central widget, menus and
status fields that follow the active viewport, tools in the menus and tool bar, settings on
every view, compare with prior (and the PACS offer), drags from the browser, labelling keys
on every viewport. Real files, real workers, the real settings file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox, QPushButton, QToolButton

from medviewer.gui.main_window import MainWindow
from medviewer.gui.reading_room import GRID_GESTURES
from medviewer.paths import SAMPLE_STUDY_DIR
from medviewer.settings import load_settings

from .test_label_panel import create_label_set, settle

SAMPLE = sorted(SAMPLE_STUDY_DIR.glob("*.dcm"))


def open_sample(qtbot, window, folder: Path | None = None) -> None:
    with qtbot.waitSignal(window.image_view.image_shown, timeout=20_000):
        window.open_paths([folder or SAMPLE_STUDY_DIR])
    qtbot.waitUntil(lambda: not window.is_indexing, timeout=20_000)


def show(qtbot, view, path) -> None:
    with qtbot.waitSignal(view.image_shown, timeout=10_000):
        view.open_path(path)
    qtbot.wait(30)


def menu_actions(menu) -> list:
    return [a for a in menu.actions() if not a.isSeparator()]


def submenu(menu, name: str):
    return next(a.menu() for a in menu.actions() if a.menu() is not None
                and a.menu().objectName() == name)


# ---------------------------------------------------------------- the grid in the window


def test_the_grid_is_the_central_widget_around_the_panels_view(qtbot, main_window):
    grid = main_window.grid
    assert main_window.centralWidget() is grid
    assert grid.primary_view is main_window.image_view
    assert main_window.label_panel.view is main_window.image_view
    assert grid.catalogs_provider() is main_window.session.catalogs
    view_menu = main_window.menus["view"]
    layouts = menu_actions(submenu(view_menu, "layoutMenu"))
    assert [a.text() for a in layouts] == ["Layout 1 × 1", "Layout 1 × 2", "Layout 2 × 1",
                                           "Layout 2 × 2"]
    syncs = menu_actions(submenu(view_menu, "syncMenu"))
    assert [a.isChecked() for a in syncs] == [True, True, True]
    assert grid.actions_by_name["compare_prior"] in view_menu.actions()


def test_layout_and_sync_toggles_come_back_in_a_new_window(qtbot, main_window):
    grid = main_window.grid
    grid.actions_by_name["layout_2x1"].trigger()
    grid.actions_by_name["sync_pan_zoom"].trigger()  # off
    saved = load_settings()
    assert saved.viewport_layout == "2x1"
    assert (saved.sync_window, saved.sync_pan_zoom, saved.sync_frames) == (True, False, True)
    second = MainWindow()
    qtbot.addWidget(second)
    try:
        assert second.grid.layout_name == "2x1" and len(second.grid.views()) == 2
        assert second.grid.sync == {"window": True, "pan_zoom": False, "frames": True}
        assert not second.grid.actions_by_name["sync_pan_zoom"].isChecked()
    finally:
        second.close()


def test_menus_status_fields_and_tags_follow_the_active_viewport(qtbot, main_window):
    open_sample(qtbot, main_window)
    grid = main_window.grid
    grid.set_layout("1x2")
    second = grid.views()[1]
    show(qtbot, second, SAMPLE[4])
    primary = main_window.image_view
    assert grid.active_view is primary
    view_menu = main_window.menus["view"]
    assert primary.actions_by_name["invert"] in view_menu.actions()

    grid.set_active(second)
    assert second.actions_by_name["invert"] in view_menu.actions()
    assert primary.actions_by_name["invert"] not in view_menu.actions()
    tools = submenu(view_menu, "toolsMenu")
    assert second.actions_by_name["tool_angle"] in tools.actions()
    # Triggering from the menu acts on the active viewport only.
    second.actions_by_name["invert"].trigger()
    assert second.user_invert and not primary.user_invert
    presets = [a.menu() for a in view_menu.actions() if a.text() == "&Window/level"][0]
    assert presets.actions() == second.preset_actions()
    grid.set_active(primary)
    grid.set_active(second)  # the presets of a view survive another view's turn
    assert presets.actions() == second.preset_actions() and presets.isEnabled()
    assert len(second.preset_actions()) > 1
    assert main_window.voi_label.text() == second.voi_description()
    assert main_window.zoom_label.text() == f"Zoom {second.zoom_percent():.0f} %"
    tags = main_window.tag_browser.visible_rows()
    assert ("(0008,0018)", "SOP Instance UID", "UI",
            str(second.instance.header.SOPInstanceUID)) in tags


def test_tool_bar_has_the_tools_and_a_layout_button(qtbot, main_window):
    bar = main_window.tool_bar
    assert bar.objectName() == "imageToolBar"
    view = main_window.image_view
    texts = [a.iconText() for a in bar.actions()]
    for tool in ("measure", "tool_angle", "tool_cobb", "tool_rectangle", "tool_ellipse",
                 "tool_probe", "tool_text"):
        assert view.actions_by_name[tool] in bar.actions(), tool
    assert "Text" in texts and "Prior" in texts
    assert bar.findChild(QToolButton, "layoutButton").menu().actions()


def test_a_tool_chosen_in_one_viewport_is_the_tool_of_every_viewport(qtbot, main_window):
    open_sample(qtbot, main_window)
    grid = main_window.grid
    grid.set_layout("2x2")
    views = grid.views()
    show(qtbot, views[3], SAMPLE[1])
    grid.set_active(views[3])
    views[3].actions_by_name["tool_cobb"].trigger()
    assert [v.tool for v in grid.views()] == ["cobb"] * 4
    views[3].actions_by_name["no_tool"].trigger()
    assert [v.tool for v in grid.views()] == [None] * 4
    views[3].actions_by_name["corner_text"].trigger()  # T hides the text everywhere
    assert not any(v.actions_by_name["corner_text"].isChecked() for v in grid.views())


def test_the_status_bar_summary_goes_with_its_measurement_or_image(qtbot, main_window):
    open_sample(qtbot, main_window)
    view = main_window.image_view
    bar = main_window.statusBar()
    shown = view.measures.add("rectangle", [(20.0, 20.0), (60.0, 50.0)])
    assert bar.currentMessage() == shown.summary()
    assert bar.currentMessage().startswith("Rectangle ROI mean ")
    view.measures.remove(shown)
    assert bar.currentMessage() == ""  # today's bug: it stayed
    shown = view.measures.add("distance", [(20.0, 20.0), (60.0, 50.0)])
    assert bar.currentMessage().startswith("Distance ")
    with qtbot.waitSignal(view.image_shown, timeout=10_000):
        main_window.study_browser.select_path(SAMPLE[2])
    assert bar.currentMessage() == ""


def test_settings_apply_to_every_viewport_at_once_and_to_later_ones(qtbot, main_window):
    session = main_window.session
    assert session.update_settings(mouse_left_drag="pan", mouse_wheel="zoom",
                                   corner_text=False, length_unit="cm") is None
    views = main_window.grid.views()
    assert len(views) == 1
    main_window.grid.set_layout("2x2")  # three views made after the change
    for view in main_window.grid.views():
        assert (view.mouse_mapping.left, view.mouse_mapping.wheel) == ("pan", "zoom")
        assert not view.actions_by_name["corner_text"].isChecked()
        assert view.measures.length_unit == "cm"
    # A reader's T is not undone when an unrelated setting is saved.
    main_window.image_view.set_corner_text_visible(True)  # what T does
    session.update_settings(mouse_right_drag="pan")
    assert all(v.actions_by_name["corner_text"].isChecked() for v in main_window.grid.views())
    assert all(v.mouse_mapping.right == "pan" for v in main_window.grid.views())


def test_the_shortcut_list_shows_the_mouse_mapping_in_use(qtbot, main_window):
    main_window.session.update_settings(mouse_left_drag="zoom")
    rows = dict(main_window.show_shortcuts().rows())
    assert rows["Left drag"].startswith("Zoom: up = in")
    assert rows["Right drag"].startswith("Zoom")
    assert rows["Measure angle"] == "A" and rows["Cobb angle"] == "C"
    assert rows["Corner text"] == "T"
    for gesture, _what in GRID_GESTURES:
        assert gesture in rows


# ---------------------------------------------------------------- compare with prior


def dated_copy(folder: Path, source: Path, date: str) -> Path:
    ds = pydicom.dcmread(source)
    ds.StudyDate = date
    ds.StudyInstanceUID = pydicom.uid.generate_uid()
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{date}.dcm"
    ds.save_as(path)
    return path


def test_compare_with_prior_from_the_view_menu(qtbot, main_window, tmp_path):
    dated_copy(tmp_path / "studies", SAMPLE[0], "20240301")
    prior = dated_copy(tmp_path / "studies", SAMPLE[3], "20230110")
    open_sample(qtbot, main_window, tmp_path / "studies")
    main_window.study_browser.select_path((tmp_path / "studies" / "20240301.dcm").resolve())
    qtbot.waitUntil(lambda: main_window.image_view.instance.path.name == "20240301.dcm",
                    timeout=10_000)
    main_window.grid.actions_by_name["compare_prior"].trigger()
    beside = main_window.grid.views()[1]
    qtbot.waitUntil(lambda: beside.instance is not None, timeout=10_000)
    assert beside.instance.path == prior.resolve()
    assert main_window.statusBar().currentMessage() == \
        "Prior study of 2023-01-10 shown beside the current image."
    assert load_settings().viewport_layout == "1x2"


def test_no_prior_open_offers_the_pacs_with_the_patient_id(qtbot, main_window):
    open_sample(qtbot, main_window)
    main_window.grid.actions_by_name["compare_prior"].trigger()
    box = main_window.findChild(QMessageBox, "noPriorBox")
    assert box.isVisible() and not box.isModal()
    assert "No earlier study of patient DEMO-0001 is open here" in box.text()
    main_window.grid.actions_by_name["compare_prior"].trigger()  # asked again: one box
    qtbot.waitUntil(lambda: len([b for b in main_window.findChildren(QMessageBox, "noPriorBox")
                                 if b.isVisible()]) == 1, timeout=5_000)
    box = next(b for b in main_window.findChildren(QMessageBox, "noPriorBox") if b.isVisible())
    qtbot.mouseClick(box.findChild(QPushButton, "searchPacsButton"),
                     Qt.MouseButton.LeftButton, pos=QPoint(5, 5))
    assert main_window.docks["pacs"].isVisibleTo(main_window)
    assert main_window.pacs_panel.patient_id.text() == "DEMO-0001"


# ---------------------------------------------------------------- drags and labelling keys


def drop_on(widget, mime) -> None:
    position = QPointF(widget.width() / 2, widget.height() / 2)
    enter = QDragEnterEvent(position.toPoint(), Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(widget, QDropEvent(position, Qt.DropAction.CopyAction, mime,
                                              Qt.MouseButton.LeftButton,
                                              Qt.KeyboardModifier.NoModifier))


def test_a_series_dragged_from_the_browser_shows_in_that_viewport(qtbot, main_window):
    open_sample(qtbot, main_window)
    browser = main_window.study_browser
    qtbot.waitUntil(lambda: not browser.is_busy, timeout=20_000)
    main_window.grid.set_layout("1x2")
    target = main_window.grid.viewports[1]
    series_item = browser.item_for(SAMPLE[3]).parent()
    with qtbot.waitSignal(target.view.image_shown, timeout=10_000):
        drop_on(target, browser.tree.mimeData([series_item]))
    assert target.series == SAMPLE[3:6] and target.view.instance.path == SAMPLE[3]
    assert main_window.grid.active_view is target.view
    assert main_window.image_view.instance.path == SAMPLE[0]  # the panels' image stays


def test_files_dropped_from_another_program_on_a_viewport_are_opened(qtbot, main_window,
                                                                     tmp_path):
    from PySide6.QtCore import QMimeData, QUrl

    folder = Path(shutil.copytree(SAMPLE_STUDY_DIR, tmp_path / "dropped"))
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    with qtbot.waitSignal(main_window.indexing_ended, timeout=20_000):
        drop_on(main_window.grid.viewports[0], mime)
    assert sorted(r.path.name for r in main_window.study_browser.records()) == \
        sorted(p.name for p in SAMPLE)


def test_labelling_moves_the_keys_of_every_viewport(qtbot, main_window):
    open_sample(qtbot, main_window)
    main_window.grid.set_layout("2x2")
    create_label_set(qtbot, main_window.label_panel, "findings", ["normal", "abnormal"])
    main_window.grid.set_layout("2x2")
    for view in main_window.grid.viewports:
        keys = [k.toString() for k in view.view.actions_by_name["rotate_right"].shortcuts()]
        assert keys == ["Shift+R"], keys
        assert view.view.actions_by_name["actual_size"].shortcuts() == []
    settle(qtbot, main_window.label_panel)


def test_labelling_keys_reach_a_view_the_grid_adds_later(qtbot, main_window):
    open_sample(qtbot, main_window)
    create_label_set(qtbot, main_window.label_panel, "findings", ["normal", "abnormal"])
    main_window.grid.set_layout("2x2")
    added = main_window.grid.viewports[3].view
    assert [k.toString() for k in added.actions_by_name["rotate_right"].shortcuts()] == \
        ["Shift+R"]
    main_window.docks["labels"].toggleViewAction().trigger()  # labelling off: keys back
    assert [k.toString() for k in added.actions_by_name["rotate_right"].shortcuts()] == ["R"]


def test_the_label_panel_starts_on_the_last_label_set_despite_later_measurements(
        qtbot):
    from medviewer.labels.store import ImageRef, LabelStore, default_store_path

    with LabelStore(default_store_path(), reader=load_settings().reader_name) as store:
        store.create_label_set("first", ["a", "b"])
        store.create_label_set("second", ["a", "b"])
        ref = ImageRef("1.2.3", path="/x.dcm", width=100, height=100)
        store.set_label("second", ref, "a")
        store.add_measurement(ref, "distance", [(0, 0), (3, 4)], values={"length_px": 5.0})
    window = MainWindow()
    qtbot.addWidget(window)
    try:
        qtbot.waitUntil(lambda: window.label_panel.label_set is not None, timeout=10_000)
        assert window.label_panel.label_set.name == "second"
    finally:
        window.close()
