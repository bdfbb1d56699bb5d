"""Region labels: rectangles, ellipses and polygons a reader draws on an image, each with
one class; adding, changing, deleting and listing them.

:class:`RegionsMixin` is part of :class:`~medviewer.labels.store.LabelStore`: every change
is one transaction and one action in the history (:mod:`medviewer.labels.history`).
Coordinates are in the original, un-rotated stored pixel grid.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from medviewer.labels.errors import InvalidLabelError
from medviewer.labels.rows import (
    REGION_COLUMNS,
    geometry_state,
    json_text,
    region_from_state,
    region_state_from_row,
)
from medviewer.labels.values import (
    Geometry,
    ImageRef,
    Region,
    check_region_geometry,
    check_source,
    now_iso,
)


class RegionsMixin:
    """The label store's region methods."""

    # -- regions

    def add_region(self, label_set: str, image: ImageRef, class_name: str, geometry: Geometry,
                   *, frame: int = 0, reader: str | None = None, source: str = "manual",
                   note: str | None = None) -> Region:
        reader = self._reader(reader)
        check_source(source)
        with self._transaction() as conn:
            current_set = self._get_set(conn, label_set)
            (class_name,) = current_set.ordered([class_name], what="region")
            self._upsert_image(conn, image)
            check_region_geometry(geometry, frame, self._image_size(conn, image.key))
            action = self._new_action(conn, "add_region", current_set.id)
            at = now_iso()
            state = {"label_set_id": current_set.id, "image_key": image.key, "reader": reader,
                     "class_name": class_name, **geometry_state(geometry), "frame": int(frame),
                     "source": source, "note": note, "created_at": at, "updated_at": at,
                     "action_id": action}
            region_id = self._write_region(conn, None, state)
            state["id"] = region_id
            self._record(conn, action, "region", current_set.id, image.key, reader, region_id,
                         None, state)
        return region_from_state(current_set.name, state)

    def update_region(self, region_id: int, *, class_name: str | None = None,
                      geometry: Geometry | None = None, note: str | None = None,
                      source: str | None = None) -> Region:
        """Move/resize a region or change its class, note or source (None = keep)."""
        with self._transaction() as conn:
            old = self._region_state(conn, region_id)
            set_name = self._set_name(conn, old["label_set_id"])
            current_set = self._get_set(conn, set_name)
            new = dict(old)
            if class_name is not None:
                (new["class_name"],) = current_set.ordered([class_name], what="region")
            if geometry is not None:
                check_region_geometry(geometry, old["frame"], self._image_size(conn, old["image_key"]))
                new.update(geometry_state(geometry))
            if note is not None:
                new["note"] = note or None
            if source is not None:
                new["source"] = check_source(source)
            if new == old:
                return region_from_state(current_set.name, old)
            action = self._new_action(conn, "update_region", current_set.id)
            new.update(updated_at=now_iso(), action_id=action)
            self._write_region(conn, region_id, new)
            self._record(conn, action, "region", current_set.id, old["image_key"],
                         old["reader"], region_id, old, new)
        return region_from_state(current_set.name, new)

    def delete_region(self, region_id: int) -> None:
        with self._transaction() as conn:
            old = self._region_state(conn, region_id)
            action = self._new_action(conn, "delete_region", old["label_set_id"])
            conn.execute("DELETE FROM regions WHERE id = ?", (region_id,))
            self._record(conn, action, "region", old["label_set_id"], old["image_key"],
                         old["reader"], region_id, old, None)

    def regions(self, label_set: str, image_key: str | None = None, *,
                reader: str | None = None) -> list[Region]:
        def query(conn: sqlite3.Connection) -> list[Region]:
            current_set = self._get_set(conn, label_set)
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

        return self._read(query)

    def _region_state(self, conn: sqlite3.Connection, region_id: int) -> dict:
        row = conn.execute(f"SELECT {REGION_COLUMNS} FROM regions WHERE id = ?",
                           (region_id,)).fetchone()
        if row is None:
            raise InvalidLabelError(f"There is no region with id {region_id} in the label "
                                    f"store {self.path}.")
        return region_state_from_row(row)

    @staticmethod
    def _image_size(conn: sqlite3.Connection, key: str) -> tuple[int, int] | None:
        row = conn.execute("SELECT width, height FROM images WHERE image_key = ?",
                           (key,)).fetchone()
        return (row[0], row[1]) if row and row[0] and row[1] else None

    @staticmethod
    def _write_region(conn: sqlite3.Connection, region_id: int | None, state: dict) -> int:
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
            (region_id, *values))
        return int(cursor.lastrowid) if region_id is None else region_id
