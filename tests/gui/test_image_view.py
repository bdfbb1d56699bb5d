"""The image view with real files and real mouse/keyboard events: W/L, presets, geometry,
cursor readout, measurement, frames."""

from __future__ import annotations

import math

import numpy as np
import pydicom
import pytest
from PySide6.QtCore import QPointF, Qt

from medviewer.dicom import pixels
from medviewer.dicom.reader import open_instance
from medviewer.gui.image_view import ImageView, Orientation
from medviewer.gui.view_tools import MouseMapping

from .conftest import pydicom_data_file, pydicom_file
from .helpers import grab_grey, mouse_drag, mouse_move


def show(qtbot, view: ImageView, path) -> None:
    with qtbot.waitSignal(view.image_shown, timeout=10_000):
        view.open_path(path)
    qtbot.wait(50)  # let the layout give the view its final size, as a user would


def linear_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 LINEAR, written out independently of medviewer.dicom.pixels."""
    x = values.astype(np.float64)
    unit = np.clip((x - (center - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0)
    return np.rint(unit * 255.0).astype(np.uint8)


def widget_point(view: ImageView, x: float, y: float) -> QPointF:
    return view.map_image_to_widget(x, y)


# ---------------------------------------------------------------- opening


def test_open_file_shows_the_default_display(qtbot, image_view):
    path = pydicom_file("MR_small.dcm")
    show(qtbot, image_view, path)
    ds = pydicom.dcmread(path)
    expected = linear_window(ds.pixel_array, 600, 1600)  # the file's own window
    assert np.array_equal(image_view.displayed_image(), expected)
    assert image_view.voi_description() == "From file: C 600 / W 1600"
    assert image_view.presets()[0].name == "From file (C 600 / W 1600)"
    assert image_view.frame_count == 1


def test_broken_file_gives_one_sentence_and_the_view_keeps_working(qtbot, image_view, tmp_path):
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"DICM but not really" * 10)
    with qtbot.waitSignal(image_view.load_failed, timeout=10_000) as failed:
        image_view.open_path(broken)
    sentence = failed.args[0]
    assert sentence.startswith(f"Cannot open {broken}") and sentence.endswith(".")
    assert "\n" not in sentence and "Traceback" not in sentence
    assert image_view.message == sentence
    show(qtbot, image_view, pydicom_file("CT_small.dcm"))
    assert image_view.message == ""
    assert image_view.displayed_image().shape == (128, 128)


def truncated_copy(source, target):
    """The header intact, the end of the pixel data cut off."""
    data = source.read_bytes()
    target.write_bytes(data[: len(data) - 2000])
    return target


def test_truncated_pixels_keep_the_header(qtbot, image_view, tmp_path):
    failing = truncated_copy(pydicom_file("CT_small.dcm"), tmp_path / "truncated.dcm")
    show(qtbot, image_view, pydicom_file("MR_small.dcm"))
    headers = []
    image_view.header_loaded.connect(headers.append)
    with qtbot.waitSignal(image_view.load_failed, timeout=10_000) as failed:
        image_view.open_path(failing)
    assert failed.args[0].startswith(f"Cannot open {failing}: ")
    assert failed.args[0].count(".") >= 1 and "\n" not in failed.args[0]
    assert len(headers) == 1 and headers[0].path == failing
    assert image_view.instance is None  # nothing stale is shown beside its tags
    assert image_view.message == failed.args[0]


@pytest.mark.slow
def test_undecodable_jpeg2000_keeps_the_header(qtbot, image_view, shared_data):
    # A real Canon DX chest whose JPEG 2000 codestream is broken: header yes, pixels no.
    failing = shared_data / "dicom" / "pylibjpeg" / "ljdata" / "ds" / "JPEG2000Lossless" / "966.dcm"
    show(qtbot, image_view, pydicom_file("CT_small.dcm"))
    headers = []
    image_view.header_loaded.connect(headers.append)
    with qtbot.waitSignal(image_view.load_failed, timeout=20_000) as failed:
        image_view.open_path(failing)
    assert failed.args[0].startswith(f"Cannot open {failing}: its JPEG 2000")
    assert len(headers) == 1 and headers[0].path == failing
    assert image_view.instance is None  # nothing stale is shown beside its tags
    assert image_view.message == failed.args[0]


# ---------------------------------------------------------------- window / level


@pytest.mark.parametrize("button, mapping", [
    (Qt.MouseButton.LeftButton, MouseMapping()),  # the default: left drag is W/L
    (Qt.MouseButton.RightButton, MouseMapping(left="pan", right="window_level")),
])
def test_window_drag_changes_window_in_modality_units(qtbot, image_view, button, mapping):
    path = pydicom_file("MR_small.dcm")
    show(qtbot, image_view, path)
    image_view.set_mouse_mapping(mapping)
    values = pydicom.dcmread(path).pixel_array
    scale = image_view.window_drag_scale()
    data_width = float(values.max()) - float(values.min())
    assert scale == pytest.approx(data_width / 500.0)
    viewport = image_view.graphics_view.viewport()
    start = QPointF(200, 200)
    end = QPointF(300, 160)  # 100 px right (wider), 40 px up (lower centre)
    zoom = image_view.zoom_percent()
    mouse_drag(qtbot, viewport, start, end, button)
    assert image_view.zoom_percent() == pytest.approx(zoom), "a W/L drag does not zoom"
    center, width = 600 - 40 * scale, 1600 + 100 * scale
    step = 10 ** math.floor(math.log10(scale))  # the window moves in whole steps of this
    assert image_view.voi.center == pytest.approx(round(center / step) * step)
    assert image_view.voi.width == pytest.approx(round(width / step) * step)
    assert image_view.preset_key == "custom"
    assert image_view.voi.describe() == (f"C {image_view.voi.center:g} / "
                                         f"W {image_view.voi.width:g}")
    assert len(image_view.voi.describe()) < 20, "no long decimals after a drag"
    center, width = image_view.voi.center, image_view.voi.width
    expected = linear_window(values, center, width)
    assert np.abs(image_view.displayed_image().astype(int) - expected).max() <= 1
    assert not np.array_equal(expected, linear_window(values, 600, 1600))


def test_presets_include_file_windows_full_range_and_ct(qtbot, image_view):
    path = pydicom_file("CT_small.dcm")
    show(qtbot, image_view, path)
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    keys = [p.key for p in image_view.presets()]
    assert keys[:2] == ["file", "full"]
    assert "ct:CT lung" in keys and "ct:CT bone" in keys

    image_view.apply_preset("full")
    shown = image_view.displayed_image()
    assert shown[hu == hu.min()].max() == 0 and shown[hu == hu.max()].min() == 255
    order = np.argsort(hu, axis=None)
    assert np.all(np.diff(shown.ravel()[order].astype(int)) >= 0), "full range is monotonic"

    image_view.apply_preset("ct:CT lung")
    assert np.abs(image_view.displayed_image().astype(int)
                  - linear_window(hu, -600, 1500)).max() <= 1
    assert image_view.voi_description() == "CT lung: C -600 / W 1500"
    checked = [a.data() for a in image_view.preset_actions() if a.isChecked()]
    assert checked == ["ct:CT lung"]


def test_voi_lut_preset_is_offered_and_applied(qtbot, image_view):
    path = pydicom_data_file("vlut_04.dcm")
    show(qtbot, image_view, path)
    keys = [p.key for p in image_view.presets()]
    assert "voilut:0" in keys
    image_view.apply_preset("full")
    image_view.apply_preset("voilut:0")
    assert isinstance(image_view.voi, pixels.VoiLut)
    assert image_view.voi_description().startswith("VOI LUT")
    ds = pydicom.dcmread(path)
    lut_item = ds.VOILUTSequence[0]
    first = int(lut_item.LUTDescriptor[1])
    table = np.asarray(lut_item.LUTData, dtype=np.float64)
    index = np.clip(ds.pixel_array.astype(np.int64) - first, 0, table.size - 1)
    looked_up = table[index]
    shown = image_view.displayed_image().astype(np.float64)
    # The displayed grey is the LUT output rescaled to 8 bits: strictly increasing with it.
    assert np.corrcoef(looked_up.ravel(), shown.ravel())[0, 1] > 0.999


# ---------------------------------------------------------------- invert and geometry


def test_invert_flips_grey_values(qtbot, image_view):
    show(qtbot, image_view, pydicom_file("MR_small.dcm"))
    before = image_view.displayed_image().astype(int)
    image_view.actions_by_name["invert"].trigger()
    assert image_view.user_invert
    assert np.abs(image_view.displayed_image().astype(int) - (255 - before)).max() <= 1
    image_view.actions_by_name["invert"].trigger()
    assert np.array_equal(image_view.displayed_image(), before)


@pytest.mark.parametrize("operations, numpy_equivalent", [
    (["rotate_right"], lambda a: np.rot90(a, -1)),
    (["rotate_left"], lambda a: np.rot90(a, 1)),
    (["flip_horizontal"], np.fliplr),
    (["flip_vertical"], np.flipud),
    (["rotate_right", "flip_horizontal"], lambda a: np.fliplr(np.rot90(a, -1))),
    (["flip_vertical", "rotate_left", "rotate_left"], lambda a: np.rot90(np.flipud(a), 2)),
])
def test_orientation_matches_numpy_and_the_rendered_screen(qtbot, image_view, operations,
                                                           numpy_equivalent):
    show(qtbot, image_view, pydicom_file("CT_small.dcm"))
    image_view.apply_preset("full")
    stored = image_view.displayed_image()
    for name in operations:
        image_view.actions_by_name[name].trigger()
    expected = numpy_equivalent(stored)
    assert np.array_equal(image_view.oriented_image(), expected)
    assert Orientation(image_view.orientation.matrix).apply_to_array(stored).shape == expected.shape

    # What is drawn: sample the screen at oriented pixel centres, located through the
    # ViewBox (view coordinates), not through the image transform under test.
    image_view.zoom_actual_size()
    qtbot.wait(20)
    assert image_view.zoom_percent() == pytest.approx(100.0, abs=0.5)
    screen = grab_grey(image_view.graphics_view.viewport())
    rng = np.random.default_rng(0)
    rows = rng.integers(0, expected.shape[0], 300)
    cols = rng.integers(0, expected.shape[1], 300)

    def agreement(reference: np.ndarray) -> float:
        hits = 0
        for r, c in zip(rows, cols):
            scene = image_view.view_box.mapViewToScene(QPointF(c + 0.5, r + 0.5))
            point = image_view.graphics_view.viewportTransform().map(scene)
            x, y = math.floor(point.x()), math.floor(point.y())
            hits += abs(int(screen[y, x]) - int(reference[r, c])) <= 1
        return hits / len(rows)

    assert agreement(expected) > 0.95
    assert agreement(stored) < 0.5, "the unoriented image must not match the screen"


def test_image_coordinates_map_through_rotation(qtbot, image_view):
    show(qtbot, image_view, pydicom_file("CT_small.dcm"))
    image_view.rotate_right()
    # After a clockwise quarter turn the stored top-left corner is at the view's top-right.
    top_left = image_view.image_transform().map(QPointF(0, 0))
    bottom_left = image_view.image_transform().map(QPointF(0, 128))
    assert (top_left.x(), top_left.y()) == (128, 0)
    assert (bottom_left.x(), bottom_left.y()) == (0, 0)
    scene = image_view.map_image_to_scene(37.25, 90.5)
    assert image_view.map_scene_to_image(scene) == pytest.approx((37.25, 90.5))


def test_zoom_fit_and_actual_size(qtbot, image_view):
    show(qtbot, image_view, pydicom_file("CT_small.dcm"))
    image_view.zoom_actual_size()
    assert image_view.zoom_percent() == pytest.approx(100.0, abs=0.5)
    image_view.zoom_by(2.0)
    assert image_view.zoom_percent() == pytest.approx(200.0, rel=0.02)
    image_view.fit()
    rect = image_view.view_box.viewRect()
    assert rect.width() >= 128 and rect.height() >= 128
    assert min(rect.width(), rect.height()) < 128 * 1.1


# ---------------------------------------------------------------- cursor readout


def test_cursor_readout_shows_hounsfield_units(qtbot, image_view):
    path = pydicom_file("CT_small.dcm")
    show(qtbot, image_view, path)
    ds = pydicom.dcmread(path)
    row, col = 70, 45
    expected = ds.pixel_array[row, col] * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert float(ds.RescaleIntercept) == -1024
    image_view.rotate_left()  # the readout must follow the geometry
    texts: list[str] = []
    image_view.cursor_moved.connect(texts.append)
    mouse_move(qtbot, image_view.graphics_view.viewport(),
               widget_point(image_view, col + 0.5, row + 0.5))
    assert texts[-1] == f"x {col}, y {row}: {expected:g} HU"


# ---------------------------------------------------------------- measurement


def draw_ruler(qtbot, view: ImageView, start, end):
    viewport = view.graphics_view.viewport()
    with qtbot.waitSignal(view.measurement_added, timeout=5_000) as added:
        mouse_drag(qtbot, viewport, widget_point(view, *start), widget_point(view, *end),
                   Qt.MouseButton.LeftButton)
    return added.args[0]


def test_measurement_in_mm_with_pixel_spacing_and_after_rotation(qtbot, image_view, tmp_path):
    ds = pydicom.dcmread(pydicom_file("MR_small.dcm"))
    ds.PixelSpacing = [0.5, 0.25]  # rows 0.5 mm apart, columns 0.25 mm apart
    path = tmp_path / "anisotropic.dcm"
    ds.save_as(path)
    show(qtbot, image_view, path)
    image_view.actions_by_name["measure"].trigger()
    assert image_view.view_box.tool_active and image_view.tool == "distance"
    # 40 columns across = 10 mm; 20 rows down = 10 mm.
    horizontal = draw_ruler(qtbot, image_view, (10.5, 30.5), (50.5, 30.5))
    assert horizontal.length_mm == pytest.approx(10.0, abs=0.2)
    assert "Pixel Spacing" in horizontal.label() and "mm" in horizontal.label()
    image_view.rotate_right()
    image_view.flip_vertical()
    image_view.zoom_by(1.7)
    vertical = draw_ruler(qtbot, image_view, (30.5, 22.5), (30.5, 42.5))
    assert vertical.length_mm == pytest.approx(10.0, abs=0.2)
    diagonal = draw_ruler(qtbot, image_view, (20.5, 20.5), (35.5, 40.5))
    assert diagonal.length_mm == pytest.approx(math.hypot(15 * 0.25, 20 * 0.5), abs=0.2)
    # Rulers drawn before the rotation still sit on the same image points.
    line = horizontal.items[0]
    first = line.path().elementAt(0)
    p1 = line.mapToScene(QPointF(first.x, first.y))
    expected = image_view.map_image_to_scene(*horizontal.points[0])
    assert (p1.x(), p1.y()) == pytest.approx((expected.x(), expected.y()))
    assert len(image_view.measurements) == 3
    image_view.actions_by_name["clear_measurements"].trigger()
    assert image_view.measurements == []


def test_measurement_names_imager_pixel_spacing_or_falls_back_to_pixels(qtbot, image_view,
                                                                       tmp_path):
    ds = pydicom.dcmread(pydicom_file("MR_small.dcm"))
    del ds.PixelSpacing
    ds.ImagerPixelSpacing = [0.2, 0.2]
    imager = tmp_path / "imager.dcm"
    ds.save_as(imager)
    show(qtbot, image_view, imager)
    m = image_view.add_measurement((0, 0), (30, 40))
    assert m.length_mm == pytest.approx(10.0)
    assert m.label() == "10.0 mm (Imager Pixel Spacing)"
    assert m.record.spacing_source == "ImagerPixelSpacing"
    del ds.ImagerPixelSpacing
    none = tmp_path / "nospacing.dcm"
    ds.save_as(none)
    show(qtbot, image_view, none)
    m = image_view.add_measurement((0, 0), (30, 40))
    assert m.length_mm is None
    assert m.label() == "50.0 px (no pixel spacing)"


# ---------------------------------------------------------------- frames


def test_frame_slider_keys_and_cine_on_a_multiframe_file(qtbot, image_view):
    path = pydicom_data_file("emri_small.dcm")
    show(qtbot, image_view, path)
    ds = pydicom.dcmread(path)
    assert image_view.frame_count == ds.NumberOfFrames == 10
    assert image_view.frame_slider.isVisibleTo(image_view)
    frames: list[tuple[int, int]] = []
    image_view.frame_changed.connect(lambda i, n: frames.append((i, n)))
    image_view.frame_slider.setValue(5)
    assert image_view.frame == 5 and frames[-1] == (5, 10)
    assert image_view.frame_label.text() == "Frame 6 / 10"
    expected = open_instance(path).display_frame(5)
    assert np.array_equal(image_view.displayed_image(), expected)
    assert not np.array_equal(expected, open_instance(path).display_frame(0))

    image_view.graphics_view.setFocus()
    qtbot.waitUntil(image_view.graphics_view.hasFocus, timeout=2_000)
    qtbot.keyClick(image_view.graphics_view, Qt.Key.Key_Right)
    assert image_view.frame == 6
    qtbot.keyClick(image_view.graphics_view, Qt.Key.Key_Home)
    assert image_view.frame == 0

    image_view.fps_spin.setValue(50)
    image_view.set_playing(True)
    qtbot.waitUntil(lambda: image_view.frame >= 3, timeout=5_000)
    image_view.set_playing(False)
    assert not image_view.is_playing
    stopped_at = image_view.frame
    qtbot.wait(100)
    assert image_view.frame == stopped_at


def test_colour_multiframe_file_and_a_frame_that_fails_to_decode(qtbot, image_view,
                                                                   shared_data):
    # fo-dicom's multiframe.dcm: 140 JPEG frames, some of which are damaged (e.g. frame 14).
    path = shared_data / "dicom" / "fo-dicom" / "multiframe.dcm"
    show(qtbot, image_view, path)
    assert image_view.frame_count == 140
    image_view.set_frame(5)
    shown = image_view.displayed_image()
    assert shown.ndim == 3 and shown.shape[2] == 3
    assert np.array_equal(shown, open_instance(path).display_frame(5))
    mouse_move(qtbot, image_view.graphics_view.viewport(), widget_point(image_view, 5.5, 6.5))
    assert image_view.pixel_readout(5.5, 6.5).startswith("x 5, y 6: RGB ")

    image_view.set_playing(True)
    failures: list[str] = []
    image_view.load_failed.connect(failures.append)
    image_view.set_frame(13)
    assert len(failures) == 1
    assert failures[0].startswith(f"Cannot open {path}: its JPEG Baseline")
    assert image_view.message == failures[0]
    assert not image_view.is_playing, "cine stops at a frame that cannot be shown"
    image_view.set_frame(20)  # and the view keeps working
    assert np.array_equal(image_view.displayed_image(), open_instance(path).display_frame(20))


def test_middle_drag_pans_and_wheel_zooms_a_single_frame(qtbot, image_view):
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    show(qtbot, image_view, pydicom_file("CT_small.dcm"))
    viewport = image_view.graphics_view.viewport()
    zoom = image_view.zoom_percent()
    before = image_view.view_box.viewRect().center()
    mouse_drag(qtbot, viewport, QPointF(300, 250), QPointF(200, 250), Qt.MouseButton.MiddleButton)
    after = image_view.view_box.viewRect().center()
    # Dragging the image 100 screen pixels left moves the view right by 100 / scale.
    assert after.x() - before.x() == pytest.approx(100 * 100 / zoom, rel=0.05)
    assert after.y() == pytest.approx(before.y(), abs=0.5)
    assert image_view.zoom_percent() == pytest.approx(zoom)
    assert image_view.preset_key == "file", "a pan must not touch W/L"

    position = QPointF(300, 250)
    wheel = QWheelEvent(position, viewport.mapToGlobal(position), QPoint(0, 0), QPoint(0, 240),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(viewport, wheel)
    assert image_view.zoom_percent() > zoom * 1.2
