"""Region labels: rectangles, ellipses and polygons a reader draws on an image, each with
one class; adding, changing, deleting and listing them.

:data:`REGION_ROWS` is the row kind of ``regions`` (known by its id; a deleted region's id
is never reused, so undoing the delete brings it back under the same id). :class:`Regions`
makes each change one unit of work (:mod:`medviewer.labels.unit_of_work`). Coordinates are
in the original, un-rotated stored pixel grid.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from medviewer.labels.connection import StoreConnection
from medviewer.labels.errors import InvalidLabelError
from medviewer.labels.images import image_size, upsert_image
from medviewer.labels.label_sets import find_label_set, label_set_by_id
from medviewer.labels.rows import (
    REGION_COLUMNS,
    geometry_state,
    json_text,
    region_from_state,
    region_state_from_row,
)
from medviewer.labels.unit_of_work import Actions, IdRowKind, RowKey, UnitOfWork
from medviewer.labels.values import (
    Geometry,
    ImageRef,
    LabelSet,
    Region,
    check_region_geometry,
    check_source,
    now_iso,
)


class RegionRows(IdRowKind):
    """The row kind of regions (``regions``), known by the region's id."""

    target = "region"
    table = "regions"

    @staticmethod
    def key_of(state: dict) -> RowKey:
        return RowKey(state["label_set_id"], state["image_key"], state["reader"],
                      state.get("id"))

    @staticmethod
    def read_id(conn: sqlite3.Connection, region_id: int | None) -> dict | None:
        row = conn.execute(f"SELECT {REGION_COLUMNS} FROM regions WHERE id = ?",
                           (region_id,)).fetchone()
        return region_state_from_row(row) if row is not None else None

    def write(self, conn: sqlite3.Connection, key: RowKey,
              state: dict) -> tuple[RowKey, dict]:
        values = (state["label_set_id"], state["image_key"], state["reader"],
                  state["class_name"], state["shape"], state["x"], state["y"], state["width"],
                  state["height"],
                  json_text(state["points"]) if state["points"] is not None else None,
                  state["frame"], state["source"], state["note"], state["created_at"],
                  state["updated_at"], state["action_id"])
        cursor = conn.execute(
            "INSERT OR REPLACE INTO regions (id, label_set_id, image_key, reader, class_name, "
            "shape, x, y, width, height, points, frame, source, note, created_at, updated_at, "
            "action_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key.row_id, *values))
        return self.written(key, cursor, state)


REGION_ROWS = RegionRows()


class Regions:
    """The label store's region actions and queries."""

    def __init__(self, db: StoreConnection, actions: Actions) -> None:
        self._db = db
        self._actions = actions

    def add(self, work: UnitOfWork, label_set: LabelSet, image: ImageRef, reader: str,
            class_name: str, geometry: Geometry, frame: int, source: str,
            note: str | None) -> dict:
        """Add a region within ``work`` (a drawing or an import); its stored state."""
        check_source(source)
        (class_name,) = label_set.ordered([class_name], what="region")
        upsert_image(work.conn, image)
        check_region_geometry(geometry, frame, image_size(work.conn, image.key))
        at = now_iso()
        state = {"label_set_id": label_set.id, "image_key": image.key, "reader": reader,
                 "class_name": class_name, **geometry_state(geometry), "frame": int(frame),
                 "source": source, "note": note, "created_at": at, "updated_at": at,
                 "action_id": work.action_id}
        _, stored = work.put(REGION_ROWS, REGION_ROWS.key_of(state), state, old=None)
        return stored

    def add_region(self, label_set: str, image: ImageRef, class_name: str, geometry: Geometry,
                   *, frame: int = 0, reader: str, source: str = "manual",
                   note: str | None = None) -> Region:
        with self._actions.begin("add_region", label_set) as work:
            state = self.add(work, work.label_set, image, reader, class_name, geometry, frame,
                             source, note)
        return region_from_state(work.label_set.name, state)

    def update_region(self, region_id: int, *, class_name: str | None = None,
                      geometry: Geometry | None = None, note: str | None = None,
                      source: str | None = None) -> Region:
        """Move/resize a region or change its class, note or source (None = keep)."""
        with self._actions.begin("update_region") as work:
            key, old = self._existing(work, region_id)
            work.label_set = current_set = label_set_by_id(work.conn, key.label_set_id)
            new = dict(old)
            if class_name is not None:
                (new["class_name"],) = current_set.ordered([class_name], what="region")
            if geometry is not None:
                check_region_geometry(geometry, old["frame"],
                                      image_size(work.conn, old["image_key"]))
                new.update(geometry_state(geometry))
            if note is not None:
                new["note"] = note or None
            if source is not None:
                new["source"] = check_source(source)
            if new == old:
                return region_from_state(current_set.name, old)
            new.update(updated_at=now_iso(), action_id=work.action_id)
            work.put(REGION_ROWS, key, new, old=old)
        return region_from_state(current_set.name, new)

    def delete_region(self, region_id: int) -> None:
        with self._actions.begin("delete_region") as work:
            key, old = self._existing(work, region_id)
            work.label_set_id = key.label_set_id
            work.put(REGION_ROWS, key, None, old=old)

    def _existing(self, work: UnitOfWork, region_id: int) -> tuple[RowKey, dict]:
        state = REGION_ROWS.read_id(work.conn, region_id)
        if state is None:
            raise InvalidLabelError(f"There is no region with id {region_id} in the label "
                                    f"store {self._db.path}.")
        return REGION_ROWS.key_of(state), state

    def regions(self, label_set: str, image_key: str | None = None, *,
                reader: str | None = None) -> list[Region]:
        def query(conn: sqlite3.Connection) -> list[Region]:
            current_set = find_label_set(conn, label_set)
            sql = f"SELECT {REGION_COLUMNS} FROM regions WHERE label_set_id = ?"
            params: list[Any] = [current_set.id]
            if image_key is not None:
                sql += " AND image_key = ?"
                params.append(image_key)
            if reader is not None:
                sql += " AND reader = ?"
                params.append(reader)
            rows = conn.execute(sql + " ORDER BY id", params).fetchall()
            return [region_from_state(current_set.name, region_state_from_row(r)) for r in rows]

        return self._db.read(query)
