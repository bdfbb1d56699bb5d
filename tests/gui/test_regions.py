"""Region labels drawn with the mouse on the image view: stored in the original image's pixel
grid whatever the view's rotation, flip, zoom and pan, and drawn back on the same anatomy.

The image is a real DICOM (484 x 300) given pixels twice as tall as wide, so that the
display scales one axis: a mix-up of rows and columns, or of stored and displayed
coordinates, shows as a wrong rectangle."""

from __future__ import annotations

import os
import resource
import threading
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PySide6.QtCore import QPointF, QRectF, Qt

from medviewer.gui.region_items import class_colour
from medviewer.labels.store import default_store_path

from .conftest import pydicom_file
from .helpers import mouse_drag
from .test_label_panel import (
    create_label_set, kermany_folder, open_folder, press, scope_paths, settle, stored,
)

WIDTH, HEIGHT, ASPECT = 484, 300, 2.0


@pytest.fixture
def tall_pixels(tmp_path) -> Path:
    """examples_overlay.dcm with rows 0.6 mm and columns 0.3 mm apart."""
    ds = pydicom.dcmread(pydicom_file("examples_overlay.dcm"))
    assert (int(ds.Columns), int(ds.Rows)) == (WIDTH, HEIGHT)
    ds.PixelSpacing = [0.6, 0.3]
    path = tmp_path / "tall_pixels.dcm"
    ds.save_as(path)
    return path


@pytest.fixture
def findings(qtbot, main_window, tall_pixels):
    """The window showing the tall-pixel image with label set 'findings' chosen."""
    open_folder(qtbot, main_window, tall_pixels)
    create_label_set(qtbot, main_window.label_panel, "findings", ["opacity", "nodule"])
    return main_window


def draw(qtbot, window, start: tuple[float, float], end: tuple[float, float]) -> None:
    """Left-drag on the image between two points given in image pixel coordinates."""
    view = window.image_view
    viewport = view.graphics_view.viewport()
    mouse_drag(qtbot, viewport, view.map_image_to_widget(*start),
               view.map_image_to_widget(*end), Qt.MouseButton.LeftButton)


def click(qtbot, window, point: tuple[float, float]) -> None:
    view = window.image_view
    position = view.map_image_to_widget(*point).toPoint()
    qtbot.wait(30)
    qtbot.mouseClick(view.graphics_view.viewport(), Qt.MouseButton.LeftButton, pos=position)


def only_region(reader: str):
    with stored() as store:
        regions = store.regions("findings", reader=reader)
    assert len(regions) == 1, regions
    return regions[0]


def corners(rect: QRectF) -> list[QPointF]:
    return [rect.topLeft(), rect.topRight(), rect.bottomLeft(), rect.bottomRight()]


def expected_scene_rect(view, rect: QRectF) -> QRectF:
    """The stored image rectangle through the view's own image -> view -> scene mapping."""
    transform = view.image_transform()
    points = [view.view_box.mapViewToScene(transform.map(c)) for c in corners(rect)]
    xs, ys = [p.x() for p in points], [p.y() for p in points]
    return QRectF(min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))


def assert_same_rect(a: QRectF, b: QRectF, tolerance: float = 1e-6) -> None:
    got = (a.x(), a.y(), a.width(), a.height())
    want = (b.x(), b.y(), b.width(), b.height())
    assert got == pytest.approx(want, abs=tolerance), (got, want)


def colour_near(window, point: tuple[float, float], colour, radius: int = 3) -> bool:
    """Whether the screen shows ``colour`` within ``radius`` pixels of an image point."""
    view = window.image_view
    viewport = view.graphics_view.viewport()
    image = viewport.grab().toImage()
    centre = view.map_image_to_widget(*point)
    ratio = image.width() / max(1, viewport.width())
    cx, cy = round(centre.x() * ratio), round(centre.y() * ratio)
    want = np.array([colour.red(), colour.green(), colour.blue()])
    for y in range(cy - radius, cy + radius + 1):
        for x in range(cx - radius, cx + radius + 1):
            if 0 <= x < image.width() and 0 <= y < image.height():
                seen = image.pixelColor(x, y)
                if np.abs(np.array([seen.red(), seen.green(), seen.blue()]) - want).max() < 40:
                    return True
    return False


# ---------------------------------------------------------------- geometry


def test_region_drawn_on_a_turned_view_is_stored_in_original_pixels_and_follows_it(
        qtbot, findings):
    window, panel, view = findings, findings.label_panel, findings.image_view
    # Rotate right then mirror: the screen shows the image transposed (and pixels tall).
    view.rotate_right()
    view.flip_horizontal()
    qtbot.wait(50)
    press(qtbot, window, Qt.Key.Key_R)
    assert panel.region_action.isChecked() and panel.region_button.isChecked()
    press(qtbot, window, Qt.Key.Key_2)  # region mode: 2 picks the region class
    assert panel.region_class_combo.currentText().endswith("nodule")
    with stored() as store:
        assert store.current_labels("findings") == []  # the key labelled nothing
    draw(qtbot, window, (100.0, 40.0), (300.0, 200.0))
    settle(qtbot, panel)

    region = only_region(panel.reader)
    g = region.geometry
    assert (region.shape, region.class_name, region.frame, region.source) == \
        ("rectangle", "nodule", 0, "manual")
    # The drag was between image points (100, 40) and (300, 200): within a screen pixel.
    assert (g.x, g.y, g.width, g.height) == pytest.approx((100, 40, 200, 160), abs=1.0)
    stored_rect = QRectF(g.x, g.y, g.width, g.height)
    layer = panel.region_layer
    assert layer.handles() == [region.id]

    # By hand: rotate right + flip horizontal is a transpose, after stretching rows x2.
    scene = layer.scene_rect(region.id)
    view_corners = [view.view_box.mapSceneToView(c) for c in corners(scene)]
    xs = sorted(c.x() for c in view_corners)
    ys = sorted(c.y() for c in view_corners)
    assert (xs[0], xs[-1]) == pytest.approx((ASPECT * g.y, ASPECT * (g.y + g.height)),
                                            abs=1e-6)
    assert (ys[0], ys[-1]) == pytest.approx((g.x, g.x + g.width), abs=1e-6)

    # Every further change of the view keeps the item on the stored rectangle.
    steps = [view.rotate_left, view.flip_vertical, lambda: view.zoom_by(1.7),
             lambda: view.view_box.translateBy(x=15.0, y=-10.0), view.rotate_right,
             view.flip_horizontal, view.reset_view]
    for step in steps:
        step()
        qtbot.wait(20)
        assert_same_rect(layer.scene_rect(region.id), expected_scene_rect(view, stored_rect))
        # The caption sits at the corner that is top-left on screen.
        graphic = layer.graphic(region.id)
        on_screen = min((graphic.outline.mapToScene(c) for c in corners(stored_rect)),
                        key=lambda p: (round(p.y(), 3), round(p.x(), 3)))
        caption = graphic.caption.mapToScene(QPointF(0, 0))
        assert (caption.x(), caption.y()) == pytest.approx((on_screen.x(), on_screen.y()),
                                                           abs=1e-3)
    # And it is drawn there: the top edge's middle shows the class colour on screen.
    qtbot.wait(50)
    assert colour_near(window, (g.x + g.width / 2, g.y), class_colour(1))


def test_drags_outside_the_image_are_clamped_and_tiny_drags_ignored(qtbot, findings):
    window, panel = findings, findings.label_panel
    press(qtbot, window, Qt.Key.Key_R)
    draw(qtbot, window, (200.0, 150.0), (200.4, 150.3))  # a click, not a region
    settle(qtbot, panel)
    with stored() as store:
        assert store.regions("findings") == []
    draw(qtbot, window, (400.0, 250.0), (WIDTH + 40.0, HEIGHT + 30.0))
    settle(qtbot, panel)
    g = only_region(panel.reader).geometry
    assert (g.x + g.width, g.y + g.height) == pytest.approx((WIDTH, HEIGHT), abs=1e-6)
    assert (g.x, g.y) == pytest.approx((400, 250), abs=1.0)


# ---------------------------------------------------------------- select, delete, class, undo


def test_ellipse_select_change_class_delete_and_undo_by_keyboard(qtbot, findings):
    window, panel = findings, findings.label_panel
    panel.shape_combo.setCurrentIndex(panel.shape_combo.findData("ellipse"))
    press(qtbot, window, Qt.Key.Key_R)
    draw(qtbot, window, (50.0, 50.0), (250.0, 150.0))
    settle(qtbot, panel)
    region = only_region(panel.reader)
    assert region.shape == "ellipse" and region.class_name == "opacity"
    layer = panel.region_layer
    click(qtbot, window, (150.0, 100.0))  # inside the ellipse
    assert layer.selected == region.id
    assert panel.region_list.currentItem().data(Qt.ItemDataRole.UserRole) == region.id
    assert panel.delete_region_button.isEnabled()

    press(qtbot, window, Qt.Key.Key_2)  # region mode + a selected region: change its class
    assert only_region(panel.reader).class_name == "nodule"
    assert layer.graphic(region.id).text == "2 nodule"

    press(qtbot, window, Qt.Key.Key_Delete)
    with stored() as store:
        assert store.regions("findings") == []
    assert layer.handles() == [] and panel.region_list.count() == 0

    press(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # undo the delete
    restored = only_region(panel.reader)
    assert restored.id == region.id and restored.class_name == "nodule"
    qtbot.waitUntil(lambda: layer.handles() == [region.id], timeout=5_000)
    press(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # undo the class
    assert only_region(panel.reader).class_name == "opacity"
    # Clicking the image away from regions clears the selection.
    click(qtbot, window, (400.0, 250.0))
    assert layer.selected is None and not panel.delete_region_button.isEnabled()
    # Out of region mode, 1 labels the image again.
    press(qtbot, window, Qt.Key.Key_R)
    assert not panel.region_action.isChecked()
    press(qtbot, window, Qt.Key.Key_1)
    with stored() as store:
        assert [l.classes for l in store.current_labels("findings")] == [("opacity",)]


def test_a_region_shows_as_saved_only_after_commit_and_a_failed_one_is_not_kept(
        qtbot, findings):
    window, panel = findings, findings.label_panel
    press(qtbot, window, Qt.Key.Key_R)
    layer = panel.region_layer
    release = threading.Event()
    panel.client.call(lambda _store: release.wait(20))
    draw(qtbot, window, (20.0, 20.0), (120.0, 90.0))
    pending = [h for h in layer.handles() if isinstance(h, str)]
    assert len(pending) == 1
    graphic = layer.graphic(pending[0])
    assert graphic.state == "saving" and graphic.caption.textItem.toPlainText().endswith(
        "(saving…)")
    assert panel.saved_label.text() == "Saving…" and panel.region_list.count() == 0
    release.set()
    settle(qtbot, panel)
    region = only_region(panel.reader)
    assert layer.handles() == [region.id] and layer.graphic(region.id).state == "saved"
    assert panel.saved_label.text().startswith("✓ Region saved: opacity")

    wal = Path(str(default_store_path()) + "-wal")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(wal), hard))
    try:
        with qtbot.waitSignal(panel.write_failed, timeout=10_000) as failed:
            draw(qtbot, window, (200.0, 100.0), (300.0, 200.0))
        settle(qtbot, panel)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert failed.args[0].startswith("Cannot save to the label store")
    assert panel.error_label.text() == failed.args[0]
    assert layer.handles() == [region.id]  # the unsaved region is not left on screen
    assert only_region(panel.reader).id == region.id


def test_regions_come_back_with_their_image(qtbot, main_window, shared_data, tmp_path):
    window, panel = main_window, main_window.label_panel
    folder = kermany_folder(shared_data, tmp_path / "k", per_class=1)
    open_folder(qtbot, window, folder)
    create_label_set(qtbot, panel, "findings", ["opacity", "nodule"])
    paths = scope_paths(panel)
    press(qtbot, window, Qt.Key.Key_R)
    draw(qtbot, window, (30.0, 40.0), (120.0, 150.0))
    settle(qtbot, panel)
    region = only_region(panel.reader)
    press(qtbot, window, Qt.Key.Key_N)
    assert panel.current_path == paths[1]
    assert panel.region_layer.handles() == [] and panel.region_list.count() == 0
    press(qtbot, window, Qt.Key.Key_P)
    assert panel.region_layer.handles() == [region.id]
    assert panel.region_list.count() == 1
    # Another reader does not see (or edit) my regions.
    panel.set_reader_name("dr-b")
    settle(qtbot, panel)
    assert panel.region_layer.handles() == []
    panel.set_reader_name(region.reader)
    settle(qtbot, panel)
    assert panel.region_layer.handles() == [region.id]
    assert panel.region_layer.graphic(region.id).rect() == QRectF(
        region.geometry.x, region.geometry.y, region.geometry.width, region.geometry.height)


def test_measure_and_region_modes_exclude_each_other(qtbot, findings):
    window, panel, view = findings, findings.label_panel, findings.image_view
    press(qtbot, window, Qt.Key.Key_R)
    assert panel.region_action.isChecked()
    press(qtbot, window, Qt.Key.Key_M)
    assert view.actions_by_name["measure"].isChecked()
    assert not panel.region_action.isChecked()
    press(qtbot, window, Qt.Key.Key_R)
    assert not view.actions_by_name["measure"].isChecked()
    # A left drag draws a region, it does not pan the view.
    before = view.view_box.viewRect()
    draw(qtbot, window, (60.0, 60.0), (160.0, 120.0))
    settle(qtbot, panel)
    assert view.view_box.viewRect() == before
    assert only_region(panel.reader).class_name == "opacity"
