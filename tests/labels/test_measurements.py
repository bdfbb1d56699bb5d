"""Measurements and annotations in the label store: kept per image and reader, back after
reopening, checked, and undoable like labels."""

from __future__ import annotations

import math
import sqlite3

import pytest

from medviewer.labels.errors import InvalidLabelError, UndoConflictError
from medviewer.labels.store import MEASUREMENT_KINDS, LabelStore, Measurement
from tests.labels.helpers import image

CHEST = image(1, path="/data/chest.dcm", width=2000, height=2500)
SPACING = (0.139, 0.139)

# One of each kind, as a viewer would store it: points (column, row) and computed values.
EACH_KIND = {
    "distance": dict(points=[(100, 200), (400, 600)], values={"length_mm": 69.5,
                                                              "length_px": 500.0}),
    "angle": dict(points=[(100, 100), (200, 100), (200, 0)], values={"angle_deg": 90.0}),
    "cobb": dict(points=[(0, 0), (100, 10), (0, 200), (100, 170)],
                 values={"angle_deg": 22.8}),
    "rectangle": dict(points=[(10, 20), (110, 70)],
                      values={"mean": 812.4, "sd": 40.2, "min": 700, "max": 950,
                              "area_mm2": 96.6, "units": "HU"}),
    "ellipse": dict(points=[(10, 20), (110, 70)], values={"mean": 801.0, "area_mm2": 75.9}),
    "text": dict(points=[(50, 60)], text="left lower lobe: compare with prior"),
}


def add(store: LabelStore, kind: str, **extra) -> Measurement:
    spec = {**EACH_KIND[kind], **extra}
    spacing = spec.pop("pixel_spacing", SPACING)
    source = spec.pop("spacing_source", "PixelSpacing")
    return store.add_measurement(CHEST, kind, pixel_spacing=spacing, spacing_source=source,
                                 **spec)


def test_every_kind_is_kept_with_its_geometry_spacing_and_values(store, store_path):
    assert set(EACH_KIND) == set(MEASUREMENT_KINDS)
    made = [add(store, kind, label=f"my {kind}" if kind != "text" else None)
            for kind in EACH_KIND]
    distance = made[0]
    assert (distance.kind, distance.reader, distance.frame) == ("distance", "alice", 0)
    assert distance.points == ((100.0, 200.0), (400.0, 600.0))
    assert distance.pixel_spacing == SPACING and distance.spacing_source == "PixelSpacing"
    assert distance.values == {"length_mm": 69.5, "length_px": 500.0}
    assert distance.label == "my distance" and distance.text is None
    assert made[-1].text == "left lower lobe: compare with prior" and made[-1].label is None
    store.close()
    # The image is opened again later, in another session: everything comes back as made.
    with LabelStore(store_path, reader="alice") as again:
        assert again.measurements(CHEST.key) == made
        assert again.images()[CHEST.key].path == "/data/chest.dcm"
        assert again.counts() == {}  # measurements belong to no label set


def test_measurements_belong_to_an_image_and_a_reader(store, store_path):
    mine = add(store, "distance")
    other_image = store.add_measurement(image(2), "text", [(1, 1)], text="note", frame=3)
    with LabelStore(store_path, reader="bob") as bob:
        bobs = bob.add_measurement(CHEST, "angle", [(0, 0), (5, 0), (5, 5)])
    assert store.measurements(CHEST.key) == [mine, bobs]
    assert store.measurements(CHEST.key, reader="bob") == [bobs]
    assert store.measurements() == [mine, bobs, other_image]
    assert other_image.frame == 3 and bobs.spacing_source == "none"
    assert bobs.pixel_spacing is None and bobs.values == {}


def test_update_and_delete_are_recorded_and_undone_step_by_step(store):
    made = add(store, "distance", label="AP diameter")
    moved = store.update_measurement(made.id, points=[(100, 200), (500, 600)],
                                     values={"length_mm": 78.6})
    assert moved.points[1] == (500.0, 600.0) and moved.values == {"length_mm": 78.6}
    assert moved.created_at == made.created_at and moved.label == "AP diameter"
    unlabelled = store.update_measurement(made.id, label="")
    assert unlabelled.label is None
    calibrated = store.update_measurement(made.id, pixel_spacing=(0.2, 0.2),
                                          spacing_source="calibrated",
                                          values={"length_mm": 113.1})
    assert calibrated.pixel_spacing == (0.2, 0.2)
    assert store.update_measurement(made.id, label=None) == calibrated  # nothing to change
    store.delete_measurement(made.id)
    assert store.measurements(CHEST.key) == []

    entries = store.history(image_key=CHEST.key)
    assert [e.kind for e in entries] == ["delete_measurement", "update_measurement",
                                         "update_measurement", "update_measurement",
                                         "add_measurement"]
    assert all(e.target == "measurement" and e.row_id == made.id and e.label_set is None
               and e.region_id is None for e in entries)
    assert entries[-1].old is None and entries[-1].new["values"] == made.values
    assert entries[0].new is None

    for expected in (calibrated, unlabelled, moved, made):
        store.undo()
        assert store.measurements(CHEST.key) == [expected]  # back under its own id
    store.undo()
    assert store.measurements(CHEST.key) == []
    assert store.redo().kind == "undo"
    assert store.measurements(CHEST.key) == [made]
    # A new measurement never takes a deleted one's id.
    assert add(store, "text").id > made.id


def test_undo_refuses_when_someone_changed_the_measurement_since(store, store_path):
    made = add(store, "rectangle")
    with LabelStore(store_path, reader="bob") as bob:
        bob.update_measurement(made.id, label="bob's ROI")
    with pytest.raises(UndoConflictError, match=f"Cannot undo the last add measurement: "
                                                f"measurement {made.id} was changed since; "
                                                f"nothing was undone"):
        store.undo()
    assert store.measurements(CHEST.key)[0].label == "bob's ROI"
    assert not any(e.kind == "undo" for e in store.history())


@pytest.mark.parametrize("kind, points, message", [
    ("ruler", [(0, 0), (1, 1)], "kind 'ruler' is not one of"),
    ("distance", [(0, 0)], "needs 2 points .*not 1"),
    ("cobb", [(0, 0), (1, 1), (2, 2)], "needs 4 points \\(two lines"),
    ("distance", [(5, 5), (5, 5)], "two different points"),
    ("angle", [(0, 0), (5, 5), (5, 5)], "vertex"),
    ("cobb", [(0, 0), (1, 1), (3, 3), (3, 3)], "Each line"),
    ("rectangle", [(0, 0), (10, 0)], "positive width and height"),
    ("distance", [(0, 0), (math.nan, 1)], "finite numbers"),
    ("distance", [(0, 0), (1, 2, 3)], "pairs"),
    ("distance", [(0, 0), (2001, 10)], "outside the 2000 x 2500 image"),
])
def test_bad_geometry_is_refused_with_a_reason_and_leaves_no_trace(store, kind, points,
                                                                   message):
    with pytest.raises(InvalidLabelError, match=message):
        store.add_measurement(CHEST, kind, points)
    assert store.measurements() == [] and store.history() == [] and store.images() == {}


def test_spacing_text_label_and_values_are_checked(store):
    line = [(0, 0), (10, 10)]
    with pytest.raises(InvalidLabelError, match="source 'FromTheAir' is not one of"):
        store.add_measurement(CHEST, "distance", line, pixel_spacing=SPACING,
                              spacing_source="FromTheAir")
    with pytest.raises(InvalidLabelError, match="source 'none'"):
        store.add_measurement(CHEST, "distance", line, pixel_spacing=SPACING)
    with pytest.raises(InvalidLabelError, match="two positive numbers"):
        store.add_measurement(CHEST, "distance", line, pixel_spacing=(0.1, 0),
                              spacing_source="ImagerPixelSpacing")
    with pytest.raises(InvalidLabelError, match="two positive numbers"):
        store.add_measurement(CHEST, "distance", line, spacing_source="calibrated")
    with pytest.raises(InvalidLabelError, match="needs its text"):
        store.add_measurement(CHEST, "text", [(1, 1)], text="  ")
    with pytest.raises(InvalidLabelError, match="Only a text annotation has text"):
        store.add_measurement(CHEST, "distance", line, text="hello")
    with pytest.raises(InvalidLabelError, match="line break"):
        store.add_measurement(CHEST, "distance", line, label="two\nlines")
    with pytest.raises(InvalidLabelError, match="finite numbers, text or lists"):
        store.add_measurement(CHEST, "distance", line, values={"length_mm": math.inf})
    with pytest.raises(InvalidLabelError, match="named"):
        store.add_measurement(CHEST, "distance", line, values={1: 2.0})
    with pytest.raises(InvalidLabelError, match="frame index"):
        store.add_measurement(CHEST, "distance", line, frame=-1)
    assert store.measurements() == [] and store.history() == []


def test_an_update_keeps_values_honest(store):
    made = add(store, "distance")
    with pytest.raises(InvalidLabelError, match="give the values computed for them"):
        store.update_measurement(made.id, points=[(0, 0), (9, 9)])
    with pytest.raises(InvalidLabelError, match="changed together"):
        store.update_measurement(made.id, pixel_spacing=(0.2, 0.2), values={})
    with pytest.raises(InvalidLabelError, match="no measurement with id 99"):
        store.update_measurement(99, label="x")
    with pytest.raises(InvalidLabelError, match="no measurement with id 99"):
        store.delete_measurement(99)
    # Back to no spacing at all: lengths in pixels only.
    plain = store.update_measurement(made.id, pixel_spacing=None, spacing_source="none",
                                     values={"length_px": 500.0})
    assert plain.pixel_spacing is None and plain.values == {"length_px": 500.0}
    assert [e.kind for e in store.history()] == ["update_measurement", "add_measurement"]


def test_measurement_rows_are_what_the_format_page_describes(store, store_path):
    made = add(store, "distance", label="AP")
    raw = sqlite3.connect(store_path)
    try:
        row = raw.execute("SELECT image_key, reader, kind, frame, points, pixel_spacing, "
                          "spacing_source, label, text, computed FROM measurements "
                          "WHERE id = ?", (made.id,)).fetchone()
    finally:
        raw.close()
    assert row == (CHEST.key, "alice", "distance", 0, "[[100.0,200.0],[400.0,600.0]]",
                   "[0.139,0.139]", "PixelSpacing", "AP", None,
                   '{"length_mm":69.5,"length_px":500.0}')
