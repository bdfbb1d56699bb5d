"""Measurement math against numpy and hand-computed values on known pixels."""

from __future__ import annotations

import json
import math

import numpy as np
import pydicom
import pytest

from medviewer.app import measurements as m
from medviewer.dicom.pixels import Spacing
from medviewer.dicom.reader import open_instance
from tests.dicom import PYDICOM_TEST_FILES

SPACING = Spacing(0.5, 0.25, "Pixel Spacing (in the patient)", "PixelSpacing")


def ramp(rows: int = 12, columns: int = 10) -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(-1000, 3000, size=(rows, columns)).astype(np.int16)


# ---------------------------------------------------------------- ROI statistics


def test_rectangle_statistics_are_numpy_on_the_covered_pixels():
    values = ramp()
    # Corners (2, 3) and (6, 8): pixel centres x 2.5..5.5 and y 3.5..7.5 are inside,
    # i.e. columns 2..5 and rows 3..7.
    result = m.measure("rectangle", [(6.0, 8.0), (2.0, 3.0)], values=values, spacing=SPACING,
                       unit="HU")
    inside = values[3:8, 2:6].astype(np.float64)
    v = result.values
    assert v["pixels"] == inside.size == 20
    assert v["mean"] == pytest.approx(inside.mean())
    assert v["sd"] == pytest.approx(inside.std())  # population SD (ddof=0)
    assert v["min"] == inside.min() and v["max"] == inside.max()
    assert v["area_px"] == pytest.approx(4 * 5)
    assert v["area_mm2"] == pytest.approx(4 * 0.25 * 5 * 0.5)
    assert v["unit"] == "HU"
    assert result.spacing_source == "PixelSpacing" and result.pixel_spacing == (0.5, 0.25)


def test_ellipse_mask_takes_pixels_whose_centre_is_inside():
    mask, row0, col0 = m.roi_mask("ellipse", [(0.0, 0.0), (4.0, 4.0)], 10, 10)
    # The circle of radius 2 about (2, 2): the four corner pixels' centres are sqrt(4.5) away.
    expected = np.array([[0, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1], [0, 1, 1, 0]], dtype=bool)
    assert (row0, col0) == (0, 0)
    assert np.array_equal(mask, expected)


def test_ellipse_statistics_against_numpy_on_a_brute_force_mask():
    values = ramp(40, 50)
    points = [(7.3, 5.2), (41.9, 33.6)]
    cx, cy, a, b = (7.3 + 41.9) / 2, (5.2 + 33.6) / 2, (41.9 - 7.3) / 2, (33.6 - 5.2) / 2
    brute = np.zeros(values.shape, dtype=bool)
    for r in range(values.shape[0]):
        for c in range(values.shape[1]):
            brute[r, c] = ((c + 0.5 - cx) / a) ** 2 + ((r + 0.5 - cy) / b) ** 2 <= 1
    inside = values[brute].astype(np.float64)
    v = m.measure("ellipse", points, values=values).values
    assert v["pixels"] == int(brute.sum())
    assert v["mean"] == pytest.approx(inside.mean())
    assert v["sd"] == pytest.approx(inside.std())
    assert (v["min"], v["max"]) == (inside.min(), inside.max())
    assert v["area_px"] == pytest.approx(math.pi * a * b)
    assert "area_mm2" not in v


def test_roi_partly_outside_the_image_counts_only_pixels_inside():
    values = ramp(6, 6)
    v = m.measure("rectangle", [(-3.0, -3.0), (2.0, 2.0)], values=values).values
    assert v["pixels"] == 4
    assert v["mean"] == pytest.approx(values[:2, :2].mean())
    outside = m.measure("rectangle", [(20.0, 20.0), (30.0, 30.0)], values=values)
    assert outside.values["pixels"] == 0 and "mean" not in outside.values
    assert outside.text() == "area 100 px² (no pixel spacing)"


def test_roi_in_modality_units_of_a_real_ct():
    path = PYDICOM_TEST_FILES / "CT_small.dcm"
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    instance = open_instance(path)
    result = m.measure("rectangle", [(30.0, 40.0), (70.0, 90.0)],
                       values=instance.modality_frame(0), spacing=instance.pixel_spacing(),
                       unit=instance.modality_unit)
    inside = hu[40:90, 30:70]
    assert result.values["mean"] == pytest.approx(inside.mean(), rel=1e-6)
    assert result.values["min"] == inside.min() and result.values["max"] == inside.max()
    assert result.values["unit"] == "HU"
    row_mm, col_mm = (float(v) for v in ds.PixelSpacing)
    assert result.values["area_mm2"] == pytest.approx(40 * col_mm * 50 * row_mm)
    assert result.text().startswith(f"mean {inside.mean():.1f} HU  SD ")


def test_colour_roi_gives_one_mean_per_channel():
    rgb = np.zeros((4, 4, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 10, 20, 30
    rgb[0, 0] = (110, 120, 130)
    v = m.measure("rectangle", [(0.0, 0.0), (2.0, 2.0)], values=rgb).values
    assert v["mean"] == pytest.approx([35.0, 45.0, 55.0])


# ---------------------------------------------------------------- lengths and angles


def test_distance_in_mm_follows_row_and_column_spacing():
    result = m.measure("distance", [(10.0, 30.0), (50.0, 10.0)], spacing=SPACING)
    assert result.values["length_px"] == pytest.approx(math.hypot(40, 20))
    assert result.values["length_mm"] == pytest.approx(math.hypot(40 * 0.25, 20 * 0.5))
    assert result.text() == f"{math.hypot(10, 10):.1f} mm (Pixel Spacing)"
    bare = m.measure("distance", [(0.0, 0.0), (30.0, 40.0)])
    assert bare.text() == "50.0 px (no pixel spacing)" and bare.spacing_source == "none"


def test_lengths_and_areas_are_shown_in_the_readers_unit_and_stored_in_mm():
    distance = m.measure("distance", [(0.0, 0.0), (0.0, 50.0)], spacing=SPACING)  # 25 mm
    assert distance.text("cm") == "2.50 cm (Pixel Spacing)"
    assert distance.summary("cm") == "Distance 2.50 cm (Pixel Spacing)"
    assert distance.values["length_mm"] == pytest.approx(25.0)
    box = m.measure("rectangle", [(0.0, 0.0), (40.0, 20.0)], spacing=SPACING)  # 10 x 10 mm
    assert box.text("mm") == "area 100.0 mm²" and box.text("cm") == "area 1.000 cm²"
    bare = m.measure("distance", [(0.0, 0.0), (30.0, 40.0)])
    assert bare.text("cm") == "50.0 px (no pixel spacing)"


@pytest.mark.parametrize("first, vertex, second, spacing, expected", [
    ((10, 0), (0, 0), (0, 10), None, 90.0),
    ((10, 0), (0, 0), (10, 10), None, 45.0),
    ((5, 5), (0, 0), (-5, -5), None, 180.0),
    ((3, 1), (1, 1), (1, 1 + math.sqrt(3) * 2), None, 90.0),
    ((-4, 0), (0, 0), (2, -2 * math.sqrt(3)), None, 120.0),
    # Rows 0.5 mm apart, columns 0.25 mm: (1, 1) px is (0.25, 0.5) mm.
    ((1, 0), (0, 0), (1, 1), (0.5, 0.25), math.degrees(math.atan2(0.5, 0.25))),
])
def test_angle_at_the_vertex(first, vertex, second, spacing, expected):
    assert m.angle_at(first, vertex, second, spacing) == pytest.approx(expected)


def test_angle_record_uses_the_spacing_so_non_square_pixels_give_true_angles():
    result = m.measure("angle", [(1.0, 0.0), (0.0, 0.0), (1.0, 1.0)], spacing=SPACING)
    assert result.values["angle_deg"] == pytest.approx(math.degrees(math.atan2(0.5, 0.25)))
    assert result.text() == f"{result.values['angle_deg']:.1f}°"


def _line(angle_deg: float, x: float, y: float, reach: float = 40.0):
    rad = math.radians(angle_deg)
    dx, dy = reach * math.cos(rad), reach * math.sin(rad)
    return (x - dx, y - dy), (x + dx, y + dy)


@pytest.mark.parametrize("tilt1, tilt2, expected", [
    (10.0, -15.0, 25.0), (-12.0, 30.0, 42.0), (5.0, 5.0, 0.0), (50.0, -55.0, 105.0),
])
def test_cobb_angle_between_endplates_whichever_way_they_are_drawn(tilt1, tilt2, expected):
    upper, lower = _line(tilt1, 100, 50), _line(tilt2, 100, 250)
    assert m.cobb_angle(upper, lower) == pytest.approx(expected)
    assert m.cobb_angle(upper[::-1], lower) == pytest.approx(expected)
    assert m.cobb_angle(upper, lower[::-1]) == pytest.approx(expected)
    record = m.measure("cobb", [*upper, *lower])
    assert record.values["angle_deg"] == pytest.approx(expected)
    assert record.summary() == f"Cobb angle {expected:.1f}°"


def test_degenerate_angles_are_refused_in_one_sentence():
    with pytest.raises(m.MeasurementError, match="two arms longer than zero"):
        m.measure("angle", [(1.0, 1.0), (1.0, 1.0), (3.0, 4.0)])
    with pytest.raises(m.MeasurementError, match="two lines longer than zero"):
        m.measure("cobb", [(0.0, 0.0), (0.0, 0.0), (1.0, 1.0), (2.0, 2.0)])


# ---------------------------------------------------------------- calibration


def test_calibration_from_a_known_distance():
    spacing = m.calibrated_spacing((10.0, 10.0), (40.0, 50.0), known_mm=25.0)  # 50 px long
    assert (spacing.row_mm, spacing.col_mm) == pytest.approx((0.5, 0.5))
    assert spacing.attribute == "calibrated"
    calibrated = m.measure("distance", [(0.0, 0.0), (0.0, 80.0)], spacing=spacing)
    assert calibrated.values["length_mm"] == pytest.approx(40.0)
    assert calibrated.spacing_source == "calibrated"
    assert calibrated.text() == "40.0 mm (calibrated)"


def test_calibration_keeps_the_pixel_aspect_ratio():
    # Pixels twice as tall as wide: a vertical 10-pixel line of 40 mm means rows 4 mm apart.
    spacing = m.calibrated_spacing((5.0, 0.0), (5.0, 10.0), known_mm=40.0, aspect=2.0)
    assert (spacing.row_mm, spacing.col_mm) == pytest.approx((4.0, 2.0))
    horizontal = m.measure("distance", [(0.0, 0.0), (10.0, 0.0)], spacing=spacing)
    assert horizontal.values["length_mm"] == pytest.approx(20.0)


@pytest.mark.parametrize("start, end, known, message", [
    ((0.0, 0.0), (10.0, 0.0), 0.0, "above 0 mm"),
    ((0.0, 0.0), (10.0, 0.0), float("nan"), "above 0 mm"),
    ((0.0, 0.0), (0.3, 0.2), 5.0, "at least one pixel"),
])
def test_calibration_refuses_what_cannot_calibrate(start, end, known, message):
    with pytest.raises(m.MeasurementError, match=message):
        m.calibrated_spacing(start, end, known)


def test_remeasure_after_calibration_changes_the_values_not_the_points():
    first = m.measure("rectangle", [(0.0, 0.0), (4.0, 2.0)], label="lesion")
    spacing = m.calibrated_spacing((0.0, 0.0), (10.0, 0.0), known_mm=5.0)
    again = m.remeasure(first, spacing=spacing)
    assert again.points == first.points and again.label == "lesion"
    assert again.values["area_mm2"] == pytest.approx(4 * 0.5 * 2 * 0.5)


# ---------------------------------------------------------------- the record


def test_record_round_trips_through_json():
    values = ramp()
    original = m.measure("ellipse", [(1.5, 2.5), (8.0, 9.0)], frame=3, spacing=SPACING,
                         values=values, unit="HU", label="ROI 1")
    text = json.dumps(original.to_dict())
    again = m.Measurement.from_dict(json.loads(text))
    assert again == original
    assert again.to_dict() == original.to_dict()
    assert set(original.to_dict()) == {"kind", "points", "frame", "pixel_spacing",
                                       "spacing_source", "label", "values"}


def test_text_annotation_keeps_its_text_as_label():
    note = m.measure("text", [(12.0, 30.0)], label="fracture?")
    assert note.text() == "fracture?" and note.summary() == "Note fracture?"
    assert note.values == {}


@pytest.mark.parametrize("data, message", [
    ({"kind": "volume", "points": [[0, 0]]}, "not a kind of measurement"),
    ({"kind": "distance", "points": [[0, 0]]}, "needs 2 points"),
    ({"kind": "distance", "points": [[0, 0], [1, "x"]]}, "not readable"),
    ({"kind": "distance", "points": [[0, 0], [1, 1]], "spacing_source": "guess"},
     "not a pixel spacing source"),
    ({"points": [[0, 0], [1, 1]]}, "not readable"),
])
def test_reading_back_a_bad_record_says_what_is_wrong(data, message):
    with pytest.raises(m.MeasurementError, match=message) as raised:
        m.Measurement.from_dict(data)
    assert str(raised.value).endswith(".") and "\n" not in str(raised.value)


def test_spacing_source_names_the_attribute():
    assert m.spacing_source(None) == "none"
    imager = Spacing(0.1, 0.1, "Imager Pixel Spacing (at the detector)", "ImagerPixelSpacing")
    assert m.spacing_source(imager) == "ImagerPixelSpacing"


def test_a_record_goes_through_the_label_store_unchanged(tmp_path):
    from medviewer.labels.store import ImageRef, LabelStore

    image = ImageRef("1.2.3.4", width=100, height=80)
    records = [m.measure("distance", [(10.0, 10.0), (50.0, 40.0)], spacing=SPACING),
               m.measure("ellipse", [(10.0, 10.0), (30.0, 20.0)], frame=2, values=ramp(80, 100),
                         unit="HU", spacing=SPACING),
               m.measure("text", [(5.0, 5.0)], label="fracture?")]
    with LabelStore(tmp_path / "labels.sqlite", reader="alice") as store:
        for record in records:
            store.add_measurement(image, **m.store_fields(record))
        stored = store.measurements(image.key)
    assert [m.from_stored(row) for row in stored] == records
    assert stored[2].text == "fracture?" and stored[2].label is None
    assert stored[0].pixel_spacing == (0.5, 0.25) and stored[0].spacing_source == "PixelSpacing"
    moved = m.measure("distance", records[0].points, spacing=None)
    assert m.same_geometry(moved, records[0]) and not m.same_geometry(records[1], records[0])


def test_a_drag_off_the_image_is_cut_at_its_edge_keeping_the_angles():
    cobb = [(5.0, 10.0), (55.0, 10.0 + 50 * math.tan(math.radians(10))),
            (55.0, 50.0), (5.0, 50.0 + 50 * math.tan(math.radians(20)))]  # ends at row 68
    inside = m.within_image("cobb", cobb, 64, 64)
    assert all(0 <= x <= 64 and 0 <= y <= 64 for x, y in inside)
    assert inside[:3] == tuple(cobb[:3])
    assert inside[3][1] == pytest.approx(64.0)
    assert m.cobb_angle(inside[:2], inside[2:]) == pytest.approx(m.cobb_angle(cobb[:2],
                                                                               cobb[2:]))
    angle = [(90.0, 10.0), (10.0, 10.0), (10.0, -30.0)]  # both arms leave a 64 x 64 image
    cut = m.within_image("angle", angle, 64, 64)
    assert cut == ((64.0, 10.0), (10.0, 10.0), (10.0, 0.0))
    assert m.angle_at(*cut) == pytest.approx(90.0)
    assert m.within_image("rectangle", [(-5.0, 10.0), (70.0, 80.0)], 64, 64) == \
        ((0.0, 10.0), (64.0, 64.0))
    assert m.within_image("distance", [(-10.0, -10.0), (-1.0, -5.0)], 64, 64) == \
        ((0.0, 0.0), (0.0, 0.0))  # wholly off the image: to the nearest corner
    assert m.within_image("text", [(3.0, 4.0)], 64, 64) == ((3.0, 4.0),)
