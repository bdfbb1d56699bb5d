"""One user action, written as one unit of work: the transaction, the label set it is in,
every row it changes with its state before and after, and its record in the history.

Every write of the label store goes through :meth:`Actions.begin`::

    with actions.begin("set_label", label_set="pneumonia") as work:
        old = work.read(LABEL_ROWS, key)
        work.put(LABEL_ROWS, key, {..., "action_id": work.action_id}, old=old)

Leaving the block normally commits (one fsync); an exception rolls back everything the
action wrote, its history record included. The action's row in ``actions`` is written only
when first needed (:attr:`UnitOfWork.action_id`), so an action that changes nothing leaves
no trace in the history.

Rows are reached through their **row kind** (:class:`RowKind`): labels, regions and
measurements each say how to read, write and delete their rows by a :class:`RowKey`, so the
history, undo/redo and recovery work on any kind without knowing its table. A row kind's
state is a JSON-able dict (the form the history keeps in ``changes.old``/``changes.new``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NamedTuple, Protocol

from medviewer.labels.connection import StoreConnection
from medviewer.labels.rows import json_text
from medviewer.labels.values import LabelSet, now_iso


class RowKey(NamedTuple):
    """Which row of a kind: the identity columns the history's ``changes`` table keeps.

    ``row_id`` is the row's own id for kinds that have one (regions, measurements; None
    for a row not yet written); decisions are known by label set, image and reader.
    ``label_set_id`` is None for rows outside any label set (measurements). A named
    tuple, not a dataclass: an import builds one per row, and a tuple is built 2.5x faster.
    """

    label_set_id: int | None
    image_key: str
    reader: str
    row_id: int | None = None

    def with_id(self, row_id: int) -> "RowKey":
        return self._replace(row_id=row_id)


class RowKind(Protocol):
    """How one kind of row is read, written and deleted (the contract undo relies on).

    * ``read`` returns the row's state, or None when there is no such row;
    * ``write`` stores ``state`` as the row (insert or replace) and returns its key and the
      state as stored (a new row gets its id in both);
    * after ``write(key, s)``, ``read(key)`` equals the stored state; after ``delete``,
      ``read`` is None; writing a state read earlier restores the row exactly;
    * ``from_history`` completes a state an older version recorded (keys added since);
    * ``changed_since`` names the row for "Cannot undo ...: <it> was changed since".
    """

    target: str  # the name of the kind in the history (changes.target)
    table: str   # its table (recovery reports per table)

    def read(self, conn: sqlite3.Connection, key: RowKey) -> dict | None: ...

    def write(self, conn: sqlite3.Connection, key: RowKey,
              state: dict) -> tuple[RowKey, dict]: ...

    def delete(self, conn: sqlite3.Connection, key: RowKey) -> None: ...

    def from_history(self, state: dict) -> dict: ...

    def changed_since(self, key: RowKey, current: dict | None) -> str: ...


class IdRowKind:
    """What the row kinds known by their own id in ``table`` (regions, measurements) share;
    each adds ``key_of``, ``read_id`` and ``write`` (which ends with :meth:`written`)."""

    target: str
    table: str

    def read_id(self, conn: sqlite3.Connection, row_id: int | None) -> dict | None:
        raise NotImplementedError

    def read(self, conn: sqlite3.Connection, key: RowKey) -> dict | None:
        return self.read_id(conn, key.row_id)

    @staticmethod
    def written(key: RowKey, cursor: sqlite3.Cursor, state: dict) -> tuple[RowKey, dict]:
        """``write``'s answer: a new row gets the id SQLite gave it, in the key and state."""
        if key.row_id is None:
            key = key.with_id(int(cursor.lastrowid))
        return key, {**state, "id": key.row_id}

    def delete(self, conn: sqlite3.Connection, key: RowKey) -> None:
        conn.execute(f"DELETE FROM {self.table} WHERE id = ?", (key.row_id,))

    def from_history(self, state: dict) -> dict:
        return state

    def changed_since(self, key: RowKey, current: dict | None) -> str:
        return f"{self.target} {key.row_id} was changed since"


class RowKinds:
    """The row kinds a store knows, by their history name (``target``)."""

    def __init__(self, *kinds: RowKind) -> None:
        self._kinds: dict[str, RowKind] = {}
        for kind in kinds:
            self.register(kind)

    def register(self, kind: RowKind) -> None:
        if kind.target in self._kinds:
            raise ValueError(f"row kind {kind.target!r} is registered twice")
        self._kinds[kind.target] = kind

    def __getitem__(self, target: str) -> RowKind:
        return self._kinds[target]

    def get(self, target: str) -> RowKind | None:
        return self._kinds.get(target)

    def __iter__(self) -> Iterator[RowKind]:
        return iter(self._kinds.values())


def insert_action(conn: sqlite3.Connection, actor: str, kind: str, label_set_id: int | None,
                  *, undoes: int | None = None, detail: dict | None = None) -> int:
    """Append one row to ``actions`` (the history is append-only); returns its id."""
    cursor = conn.execute(
        "INSERT INTO actions (actor, kind, label_set_id, created_at, undoes, detail) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (actor, kind, label_set_id, now_iso(), undoes,
         json_text(detail) if detail is not None else None))
    return int(cursor.lastrowid)


class UnitOfWork:
    """One action inside its open transaction (made by :meth:`Actions.begin`).

    ``label_set``, ``label_set_id``, ``undoes`` and ``detail`` describe the action in the
    history; they may be set until the action is recorded (the first :attr:`action_id`).
    """

    def __init__(self, conn: sqlite3.Connection, actor: str, kind: str,
                 label_set: LabelSet | None = None, *, detail: dict | None = None,
                 undoes: int | None = None) -> None:
        self.conn = conn
        self.actor = actor
        self.kind = kind
        self._label_set = label_set
        self._label_set_id = label_set.id if label_set is not None else None
        self._detail = detail
        self._undoes = undoes
        self._action_id: int | None = None
        self.changed: list[RowKey] = []  # every row put, in order

    # -- what the history records about the action

    @property
    def label_set(self) -> LabelSet | None:
        return self._label_set

    @label_set.setter
    def label_set(self, value: LabelSet | None) -> None:
        self._describe()
        self._label_set = value
        self._label_set_id = value.id if value is not None else None

    @property
    def label_set_id(self) -> int | None:
        return self._label_set_id

    @label_set_id.setter
    def label_set_id(self, value: int | None) -> None:
        self._describe()
        self._label_set, self._label_set_id = None, value

    @property
    def undoes(self) -> int | None:
        return self._undoes

    @undoes.setter
    def undoes(self, value: int | None) -> None:
        self._describe()
        self._undoes = value

    def _describe(self) -> None:
        if self._action_id is not None:
            raise RuntimeError(f"action {self._action_id} is already recorded")

    @property
    def action_id(self) -> int:
        """The action's id; its ``actions`` row is written at the first use."""
        if self._action_id is None:
            self._action_id = insert_action(self.conn, self.actor, self.kind,
                                            self._label_set_id, undoes=self._undoes,
                                            detail=self._detail)
        return self._action_id

    @property
    def recorded(self) -> bool:
        return self._action_id is not None

    def log_action(self, kind: str, label_set_id: int | None, detail: dict) -> int:
        """Record a further action in this transaction that changes no undoable row
        (a label set created or given classes by an import)."""
        return insert_action(self.conn, self.actor, kind, label_set_id, detail=detail)

    # -- rows

    def read(self, rows: RowKind, key: RowKey) -> dict | None:
        return rows.read(self.conn, key)

    def put(self, rows: RowKind, key: RowKey, new: dict | None, *,
            old: dict | None) -> tuple[RowKey, dict | None]:
        """Make ``new`` the row's state (None deletes it) and record ``old -> new``.

        ``old`` is the state the caller read in this transaction (None: no row). Returns
        the row's key and state as stored (a new row's id filled in).
        """
        if new is None:
            rows.delete(self.conn, key)
        else:
            key, new = rows.write(self.conn, key, new)
        self.conn.execute(
            "INSERT INTO changes (action_id, target, label_set_id, image_key, reader, "
            "row_id, old, new) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (self.action_id, rows.target, key.label_set_id, key.image_key, key.reader,
             key.row_id, json_text(old) if old is not None else None,
             json_text(new) if new is not None else None))
        self.changed.append(key)
        return key, new


LabelSetLookup = Callable[[sqlite3.Connection, str], LabelSet]


class Actions:
    """Starts units of work on the store's connection, with the store's reader as actor."""

    def __init__(self, db: StoreConnection, actor: str, find_label_set: LabelSetLookup) -> None:
        self.db = db
        self.actor = actor
        self._find_label_set = find_label_set

    @contextmanager
    def begin(self, kind: str, label_set: str | None = None, *,
              detail: dict | None = None) -> Iterator[UnitOfWork]:
        """Open the transaction of one ``kind`` action (in ``label_set``, looked up inside
        it: an unknown name raises before anything is written)."""
        with self.db.transaction() as conn:
            current = self._find_label_set(conn, label_set) if label_set is not None else None
            yield UnitOfWork(conn, self.actor, kind, current, detail=detail)
