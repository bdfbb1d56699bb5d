"""Decisions: one reader's current classes for one image in one label set (an image label).

:data:`LABEL_ROWS` is the row kind of ``image_labels`` (key: label set, image, reader;
state: classes, source, note, AI suggestion, time, action). :class:`Decisions` sets, toggles
and clears decisions (each one unit of work, see :mod:`medviewer.labels.unit_of_work`) and
reads them back; :meth:`Decisions.decide` is the one place a decision is written, used by
these actions and by an import.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from medviewer.labels.connection import StoreConnection
from medviewer.labels.images import CHUNK, upsert_image
from medviewer.labels.label_sets import find_label_set
from medviewer.labels.rows import json_text, stored_classes, tuple_or_none
from medviewer.labels.unit_of_work import Actions, RowKey, UnitOfWork
from medviewer.labels.values import ImageLabel, ImageRef, LabelSet, check_source, now_iso


class LabelRows:
    """The row kind of decisions (``image_labels``), known by (label set, image, reader)."""

    target = "image_label"
    table = "image_labels"

    @staticmethod
    def key(set_id: int, image_key: str, reader: str) -> RowKey:
        return RowKey(set_id, image_key, reader)

    def read(self, conn: sqlite3.Connection, key: RowKey) -> dict | None:
        row = conn.execute(
            "SELECT classes, source, note, ai_classes, labelled_at, action_id FROM image_labels "
            "WHERE label_set_id = ? AND image_key = ? AND reader = ?",
            (key.label_set_id, key.image_key, key.reader)).fetchone()
        if row is None:
            return None
        return {"classes": json.loads(row[0]), "source": row[1], "note": row[2],
                "ai_classes": json.loads(row[3]) if row[3] is not None else None,
                "labelled_at": row[4], "action_id": row[5]}

    def write(self, conn: sqlite3.Connection, key: RowKey,
              state: dict) -> tuple[RowKey, dict]:
        conn.execute(
            "INSERT INTO image_labels (label_set_id, image_key, reader, classes, source, note, "
            "ai_classes, labelled_at, action_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (label_set_id, image_key, reader) DO UPDATE SET "
            "classes = excluded.classes, source = excluded.source, note = excluded.note, "
            "ai_classes = excluded.ai_classes, labelled_at = excluded.labelled_at, "
            "action_id = excluded.action_id",
            (key.label_set_id, key.image_key, key.reader, json_text(state["classes"]),
             state["source"], state["note"],
             json_text(state["ai_classes"]) if state["ai_classes"] is not None else None,
             state["labelled_at"], state["action_id"]))
        return key, state

    def delete(self, conn: sqlite3.Connection, key: RowKey) -> None:
        conn.execute("DELETE FROM image_labels WHERE label_set_id = ? AND image_key = ? "
                     "AND reader = ?", (key.label_set_id, key.image_key, key.reader))

    def from_history(self, state: dict) -> dict:
        # Schema 1 states had no AI suggestion.
        return {"ai_classes": None, **state}

    def changed_since(self, key: RowKey, current: dict | None) -> str:
        return (f"the label of reader '{key.reader}' on an image was changed since (action "
                f"{current['action_id'] if current else 'clear'})")


LABEL_ROWS = LabelRows()


def label_from_state(set_name: str, key: str, reader: str, state: dict,
                     path: str | None) -> ImageLabel:
    return ImageLabel(set_name, key, reader, tuple(state["classes"]), state["source"],
                      state["note"], state["labelled_at"], state["action_id"],
                      tuple_or_none(state["ai_classes"]), path)


class Decisions:
    """Each reader's decision per image: set, toggle, clear; current labels."""

    def __init__(self, db: StoreConnection, actions: Actions) -> None:
        self._db = db
        self._actions = actions

    # -- writing: one unit of work per action

    def decide(self, work: UnitOfWork, label_set: LabelSet, image_key: str, reader: str,
               classes: tuple[str, ...], source: str, note: str | None,
               ai_classes: tuple[str, ...] | None) -> tuple[dict, bool]:
        """Make ``classes`` (checked, in class-list order) the reader's decision within
        ``work``: (the stored state, whether anything changed). The same decision again
        writes nothing. The caller has stored the image's hints (``upsert_image``)."""
        key = LABEL_ROWS.key(label_set.id, image_key, reader)
        old = work.read(LABEL_ROWS, key)
        if old is not None and (tuple(old["classes"]), old["source"], old["note"],
                                tuple_or_none(old["ai_classes"])) == (classes, source, note,
                                                                      ai_classes):
            return old, False
        new = {"classes": list(classes), "source": source, "note": note,
               "ai_classes": list(ai_classes) if ai_classes is not None else None,
               "labelled_at": now_iso(), "action_id": work.action_id}
        work.put(LABEL_ROWS, key, new, old=old)
        return new, True

    def set_label(self, label_set: str, image: ImageRef, classes: str | Sequence[str], *,
                  reader: str, source: str = "manual", note: str | None = None,
                  ai_classes: Sequence[str] | None = None) -> ImageLabel:
        check_source(source)
        wanted = [classes] if isinstance(classes, str) else list(classes)
        with self._actions.begin("set_label", label_set) as work:
            current_set = work.label_set
            ordered = current_set.ordered(wanted)
            ai = current_set.ordered(ai_classes, what="AI suggestion") \
                if ai_classes is not None else None
            upsert_image(work.conn, image)
            state, _ = self.decide(work, current_set, image.key, reader, ordered, source,
                                   note, ai)
        return label_from_state(current_set.name, image.key, reader, state, image.path)

    def toggle_class(self, label_set: str, image: ImageRef, class_name: str, *, reader: str,
                     source: str = "manual") -> ImageLabel | None:
        check_source(source)
        with self._actions.begin("toggle_class", label_set) as work:
            current_set = work.label_set
            (wanted,) = current_set.ordered([class_name])
            upsert_image(work.conn, image)
            key = LABEL_ROWS.key(current_set.id, image.key, reader)
            old = work.read(LABEL_ROWS, key)
            have = list(old["classes"]) if old else []
            if wanted in have:
                have.remove(wanted)
            elif current_set.multi_label:
                have.append(wanted)
            else:
                have = [wanted]
            if not have:
                work.put(LABEL_ROWS, key, None, old=old)
                return None
            state, _ = self.decide(work, current_set, image.key, reader,
                                   current_set.ordered(have),
                                   source, old["note"] if old else None,
                                   tuple_or_none(old["ai_classes"]) if old else None)
        return label_from_state(current_set.name, image.key, reader, state, image.path)

    def clear_label(self, label_set: str, image_key: str, *, reader: str) -> bool:
        with self._actions.begin("clear_label", label_set) as work:
            key = LABEL_ROWS.key(work.label_set.id, image_key, reader)
            old = work.read(LABEL_ROWS, key)
            if old is None:
                return False
            work.put(LABEL_ROWS, key, None, old=old)
        return True

    # -- reading

    def current_labels(self, label_set: str, image_keys: Iterable[str] | None = None, *,
                       reader: str | None = None) -> list[ImageLabel]:
        keys = None if image_keys is None else list(dict.fromkeys(image_keys))

        def query(conn: sqlite3.Connection) -> list[ImageLabel]:
            current_set = find_label_set(conn, label_set)
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
                for start in range(0, len(keys), CHUNK):
                    chunk = keys[start:start + CHUNK]
                    marks = ",".join("?" * len(chunk))
                    rows += conn.execute(f"{sql} AND l.image_key IN ({marks})",
                                         base + chunk).fetchall()
                rows.sort(key=lambda r: (r[0], r[1]))
            return [ImageLabel(current_set.name, r[0], r[1], stored_classes(r[2]), r[3], r[4],
                               r[5], r[6], stored_classes(r[7]) if r[7] is not None else None,
                               r[8])
                    for r in rows]

        return self._db.read(query)

    def decisions(self, label_set: str) -> dict[str, dict[str, tuple[str, ...]]]:
        def query(conn: sqlite3.Connection) -> dict[str, dict[str, tuple[str, ...]]]:
            set_id = find_label_set(conn, label_set).id
            table: dict[str, dict[str, tuple[str, ...]]] = {}
            for key, reader, classes in conn.execute(
                    "SELECT image_key, reader, classes FROM image_labels WHERE label_set_id = ? "
                    "ORDER BY image_key, reader", (set_id,)):
                table.setdefault(key, {})[reader] = stored_classes(classes)
            return table

        return self._db.read(query)
