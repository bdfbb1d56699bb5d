"""The label history read back, and undo/redo over rows of any kind.

Every action is one unit of work (:mod:`medviewer.labels.unit_of_work`) that appended its
``actions`` row and, per row it changed, the row's kind, key and old and new state to
``changes``; triggers keep both tables append-only. Undo writes the old states of the
reader's newest not-yet-undone action back as a new ``undo`` action, redo does the same for
the newest undo; both refuse, changing nothing, when a row was changed since. Neither knows
any table: each change is reverted through its row kind (read, write, delete), so a new
kind of row is undoable once it is registered in the store's :class:`RowKinds`.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from medviewer.labels.connection import StoreConnection
from medviewer.labels.errors import UndoConflictError
from medviewer.labels.label_sets import find_label_set, label_set_name
from medviewer.labels.unit_of_work import Actions, RowKey, RowKinds, UnitOfWork
from medviewer.labels.values import HistoryEntry, UndoResult

# Actions a reader makes (each one undo step); "undo" and "redo" are their reversals.
EDIT_KINDS = ("set_label", "toggle_class", "clear_label", "set_note", "add_region",
              "update_region", "delete_region", "import", "add_measurement",
              "update_measurement", "delete_measurement")
_UNDOABLE_SQL = ", ".join(f"'{kind}'" for kind in EDIT_KINDS)


class History:
    """Undo, redo and the history queries; the contract every row kind keeps is
    :class:`~medviewer.labels.unit_of_work.RowKind`'s."""

    def __init__(self, db: StoreConnection, actions: Actions, kinds: RowKinds) -> None:
        self._db = db
        self._actions = actions
        self._kinds = kinds

    def undo(self, reader: str, label_set: str | None = None, *,
             row_kind: str | None = None) -> UndoResult | None:
        """Undo the reader's last not-yet-undone action, optionally only among actions in
        one label set and/or that changed rows of one kind (e.g. ``"measurement"``). None
        when there is nothing to undo; :class:`UndoConflictError` (and nothing changed)
        when something the action wrote was changed since."""
        return self._revert_latest(
            reader, label_set, row_kind, "undo",
            f"SELECT id, kind, label_set_id FROM actions a WHERE actor = ? "
            f"AND kind IN ({_UNDOABLE_SQL}, 'redo') "
            f"AND NOT EXISTS (SELECT 1 FROM actions u WHERE u.undoes = a.id)")

    def redo(self, reader: str, label_set: str | None = None, *,
             row_kind: str | None = None) -> UndoResult | None:
        """Re-apply what the reader's last undo took back (itself undoable), with the same
        filters as :meth:`undo`. None when there is nothing to redo: no undo yet, every undo
        redone, or a new edit by the reader since the undo (as in any editor, a new edit,
        of any kind, ends the redo chain)."""
        return self._revert_latest(
            reader, label_set, row_kind, "redo",
            f"SELECT id, kind, label_set_id FROM actions a WHERE actor = ? AND kind = 'undo' "
            f"AND NOT EXISTS (SELECT 1 FROM actions r WHERE r.undoes = a.id) "
            f"AND NOT EXISTS (SELECT 1 FROM actions n WHERE n.actor = a.actor "
            f"AND n.id > a.id AND n.kind IN ({_UNDOABLE_SQL}))")

    def _revert_latest(self, reader: str, label_set: str | None, row_kind: str | None,
                       as_kind: str, candidates_sql: str) -> UndoResult | None:
        """Revert the newest action ``candidates_sql`` selects for the reader (one unit of
        work), or None when it selects nothing (then nothing is written)."""
        if row_kind is not None and self._kinds.get(row_kind) is None:
            raise ValueError(f"unknown row kind {row_kind!r}")
        with self._actions.begin(as_kind) as work:
            sql, params = candidates_sql, [reader]
            if label_set is not None:
                sql += " AND label_set_id = ?"
                params.append(find_label_set(work.conn, label_set).id)
            if row_kind is not None:
                sql += (" AND EXISTS (SELECT 1 FROM changes c WHERE c.action_id = a.id "
                        "AND c.target = ?)")
                params.append(row_kind)
            row = work.conn.execute(sql + " ORDER BY id DESC LIMIT 1", params).fetchone()
            if row is None:
                return None
            return self._revert(work, *row)

    def _revert(self, work: UnitOfWork, action_id: int, kind: str,
                action_set: int | None) -> UndoResult:
        """Write back every change of ``action_id`` in ``work``, or raise
        :class:`UndoConflictError` if any of its rows was changed since."""
        changes = work.conn.execute(
            "SELECT target, label_set_id, image_key, reader, row_id, old, new "
            "FROM changes WHERE action_id = ? ORDER BY id DESC", (action_id,)).fetchall()
        work.undoes, work.label_set_id = action_id, action_set
        what = "the last undo" if kind == "undo" else f"the last {kind.replace('_', ' ')}"
        done = {"undo": "undone", "redo": "redone"}[work.kind]
        for target, c_set, image_key, c_reader, row_id, old_text, new_text in changes:
            rows = self._kinds[target]
            key = RowKey(c_set, image_key, c_reader, row_id)
            old = _stored_state(rows, old_text)
            new = _stored_state(rows, new_text)
            current = work.read(rows, key)
            if current != new:
                raise UndoConflictError(f"Cannot {work.kind} {what}: "
                                        f"{rows.changed_since(key, current)}; nothing was "
                                        f"{done}.")
            work.put(rows, key, old, old=current)
        keys = tuple(dict.fromkeys(key.image_key for key in work.changed))
        return UndoResult(action_id, work.action_id, kind,
                          label_set_name(work.conn, action_set), keys)

    def history(self, label_set: str | None = None, image_key: str | None = None, *,
                reader: str | None = None, limit: int | None = None,
                in_label_set: bool = False) -> list[HistoryEntry]:
        """Changes, newest first; filter by label set, image and/or the row's reader;
        ``in_label_set`` keeps to changes in some label set (not measurements)."""
        def query(conn: sqlite3.Connection) -> list[HistoryEntry]:
            sql = ("SELECT a.id, a.actor, a.kind, a.created_at, a.undoes, c.target, s.name, "
                   "c.image_key, c.reader, c.row_id, c.old, c.new FROM changes c "
                   "JOIN actions a ON a.id = c.action_id "
                   "LEFT JOIN label_sets s ON s.id = c.label_set_id WHERE 1")
            params: list[Any] = []
            if label_set is not None:
                sql += " AND c.label_set_id = ?"
                params.append(find_label_set(conn, label_set).id)
            if in_label_set:
                sql += " AND c.label_set_id IS NOT NULL"
            if image_key is not None:
                sql += " AND c.image_key = ?"
                params.append(image_key)
            if reader is not None:
                sql += " AND c.reader = ?"
                params.append(reader)
            sql += " ORDER BY c.id DESC"
            if limit is not None:
                sql += f" LIMIT {int(limit)}"
            entries = []
            for r in conn.execute(sql, params):
                rows = self._kinds.get(r[5])
                region_id = r[9] if r[5] == "region" else None
                entries.append(HistoryEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7],
                                            r[8], region_id, _stored_state(rows, r[10]),
                                            _stored_state(rows, r[11]), r[9]))
            return entries

        return self._db.read(query)


def _stored_state(rows: Any, text: str | None) -> dict | None:
    """A state from the history, completed by its row kind with keys added since."""
    if text is None:
        return None
    state = json.loads(text)
    return rows.from_history(state) if rows is not None else state
