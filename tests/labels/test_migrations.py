"""Schema versions: an old (v1) store is backed up, migrated in one transaction, and keeps
every label."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from medviewer.labels.errors import LabelError
from medviewer.labels.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION
from medviewer.labels.store import LabelStore, Rectangle
from tests.labels.helpers import image

# The version-1 schema as a v1 MedViewer wrote it, typed out here rather than taken from
# medviewer.labels.schema, so a later edit of the migration steps cannot hide a break.
V1_SCHEMA = """
CREATE TABLE label_sets (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
    multi_label INTEGER NOT NULL CHECK (multi_label IN (0, 1)),
    description TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL);
CREATE TABLE classes (id INTEGER PRIMARY KEY,
    label_set_id INTEGER NOT NULL REFERENCES label_sets(id), position INTEGER NOT NULL,
    name TEXT NOT NULL, UNIQUE (label_set_id, name));
CREATE TABLE images (id INTEGER PRIMARY KEY, image_key TEXT NOT NULL UNIQUE, path TEXT,
    patient_id TEXT, updated_at TEXT NOT NULL);
CREATE TABLE image_labels (id INTEGER PRIMARY KEY,
    label_set_id INTEGER NOT NULL REFERENCES label_sets(id), image_key TEXT NOT NULL,
    reader TEXT NOT NULL, classes TEXT NOT NULL, source TEXT NOT NULL, note TEXT,
    labelled_at TEXT NOT NULL, action_id INTEGER NOT NULL,
    UNIQUE (label_set_id, image_key, reader));
CREATE INDEX image_labels_by_reader ON image_labels (label_set_id, reader);
CREATE TABLE actions (id INTEGER PRIMARY KEY, actor TEXT NOT NULL, kind TEXT NOT NULL,
    label_set_id INTEGER, created_at TEXT NOT NULL, undoes INTEGER REFERENCES actions(id),
    detail TEXT);
CREATE INDEX actions_by_actor ON actions (actor, id);
CREATE UNIQUE INDEX actions_undone ON actions (undoes) WHERE undoes IS NOT NULL;
CREATE TABLE changes (id INTEGER PRIMARY KEY,
    action_id INTEGER NOT NULL REFERENCES actions(id), target TEXT NOT NULL,
    label_set_id INTEGER NOT NULL, image_key TEXT NOT NULL, reader TEXT NOT NULL,
    region_id INTEGER, old TEXT, new TEXT);
CREATE INDEX changes_by_action ON changes (action_id);
CREATE INDEX changes_by_image ON changes (label_set_id, image_key);
PRAGMA user_version = 1;
"""
T0 = "2024-03-01T09:00:00.000+00:00"


def make_v1_store(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("INSERT INTO label_sets VALUES (1, 'pneumonia', 0, '', ?)", (T0,))
    conn.executemany("INSERT INTO classes (label_set_id, position, name) VALUES (1, ?, ?)",
                     [(0, "normal"), (1, "pneumonia")])
    conn.execute("INSERT INTO images (image_key, path, patient_id, updated_at) "
                 "VALUES (?, '/old/a.dcm', 'P7', ?)", (image(1).key, T0))
    conn.execute("INSERT INTO actions VALUES (1, 'alice', 'set_label', 1, ?, NULL, NULL)",
                 (T0,))
    state = {"classes": ["pneumonia"], "source": "manual", "note": "v1 note",
             "labelled_at": T0, "action_id": 1}
    conn.execute("INSERT INTO image_labels (label_set_id, image_key, reader, classes, source, "
                 "note, labelled_at, action_id) VALUES (1, ?, 'alice', '[\"pneumonia\"]', "
                 "'manual', 'v1 note', ?, 1)", (image(1).key, T0))
    conn.execute("INSERT INTO changes (action_id, target, label_set_id, image_key, reader, "
                 "old, new) VALUES (1, 'image_label', 1, ?, 'alice', NULL, ?)",
                 (image(1).key, json.dumps(state)))
    conn.commit()
    conn.close()


def test_a_v1_store_is_backed_up_and_migrated_keeping_its_labels(tmp_path):
    path = tmp_path / "project.sqlite"
    make_v1_store(path)
    with LabelStore(path, reader="alice") as store:
        assert store.schema_version == SCHEMA_VERSION == len(MIGRATIONS) == 3
        assert store.check(full=True) == []
        label = store.label_for("pneumonia", image(1).key)
        assert (label.classes, label.note, label.labelled_at) == (("pneumonia",), "v1 note", T0)
        assert label.ai_classes is None and label.path == "/old/a.dcm"
        # What v2 added works on the migrated file, and v1 history still undoes.
        region = store.add_region("pneumonia", image(1), "pneumonia", Rectangle(1, 2, 3, 4))
        assert store.regions("pneumonia")[0] == region
        store.undo()
        undone = store.undo()
        assert undone.undone_action_id == 1
        assert store.current_labels("pneumonia") == []
    backups = list(tmp_path.glob("project.sqlite.v1-backup-*"))
    assert len(backups) == 1
    old = sqlite3.connect(backups[0])
    try:
        assert old.execute("PRAGMA user_version").fetchone()[0] == 1
        assert old.execute("SELECT note FROM image_labels").fetchall() == [("v1 note",)]
    finally:
        old.close()


def test_migrating_a_fresh_store_creates_the_current_schema(tmp_path):
    with LabelStore(tmp_path / "new.sqlite", reader="alice") as store:
        assert store.schema_version == SCHEMA_VERSION
    assert not list(tmp_path.glob("*backup*"))  # nothing to back up in a new file


def test_a_failing_migration_leaves_the_file_as_it_was(tmp_path):
    path = tmp_path / "project.sqlite"
    make_v1_store(path)
    conn = sqlite3.connect(path)
    # Something v2 wants to create already exists: the v2 step fails half-way.
    conn.execute("CREATE TABLE regions (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    with pytest.raises(LabelError, match="Cannot upgrade the label store .* from schema "
                                         "version 1 to 3 .* left as it was; a backup is at"):
        LabelStore(path, reader="alice")
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        columns = [r[1] for r in conn.execute("PRAGMA table_info(images)")]
        assert "width" not in columns  # the ALTERs before the failure were rolled back
        assert conn.execute("SELECT count(*) FROM image_labels").fetchone()[0] == 1
    finally:
        conn.close()


# What a v1 MedViewer also wrote (left out of V1_SCHEMA above) and the v2 step, typed out.
V1_TRIGGERS = """
CREATE TRIGGER actions_append_only_update BEFORE UPDATE ON actions
    BEGIN SELECT RAISE(ABORT, 'label history is append-only'); END;
CREATE TRIGGER actions_append_only_delete BEFORE DELETE ON actions
    BEGIN SELECT RAISE(ABORT, 'label history is append-only'); END;
CREATE TRIGGER changes_append_only_update BEFORE UPDATE ON changes
    BEGIN SELECT RAISE(ABORT, 'label history is append-only'); END;
CREATE TRIGGER changes_append_only_delete BEFORE DELETE ON changes
    BEGIN SELECT RAISE(ABORT, 'label history is append-only'); END;
"""
V2_STEP = """
ALTER TABLE images ADD COLUMN width INTEGER;
ALTER TABLE images ADD COLUMN height INTEGER;
ALTER TABLE image_labels ADD COLUMN ai_classes TEXT;
CREATE TABLE regions (id INTEGER PRIMARY KEY AUTOINCREMENT,
    label_set_id INTEGER NOT NULL REFERENCES label_sets(id), image_key TEXT NOT NULL,
    reader TEXT NOT NULL, class_name TEXT NOT NULL,
    shape TEXT NOT NULL CHECK (shape IN ('rectangle', 'ellipse', 'polygon')),
    x REAL NOT NULL, y REAL NOT NULL, width REAL NOT NULL, height REAL NOT NULL, points TEXT,
    frame INTEGER NOT NULL DEFAULT 0, source TEXT NOT NULL, note TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, action_id INTEGER NOT NULL);
CREATE INDEX regions_by_image ON regions (label_set_id, image_key);
PRAGMA user_version = 2;
"""
REGION_STATE = {"id": 1, "label_set_id": 1, "image_key": image(1).key, "reader": "alice",
                "class_name": "pneumonia", "shape": "rectangle", "x": 10.0, "y": 20.0,
                "width": 30.0, "height": 40.0, "points": None, "frame": 0,
                "source": "manual", "note": "v2 region", "created_at": T0,
                "updated_at": T0, "action_id": 2}


def make_v2_store(path: Path) -> None:
    """The v1 store above, migrated by a v2 MedViewer, plus one region drawn in v2."""
    make_v1_store(path)
    conn = sqlite3.connect(path)
    conn.executescript(V1_TRIGGERS + V2_STEP)
    conn.execute("INSERT INTO actions VALUES (2, 'alice', 'add_region', 1, ?, NULL, NULL)",
                 (T0,))
    conn.execute("INSERT INTO regions VALUES (1, 1, ?, 'alice', 'pneumonia', 'rectangle', "
                 "10, 20, 30, 40, NULL, 0, 'manual', 'v2 region', ?, ?, 2)",
                 (image(1).key, T0, T0))
    conn.execute("INSERT INTO changes (action_id, target, label_set_id, image_key, reader, "
                 "region_id, old, new) VALUES (2, 'region', 1, ?, 'alice', 1, NULL, ?)",
                 (image(1).key, json.dumps(REGION_STATE)))
    conn.commit()
    conn.close()


def test_a_v2_store_keeps_its_history_undoable_and_append_only_after_migration(tmp_path):
    path = tmp_path / "project.sqlite"
    make_v2_store(path)
    with LabelStore(path, reader="alice") as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.check(full=True) == []
        (region,) = store.regions("pneumonia")
        assert (region.id, region.note, region.geometry) == (1, "v2 region",
                                                             Rectangle(10, 20, 30, 40))
        # The v2 history reads back with the region's id in its new, generic place.
        added = store.history("pneumonia", image(1).key)[0]
        assert (added.kind, added.target, added.region_id, added.row_id) == (
            "add_region", "region", 1, 1)
        assert added.new == REGION_STATE
        assert store.undo().kind == "add_region"
        assert store.regions("pneumonia") == []
        assert store.undo().undone_action_id == 1
        assert store.current_labels("pneumonia") == []
    assert len(list(tmp_path.glob("project.sqlite.v2-backup-*"))) == 1
    raw = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("UPDATE changes SET new = NULL")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("DELETE FROM changes")
        columns = [r[1] for r in raw.execute("PRAGMA table_info(changes)")]
        assert "row_id" in columns and "region_id" not in columns
        assert raw.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        raw.close()


def test_a_failing_v3_step_leaves_the_v2_file_as_it_was(tmp_path):
    path = tmp_path / "project.sqlite"
    make_v2_store(path)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE measurements (id INTEGER PRIMARY KEY)")  # in v3's way
    conn.commit()
    conn.close()
    with pytest.raises(LabelError, match="from schema version 2 to 3 .* left as it was"):
        LabelStore(path, reader="alice")
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        columns = [r[1] for r in conn.execute("PRAGMA table_info(changes)")]
        assert "region_id" in columns and "row_id" not in columns
        triggers = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        assert {"changes_append_only_update", "changes_append_only_delete"} <= triggers
        assert conn.execute("SELECT count(*) FROM changes").fetchone()[0] == 2
    finally:
        conn.close()


def test_recovering_an_old_store_replays_its_history_into_the_current_schema(tmp_path):
    """A v1 file whose label row was lost: the recovery migrates it, then the label comes
    back from its v1 history state (which had no AI suggestion yet)."""
    path = tmp_path / "project.sqlite"
    make_v1_store(path)
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM image_labels")
    conn.commit()
    conn.close()
    report = LabelStore.recover(path)
    assert report.schema_version_found == 1
    assert report.rebuilt_from_history == {"image_labels": 1, "regions": 0, "measurements": 0}
    with LabelStore(path, reader="alice") as store:
        assert store.schema_version == SCHEMA_VERSION
        label = store.label_for("pneumonia", image(1).key)
        assert (label.classes, label.note, label.ai_classes) == (("pneumonia",), "v1 note",
                                                                  None)
