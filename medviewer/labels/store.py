"""The label store: one SQLite file that keeps every label a reader commits.

Durability comes first, because labels are clinical work:

* WAL journal with ``synchronous=FULL``: a method that writes returns only after its one
  transaction committed and the WAL was fsynced; when it raises, nothing of the action was
  written. The GUI calls one method per user action and shows "saved" after it returns.
* Every action appends to the history (``actions`` + ``changes``; triggers make both tables
  append-only), so any label can be traced (who, when, old -> new) and the last action of a
  reader can be undone.
* At start-up ``PRAGMA quick_check`` runs; a damaged file raises :class:`DamagedStoreError`
  whose sentence points at :meth:`LabelStore.recover` (copy aside, salvage, rebuild).
* The schema carries a version (``PRAGMA user_version``); an older file is backed up and then
  migrated in one transaction (see :mod:`medviewer.labels.schema`).

Images are identified by their SOP Instance UID, or ``sha256:<hex>`` of the file for plain
PNG/JPEG images (and DICOM files without a SOP Instance UID); the path is only a hint. Labels
are per reader: each reader has at most one decision (a set of classes) per image and label
set. Region coordinates are in the original, un-rotated stored pixel grid (see
docs/labels-format.md).

This module holds :class:`LabelStore` with label sets, decisions, reading and import; its
other parts live beside it: ``connection`` (opening, transactions, error sentences: the
base class), ``history`` (actions, undo/redo), ``regions``, ``values`` (value types and
their checks), ``rows`` (how values sit in rows) and ``durable_files`` (fsync). Every name
callers import from here is re-exported (``__all__``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medviewer.labels.connection import BUSY_TIMEOUT_MS, StoreConnection
from medviewer.labels.errors import InvalidLabelError, UnknownLabelSetError
from medviewer.labels.history import EDIT_KINDS, HistoryMixin
from medviewer.labels.regions import RegionsMixin
from medviewer.labels.rows import geometry_state, json_text, stored_classes, tuple_or_none
from medviewer.labels.values import (
    HASH_PREFIX,
    MAX_NAME_LENGTH,
    SHAPES,
    SOURCES,
    Ellipse,
    Geometry,
    HistoryEntry,
    ImageLabel,
    ImageRef,
    ImportResult,
    LabelEntry,
    LabelSet,
    Polygon,
    Rectangle,
    Region,
    RegionEntry,
    UndoResult,
    check_classes,
    check_name,
    check_region_geometry,
    check_source,
    is_ai_reader,
    now_iso,
)

if TYPE_CHECKING:
    from medviewer.labels.recovery import RecoveryReport

# What other modules import from here.
__all__ = [
    "BUSY_TIMEOUT_MS", "DEFAULT_STORE_NAME", "EDIT_KINDS", "HASH_PREFIX", "MAX_NAME_LENGTH",
    "SHAPES", "SOURCES", "Ellipse", "Geometry", "HistoryEntry", "ImageLabel", "ImageRef",
    "ImportResult", "LabelEntry", "LabelSet", "LabelStore", "Polygon", "Rectangle", "Region",
    "RegionEntry", "UndoResult", "check_region_geometry", "default_store_path", "is_ai_reader",
    "now_iso",
]

DEFAULT_STORE_NAME = "labels.sqlite"
# IN (...) lists are chunked below SQLite's bound-parameter limit.
_CHUNK = 500


def default_store_path() -> Path:
    from medviewer.paths import user_data_dir

    return user_data_dir() / DEFAULT_STORE_NAME


# ---------------------------------------------------------------- the store


class LabelStore(RegionsMixin, HistoryMixin, StoreConnection):
    """A label store file; every writing method is one committed transaction.

    ``reader`` is who is labelling (default: ``settings.reader_name``): labels without an
    explicit reader belong to them, and every action is recorded with them as its actor.
    Safe to share between threads (one connection behind a lock).
    """

    def __init__(self, path: str | os.PathLike | None = None, reader: str | None = None,
                 *, check: bool = True) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        if reader is None:
            from medviewer.settings import load_settings

            reader = load_settings().reader_name
        self.reader = check_name("reader name", reader)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._conn = self._open(check)

    # -- recovering, and the context manager (opening, checking, closing: StoreConnection)

    @staticmethod
    def recover(path: str | os.PathLike | None = None) -> RecoveryReport:
        """Set a damaged store aside (kept, timestamped) and rebuild it from readable rows."""
        from medviewer.labels.recovery import recover

        return recover(Path(path) if path is not None else default_store_path())

    def __enter__(self) -> "LabelStore":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- label sets

    def create_label_set(self, name: str, classes: Sequence[str], *, multi_label: bool = False,
                         description: str = "") -> LabelSet:
        name = check_name("label set name", name)
        class_names = check_classes(classes)
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM label_sets WHERE name = ?", (name,)).fetchone():
                raise InvalidLabelError(f"A label set named '{name}' already exists.")
            self._insert_label_set(conn, name, class_names, multi_label, description)
            return self._get_set(conn, name)

    def _insert_label_set(self, conn: sqlite3.Connection, name: str, classes: Sequence[str],
                          multi_label: bool, description: str) -> int:
        at = now_iso()
        cursor = conn.execute(
            "INSERT INTO label_sets (name, multi_label, description, created_at) "
            "VALUES (?, ?, ?, ?)", (name, int(bool(multi_label)), description or "", at))
        set_id = cursor.lastrowid
        conn.executemany("INSERT INTO classes (label_set_id, position, name) VALUES (?, ?, ?)",
                         [(set_id, i, c) for i, c in enumerate(classes)])
        conn.execute("INSERT INTO actions (actor, kind, label_set_id, created_at, detail) "
                     "VALUES (?, 'create_label_set', ?, ?, ?)",
                     (self.reader, set_id, at,
                      json_text({"name": name, "classes": list(classes),
                                 "multi_label": bool(multi_label)})))
        return set_id

    def add_classes(self, label_set: str, classes: Sequence[str]) -> LabelSet:
        """Append classes to a label set's list (existing ones are left as they are)."""
        with self._transaction() as conn:
            current = self._get_set(conn, label_set)
            new = [c for c in check_classes(classes) if c not in current.classes]
            if new:
                self._append_classes(conn, current, new)
            return self._get_set(conn, label_set)

    def _append_classes(self, conn: sqlite3.Connection, current: LabelSet,
                        new: Sequence[str]) -> None:
        start = len(current.classes)
        conn.executemany("INSERT INTO classes (label_set_id, position, name) VALUES (?, ?, ?)",
                         [(current.id, start + i, c) for i, c in enumerate(new)])
        conn.execute("INSERT INTO actions (actor, kind, label_set_id, created_at, detail) "
                     "VALUES (?, 'add_classes', ?, ?, ?)",
                     (self.reader, current.id, now_iso(), json_text({"classes": list(new)})))

    def label_set(self, name: str) -> LabelSet:
        return self._read(lambda conn: self._get_set(conn, name))

    def label_sets(self) -> list[LabelSet]:
        def query(conn: sqlite3.Connection) -> list[LabelSet]:
            names = [r[0] for r in conn.execute("SELECT name FROM label_sets ORDER BY name")]
            return [self._get_set(conn, n) for n in names]

        return self._read(query)

    def _get_set(self, conn: sqlite3.Connection, name: str) -> LabelSet:
        row = conn.execute("SELECT id, name, multi_label, description, created_at "
                           "FROM label_sets WHERE name = ?", (name,)).fetchone()
        if row is None:
            existing = [r[0] for r in conn.execute("SELECT name FROM label_sets ORDER BY name")]
            raise UnknownLabelSetError(name, existing)
        classes = tuple(r[0] for r in conn.execute(
            "SELECT name FROM classes WHERE label_set_id = ? ORDER BY position, id", (row[0],)))
        return LabelSet(row[0], row[1], classes, bool(row[2]), row[3], row[4])

    def _set_name(self, conn: sqlite3.Connection, set_id: int | None) -> str | None:
        if set_id is None:
            return None
        row = conn.execute("SELECT name FROM label_sets WHERE id = ?", (set_id,)).fetchone()
        return row[0] if row else None

    # -- image labels: one method per user action

    def set_label(self, label_set: str, image: ImageRef, classes: str | Sequence[str], *,
                  reader: str | None = None, source: str = "manual", note: str | None = None,
                  ai_classes: Sequence[str] | None = None) -> ImageLabel:
        """Make ``classes`` the reader's decision on the image (replacing any earlier one).

        Returns after the transaction committed. Setting the same decision again writes
        nothing and returns the stored label.
        """
        reader = self._reader(reader)
        check_source(source)
        wanted = [classes] if isinstance(classes, str) else list(classes)
        with self._transaction() as conn:
            current_set = self._get_set(conn, label_set)
            ordered = current_set.ordered(wanted)
            ai = current_set.ordered(ai_classes, what="AI suggestion") \
                if ai_classes is not None else None
            self._upsert_image(conn, image)
            old = self._label_state(conn, current_set.id, image.key, reader)
            if old is not None and (tuple(old["classes"]), old["source"], old["note"],
                                    tuple_or_none(old["ai_classes"])) == (ordered, source,
                                                                          note, ai):
                return self._label_from_state(current_set.name, image.key, reader, old,
                                              image.path)
            action = self._new_action(conn, "set_label", current_set.id)
            new = {"classes": list(ordered), "source": source, "note": note,
                   "ai_classes": list(ai) if ai is not None else None,
                   "labelled_at": now_iso(), "action_id": action}
            self._write_label(conn, current_set.id, image.key, reader, new)
            self._record(conn, action, "image_label", current_set.id, image.key, reader, None,
                         old, new)
        return self._label_from_state(current_set.name, image.key, reader, new, image.path)

    def toggle_class(self, label_set: str, image: ImageRef, class_name: str, *,
                     reader: str | None = None, source: str = "manual") -> ImageLabel | None:
        """Add the class to the reader's decision, or take it away if present.

        In a single-label set, toggling another class replaces the current one. Returns the
        decision after the change (None when no class is left), after the commit.
        """
        reader = self._reader(reader)
        check_source(source)
        with self._transaction() as conn:
            current_set = self._get_set(conn, label_set)
            (wanted,) = current_set.ordered([class_name])
            self._upsert_image(conn, image)
            old = self._label_state(conn, current_set.id, image.key, reader)
            have = list(old["classes"]) if old else []
            if wanted in have:
                have.remove(wanted)
            elif current_set.multi_label:
                have.append(wanted)
            else:
                have = [wanted]
            action = self._new_action(conn, "toggle_class", current_set.id)
            if have:
                ordered = current_set.ordered(have)
                new: dict | None = {
                    "classes": list(ordered), "source": source,
                    "note": old["note"] if old else None,
                    "ai_classes": old["ai_classes"] if old else None,
                    "labelled_at": now_iso(), "action_id": action}
                self._write_label(conn, current_set.id, image.key, reader, new)
            else:
                new = None
                self._delete_label(conn, current_set.id, image.key, reader)
            self._record(conn, action, "image_label", current_set.id, image.key, reader, None,
                         old, new)
        if new is None:
            return None
        return self._label_from_state(current_set.name, image.key, reader, new, image.path)

    def clear_label(self, label_set: str, image: ImageRef | str, *,
                    reader: str | None = None) -> bool:
        """Remove the reader's decision on the image; False when there was none."""
        reader = self._reader(reader)
        key = image.key if isinstance(image, ImageRef) else image
        with self._transaction() as conn:
            current_set = self._get_set(conn, label_set)
            old = self._label_state(conn, current_set.id, key, reader)
            if old is None:
                return False
            action = self._new_action(conn, "clear_label", current_set.id)
            self._delete_label(conn, current_set.id, key, reader)
            self._record(conn, action, "image_label", current_set.id, key, reader, None, old,
                         None)
        return True

    def set_note(self, label_set: str, image: ImageRef | str, note: str | None, *,
                 reader: str | None = None) -> ImageLabel:
        """Change the note on the reader's existing decision."""
        reader = self._reader(reader)
        key = image.key if isinstance(image, ImageRef) else image
        with self._transaction() as conn:
            current_set = self._get_set(conn, label_set)
            old = self._label_state(conn, current_set.id, key, reader)
            if old is None:
                raise InvalidLabelError(f"Reader '{reader}' has no label on this image in "
                                        f"label set '{label_set}' to add a note to.")
            action = self._new_action(conn, "set_note", current_set.id)
            new = dict(old, note=note or None, labelled_at=now_iso(), action_id=action)
            self._write_label(conn, current_set.id, key, reader, new)
            self._record(conn, action, "image_label", current_set.id, key, reader, None, old,
                         new)
        return self._label_from_state(current_set.name, key, reader, new, None)

    def _reader(self, reader: str | None) -> str:
        return self.reader if reader is None else check_name("reader name", reader)

    def _upsert_image(self, conn: sqlite3.Connection, image: ImageRef) -> None:
        conn.execute(
            "INSERT INTO images (image_key, path, patient_id, width, height, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (image_key) DO UPDATE SET "
            "path = coalesce(excluded.path, path), "
            "patient_id = coalesce(excluded.patient_id, patient_id), "
            "width = coalesce(excluded.width, width), "
            "height = coalesce(excluded.height, height), updated_at = excluded.updated_at",
            (image.key, image.path, image.patient_id, image.width, image.height, now_iso()))

    @staticmethod
    def _label_state(conn: sqlite3.Connection, set_id: int, key: str,
                     reader: str) -> dict | None:
        row = conn.execute(
            "SELECT classes, source, note, ai_classes, labelled_at, action_id FROM image_labels "
            "WHERE label_set_id = ? AND image_key = ? AND reader = ?",
            (set_id, key, reader)).fetchone()
        if row is None:
            return None
        return {"classes": json.loads(row[0]), "source": row[1], "note": row[2],
                "ai_classes": json.loads(row[3]) if row[3] is not None else None,
                "labelled_at": row[4], "action_id": row[5]}

    @staticmethod
    def _write_label(conn: sqlite3.Connection, set_id: int, key: str, reader: str,
                     state: dict) -> None:
        conn.execute(
            "INSERT INTO image_labels (label_set_id, image_key, reader, classes, source, note, "
            "ai_classes, labelled_at, action_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (label_set_id, image_key, reader) DO UPDATE SET "
            "classes = excluded.classes, source = excluded.source, note = excluded.note, "
            "ai_classes = excluded.ai_classes, labelled_at = excluded.labelled_at, "
            "action_id = excluded.action_id",
            (set_id, key, reader, json_text(state["classes"]), state["source"], state["note"],
             json_text(state["ai_classes"]) if state["ai_classes"] is not None else None,
             state["labelled_at"], state["action_id"]))

    @staticmethod
    def _delete_label(conn: sqlite3.Connection, set_id: int, key: str, reader: str) -> None:
        conn.execute("DELETE FROM image_labels WHERE label_set_id = ? AND image_key = ? "
                     "AND reader = ?", (set_id, key, reader))

    @staticmethod
    def _label_from_state(set_name: str, key: str, reader: str, state: dict,
                          path: str | None) -> ImageLabel:
        return ImageLabel(set_name, key, reader, tuple(state["classes"]), state["source"],
                          state["note"], state["labelled_at"], state["action_id"],
                          tuple_or_none(state["ai_classes"]), path)

    # -- reading labels

    def current_labels(self, label_set: str, image_keys: Iterable[str] | None = None, *,
                       reader: str | None = None) -> list[ImageLabel]:
        """Current decisions in a label set: of the given images (all when None), all readers
        unless ``reader`` is given. Ordered by image key, then reader."""
        keys = None if image_keys is None else list(dict.fromkeys(image_keys))

        def query(conn: sqlite3.Connection) -> list[ImageLabel]:
            current_set = self._get_set(conn, label_set)
            sql = ("SELECT l.image_key, l.reader, l.classes, l.source, l.note, l.labelled_at, "
                   "l.action_id, l.ai_classes, i.path FROM image_labels l "
                   "LEFT JOIN images i ON i.image_key = l.image_key WHERE l.label_set_id = ?")
            base: list[Any] = [current_set.id]
            if reader is not None:
                sql += " AND l.reader = ?"
                base.append(reader)
            rows: list[tuple] = []
            if keys is None:
                rows = conn.execute(sql + " ORDER BY l.image_key, l.reader", base).fetchall()
            else:
                for start in range(0, len(keys), _CHUNK):
                    chunk = keys[start:start + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    rows += conn.execute(f"{sql} AND l.image_key IN ({marks})",
                                         base + chunk).fetchall()
                rows.sort(key=lambda r: (r[0], r[1]))
            return [ImageLabel(current_set.name, r[0], r[1], stored_classes(r[2]), r[3], r[4],
                               r[5], r[6], stored_classes(r[7]) if r[7] is not None else None,
                               r[8])
                    for r in rows]

        return self._read(query)

    def label_for(self, label_set: str, image_key: str,
                  reader: str | None = None) -> ImageLabel | None:
        """The reader's (default: this store's reader) current decision on one image."""
        found = self.current_labels(label_set, [image_key], reader=self._reader(reader))
        return found[0] if found else None

    def decisions(self, label_set: str) -> dict[str, dict[str, tuple[str, ...]]]:
        """{image key: {reader: classes}} for the whole label set (agreement, consensus)."""
        def query(conn: sqlite3.Connection) -> dict[str, dict[str, tuple[str, ...]]]:
            set_id = self._get_set(conn, label_set).id
            table: dict[str, dict[str, tuple[str, ...]]] = {}
            for key, reader, classes in conn.execute(
                    "SELECT image_key, reader, classes FROM image_labels WHERE label_set_id = ? "
                    "ORDER BY image_key, reader", (set_id,)):
                table.setdefault(key, {})[reader] = stored_classes(classes)
            return table

        return self._read(query)

    def images(self, image_keys: Iterable[str] | None = None) -> dict[str, ImageRef]:
        """What the store knows about images (path hint, patient id, size), by key."""
        keys = None if image_keys is None else list(dict.fromkeys(image_keys))

        def query(conn: sqlite3.Connection) -> dict[str, ImageRef]:
            sql = "SELECT image_key, path, patient_id, width, height FROM images"
            rows: list[tuple] = []
            if keys is None:
                rows = conn.execute(sql).fetchall()
            else:
                for start in range(0, len(keys), _CHUNK):
                    chunk = keys[start:start + _CHUNK]
                    rows += conn.execute(
                        f"{sql} WHERE image_key IN ({','.join('?' * len(chunk))})",
                        chunk).fetchall()
            return {r[0]: ImageRef(r[0], r[1], r[2], r[3], r[4]) for r in rows}

        return self._read(query)

    def counts(self) -> dict[str, dict[str, int]]:
        """Per label set: images labelled, decisions, readers and regions."""
        def query(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
            result = {}
            for set_id, name in conn.execute("SELECT id, name FROM label_sets ORDER BY name"):
                images, decisions, readers = conn.execute(
                    "SELECT count(DISTINCT image_key), count(*), count(DISTINCT reader) "
                    "FROM image_labels WHERE label_set_id = ?", (set_id,)).fetchone()
                regions, region_images = conn.execute(
                    "SELECT count(*), count(DISTINCT image_key) FROM regions "
                    "WHERE label_set_id = ?", (set_id,)).fetchone()
                result[name] = {"images": images, "decisions": decisions, "readers": readers,
                                "regions": regions, "region_images": region_images}
            return result

        return self._read(query)

    # -- bulk import (one action, one transaction)

    def import_labels(self, label_set: str, labels: Sequence[LabelEntry] = (),
                      regions: Sequence[RegionEntry] = (), *,
                      classes: Sequence[str] | None = None, multi_label: bool = False,
                      description: str = "", detail: dict | None = None) -> ImportResult:
        """Write imported decisions and regions as one action (one undo step).

        The label set is created with ``classes`` if it does not exist; ``classes`` not yet in
        an existing set are appended. Each entry replaces that reader's decision on the image.
        Entries must already be validated (see :mod:`medviewer.labels.io`); an invalid one
        aborts the whole import and nothing is written.
        """
        with self._transaction() as conn:
            created = False
            added: tuple[str, ...] = ()
            try:
                current_set = self._get_set(conn, label_set)
            except UnknownLabelSetError:
                if not classes:
                    raise
                self._insert_label_set(conn, check_name("label set name", label_set),
                                       check_classes(classes), multi_label, description)
                current_set = self._get_set(conn, label_set)
                created = True
            if classes and not created:
                added = tuple(c for c in check_classes(classes)
                              if c not in current_set.classes)
                if added:
                    self._append_classes(conn, current_set, added)
                    current_set = self._get_set(conn, label_set)
            action = self._new_action(conn, "import", current_set.id, detail=detail)
            written = unchanged = 0
            for entry in labels:
                reader = check_name("reader name", entry.reader)
                check_source(entry.source)
                ordered = current_set.ordered(entry.classes)
                ai = current_set.ordered(entry.ai_classes, what="AI suggestion") \
                    if entry.ai_classes is not None else None
                self._upsert_image(conn, entry.image)
                old = self._label_state(conn, current_set.id, entry.image.key, reader)
                if old is not None and (tuple(old["classes"]), old["source"], old["note"],
                                        tuple_or_none(old["ai_classes"])) == (
                        ordered, entry.source, entry.note, ai):
                    unchanged += 1
                    continue
                new = {"classes": list(ordered), "source": entry.source, "note": entry.note,
                       "ai_classes": list(ai) if ai is not None else None,
                       "labelled_at": now_iso(), "action_id": action}
                self._write_label(conn, current_set.id, entry.image.key, reader, new)
                self._record(conn, action, "image_label", current_set.id, entry.image.key,
                             reader, None, old, new)
                written += 1
            for region in regions:
                reader = check_name("reader name", region.reader)
                check_source(region.source)
                (class_name,) = current_set.ordered([region.class_name], what="region")
                self._upsert_image(conn, region.image)
                check_region_geometry(region.geometry, region.frame,
                                self._image_size(conn, region.image.key))
                at = now_iso()
                state = {"label_set_id": current_set.id, "image_key": region.image.key,
                         "reader": reader, "class_name": class_name,
                         **geometry_state(region.geometry), "frame": int(region.frame),
                         "source": region.source, "note": region.note, "created_at": at,
                         "updated_at": at, "action_id": action}
                state["id"] = self._write_region(conn, None, state)
                self._record(conn, action, "region", current_set.id, region.image.key, reader,
                             state["id"], None, state)
        return ImportResult(action, written, unchanged, len(regions), created, added)
