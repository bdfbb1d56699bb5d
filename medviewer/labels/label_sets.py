"""Label sets: a name, an ordered class list, single- or multi-label.

:func:`find_label_set` and :func:`label_set_by_id` look a set up inside a caller's
transaction (the unit of work and the other parts use them); :class:`LabelSets` creates
sets, appends classes and lists them. Creating a set or adding classes is recorded in the
history (kinds ``create_label_set``, ``add_classes``) but is not an undo step.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from medviewer.labels.connection import StoreConnection
from medviewer.labels.errors import InvalidLabelError, UnknownLabelSetError
from medviewer.labels.unit_of_work import Actions, UnitOfWork
from medviewer.labels.values import LabelSet, check_classes, check_name, now_iso


def find_label_set(conn: sqlite3.Connection, name: str) -> LabelSet:
    """The label set called ``name``; :class:`UnknownLabelSetError` lists the others."""
    row = conn.execute("SELECT id, name, multi_label, description, created_at "
                       "FROM label_sets WHERE name = ?", (name,)).fetchone()
    if row is None:
        existing = [r[0] for r in conn.execute("SELECT name FROM label_sets ORDER BY name")]
        raise UnknownLabelSetError(name, existing)
    classes = tuple(r[0] for r in conn.execute(
        "SELECT name FROM classes WHERE label_set_id = ? ORDER BY position, id", (row[0],)))
    return LabelSet(row[0], row[1], classes, bool(row[2]), row[3], row[4])


def label_set_name(conn: sqlite3.Connection, set_id: int | None) -> str | None:
    if set_id is None:
        return None
    row = conn.execute("SELECT name FROM label_sets WHERE id = ?", (set_id,)).fetchone()
    return row[0] if row else None


def label_set_by_id(conn: sqlite3.Connection, set_id: int) -> LabelSet:
    name = label_set_name(conn, set_id)
    if name is None:
        raise UnknownLabelSetError(f"(id {set_id})", [])
    return find_label_set(conn, name)


class LabelSets:
    """Creating label sets, appending classes, reading them back."""

    def __init__(self, db: StoreConnection, actions: Actions) -> None:
        self._db = db
        self._actions = actions

    def create_label_set(self, name: str, classes: Sequence[str], *, multi_label: bool = False,
                         description: str = "") -> LabelSet:
        name = check_name("label set name", name)
        class_names = check_classes(classes)
        with self._actions.begin("create_label_set") as work:
            if work.conn.execute("SELECT 1 FROM label_sets WHERE name = ?",
                                 (name,)).fetchone():
                raise InvalidLabelError(f"A label set named '{name}' already exists.")
            return self.insert(work, name, class_names, multi_label, description)

    def insert(self, work: UnitOfWork, name: str, classes: Sequence[str], multi_label: bool,
               description: str) -> LabelSet:
        """Create a checked, new label set within ``work`` (also an import's)."""
        cursor = work.conn.execute(
            "INSERT INTO label_sets (name, multi_label, description, created_at) "
            "VALUES (?, ?, ?, ?)", (name, int(bool(multi_label)), description or "", now_iso()))
        set_id = cursor.lastrowid
        work.conn.executemany(
            "INSERT INTO classes (label_set_id, position, name) VALUES (?, ?, ?)",
            [(set_id, i, c) for i, c in enumerate(classes)])
        work.log_action("create_label_set", set_id,
                        {"name": name, "classes": list(classes),
                         "multi_label": bool(multi_label)})
        return find_label_set(work.conn, name)

    def add_classes(self, label_set: str, classes: Sequence[str]) -> LabelSet:
        """Append classes to a label set's list (existing ones are left as they are)."""
        with self._actions.begin("add_classes", label_set) as work:
            current = work.label_set
            new = [c for c in check_classes(classes) if c not in current.classes]
            return self.append(work, current, new) if new else current

    def append(self, work: UnitOfWork, current: LabelSet, new: Sequence[str]) -> LabelSet:
        """Append classes not yet in ``current`` within ``work``; the set as it is now."""
        start = len(current.classes)
        work.conn.executemany(
            "INSERT INTO classes (label_set_id, position, name) VALUES (?, ?, ?)",
            [(current.id, start + i, c) for i, c in enumerate(new)])
        work.log_action("add_classes", current.id, {"classes": list(new)})
        return find_label_set(work.conn, current.name)

    def label_set(self, name: str) -> LabelSet:
        return self._db.read(lambda conn: find_label_set(conn, name))

    def label_sets(self) -> list[LabelSet]:
        def query(conn: sqlite3.Connection) -> list[LabelSet]:
            names = [r[0] for r in conn.execute("SELECT name FROM label_sets ORDER BY name")]
            return [find_label_set(conn, n) for n in names]

        return self._db.read(query)
