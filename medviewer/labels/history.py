"""The label history: each action and the changes it made; undo, redo and reading it back.

Every writing method of the store records one action (``_new_action``, the actor is the
store's reader) and, for each row it changes, the row's old and new state (``_record``);
triggers keep both tables append-only. Undo writes the old states of the reader's newest
not-yet-undone action back as a new action, redo does the same for the newest undo; both
refuse, changing nothing, when a row was changed since.

:class:`HistoryMixin` is part of :class:`~medviewer.labels.store.LabelStore`: it uses the
store's transactions (:class:`~medviewer.labels.connection.StoreConnection`), label set
look-ups and its methods that read and write label and region rows.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from medviewer.labels.errors import UndoConflictError
from medviewer.labels.rows import REGION_COLUMNS, json_text, region_state_from_row
from medviewer.labels.values import HistoryEntry, UndoResult, now_iso

# Actions a reader makes (each one undo step); "undo" and "redo" are their reversals.
EDIT_KINDS = ("set_label", "toggle_class", "clear_label", "set_note", "add_region",
              "update_region", "delete_region", "import")
_UNDOABLE_SQL = ", ".join(f"'{kind}'" for kind in EDIT_KINDS)


class HistoryMixin:
    """Recording actions, undo/redo and the history queries of the label store."""

    # -- recording actions

    def _new_action(self, conn: sqlite3.Connection, kind: str, set_id: int | None,
                    undoes: int | None = None, detail: dict | None = None) -> int:
        cursor = conn.execute(
            "INSERT INTO actions (actor, kind, label_set_id, created_at, undoes, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (self.reader, kind, set_id, now_iso(), undoes,
             json_text(detail) if detail is not None else None))
        return int(cursor.lastrowid)

    def _record(self, conn: sqlite3.Connection, action: int, target: str, set_id: int,
                key: str, reader: str, region_id: int | None, old: dict | None,
                new: dict | None) -> None:
        conn.execute(
            "INSERT INTO changes (action_id, target, label_set_id, image_key, reader, "
            "region_id, old, new) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (action, target, set_id, key, reader, region_id,
             json_text(old) if old is not None else None,
             json_text(new) if new is not None else None))

    # -- undo and history

    def undo(self, reader: str | None = None, label_set: str | None = None) -> UndoResult | None:
        """Undo the last not-yet-undone action of ``reader`` (default: this store's reader),
        optionally only among actions in one label set. None when there is nothing to undo.

        Raises :class:`UndoConflictError` (and changes nothing) when something the action
        wrote was changed since by someone else.
        """
        return self._revert_latest(
            reader, label_set, "undo",
            f"SELECT id, kind, label_set_id FROM actions a WHERE actor = ? "
            f"AND kind IN ({_UNDOABLE_SQL}, 'redo') "
            f"AND NOT EXISTS (SELECT 1 FROM actions u WHERE u.undoes = a.id)")

    def redo(self, reader: str | None = None, label_set: str | None = None) -> UndoResult | None:
        """Re-apply what the last undo of ``reader`` took back (itself undoable). None when
        there is nothing to redo: no undo yet, every undo redone, or a new edit by ``reader``
        since the undo (as in any editor, a new edit ends the redo chain).

        Raises :class:`UndoConflictError` (and changes nothing) when something the undo
        restored was changed since by someone else.
        """
        return self._revert_latest(
            reader, label_set, "redo",
            f"SELECT id, kind, label_set_id FROM actions a WHERE actor = ? AND kind = 'undo' "
            f"AND NOT EXISTS (SELECT 1 FROM actions r WHERE r.undoes = a.id) "
            f"AND NOT EXISTS (SELECT 1 FROM actions n WHERE n.actor = a.actor "
            f"AND n.id > a.id AND n.kind IN ({_UNDOABLE_SQL}))")

    def _revert_latest(self, reader: str | None, label_set: str | None, as_kind: str,
                       candidates_sql: str) -> UndoResult | None:
        """Revert the newest action ``candidates_sql`` selects for the reader (one
        transaction), or None when it selects nothing."""
        with self._transaction() as conn:
            sql, params = candidates_sql, [self._reader(reader)]
            if label_set is not None:
                sql += " AND label_set_id = ?"
                params.append(self._get_set(conn, label_set).id)
            row = conn.execute(sql + " ORDER BY id DESC LIMIT 1", params).fetchone()
            if row is None:
                return None
            return self._revert(conn, *row, as_kind=as_kind)

    def _revert(self, conn: sqlite3.Connection, action_id: int, kind: str,
                action_set: int | None, *, as_kind: str) -> UndoResult:
        """Write back every change of ``action_id`` as a new ``as_kind`` action, or raise
        :class:`UndoConflictError` if any of its rows was changed since."""
        changes = conn.execute(
            "SELECT target, label_set_id, image_key, reader, region_id, old, new "
            "FROM changes WHERE action_id = ? ORDER BY id DESC", (action_id,)).fetchall()
        revert_id = self._new_action(conn, as_kind, action_set, undoes=action_id)
        what = "the last undo" if kind == "undo" else f"the last {kind.replace('_', ' ')}"
        done = {"undo": "undone", "redo": "redone"}[as_kind]
        keys = []
        for target, c_set, key, c_reader, region_id, old_text, new_text in changes:
            old = _stored_state(target, old_text)
            new = _stored_state(target, new_text)
            if target == "image_label":
                current = self._label_state(conn, c_set, key, c_reader)
                if current != new:
                    raise UndoConflictError(
                        f"Cannot {as_kind} {what}: the label of reader '{c_reader}' on an "
                        f"image was changed since (action "
                        f"{current['action_id'] if current else 'clear'}); nothing was "
                        f"{done}.")
                if old is None:
                    self._delete_label(conn, c_set, key, c_reader)
                else:
                    self._write_label(conn, c_set, key, c_reader, old)
            else:
                row_now = conn.execute(f"SELECT {REGION_COLUMNS} FROM regions WHERE id = ?",
                                       (region_id,)).fetchone()
                current = region_state_from_row(row_now) if row_now else None
                if current != new:
                    raise UndoConflictError(
                        f"Cannot {as_kind} {what}: region {region_id} was changed since; "
                        f"nothing was {done}.")
                if old is None:
                    conn.execute("DELETE FROM regions WHERE id = ?", (region_id,))
                else:
                    self._write_region(conn, region_id, old)
            self._record(conn, revert_id, target, c_set, key, c_reader, region_id, new, old)
            keys.append(key)
        set_name = self._set_name(conn, action_set)
        return UndoResult(action_id, revert_id, kind, set_name, tuple(dict.fromkeys(keys)))

    def history(self, label_set: str | None = None, image_key: str | None = None, *,
                reader: str | None = None, limit: int | None = None) -> list[HistoryEntry]:
        """Changes, newest first; filter by label set, image and/or the label's reader."""
        def query(conn: sqlite3.Connection) -> list[HistoryEntry]:
            sql = ("SELECT a.id, a.actor, a.kind, a.created_at, a.undoes, c.target, s.name, "
                   "c.image_key, c.reader, c.region_id, c.old, c.new FROM changes c "
                   "JOIN actions a ON a.id = c.action_id "
                   "LEFT JOIN label_sets s ON s.id = c.label_set_id WHERE 1")
            params: list[Any] = []
            if label_set is not None:
                sql += " AND c.label_set_id = ?"
                params.append(self._get_set(conn, label_set).id)
            if image_key is not None:
                sql += " AND c.image_key = ?"
                params.append(image_key)
            if reader is not None:
                sql += " AND c.reader = ?"
                params.append(reader)
            sql += " ORDER BY c.id DESC"
            if limit is not None:
                sql += f" LIMIT {int(limit)}"
            return [HistoryEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                                 _stored_state(r[5], r[10]), _stored_state(r[5], r[11]))
                    for r in conn.execute(sql, params)]

        return self._read(query)


# Keys later schema versions added to a stored state, with the value older rows imply.
_STATE_DEFAULTS = {"image_label": {"ai_classes": None}, "region": {}}


def _stored_state(target: str, text: str | None) -> dict | None:
    """A state from the history, completed with keys added since it was written."""
    if text is None:
        return None
    state = json.loads(text)
    for key, value in _STATE_DEFAULTS.get(target, {}).items():
        state.setdefault(key, value)
    return state
