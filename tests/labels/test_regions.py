"""Region labels: shapes in image pixel coordinates, with history and undo."""

from __future__ import annotations

import pytest

from medviewer.labels.errors import InvalidLabelError
from medviewer.labels.store import Ellipse, Polygon, Rectangle
from tests.labels.helpers import image


def test_add_move_reclass_delete_and_undo_a_rectangle(store, pneumonia):
    chest = image(1, width=512, height=400)
    region = store.add_region("pneumonia", chest, "pneumonia", Rectangle(10, 20, 100, 50),
                              note="consolidation")
    assert (region.reader, region.shape, region.frame) == ("alice", "rectangle", 0)
    assert region.geometry == Rectangle(10.0, 20.0, 100.0, 50.0)
    moved = store.update_region(region.id, geometry=Rectangle(12.5, 20, 100, 60))
    assert moved.geometry.x == 12.5 and moved.created_at == region.created_at
    relabelled = store.update_region(region.id, class_name="normal")
    assert relabelled.class_name == "normal" and relabelled.geometry == moved.geometry
    store.delete_region(region.id)
    assert store.regions("pneumonia") == []

    kinds = [e.kind for e in store.history("pneumonia", chest.key)]
    assert kinds == ["delete_region", "update_region", "update_region", "add_region"]

    store.undo()  # the delete: the region is back under its own id
    assert store.regions("pneumonia") == [relabelled]
    store.undo()
    assert store.regions("pneumonia") == [moved]
    store.undo()
    assert store.regions("pneumonia") == [region]
    store.undo()
    assert store.regions("pneumonia") == []
    # A new region never takes the id of a deleted one.
    again = store.add_region("pneumonia", chest, "pneumonia", Rectangle(0, 0, 1, 1))
    assert again.id > region.id


def test_ellipses_and_polygons(store, pneumonia):
    ellipse = store.add_region("pneumonia", image(1), "pneumonia", Ellipse(5, 5, 20, 10))
    assert ellipse.shape == "ellipse" and ellipse.geometry.width == 20
    triangle = store.add_region("pneumonia", image(1), "normal",
                                Polygon(((10, 10), (50, 12), (30, 40))), frame=2)
    assert triangle.geometry.points == ((10.0, 10.0), (50.0, 12.0), (30.0, 40.0))
    # The bounding box of a polygon is kept too (x, y, width, height).
    g = triangle.geometry
    assert (g.x, g.y, g.width, g.height) == (10, 10, 40, 30)
    assert [r.shape for r in store.regions("pneumonia", image(1).key)] == ["ellipse", "polygon"]
    assert store.regions("pneumonia", reader="bob") == []


def test_regions_are_per_reader(store, pneumonia):
    store.add_region("pneumonia", image(1), "pneumonia", Rectangle(1, 1, 5, 5))
    store.add_region("pneumonia", image(1), "pneumonia", Rectangle(2, 2, 5, 5), reader="bob")
    assert [r.reader for r in store.regions("pneumonia", image(1).key)] == ["alice", "bob"]
    assert len(store.regions("pneumonia", reader="bob")) == 1


def test_invalid_regions_are_refused_with_a_reason(store, pneumonia):
    sized = image(1, width=100, height=80)
    with pytest.raises(InvalidLabelError, match="outside the 100 x 80 image"):
        store.add_region("pneumonia", sized, "pneumonia", Rectangle(90, 0, 20, 10))
    with pytest.raises(InvalidLabelError, match="positive width"):
        store.add_region("pneumonia", sized, "pneumonia", Rectangle(0, 0, 0, 10))
    with pytest.raises(InvalidLabelError, match="finite"):
        store.add_region("pneumonia", sized, "pneumonia", Rectangle(float("nan"), 0, 1, 1))
    with pytest.raises(InvalidLabelError, match="three points"):
        store.add_region("pneumonia", sized, "pneumonia", Polygon(((0, 0), (1, 1))))
    with pytest.raises(InvalidLabelError, match="not in label set"):
        store.add_region("pneumonia", sized, "cat", Rectangle(0, 0, 1, 1))
    with pytest.raises(InvalidLabelError, match="no region with id 99"):
        store.delete_region(99)
    # The full image is allowed: (0, 0) to (width, height) in pixel-edge coordinates.
    store.add_region("pneumonia", sized, "pneumonia", Rectangle(0, 0, 100, 80))
    assert len(store.regions("pneumonia")) == 1


def test_undo_of_a_region_edit_refuses_when_someone_changed_it_since(store, store_path,
                                                                    pneumonia):
    from medviewer.labels.errors import UndoConflictError
    from medviewer.labels.store import LabelStore

    region = store.add_region("pneumonia", image(1), "pneumonia", Rectangle(1, 1, 5, 5))
    with LabelStore(store_path, reader="bob") as bob:
        bob.update_region(region.id, note="bob's remark")
    with pytest.raises(UndoConflictError, match=f"region {region.id} was changed since"):
        store.undo()
    assert store.regions("pneumonia")[0].note == "bob's remark"
