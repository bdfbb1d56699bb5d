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
        assert store.schema_version == SCHEMA_VERSION == len(MIGRATIONS) == 2
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
                                         "version 1 to 2 .* left as it was; a backup is at"):
        LabelStore(path, reader="alice")
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        columns = [r[1] for r in conn.execute("PRAGMA table_info(images)")]
        assert "width" not in columns  # the ALTERs before the failure were rolled back
        assert conn.execute("SELECT count(*) FROM image_labels").fetchone()[0] == 1
    finally:
        conn.close()
