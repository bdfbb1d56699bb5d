"""The label store's SQLite schema, its version and the migrations between versions.

``PRAGMA user_version`` holds the schema version: the number of migration steps applied.
A new version appends a step to :data:`MIGRATIONS`; steps are never edited once released,
because a user's file may sit at any older version. Each step runs inside the caller's
transaction (SQLite DDL is transactional), so a migration either completes or leaves the
file untouched.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

# 'MVLB' in the file header: tells our stores apart from any other SQLite file.
APPLICATION_ID = 0x4D564C42

Migration = Callable[[sqlite3.Connection], None]


def _v1_base(conn: sqlite3.Connection) -> None:
    """Label sets, classes, images, one label decision per (set, image, reader), history."""
    _run(conn, """
        CREATE TABLE label_sets (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            multi_label INTEGER NOT NULL CHECK (multi_label IN (0, 1)),
            description TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL
        );
        CREATE TABLE classes (
            id INTEGER PRIMARY KEY,
            label_set_id INTEGER NOT NULL REFERENCES label_sets(id),
            position INTEGER NOT NULL,
            name TEXT NOT NULL,
            UNIQUE (label_set_id, name)
        );
        -- What we know about an image, keyed by SOP Instance UID or 'sha256:<hex>'.
        CREATE TABLE images (
            id INTEGER PRIMARY KEY,
            image_key TEXT NOT NULL UNIQUE,
            path TEXT,
            patient_id TEXT,
            updated_at TEXT NOT NULL
        );
        -- The current decision of one reader on one image: a JSON list of class names.
        CREATE TABLE image_labels (
            id INTEGER PRIMARY KEY,
            label_set_id INTEGER NOT NULL REFERENCES label_sets(id),
            image_key TEXT NOT NULL,
            reader TEXT NOT NULL,
            classes TEXT NOT NULL,
            source TEXT NOT NULL,
            note TEXT,
            labelled_at TEXT NOT NULL,
            action_id INTEGER NOT NULL,
            UNIQUE (label_set_id, image_key, reader)
        );
        CREATE INDEX image_labels_by_reader ON image_labels (label_set_id, reader);
        -- History: one row per user action, and the changes it made (append-only).
        CREATE TABLE actions (
            id INTEGER PRIMARY KEY,
            actor TEXT NOT NULL,
            kind TEXT NOT NULL,
            label_set_id INTEGER,
            created_at TEXT NOT NULL,
            undoes INTEGER REFERENCES actions(id),
            detail TEXT
        );
        CREATE INDEX actions_by_actor ON actions (actor, id);
        CREATE UNIQUE INDEX actions_undone ON actions (undoes) WHERE undoes IS NOT NULL;
        CREATE TABLE changes (
            id INTEGER PRIMARY KEY,
            action_id INTEGER NOT NULL REFERENCES actions(id),
            target TEXT NOT NULL,
            label_set_id INTEGER NOT NULL,
            image_key TEXT NOT NULL,
            reader TEXT NOT NULL,
            region_id INTEGER,
            old TEXT,
            new TEXT
        );
        CREATE INDEX changes_by_action ON changes (action_id);
        CREATE INDEX changes_by_image ON changes (label_set_id, image_key);
        CREATE TRIGGER actions_append_only_update BEFORE UPDATE ON actions
            BEGIN SELECT RAISE(ABORT, 'label history is append-only'); END;
        CREATE TRIGGER actions_append_only_delete BEFORE DELETE ON actions
            BEGIN SELECT RAISE(ABORT, 'label history is append-only'); END;
        CREATE TRIGGER changes_append_only_update BEFORE UPDATE ON changes
            BEGIN SELECT RAISE(ABORT, 'label history is append-only'); END;
        CREATE TRIGGER changes_append_only_delete BEFORE DELETE ON changes
            BEGIN SELECT RAISE(ABORT, 'label history is append-only'); END;
    """)


def _v2_regions(conn: sqlite3.Connection) -> None:
    """Region labels, image sizes (for COCO export) and the AI's suggestion on a decision."""
    _run(conn, """
        ALTER TABLE images ADD COLUMN width INTEGER;
        ALTER TABLE images ADD COLUMN height INTEGER;
        ALTER TABLE image_labels ADD COLUMN ai_classes TEXT;
        -- AUTOINCREMENT: a deleted region's id is never reused, so undoing the delete can
        -- bring it back under the same id.
        CREATE TABLE regions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            label_set_id INTEGER NOT NULL REFERENCES label_sets(id),
            image_key TEXT NOT NULL,
            reader TEXT NOT NULL,
            class_name TEXT NOT NULL,
            shape TEXT NOT NULL CHECK (shape IN ('rectangle', 'ellipse', 'polygon')),
            x REAL NOT NULL,
            y REAL NOT NULL,
            width REAL NOT NULL,
            height REAL NOT NULL,
            points TEXT,
            frame INTEGER NOT NULL DEFAULT 0,
            source TEXT NOT NULL,
            note TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            action_id INTEGER NOT NULL
        );
        CREATE INDEX regions_by_image ON regions (label_set_id, image_key);
    """)


def _v3_measurements(conn: sqlite3.Connection) -> None:
    """Measurements and annotations (a reader's, on an image, outside any label set), and a
    history that records rows of any kind: ``changes.label_set_id`` may be NULL and
    ``region_id`` becomes ``row_id`` (the id of a region, a measurement, ...).

    SQLite cannot drop a NOT NULL, so ``changes`` is rebuilt: its append-only triggers are
    dropped and re-created around the copy, inside the migration's transaction.
    """
    _run(conn, """
        CREATE TABLE measurements (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            image_key TEXT NOT NULL,
            reader TEXT NOT NULL,
            kind TEXT NOT NULL,
            frame INTEGER NOT NULL DEFAULT 0,
            points TEXT NOT NULL,
            pixel_spacing TEXT,
            spacing_source TEXT NOT NULL,
            label TEXT,
            text TEXT,
            computed TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            action_id INTEGER NOT NULL
        );
        CREATE INDEX measurements_by_image ON measurements (image_key, reader);
        DROP TRIGGER IF EXISTS changes_append_only_update;
        DROP TRIGGER IF EXISTS changes_append_only_delete;
        CREATE TABLE changes_v3 (
            id INTEGER PRIMARY KEY,
            action_id INTEGER NOT NULL REFERENCES actions(id),
            target TEXT NOT NULL,
            label_set_id INTEGER,
            image_key TEXT NOT NULL,
            reader TEXT NOT NULL,
            row_id INTEGER,
            old TEXT,
            new TEXT
        );
        INSERT INTO changes_v3 (id, action_id, target, label_set_id, image_key, reader,
                                row_id, old, new)
            SELECT id, action_id, target, label_set_id, image_key, reader, region_id, old, new
            FROM changes ORDER BY id;
        DROP TABLE changes;
        ALTER TABLE changes_v3 RENAME TO changes;
        CREATE INDEX changes_by_action ON changes (action_id);
        CREATE INDEX changes_by_image ON changes (label_set_id, image_key);
        CREATE TRIGGER changes_append_only_update BEFORE UPDATE ON changes
            BEGIN SELECT RAISE(ABORT, 'label history is append-only'); END;
        CREATE TRIGGER changes_append_only_delete BEFORE DELETE ON changes
            BEGIN SELECT RAISE(ABORT, 'label history is append-only'); END;
    """)


def _run(conn: sqlite3.Connection, script: str) -> None:
    """Run a multi-statement script statement by statement.

    ``executescript`` would COMMIT the caller's open transaction first; a migration must
    stay inside it so a failure rolls everything back.
    """
    statement = ""
    for line in script.splitlines():
        statement += line + "\n"
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement in migration: {statement.strip()[:80]}")


MIGRATIONS: tuple[Migration, ...] = (_v1_base, _v2_regions, _v3_measurements)
SCHEMA_VERSION = len(MIGRATIONS)

# The tables a store of the current version holds, for the recovery's salvage pass.
TABLES = ("label_sets", "classes", "images", "image_labels", "actions", "changes", "regions",
          "measurements")


def migrate(conn: sqlite3.Connection, from_version: int,
            to_version: int = SCHEMA_VERSION) -> None:
    """Apply the steps after ``from_version`` up to ``to_version`` in the open transaction."""
    for step in MIGRATIONS[from_version:to_version]:
        step(conn)
    conn.execute(f"PRAGMA user_version = {int(to_version)}")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
