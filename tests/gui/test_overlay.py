"""The saliency overlay on the image view: alignment under flips and rotations, toggle,
opacity, colour maps, class choice, and occlusion maps with progress and Cancel.

Real tiny ONNX models (tests/inference/onnx_models.py) and generated non-square images whose
bright region is where the model looks, so the map's peak has a known place on the image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QImage

from medviewer.app.ai_reading import occlusion_passes
from medviewer.gui.overlay import COLOUR_MAPS, colour_lut, saliency_rgba
from medviewer.settings import load_settings

from .ai_helpers import (  # noqa: F401 - no_builtin_models is a fixture
    grey_png, install_cam_model, install_region_model, no_builtin_models,
)

TIMEOUT_MS = 30_000
ROWS, COLS = 48, 80  # non-square on purpose
BLOB = (slice(8, 16), slice(56, 72))  # rows, cols: top right


@pytest.fixture
def cam_window(no_builtin_models, tmp_path, main_window, qtbot):
    # 'finding' flagged from a mean of 0.05 up, so the blob image is flagged and explained.
    entry = install_cam_model(tmp_path / "sources", operating_points={
        "finding": {"threshold": 0.05, "method": "fixed for tests"}})
    with qtbot.waitSignal(main_window.ai.model_ready, timeout=TIMEOUT_MS):
        main_window.ai.choose_model(entry.key)
    return main_window


def blob_image(path: Path) -> Path:
    values = np.full((ROWS, COLS), 20, np.uint8)
    values[BLOB] = 255
    values[0, 0] = 0
    return grey_png(path, values)


def show_with_map(qtbot, window, path: Path):
    with qtbot.waitSignal(window.ai.saliency_shown, timeout=TIMEOUT_MS) as shown:
        window.open_paths([path])
    return shown.args[0]


def grab_rgb(widget) -> np.ndarray:
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    width, height = image.width(), image.height()
    buffer = np.frombuffer(image.constBits(), np.uint8, count=image.bytesPerLine() * height)
    rows = buffer.reshape(height, image.bytesPerLine())[:, : width * 3]
    return rows.reshape(height, width, 3).astype(np.int32)


def overlay_difference(qtbot, window) -> np.ndarray:
    """Per screen pixel, how much the overlay changes what is drawn (on minus off)."""
    ai = window.ai
    viewport = window.image_view.graphics_view.viewport()
    ai.overlay_action.setChecked(True)
    qtbot.wait(20)
    on = grab_rgb(viewport)
    ai.overlay_action.setChecked(False)
    qtbot.wait(20)
    off = grab_rgb(viewport)
    ai.overlay_action.setChecked(True)
    return np.abs(on - off).sum(axis=2).astype(np.float64)


def hot_centroid(values: np.ndarray, fraction: float = 0.8) -> tuple[float, float]:
    """(x, y) centroid of the cells at or above ``fraction`` of the maximum."""
    ys, xs = np.nonzero(values >= fraction * values.max())
    return float(xs.mean()), float(ys.mean())


ORIENTATIONS = [
    ("as stored", []),
    ("flip horizontal", ["flip_horizontal"]),
    ("rotate right", ["rotate_right"]),
    ("flip then rotate right", ["flip_horizontal", "rotate_right"]),
    ("rotate left then flip vertical", ["rotate_left", "flip_vertical"]),
]


@pytest.mark.parametrize("name,steps", ORIENTATIONS, ids=[o[0] for o in ORIENTATIONS])
def test_cam_overlay_follows_the_image_under_flips_and_rotations(qtbot, cam_window, tmp_path,
                                                                  name, steps):
    window, view, ai = cam_window, cam_window.image_view, cam_window.ai
    overlay_map = show_with_map(qtbot, window, blob_image(tmp_path / "blob.png"))
    assert overlay_map.method == "cam" and overlay_map.class_name == "finding"
    assert overlay_map.values.shape == (ROWS, COLS)
    row, col = overlay_map.hottest_pixel
    assert 8 - 4 <= row < 16 + 4 and 56 - 4 <= col < 72 + 4, (row, col)
    item = ai.overlay.item
    assert item.parentItem() is view.image_item and ai.overlay.is_showing
    assert item.image.shape == (ROWS, COLS, 4)
    ai.panel.opacity_slider.setValue(100)

    for step in steps:
        getattr(view, step)()
    qtbot.wait(30)
    # The overlay's pixel (row, col) lands where the image's pixel (row, col) does, and where
    # the view's declared image transform says it should.
    centre = QPointF(col + 0.5, row + 0.5)
    expected_scene = view.map_image_to_scene(centre.x(), centre.y())
    overlay_scene = item.mapToScene(centre)
    declared_scene = view.view_box.mapViewToScene(view.image_transform().map(centre))
    for other in (overlay_scene, declared_scene):
        assert other.x() == pytest.approx(expected_scene.x(), abs=1e-6)
        assert other.y() == pytest.approx(expected_scene.y(), abs=1e-6)
    # What is on screen: the overlay's hot spot is drawn over the bright blob.
    difference = overlay_difference(qtbot, window)
    seen_x, seen_y = hot_centroid(difference)
    map_x, map_y = hot_centroid(overlay_map.values)
    expected = view.map_image_to_widget(map_x + 0.5, map_y + 0.5)
    blob_on_screen = view.map_image_to_widget(64.0, 12.0)
    pixel = abs(view.map_image_to_widget(1.0, 0.0).x() - view.map_image_to_widget(0.0, 0.0).x()
                ) + abs(view.map_image_to_widget(1.0, 0.0).y()
                        - view.map_image_to_widget(0.0, 0.0).y())
    assert pixel > 2  # image pixels are several screen pixels wide here
    assert abs(seen_x - expected.x()) < 2.5 * pixel and abs(seen_y - expected.y()) < 2.5 * pixel
    assert abs(seen_x - blob_on_screen.x()) < 6 * pixel
    assert abs(seen_y - blob_on_screen.y()) < 6 * pixel


def test_overlay_toggle_key_opacity_and_colours(qtbot, cam_window, tmp_path):
    window, view, ai = cam_window, cam_window.image_view, cam_window.ai
    overlay_map = show_with_map(qtbot, window, blob_image(tmp_path / "blob.png"))
    item = ai.overlay.item
    assert ai.overlay_action.shortcut().toString() == "O"
    window.activateWindow()
    qtbot.keyClick(view.graphics_view, Qt.Key.Key_O)
    assert not ai.overlay_action.isChecked() and not item.isVisible()
    assert not ai.panel.overlay_check.isChecked()
    qtbot.keyClick(view.graphics_view, Qt.Key.Key_O)
    assert ai.overlay_action.isChecked() and item.isVisible()
    assert view.orientation.describe() == "as stored"  # O is not a view key

    # Opacity: the item's opacity, what is drawn, and the saved setting.
    ai.panel.opacity_slider.setValue(20)
    assert item.opacity() == pytest.approx(0.2)
    faint = overlay_difference(qtbot, window).max()
    ai.panel.opacity_slider.setValue(80)
    assert item.opacity() == pytest.approx(0.8)
    strong = overlay_difference(qtbot, window).max()
    assert strong > 2.5 * faint > 0
    qtbot.waitUntil(lambda: load_settings().overlay_opacity == pytest.approx(0.8), timeout=5000)
    assert ai.panel.opacity_value.text() == "80 %"

    # Colour maps: the hottest pixel takes the map's top colour, fully opaque.
    row, col = overlay_map.hottest_pixel
    for name in COLOUR_MAPS:
        ai.panel.colour_combo.setCurrentText(name)
        assert ai.overlay.colour_map == name
        assert tuple(item.image[row, col]) == (*colour_lut(name)[255], 255)
    # The coldest pixel is transparent whatever the colours.
    cold = np.unravel_index(int(np.argmin(overlay_map.values)), overlay_map.values.shape)
    assert item.image[cold][3] == 0

    # The next window starts with the saved opacity.
    from medviewer.gui.main_window import MainWindow

    second = MainWindow()
    try:
        assert second.ai.panel.opacity_slider.value() == 80
        assert second.ai.overlay.opacity == pytest.approx(0.8)
    finally:
        second.close()
        second.deleteLater()

    # Closing everything takes the overlay away with the image.
    window.close_all_action.trigger()
    assert not ai.overlay.is_showing and ai.overlay.map is None


def test_class_choice_changes_the_map_and_sticks(qtbot, cam_window, tmp_path):
    window, ai = cam_window, cam_window.ai
    path = blob_image(tmp_path / "blob.png")
    show_with_map(qtbot, window, path)
    combo = ai.panel.class_combo
    assert [combo.itemText(i) for i in range(combo.count())] == ["normal", "finding"]
    assert combo.currentText() == "finding"
    finding_map = ai.overlay.map
    with qtbot.waitSignal(ai.saliency_shown, timeout=TIMEOUT_MS) as shown:
        combo.setCurrentText("normal")
    normal_map = shown.args[0]
    assert normal_map.class_name == "normal" and ai.overlay.map is normal_map
    # Class 0's activation map is class 1's negated: after min-max scaling, 1 - it.
    np.testing.assert_allclose(normal_map.values, 1.0 - finding_map.values, atol=1e-5)
    row, col = normal_map.hottest_pixel
    assert not (8 <= row < 16 and 56 <= col < 72)
    # The choice sticks for the next image.
    second = blob_image(tmp_path / "other" / "blob2.png")
    overlay_map = show_with_map(qtbot, window, second)
    assert overlay_map.class_name == "normal" and combo.currentText() == "normal"


def test_saliency_rgba_maps_values_to_colour_and_alpha():
    values = np.array([[0.0, 0.5], [1.0, 0.25]], np.float32)
    rgba = saliency_rgba(values, "hot")
    assert rgba.shape == (2, 2, 4) and rgba.dtype == np.uint8
    assert rgba[..., 3].tolist() == [[0, 128], [255, 64]]
    assert tuple(rgba[1, 0, :3]) == (255, 255, 255) and tuple(rgba[0, 0, :3]) == (0, 0, 0)
    with pytest.raises(ValueError):
        saliency_rgba(values, "rainbow")


# ---------------------------------------------------------------- occlusion


def region_image(path: Path, rows: int = 40, cols: int = 64) -> Path:
    values = np.full((rows, cols), 30, np.uint8)
    values[:, cols // 2:] = 220
    values[0, 0] = 0
    values[-1, -1] = 255
    return grey_png(path, values)


def test_occlusion_overlay_for_a_model_without_cam(qtbot, no_builtin_models, tmp_path,
                                                   main_window):
    window, ai = main_window, main_window.ai
    # Only input rows 0-32 and columns 64-128 of 128 x 128 count: image rows 0-10, cols 32-64.
    entry = install_region_model(tmp_path / "sources", size=128, region=(0, 32, 64, 128))
    with qtbot.waitSignal(ai.model_ready, timeout=TIMEOUT_MS):
        ai.choose_model(entry.key)
    with qtbot.waitSignal(ai.read_finished, timeout=TIMEOUT_MS):
        window.open_paths([region_image(tmp_path / "a.png")])
    passes = occlusion_passes(40, 64, entry.card)
    assert passes == 7 * 7 + 1
    label = ai.panel.method_label.text()
    assert label.startswith("Occlusion (the model has no activation-map output): 50 forward "
                            "passes, about ") and label.endswith(" s.")
    assert not ai.overlay.is_showing and not ai.panel.compute_button.isHidden()
    qtbot.waitUntil(lambda: ai.panel.compute_button.height() > 0)  # laid out: clickable
    with qtbot.waitSignal(ai.saliency_shown, timeout=TIMEOUT_MS) as shown:
        qtbot.mouseClick(ai.panel.compute_button, Qt.MouseButton.LeftButton)
        assert not ai.panel.saliency_progress.isHidden()
    overlay_map = shown.args[0]
    assert overlay_map.method == "occlusion" and overlay_map.values.shape == (40, 64)
    row, col = overlay_map.hottest_pixel
    assert row < 10 and col >= 32, (row, col)
    assert overlay_map.values[20:, :].max() == 0.0  # occluding elsewhere changes nothing
    assert ai.panel.saliency_progress.isHidden()
    assert ai.panel.method_label.text().startswith("Occlusion: 50 forward passes in ")
    assert ai.overlay.is_showing
    # Asked for once, occlusion maps follow the reader to the next image.
    with qtbot.waitSignal(ai.saliency_shown, timeout=TIMEOUT_MS) as shown:
        window.open_paths([region_image(tmp_path / "b" / "b.png", rows=60, cols=50)])
    assert shown.args[0].values.shape == (60, 50)


def test_occlusion_shows_progress_and_can_be_cancelled(qtbot, no_builtin_models, tmp_path,
                                                       main_window):
    window, ai = main_window, main_window.ai
    entry = install_region_model(tmp_path / "sources", size=512, region=(0, 128, 256, 512))
    with qtbot.waitSignal(ai.model_ready, timeout=TIMEOUT_MS):
        ai.choose_model(entry.key)
    with qtbot.waitSignal(ai.read_finished, timeout=TIMEOUT_MS):
        window.open_paths([region_image(tmp_path / "a.png")])
    assert "962 forward passes" in ai.panel.method_label.text()
    progress_seen = []

    def cancel_on_progress(value: int) -> None:
        progress_seen.append(value)
        if value > 0 and ai.saliency.running and not ai.panel.saliency_cancel.isHidden():
            qtbot.mouseClick(ai.panel.saliency_cancel, Qt.MouseButton.LeftButton)

    ai.panel.saliency_progress.valueChanged.connect(cancel_on_progress)
    worker = ai.saliency.compute_occlusion()
    with qtbot.waitSignal(worker.ended, timeout=TIMEOUT_MS):
        pass
    assert progress_seen and 0 < max(progress_seen) < 961
    assert ai.overlay.map is None and not ai.overlay.is_showing
    assert ai.panel.saliency_progress.isHidden() and ai.panel.saliency_cancel.isHidden()
    assert window.statusBar().currentMessage() == "Saliency map cancelled."
    qtbot.wait(10)
    assert not ai.saliency.running


def test_overlay_belongs_to_the_frame_that_was_read(qtbot, cam_window, shared_data):
    from medviewer.inference.audit import AuditLog

    window, view, ai = cam_window, cam_window.image_view, cam_window.ai
    first = show_with_map(qtbot, window, shared_data / "dicom" / "fo-dicom" / "MOVEKNEE.dcm")
    assert view.frame_count > 4
    assert first.frame == 0 and ai.overlay.is_showing
    view.set_frame(3)
    assert not ai.overlay.is_showing  # frame 1's map is not drawn over frame 4
    with qtbot.waitSignal(ai.saliency_shown, timeout=TIMEOUT_MS) as shown:
        ai.run_action.trigger()
    assert shown.args[0].frame == 3 and ai.overlay.is_showing
    assert ai.read.prediction.frame == 3
    assert ai.panel.timing_label.text().endswith(", frame 4")
    assert AuditLog().rows()[0]["frame"] == 3
    view.set_frame(0)
    assert not ai.overlay.is_showing
