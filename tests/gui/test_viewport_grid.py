"""The viewport grid with real files and real events: layouts, the active viewport, drops,
synchronised window/level, zoom/pan and frame scrolling, and compare with prior."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from medviewer.dicom.catalog import index_path
from medviewer.gui.viewport_grid import (
    ACTIVE_COLOUR, INACTIVE_COLOUR, LAYOUTS, ViewportGrid, mime_for_paths, paths_from_mime,
)
from medviewer.jobs import run_to_end
from medviewer.paths import SAMPLE_STUDY_DIR

from .conftest import pydicom_data_file, pydicom_file
from .helpers import mouse_click, mouse_drag

SAMPLE = sorted(SAMPLE_STUDY_DIR.glob("*.dcm"))


@pytest.fixture
def grid(qtbot):
    grid = ViewportGrid()
    grid.resize(1000, 800)
    grid.show()
    qtbot.waitExposed(grid)
    yield grid
    grid.wait_for_workers()
    grid.close()
    grid.deleteLater()


def show(qtbot, view, path) -> None:
    with qtbot.waitSignal(view.image_shown, timeout=10_000):
        view.open_path(path)
    qtbot.wait(30)


def fill(qtbot, grid, paths) -> list:
    views = grid.views()
    for view, path in zip(views, paths):
        show(qtbot, view, path)
    return views


# ---------------------------------------------------------------- layouts and the active view


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_layouts_place_the_viewports(qtbot, grid, name):
    grid.set_layout(name)
    rows, columns = LAYOUTS[name]
    visible = grid.visible_viewports()
    assert len(visible) == rows * columns == len(grid.views())
    qtbot.wait(30)
    xs = sorted({v.geometry().x() for v in visible})
    ys = sorted({v.geometry().y() for v in visible})
    assert (len(ys), len(xs)) == (rows, columns)
    assert all(v.isVisible() for v in visible)
    assert grid.actions_by_name[f"layout_{name}"].isChecked()


def test_a_click_makes_a_viewport_active_and_only_it_owns_the_keys(qtbot, grid):
    grid.set_layout("1x2")
    left, right = fill(qtbot, grid, SAMPLE[:2])
    assert grid.active_view is left and grid.viewports[0].is_active
    changes = []
    grid.active_changed.connect(changes.append)
    mouse_click(qtbot, right.graphics_view.viewport(), QPointF(100, 100))
    assert grid.active_view is right and changes == [right]
    assert grid.viewports[1].property("active") and not grid.viewports[0].property("active")
    for viewport, colour in ((grid.viewports[1], ACTIVE_COLOUR),
                             (grid.viewports[0], INACTIVE_COLOUR)):
        edge = viewport.grab().toImage().pixelColor(0, viewport.height() // 2)
        assert edge.name() == colour.name()  # the frame drawn bright around the active one
    window_wide = Qt.ShortcutContext.WindowShortcut
    assert right.actions_by_name["rotate_right"].shortcutContext() == window_wide
    assert left.actions_by_name["rotate_right"].shortcutContext() != window_wide
    qtbot.keyClick(right.graphics_view, Qt.Key.Key_R)
    assert right.orientation.quarter_turns_clockwise == 1
    assert left.orientation.quarter_turns_clockwise == 0
    # W/L presets are made anew for each image; their Ctrl+1... keys are routed too.
    show(qtbot, left, SAMPLE[2])
    assert left.preset_actions()[0].shortcutContext() != window_wide
    assert right.preset_actions()[0].shortcutContext() == window_wide


def test_views_hidden_by_a_smaller_layout_keep_their_images(qtbot, grid):
    grid.set_layout("2x2")
    views = fill(qtbot, grid, SAMPLE[:4])
    grid.set_active(views[3])
    grid.set_layout("1x1")
    assert grid.active_view is views[0]
    grid.set_layout("2x2")
    assert [v.instance.path for v in grid.views()] == SAMPLE[:4]


# ---------------------------------------------------------------- drops


def drop(qtbot, viewport, paths, data=None) -> None:
    """A drag entering the viewport (which must accept it), then the drop."""
    data = data if data is not None else mime_for_paths(paths)
    position = QPointF(viewport.width() / 2, viewport.height() / 2)
    enter = QDragEnterEvent(position.toPoint(), Qt.DropAction.CopyAction, data,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(viewport, enter)
    assert enter.isAccepted()
    event = QDropEvent(position, Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(viewport, event)


def test_a_drag_without_paths_is_refused(qtbot, grid):
    from PySide6.QtCore import QMimeData

    text = QMimeData()
    text.setText("not a file")
    enter = QDragEnterEvent(QPoint(20, 20), Qt.DropAction.CopyAction, text,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(grid.viewports[0], enter)
    assert not enter.isAccepted()


def test_mime_round_trip():
    paths = [Path("/tmp/a b.dcm"), Path("/tmp/folder")]
    assert paths_from_mime(mime_for_paths(paths)) == paths
    from PySide6.QtCore import QMimeData, QUrl

    urls_only = QMimeData()
    urls_only.setUrls([QUrl.fromLocalFile("/tmp/x.dcm"), QUrl("https://example.org/y")])
    assert paths_from_mime(urls_only) == [Path("/tmp/x.dcm")]


def test_dropping_a_file_shows_it_in_that_viewport(qtbot, grid):
    grid.set_layout("1x2")
    target = grid.viewports[1]
    with qtbot.waitSignal(target.view.image_shown, timeout=10_000):
        drop(qtbot, target, [SAMPLE[2]])
    assert target.view.instance.path == SAMPLE[2]
    assert grid.active_view is target.view and grid.views()[0].instance is None


def test_files_from_another_program_go_to_the_holders_opener(qtbot, grid):
    from PySide6.QtCore import QMimeData, QUrl

    urls_only = QMimeData()  # what a file manager drags: URLs, not the app's own list
    urls_only.setUrls([QUrl.fromLocalFile(str(SAMPLE[1]))])
    with qtbot.waitSignal(grid.primary_view.image_shown, timeout=10_000):
        drop(qtbot, grid.viewports[0], [], urls_only)  # by default: shown there
    assert grid.primary_view.instance.path == SAMPLE[1]
    opened = []
    grid.open_dropped_files = lambda view, paths: opened.append((view, paths))
    drop(qtbot, grid.viewports[0], [], urls_only)
    assert opened == [(grid.primary_view, [SAMPLE[1]])]


def test_dropping_a_folder_shows_its_series_and_the_wheel_steps_through_it(qtbot, grid):
    grid.set_layout("1x2")
    target = grid.viewports[1]
    with qtbot.waitSignal(target.view.image_shown, timeout=20_000):
        drop(qtbot, target, [SAMPLE_STUDY_DIR])
    assert target.series == SAMPLE  # the browser's order: study, series, instance
    view = target.view
    viewport = view.graphics_view.viewport()
    position = QPointF(200, 200)
    wheel = QWheelEvent(position, viewport.mapToGlobal(position), QPoint(0, 0), QPoint(0, -120),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    with qtbot.waitSignal(view.image_shown, timeout=10_000):
        QApplication.sendEvent(viewport, wheel)
    assert view.instance.path == SAMPLE[1] and target.series_index == 1
    assert view.actions_by_name["next_frame"].isEnabled()


# ---------------------------------------------------------------- synchronising


def test_window_level_follows_the_active_view_until_switched_off(qtbot, grid):
    grid.set_layout("2x2")
    views = fill(qtbot, grid, SAMPLE[:4])
    mouse_drag(qtbot, views[0].graphics_view.viewport(), QPointF(150, 150), QPointF(230, 120),
               Qt.MouseButton.LeftButton)  # the default mapping: left drag is W/L
    window = views[0].voi
    assert views[0].preset_key == "custom"
    for view in views[1:]:
        assert (view.voi.center, view.voi.width) == pytest.approx((window.center, window.width))
    grid.set_sync("window", False)
    views[0].set_window(100, 200)
    assert views[1].voi.center == pytest.approx(window.center)
    views[1].set_window(300, 400)  # not the active view: leads nobody
    assert views[0].voi.center == 100


def test_zoom_and_pan_follow_in_millimetres(qtbot, grid):
    grid.set_layout("1x2")
    ct, mr = fill(qtbot, grid, [pydicom_file("CT_small.dcm"), pydicom_file("MR_small.dcm")])
    ct_mm = float(pydicom.dcmread(pydicom_file("CT_small.dcm")).PixelSpacing[1])
    mr_mm = float(pydicom.dcmread(pydicom_file("MR_small.dcm")).PixelSpacing[1])
    viewport = ct.graphics_view.viewport()
    position = QPointF(150, 150)
    wheel = QWheelEvent(position, viewport.mapToGlobal(position), QPoint(0, 0), QPoint(0, 240),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(viewport, wheel)  # a single frame: the wheel zooms
    # Equal screen pixels per mm: zoom / column spacing is the same on both.
    assert ct.zoom_percent() / ct_mm == pytest.approx(mr.zoom_percent() / mr_mm, rel=0.01)
    mouse_drag(qtbot, viewport, QPointF(200, 200), QPointF(150, 170), Qt.MouseButton.MiddleButton)
    ct_centre, mr_centre = ct.view_geometry()["center"], mr.view_geometry()["center"]
    assert ct_centre == pytest.approx(mr_centre, abs=0.01)
    grid.set_sync("pan_zoom", False)
    ct.zoom_by(2.0)
    assert ct.zoom_percent() / ct_mm != pytest.approx(mr.zoom_percent() / mr_mm, rel=0.01)


def test_frames_follow_by_the_same_step(qtbot, grid):
    grid.set_layout("1x2")
    multi = pydicom_data_file("emri_small.dcm")
    left, right = fill(qtbot, grid, [multi, multi])
    right.set_frame(4)  # not active: nobody follows
    assert left.frame == 0
    left.graphics_view.setFocus()
    qtbot.keyClick(left.graphics_view, Qt.Key.Key_Right)
    qtbot.keyClick(left.graphics_view, Qt.Key.Key_Right)
    assert (left.frame, right.frame) == (2, 6)
    left.set_frame(9)
    assert right.frame == 9  # clamped at the last frame
    grid.set_sync("frames", False)
    left.set_frame(3)
    assert right.frame == 9


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


def test_compare_with_prior_puts_the_earlier_study_beside(qtbot, grid, tmp_path):
    current = dated_copy(tmp_path / "now", SAMPLE[0], "20240301")
    prior = dated_copy(tmp_path / "before", SAMPLE[3], "20230110")
    dated_copy(tmp_path / "before", SAMPLE[4], "20200101")
    catalogs = [run_to_end(index_path(tmp_path / "now")),
                run_to_end(index_path(tmp_path / "before"))]
    grid.catalogs_provider = lambda: catalogs
    messages = []
    grid.message.connect(messages.append)
    show(qtbot, grid.primary_view, current)
    beside = grid.compare_with_prior()
    assert grid.layout_name == "1x2" and beside is grid.views()[1]
    qtbot.waitUntil(lambda: beside.instance is not None, timeout=10_000)
    assert beside.instance.path == prior.resolve()
    assert messages[-1] == "Prior study of 2023-01-10 shown beside the current image."
    grid.set_active(beside)  # the prior's own prior goes beside it in turn
    older = grid.compare_with_prior()
    assert messages[-1] == "Prior study of 2020-01-01 shown beside the current image."
    qtbot.waitUntil(lambda: older.requested_path is not None, timeout=10_000)
    assert older.requested_path.name == "20200101.dcm"


def test_compare_with_prior_without_one_says_so(qtbot, grid):
    catalog = run_to_end(index_path(SAMPLE_STUDY_DIR))
    grid.catalogs_provider = lambda: [catalog]
    messages = []
    missing = []
    grid.message.connect(messages.append)
    grid.prior_missing.connect(missing.append)
    assert grid.compare_with_prior() is None
    assert messages[-1].startswith("Open an image first") and missing == []
    show(qtbot, grid.primary_view, SAMPLE[0])
    assert grid.compare_with_prior() is None
    assert messages[-1] == "No earlier study of patient DEMO-0001 is open."
    assert missing == ["DEMO-0001"]  # the window offers the PACS for it
    assert grid.layout_name == "1x1"


def test_the_grid_adds_layout_and_prior_to_each_views_menu(qtbot, grid):
    show(qtbot, grid.primary_view, SAMPLE[0])
    menu = grid.primary_view.build_context_menu((10.0, 10.0))
    titles = [a.text() for a in menu.actions()]
    assert "&Layout" in titles and "Compare with &prior" in titles


def test_a_series_dragged_from_the_study_browser_is_shown_as_a_series(qtbot, grid):
    from medviewer.gui.study_browser import StudyBrowser

    browser = StudyBrowser()
    qtbot.addWidget(browser)
    catalog = run_to_end(index_path(SAMPLE_STUDY_DIR))
    browser.add_catalog(catalog)
    qtbot.waitUntil(lambda: not browser.is_busy, timeout=20_000)
    series_item = browser.item_for(SAMPLE[3]).parent()
    dragged = paths_from_mime(browser.tree.mimeData([series_item]))
    assert dragged == SAMPLE[3:6]  # the series' three images, in order
    patient_item = series_item.parent().parent()
    assert paths_from_mime(browser.tree.mimeData([patient_item])) == SAMPLE
    grid.set_layout("1x2")
    target = grid.viewports[1]
    with qtbot.waitSignal(target.view.image_shown, timeout=10_000):
        drop(qtbot, target, dragged)
    assert target.series == SAMPLE[3:6] and target.view.instance.path == SAMPLE[3]
    browser.wait_for_workers()
