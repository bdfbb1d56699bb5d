"""One unit of work per action, and undo/redo that work on any kind of row."""

from __future__ import annotations

import sqlite3

import pytest

from medviewer.labels.connection import StoreConnection
from medviewer.labels.decisions import LABEL_ROWS
from medviewer.labels.errors import InvalidLabelError, UndoConflictError, UnknownLabelSetError
from medviewer.labels.history import History
from medviewer.labels.label_sets import find_label_set
from medviewer.labels.store import LabelEntry, LabelStore, Rectangle, RegionEntry
from medviewer.labels.unit_of_work import Actions, RowKey, RowKinds
from tests.labels.helpers import image


def raw_rows(path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.fixture
def actions(store_path) -> Actions:
    with LabelStore(store_path, reader="setup") as store:
        store.create_label_set("pneumonia", ["normal", "pneumonia"])
    db = StoreConnection(store_path)
    yield Actions(db, "alice", find_label_set)
    db.close()


def test_a_unit_of_work_records_one_action_and_each_row_before_and_after(actions,
                                                                         store_path):
    with actions.begin("import", "pneumonia", detail={"file": "x.csv"}) as work:
        set_id = work.label_set.id
        for n in (1, 2):
            key = LABEL_ROWS.key(set_id, image(n).key, "bob")
            state = {"classes": ["normal"], "source": "imported", "note": None,
                     "ai_classes": None, "labelled_at": "t", "action_id": work.action_id}
            work.put(LABEL_ROWS, key, state, old=work.read(LABEL_ROWS, key))
        assert [k.image_key for k in work.changed] == [image(1).key, image(2).key]
        action = work.action_id
    assert raw_rows(store_path, f"SELECT actor, kind, label_set_id, detail FROM actions "
                                f"WHERE id = {action}") == [
        ("alice", "import", set_id, '{"file":"x.csv"}')]
    changes = raw_rows(store_path, f"SELECT target, label_set_id, image_key, reader, row_id, "
                                   f"old FROM changes WHERE action_id = {action} ORDER BY id")
    assert changes == [("image_label", set_id, image(n).key, "bob", None, None)
                       for n in (1, 2)]


def test_a_unit_of_work_that_changes_nothing_leaves_no_action(actions, store_path):
    before = raw_rows(store_path, "SELECT count(*) FROM actions")
    with actions.begin("set_label", "pneumonia") as work:
        assert work.read(LABEL_ROWS, LABEL_ROWS.key(work.label_set.id, "x", "bob")) is None
    assert not work.recorded
    assert raw_rows(store_path, "SELECT count(*) FROM actions") == before


def test_a_failing_unit_of_work_rolls_back_its_rows_and_its_history(actions, store_path):
    before = raw_rows(store_path, "SELECT count(*) FROM actions")
    with pytest.raises(InvalidLabelError):
        with actions.begin("set_label", "pneumonia") as work:
            key = LABEL_ROWS.key(work.label_set.id, image(1).key, "bob")
            work.put(LABEL_ROWS, key, {"classes": ["normal"], "source": "manual",
                                       "note": None, "ai_classes": None, "labelled_at": "t",
                                       "action_id": work.action_id}, old=None)
            raise InvalidLabelError("the second half of the action was refused")
    assert raw_rows(store_path, "SELECT count(*) FROM image_labels") == [(0,)]
    assert raw_rows(store_path, "SELECT count(*) FROM actions") == before
    assert raw_rows(store_path, "SELECT count(*) FROM changes") == [(0,)]


def test_an_action_is_described_before_it_is_recorded(actions):
    with actions.begin("undo") as work:
        work.undoes = None
        work.action_id  # recorded now
        with pytest.raises(RuntimeError, match="already recorded"):
            work.label_set_id = 1


def test_an_unknown_label_set_fails_before_anything_is_written(actions, store_path):
    with pytest.raises(UnknownLabelSetError, match="no label set named 'nope'"):
        with actions.begin("set_label", "nope"):
            raise AssertionError("never reached")


def test_undo_and_redo_walk_back_actions_of_every_kind_in_order(store, pneumonia):
    chest = image(1, width=100, height=100)
    store.set_label("pneumonia", chest, "pneumonia")
    region = store.add_region("pneumonia", chest, "pneumonia", Rectangle(1, 1, 10, 10))
    measured = store.add_measurement(chest, "distance", [(0, 0), (3, 4)],
                                     values={"length_px": 5.0})
    store.set_note("pneumonia", chest, "see distance")

    undone = [store.undo().kind for _ in range(4)]
    assert undone == ["set_note", "add_measurement", "add_region", "set_label"]
    assert store.current_labels("pneumonia") == [] and store.regions("pneumonia") == []
    assert store.measurements() == [] and store.undo() is None

    redone = [store.redo() for _ in range(4)]
    assert all(r.kind == "undo" and r.image_keys == (chest.key,) for r in redone)
    assert store.regions("pneumonia") == [region]
    assert store.measurements() == [measured]
    assert store.label_for("pneumonia", chest.key).note == "see distance"
    assert store.redo() is None


def test_an_import_of_labels_and_regions_is_one_undo_step(store, pneumonia):
    result = store.import_labels(
        "pneumonia", [LabelEntry(image(n), "bob", ("normal",)) for n in range(3)],
        [RegionEntry(image(0), "bob", "pneumonia", Rectangle(0, 0, 5, 5))])
    assert (result.labels_written, result.regions_written) == (3, 1)
    undone = store.undo()
    assert (undone.kind, undone.undone_action_id) == ("import", result.action_id)
    assert set(undone.image_keys) == {image(n).key for n in range(3)}
    assert store.current_labels("pneumonia") == [] and store.regions("pneumonia") == []


def test_undo_can_be_kept_to_one_kind_of_row_or_one_label_set(store, pneumonia):
    chest = image(1)
    store.add_measurement(chest, "text", [(1, 1)], text="first")
    store.set_label("pneumonia", chest, "normal")
    store.add_measurement(chest, "text", [(2, 2)], text="second")
    # The label panel undoes in its label set: measurements are not its to take back.
    assert store.undo(label_set="pneumonia").kind == "set_label"
    assert [m.text for m in store.measurements()] == ["first", "second"]
    # An image view undoes measurements only.
    assert store.undo(row_kind="measurement").kind == "add_measurement"
    assert store.undo(row_kind="measurement").kind == "add_measurement"
    assert store.undo(row_kind="measurement") is None
    assert store.redo(row_kind="image_label").kind == "undo"
    assert store.label_for("pneumonia", chest.key).classes == ("normal",)
    assert store.measurements() == []
    with pytest.raises(ValueError, match="unknown row kind"):
        store.undo(row_kind="bookmark")


# A kind of row the store has never heard of: a real table and a row kind for it.
class BookmarkRows:
    target = "bookmark"
    table = "bookmarks"

    def read(self, conn, key):
        row = conn.execute("SELECT title, action_id FROM bookmarks WHERE image_key = ? "
                           "AND reader = ?", (key.image_key, key.reader)).fetchone()
        return {"title": row[0], "action_id": row[1]} if row else None

    def write(self, conn, key, state):
        conn.execute("INSERT OR REPLACE INTO bookmarks VALUES (?, ?, ?, ?)",
                     (key.image_key, key.reader, state["title"], state["action_id"]))
        return key, state

    def delete(self, conn, key):
        conn.execute("DELETE FROM bookmarks WHERE image_key = ? AND reader = ?",
                     (key.image_key, key.reader))

    def from_history(self, state):
        return state

    def changed_since(self, key, current):
        return f"the bookmark on {key.image_key} was changed since"


def test_a_newly_registered_row_kind_is_undoable_without_touching_the_history(actions,
                                                                             store_path):
    with actions.db.transaction() as conn:
        conn.execute("CREATE TABLE bookmarks (image_key TEXT, reader TEXT, title TEXT, "
                     "action_id INTEGER, PRIMARY KEY (image_key, reader))")
    bookmarks = BookmarkRows()
    history = History(actions.db, actions, RowKinds(LABEL_ROWS, bookmarks))
    key = RowKey(None, image(1).key, "alice")

    def bookmark(title: str) -> None:
        with actions.begin("set_note") as work:  # an edit kind the history undoes
            old = work.read(bookmarks, key)
            work.put(bookmarks, key, {"title": title, "action_id": work.action_id}, old=old)

    bookmark("first look")
    bookmark("second look")
    assert history.undo("alice").image_keys == (image(1).key,)
    assert raw_rows(store_path, "SELECT title FROM bookmarks") == [("first look",)]
    history.redo("alice")
    assert raw_rows(store_path, "SELECT title FROM bookmarks") == [("second look",)]
    # Someone else's later change: the undo refuses with the kind's own words.
    with actions.db.transaction() as conn:
        conn.execute("UPDATE bookmarks SET title = 'edited elsewhere'")
    with pytest.raises(UndoConflictError, match="Cannot undo the last redo: the bookmark "
                                                "on .* was changed since; nothing was undone"):
        history.undo("alice")
    assert [e.target for e in history.history()] == ["bookmark"] * 4
