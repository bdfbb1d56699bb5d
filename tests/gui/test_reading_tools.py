"""The reading room's image tools with real files and real mouse/keyboard events: each
measurement tool's values, calibration, the pixel probe, corner text, display shutters and
overlay planes as drawn on screen, view export, the right-click menu and W/L preset names."""

from __future__ import annotations

import math

import numpy as np
import pydicom
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QImage, QKeySequence
from PySide6.QtWidgets import QApplication

from medviewer.app.measurements import Measurement
from medviewer.gui import view_export
from medviewer.gui.image_view import ImageView
from medviewer.gui.view_tools import MouseMapping

from .conftest import pydicom_data_file, pydicom_file
from .helpers import grab_grey, mouse_click, mouse_drag, mouse_move


def show(qtbot, view: ImageView, path) -> None:
    with qtbot.waitSignal(view.image_shown, timeout=10_000):
        view.open_path(path)
    qtbot.wait(50)


def at(view: ImageView, x: float, y: float) -> QPointF:
    return view.map_image_to_widget(x, y)


def drag(qtbot, view: ImageView, start, end, button=Qt.MouseButton.LeftButton) -> None:
    mouse_drag(qtbot, view.graphics_view.viewport(), at(view, *start), at(view, *end), button)


def click(qtbot, view: ImageView, point, button=Qt.MouseButton.LeftButton) -> None:
    mouse_click(qtbot, view.graphics_view.viewport(), at(view, *point), button)


def ct_hu(path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    return ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def centre_mask(kind: str, points, shape) -> np.ndarray:
    """The ROI rule written out pixel by pixel: the pixel's centre is inside the shape."""
    (xa, ya), (xb, yb) = points
    x0, x1, y0, y1 = min(xa, xb), max(xa, xb), min(ya, yb), max(ya, yb)
    mask = np.zeros(shape, dtype=bool)
    for r in range(shape[0]):
        for c in range(shape[1]):
            x, y = c + 0.5, r + 0.5
            if kind == "rectangle":
                mask[r, c] = x0 <= x <= x1 and y0 <= y <= y1
            else:
                a, b = (x1 - x0) / 2, (y1 - y0) / 2
                mask[r, c] = ((x - (x0 + x1) / 2) / a) ** 2 + ((y - (y0 + y1) / 2) / b) ** 2 <= 1
    return mask


# ---------------------------------------------------------------- the tools


@pytest.mark.parametrize("kind", ["rectangle", "ellipse"])
def test_roi_tools_give_numpy_statistics_in_hounsfield_units(qtbot, image_view, kind):
    path = pydicom_file("CT_small.dcm")
    show(qtbot, image_view, path)
    image_view.rotate_right()  # drawing follows the geometry
    image_view.set_tool(kind)
    with qtbot.waitSignal(image_view.measurement_added, timeout=5_000) as added:
        drag(qtbot, image_view, (20.3, 30.6), (90.2, 101.4))
    record: Measurement = added.args[0].record
    assert record.kind == kind
    assert record.points[0] == pytest.approx((20.3, 30.6), abs=0.3)
    assert record.points[1] == pytest.approx((90.2, 101.4), abs=0.3)
    hu = ct_hu(path)
    inside = hu[centre_mask(kind, record.points, hu.shape)]
    v = record.values
    assert v["pixels"] == inside.size
    assert v["mean"] == pytest.approx(inside.mean())
    assert v["sd"] == pytest.approx(inside.std())
    assert (v["min"], v["max"]) == (inside.min(), inside.max())
    assert v["unit"] == "HU"
    row_mm, col_mm = (float(s) for s in pydicom.dcmread(path).PixelSpacing)
    (xa, ya), (xb, yb) = record.points
    area = abs(xb - xa) * col_mm * abs(yb - ya) * row_mm
    assert v["area_mm2"] == pytest.approx(area if kind == "rectangle" else math.pi * area / 4)
    assert added.args[0].label().startswith(f"mean {inside.mean():.1f} HU")


def test_angle_tool_drag_one_arm_then_click_the_other(qtbot, image_view):
    show(qtbot, image_view, pydicom_file("MR_small.dcm"))
    image_view.actions_by_name["tool_angle"].trigger()
    assert image_view.tool == "angle"
    drag(qtbot, image_view, (40.0, 10.0), (10.0, 10.0))  # first arm, ending on the vertex
    assert image_view.measurements == []  # waits for the second arm
    mouse_move(qtbot, image_view.graphics_view.viewport(), at(image_view, 20.0, 40.0))
    with qtbot.waitSignal(image_view.measurement_added, timeout=5_000) as added:
        click(qtbot, image_view, (40.0, 40.0))
    record = added.args[0].record
    # MR_small has square pixels: arms (30, 0) and (30, 30) from the vertex: 45 degrees.
    assert record.values["angle_deg"] == pytest.approx(45.0, abs=1.5)
    assert added.args[0].label() == f"{record.values['angle_deg']:.1f}°"


def test_cobb_tool_two_endplates(qtbot, image_view):
    show(qtbot, image_view, pydicom_file("MR_small.dcm"))
    image_view.set_tool("cobb")
    drag(qtbot, image_view, (5.0, 10.0), (55.0, 10.0 + 50 * math.tan(math.radians(10))))
    with qtbot.waitSignal(image_view.measurement_added, timeout=5_000) as added:
        drag(qtbot, image_view, (55.0, 50.0), (5.0, 50.0 + 50 * math.tan(math.radians(20))))
    record = added.args[0].record
    assert record.kind == "cobb" and len(record.points) == 4
    assert record.values["angle_deg"] == pytest.approx(30.0, abs=1.5)
    assert added.args[0].summary().startswith("Cobb angle 3")


def test_pixel_probe_reads_the_value_under_the_pointer(qtbot, image_view):
    path = pydicom_file("CT_small.dcm")
    show(qtbot, image_view, path)
    image_view.set_tool("probe")
    click(qtbot, image_view, (45.5, 70.5))
    expected = ct_hu(path)[70, 45]
    assert image_view.measures.layer.probe_text == f"x 45, y 70: {expected:g} HU"
    assert image_view.measurements == []  # a probe is not a measurement


def test_text_note_asks_for_its_text(qtbot, image_view):
    show(qtbot, image_view, pydicom_file("MR_small.dcm"))
    image_view.set_tool("text")
    click(qtbot, image_view, (30.0, 20.0))
    dialog = image_view.measures.pending_dialog
    assert dialog is not None and dialog.isVisible()
    dialog.setTextValue("  check this  ")
    with qtbot.waitSignal(image_view.measurement_added, timeout=5_000) as added:
        dialog.accept()
    assert added.args[0].record.kind == "text" and added.args[0].record.label == "check this"


def test_calibration_from_a_known_distance_when_the_file_has_no_spacing(qtbot, image_view,
                                                                        tmp_path):
    ds = pydicom.dcmread(pydicom_file("MR_small.dcm"))
    del ds.PixelSpacing
    path = tmp_path / "nospacing.dcm"
    ds.save_as(path)
    show(qtbot, image_view, path)
    before = image_view.measures.add("distance", [(0.0, 0.0), (0.0, 40.0)])
    assert before.label() == "40.0 px (no pixel spacing)"
    assert "No pixel spacing (px)" in image_view.corner_lines()["bottom_right"]
    image_view.set_tool("calibrate")
    drag(qtbot, image_view, (10.0, 30.0), (50.0, 60.0))  # 50 pixels long
    dialog = image_view.measures.pending_dialog
    assert dialog is not None
    dialog.setDoubleValue(25.0)
    with qtbot.waitSignal(image_view.spacing_changed, timeout=5_000):
        dialog.accept()
    record = image_view.measurements[0].record  # measured again with the calibration
    assert record.spacing_source == "calibrated"
    assert record.values["length_mm"] == pytest.approx(40 * 25.0 / math.dist((10, 30), (50, 60)),
                                                       rel=0.02)
    after = image_view.measures.add("distance", [(0.0, 0.0), (30.0, 40.0)])
    assert after.label().endswith("mm (calibrated)")
    assert any(line.startswith("Spacing: calibrated") for line in
               image_view.corner_overlay.lines["bottom_right"]), "the corner text follows"
    image_view.clear_calibration()
    assert image_view.measurements[0].record.spacing_source == "none"


def test_tools_exclude_each_other_and_escape_stops_them(qtbot, image_view):
    show(qtbot, image_view, pydicom_file("MR_small.dcm"))
    tools: list[str] = []
    image_view.tool_changed.connect(tools.append)
    image_view.actions_by_name["measure"].trigger()
    image_view.actions_by_name["tool_ellipse"].trigger()
    assert not image_view.actions_by_name["measure"].isChecked()
    assert [a.objectName() for a in image_view.tool_actions() if a.isChecked()] == ["tool_ellipse"]
    image_view.actions_by_name["no_tool"].trigger()
    assert image_view.tool is None and not image_view.view_box.tool_active
    assert tools == ["distance", "ellipse", ""]
    image_view.set_tool("angle")
    image_view.set_measuring(False)  # what region mode calls: no tool at all
    assert image_view.tool is None


def test_left_drag_without_a_tool_follows_the_mouse_mapping(qtbot, image_view):
    show(qtbot, image_view, pydicom_file("CT_small.dcm"))
    zoom = image_view.zoom_percent()
    drag(qtbot, image_view, (64.0, 64.0), (90.0, 64.0))  # default: window/level
    assert image_view.preset_key == "custom" and image_view.zoom_percent() == pytest.approx(zoom)
    image_view.set_mouse_mapping(MouseMapping(left="zoom"))
    viewport = image_view.graphics_view.viewport()
    mouse_drag(qtbot, viewport, QPointF(300, 300), QPointF(300, 200), Qt.MouseButton.LeftButton)
    assert image_view.zoom_percent() > zoom * 1.5  # dragging up zooms in
    image_view.fit()
    image_view.set_tool("distance")  # a chosen tool wins over the mapping
    with qtbot.waitSignal(image_view.measurement_added, timeout=5_000):
        drag(qtbot, image_view, (30.0, 30.0), (60.0, 30.0))
    rows = dict(image_view.mouse_gestures())
    assert rows["Left drag"].startswith("Zoom") and rows["Right drag"].startswith("Zoom")


def test_wheel_scrolls_frames_of_a_multiframe_image(qtbot, image_view):
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QWheelEvent

    show(qtbot, image_view, pydicom_data_file("emri_small.dcm"))
    viewport = image_view.graphics_view.viewport()
    position = QPointF(200, 200)
    zoom = image_view.zoom_percent()
    for delta in (-120, -120, 120):
        wheel = QWheelEvent(position, viewport.mapToGlobal(position), QPoint(0, 0),
                            QPoint(0, delta), Qt.MouseButton.NoButton,
                            Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
        QApplication.sendEvent(viewport, wheel)
    assert image_view.frame == 1 and image_view.zoom_percent() == pytest.approx(zoom)


# ---------------------------------------------------------------- measurements kept honest


def test_measurements_changed_says_when_a_new_image_clears_them(qtbot, image_view):
    show(qtbot, image_view, pydicom_file("MR_small.dcm"))
    seen: list[list] = []
    image_view.measurements_changed.connect(seen.append)
    shown = image_view.measures.add("distance", [(1.0, 1.0), (20.0, 1.0)])
    assert seen[-1] == [shown.record]
    show(qtbot, image_view, pydicom_file("CT_small.dcm"))
    assert seen[-1] == [] and image_view.measurements == []


def test_measurements_belong_to_their_frame_and_come_back(qtbot, image_view):
    show(qtbot, image_view, pydicom_data_file("emri_small.dcm"))
    image_view.set_frame(2)
    shown = image_view.measures.add("ellipse", [(10.0, 10.0), (30.0, 25.0)])
    assert shown.record.frame == 2 and shown.graphic.outline.isVisible()
    image_view.set_frame(3)
    assert not shown.graphic.outline.isVisible()
    image_view.set_frame(2)
    assert shown.graphic.outline.isVisible()
    stored = [Measurement.from_dict(r.to_dict()) for r in image_view.measures.records()]
    image_view.clear_measurements()
    image_view.measures.set_records(stored)
    assert image_view.measures.records() == stored


def test_lengths_follow_the_unit_setting_on_screen_and_stay_mm_in_the_record(qtbot,
                                                                            image_view):
    show(qtbot, image_view, pydicom_file("CT_small.dcm"))
    shown = image_view.measures.add("distance", [(10.0, 10.0), (50.0, 10.0)])
    mm = shown.record.values["length_mm"]
    assert shown.graphic.caption.toPlainText().startswith(f"{mm:.1f} mm")
    image_view.set_length_unit("cm")
    assert shown.graphic.caption.toPlainText().startswith(f"{mm / 10:.2f} cm")
    assert shown.summary().startswith(f"Distance {mm / 10:.2f} cm")
    added = image_view.measures.add("rectangle", [(10.0, 10.0), (50.0, 30.0)])
    assert "cm²" in added.label() and added.record.values["area_mm2"] > 0


def test_right_click_menu_and_deleting_the_measurement_under_the_pointer(qtbot, image_view):
    show(qtbot, image_view, pydicom_file("CT_small.dcm"))
    shown = image_view.measures.add("rectangle", [(20.0, 20.0), (60.0, 50.0)])
    menus = []
    image_view.context_menu_about_to_show.connect(menus.append)
    click(qtbot, image_view, (40.0, 35.0), Qt.MouseButton.RightButton)
    assert menus, "a right click opens the menu"
    menu = menus[-1]
    titles = [a.text() for a in menu.actions()]
    assert titles[0] == "Delete this rectangle roi"
    assert {"&Tools", "&Window/level", "&Show", "&Export", "Rese&t view"} <= set(titles)
    presets = next(a.menu() for a in menu.actions() if a.text() == "&Window/level")
    assert [a.data() for a in presets.actions()][:2] == ["file", "full"]
    menu.actions()[0].trigger()
    assert image_view.measurements == [] and shown.graphic.items == []
    menu.close()
    assert image_view.build_context_menu((5.0, 5.0)).actions()[0].text() == "&Tools"


# ---------------------------------------------------------------- corner text


def test_corner_text_shows_header_and_view_fields_and_t_hides_it(qtbot, image_view):
    path = pydicom_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    show(qtbot, image_view, path)
    lines = image_view.corner_lines()
    assert f"ID {ds.PatientID}" in lines["top_left"]
    assert str(ds.InstitutionName) in lines["top_right"]
    assert lines["bottom_right"][0] == image_view.voi.describe()
    assert lines["bottom_right"][1] == f"Zoom {image_view.zoom_percent():.0f} %"
    assert lines["bottom_right"][2] == "Spacing: Pixel Spacing (in the patient)"
    assert image_view.corner_overlay.lines == lines
    image_view.set_window(100, 500)
    assert image_view.corner_overlay.lines["bottom_right"][0] == "C 100 / W 500"

    with_text = grab_grey(image_view.graphics_view.viewport())
    image_view.graphics_view.setFocus()
    qtbot.keyClick(image_view.graphics_view, Qt.Key.Key_T)
    assert not image_view.corner_overlay.isVisible()
    without = grab_grey(image_view.graphics_view.viewport())
    corner = (slice(0, 60), slice(0, 200))  # the top-left corner, over the black margin
    assert with_text[corner].max() > 200 and without[corner].max() < 50

    image_view.set_corner_layout({"top_right": ["zoom"]})
    assert image_view.corner_lines()["top_left"] == []
    assert image_view.corner_lines()["top_right"] == [f"Zoom {image_view.zoom_percent():.0f} %"]


# ---------------------------------------------------------------- shutters and overlays


def screen_at(view: ImageView, screen: np.ndarray, x: float, y: float) -> int:
    point = view.map_image_to_widget(x, y)
    return int(screen[math.floor(point.y()), math.floor(point.x())])


def test_corner_lines_facing_each_other_are_shortened_in_a_narrow_view(qtbot, image_view):
    from PySide6.QtGui import QFontMetricsF

    show(qtbot, image_view, pydicom_file("CT_small.dcm"))
    overlay = image_view.corner_overlay
    overlay.set_lines({"top_left": ["A patient name long enough to cross the middle " * 2],
                       "top_right": ["An institution name just as long as the other " * 2],
                       "bottom_left": ["short"], "bottom_right": []})
    width = 300
    placed = overlay.placed_lines(width, 200)
    metrics = QFontMetricsF(overlay.font)
    (left, left_text), (right, right_text) = placed[0], placed[1]
    assert left_text.endswith("…") and right_text.endswith("…")
    assert left.x() + metrics.horizontalAdvance(left_text) < right.x()  # no overlap
    assert right.x() + metrics.horizontalAdvance(right_text) <= width
    assert placed[2][1] == "short"


def test_circular_shutter_is_drawn_in_its_presentation_value(qtbot, image_view, tmp_path):
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.ShutterShape = "CIRCULAR"
    ds.CenterOfCircularShutter = [64, 64]
    ds.RadiusOfCircularShutter = 40
    ds.ShutterPresentationValue = 0xFFFF  # white
    path = tmp_path / "shutter.dcm"
    ds.save_as(path)
    show(qtbot, image_view, path)
    image_view.set_corner_text_visible(False)
    image_view.apply_preset("full")
    image_view.zoom_actual_size()
    qtbot.wait(30)
    screen = grab_grey(image_view.graphics_view.viewport())
    shown = image_view.displayed_image()
    for x, y in ((5.5, 5.5), (120.5, 10.5), (63.5, 120.5)):  # outside the circle: white
        assert screen_at(image_view, screen, x, y) == 255
    inside = [(63.5, 63.5), (50.5, 70.5), (80.5, 40.5)]
    for x, y in inside:  # inside: the image itself
        assert abs(screen_at(image_view, screen, x, y) - int(shown[int(y), int(x)])) <= 1
    assert image_view.display_planes.showing_shutter
    image_view.set_shutter_visible(False)
    qtbot.wait(30)
    screen = grab_grey(image_view.graphics_view.viewport())
    assert abs(screen_at(image_view, screen, 5.5, 5.5) - int(shown[5, 5])) <= 1


def test_overlay_plane_is_drawn_where_its_bits_are_set(qtbot, image_view):
    path = pydicom_data_file("MR-SIEMENS-DICOM-WithOverlays.dcm")
    show(qtbot, image_view, path)
    image_view.set_corner_text_visible(False)
    image_view.zoom_actual_size()
    qtbot.wait(30)
    ds = pydicom.dcmread(path)
    bits = ds.overlay_array(0x6000).astype(bool)
    assert image_view.display_planes.showing_overlays() == [0x6000]
    screen = grab_grey(image_view.graphics_view.viewport())
    rows, cols = np.nonzero(bits)
    visible = [(r, c) for r, c in zip(rows, cols)
               if 0 <= image_view.map_image_to_widget(c + 0.5, r + 0.5).x() < screen.shape[1] - 1
               and 0 <= image_view.map_image_to_widget(c + 0.5, r + 0.5).y() < screen.shape[0] - 1]
    assert len(visible) > 50
    assert all(screen_at(image_view, screen, c + 0.5, r + 0.5) == 255 for r, c in visible)
    image_view.actions_by_name["overlay_planes"].trigger()
    assert image_view.display_planes.showing_overlays() == []
    screen = grab_grey(image_view.graphics_view.viewport())
    shown = image_view.displayed_image()
    assert all(abs(screen_at(image_view, screen, c + 0.5, r + 0.5) - int(shown[r, c])) <= 1
               for r, c in visible)


# ---------------------------------------------------------------- export


def test_export_png_and_jpeg_with_and_without_annotations(qtbot, image_view, tmp_path):
    show(qtbot, image_view, pydicom_file("CT_small.dcm"))
    image_view.measures.add("distance", [(10.0, 10.0), (100.0, 100.0)])
    png = view_export.save_view(image_view, tmp_path / "view.png")
    bare = view_export.save_view(image_view, tmp_path / "bare.png", annotations=False)
    jpeg = view_export.save_view(image_view, tmp_path / "view.JPG")
    viewport = image_view.graphics_view.viewport()
    with_annotations, without = QImage(str(png)), QImage(str(bare))
    assert with_annotations.size() == viewport.size() == without.size()
    assert with_annotations != without
    assert QImage(str(jpeg)).size() == viewport.size()
    assert image_view.measurements[0].graphic.outline.isVisible(), "export restores the view"
    assert image_view.corner_overlay.isVisible()
    copied = view_export.copy_view(image_view, annotations=False)
    clipboard = QApplication.clipboard().image().convertToFormat(QImage.Format.Format_RGB888)
    assert clipboard == copied == without.convertToFormat(QImage.Format.Format_RGB888)


@pytest.mark.parametrize("name, message", [
    ("view.tif", "the name must end in .png, .jpg or .jpeg"),
    ("missing/view.png", "does not exist"),
])
def test_export_refusals_are_one_sentence(qtbot, image_view, tmp_path, name, message):
    show(qtbot, image_view, pydicom_file("MR_small.dcm"))
    with pytest.raises(Exception) as raised:
        view_export.save_view(image_view, tmp_path / name)
    sentence = str(raised.value)
    assert message in sentence and sentence.startswith("Cannot save the view as")
    assert sentence.endswith(".") and "\n" not in sentence


# ---------------------------------------------------------------- small things


def test_presets_have_real_names(qtbot, image_view, shared_data):
    siemens = pydicom_data_file("MR-SIEMENS-DICOM-WithOverlays.dcm")
    show(qtbot, image_view, siemens)
    names = [p.name for p in image_view.presets()]
    assert names[0] == "From file (WINDOW1, C 450 / W 790)"
    assert "WINDOW2 (C 200 / W 443)" in names
    assert image_view.voi_description() == "From file (WINDOW1): C 450 / W 790"
    unnamed = shared_data / "dicom" / "pylibjpeg" / "ljdata" / "ds" / "JPEG2000Lossless" / \
        "966_fixed.dcm"
    show(qtbot, image_view, unnamed)
    names = [p.name for p in image_view.presets()]
    assert names[0] == "From file (C 2048 / W 4096)"
    assert not any(name.startswith("(") for name in names)


def test_ct_file_window_takes_the_usual_name(qtbot, image_view, tmp_path):
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.WindowCenter, ds.WindowWidth = [40, -600], [400, 1500]
    path = tmp_path / "windows.dcm"
    ds.save_as(path)
    show(qtbot, image_view, path)
    names = [p.name for p in image_view.presets()]
    assert names[0] == "From file (CT abdomen, C 40 / W 400)"
    assert names[2] == "CT lung (C -600 / W 1500)"


def test_readout_names_what_the_values_are(qtbot, image_view, tmp_path):
    ds = pydicom.dcmread(pydicom_file("MR_small.dcm"))
    ds.RescaleType = "PVAL"
    path = tmp_path / "pval.dcm"
    ds.save_as(path)
    show(qtbot, image_view, path)
    assert image_view.pixel_readout(3.5, 4.5).endswith(f"{ds.pixel_array[4, 3]} "
                                                       "(presentation value)")


def test_tooltips_name_the_keys_an_action_has_now(qtbot, image_view):
    action = image_view.actions_by_name["rotate_right"]
    assert action.toolTip() == "Rotate right 90° (R)"
    action.setShortcuts([QKeySequence("Shift+R")])  # as labelling does while it holds R
    assert action.toolTip() == "Rotate right 90° (Shift+R)"
    action.setShortcuts([QKeySequence("R")])
    assert action.toolTip() == "Rotate right 90° (R)"
    assert image_view.actions_by_name["fit"].toolTip() == "Show the whole image (F)"


def test_captions_stay_on_screen_near_the_edges(qtbot, image_view):
    show(qtbot, image_view, pydicom_file("CT_small.dcm"))
    left = image_view.measures.add("distance", [(60.0, 60.0), (5.0, 100.0)])
    right = image_view.measures.add("distance", [(60.0, 60.0), (125.0, 100.0)])
    top = image_view.measures.add("distance", [(60.0, 60.0), (5.0, 1.0)])
    assert tuple(left.graphic.caption.anchor) == (0.0, 1.0)  # grows right and up
    assert tuple(right.graphic.caption.anchor) == (1.0, 1.0)  # near the right edge: left
    assert tuple(top.graphic.caption.anchor) == (0.0, 0.0)  # near the top: down
    image_view.rotate_right()  # the right end goes to the bottom: captions follow the view
    assert tuple(right.graphic.caption.anchor) == (0.0, 1.0)


def _caption_on_screen(view: ImageView, shown):
    caption = shown.graphic.caption
    return view.graphics_view.mapFromScene(caption.sceneBoundingRect()).boundingRect()


@pytest.mark.parametrize("second, points", [
    ("ellipse", [(44.0, 58.0), (70.0, 80.0)]),
    ("rectangle", [(44.0, 58.0), (70.0, 80.0)]),
    ("distance", [(70.0, 80.0), (44.0, 58.0)]),  # its caption at its end, by the box's corner
])
def test_captions_of_measurements_drawn_close_together_do_not_cover_each_other(
        qtbot, image_view, second, points):
    show(qtbot, image_view, pydicom_file("CT_small.dcm"))
    first = image_view.measures.add("rectangle", [(40.0, 60.0), (62.0, 84.0)])
    other = image_view.measures.add(second, points)
    viewport = image_view.graphics_view.viewport().rect()
    for _ in range(2):  # as drawn, then again after a zoom
        qtbot.wait(20)  # the text items take their screen transform when painted
        a, b = _caption_on_screen(image_view, first), _caption_on_screen(image_view, other)
        assert not a.intersects(b), f"captions overlap: {a} and {b}"
        # Neither hides the other's shape (there is room around them for that).
        assert not a.intersects(other.graphic.outline_on_screen().toRect())
        assert not b.intersects(first.graphic.outline_on_screen().toRect())
        assert viewport.contains(a) and viewport.contains(b)
        image_view.zoom_by(1.5)
