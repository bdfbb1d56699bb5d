"""Measurements and annotations: distances, angles, Cobb angles, rectangle and ellipse ROIs
and text a reader places on an image, kept so they come back when the image is reopened.

A measurement belongs to an image (and frame) and a reader, not to a label set. It keeps
its geometry in image pixels (column, row), the pixel spacing used and where that came
from, an optional label, and the values computed when it was stored (the store does not
recompute them: it has no pixels). :data:`MEASUREMENT_ROWS` is its row kind (known by id,
never reused); :class:`Measurements` makes each change one unit of work, so every change
is in the history and undoable like a label.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from medviewer.labels.connection import StoreConnection
from medviewer.labels.errors import InvalidLabelError
from medviewer.labels.images import image_size, upsert_image
from medviewer.labels.rows import (
    MEASUREMENT_COLUMNS,
    measurement_from_state,
    measurement_row_values,
    measurement_state_from_row,
)
from medviewer.labels.unit_of_work import Actions, IdRowKind, RowKey, UnitOfWork
from medviewer.labels.values import ImageRef, Measurement, check_measurement, now_iso


class MeasurementRows(IdRowKind):
    """The row kind of measurements (``measurements``), known by the measurement's id."""

    target = "measurement"
    table = "measurements"

    @staticmethod
    def key_of(state: dict) -> RowKey:
        return RowKey(None, state["image_key"], state["reader"], state.get("id"))

    @staticmethod
    def read_id(conn: sqlite3.Connection, measurement_id: int | None) -> dict | None:
        row = conn.execute(f"SELECT {MEASUREMENT_COLUMNS} FROM measurements WHERE id = ?",
                           (measurement_id,)).fetchone()
        return measurement_state_from_row(row) if row is not None else None

    def write(self, conn: sqlite3.Connection, key: RowKey,
              state: dict) -> tuple[RowKey, dict]:
        cursor = conn.execute(
            f"INSERT OR REPLACE INTO measurements ({MEASUREMENT_COLUMNS}) "
            f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key.row_id, *measurement_row_values(state)))
        return self.written(key, cursor, state)


MEASUREMENT_ROWS = MeasurementRows()

KEEP: Any = object()  # update_measurement's pixel_spacing: "leave it as it is" (None is a value)


class Measurements:
    """Adding, changing, deleting and listing a reader's measurements on images."""

    def __init__(self, db: StoreConnection, actions: Actions) -> None:
        self._db = db
        self._actions = actions

    def add_measurement(self, image: ImageRef, kind: str, points: Sequence[Sequence[float]],
                        *, reader: str, frame: int = 0,
                        pixel_spacing: Sequence[float] | None = None,
                        spacing_source: str = "none", label: str | None = None,
                        text: str | None = None,
                        values: Mapping[str, Any] | None = None) -> Measurement:
        with self._actions.begin("add_measurement") as work:
            upsert_image(work.conn, image)
            fields = check_measurement(kind, points, frame, pixel_spacing, spacing_source,
                                       label, text, values, image_size(work.conn, image.key))
            at = now_iso()
            state = {"image_key": image.key, "reader": reader, **fields, "created_at": at,
                     "updated_at": at, "action_id": work.action_id}
            _, stored = work.put(MEASUREMENT_ROWS, MEASUREMENT_ROWS.key_of(state), state,
                                 old=None)
        return measurement_from_state(stored)

    def update_measurement(self, measurement_id: int, *,
                           points: Sequence[Sequence[float]] | None = None,
                           pixel_spacing: Sequence[float] | None = KEEP,
                           spacing_source: str | None = None, label: str | None = None,
                           text: str | None = None,
                           values: Mapping[str, Any] | None = None) -> Measurement:
        """Move a measurement, change its label, text, spacing or values (None = keep; an
        empty label removes it). New points or a new spacing need their ``values``:
        the store keeps what was computed, it does not compute."""
        with self._actions.begin("update_measurement") as work:
            key, old = self._existing(work, measurement_id)
            if (pixel_spacing is KEEP) != (spacing_source is None):
                raise InvalidLabelError("A measurement's pixel spacing and its source are "
                                        "changed together.")
            geometry_changed = points is not None or spacing_source is not None
            if geometry_changed and values is None:
                raise InvalidLabelError(
                    f"Measurement {measurement_id} gets new points or a new pixel spacing: "
                    f"give the values computed for them too.")
            fields = check_measurement(
                old["kind"], points if points is not None else old["points"], old["frame"],
                old["pixel_spacing"] if spacing_source is None else pixel_spacing,
                spacing_source if spacing_source is not None else old["spacing_source"],
                old["label"] if label is None else label,
                old["text"] if text is None else text,
                old["values"] if values is None else values,
                image_size(work.conn, old["image_key"]))
            new = {**old, **fields}
            if new == old:
                return measurement_from_state(old)
            new.update(updated_at=now_iso(), action_id=work.action_id)
            work.put(MEASUREMENT_ROWS, key, new, old=old)
        return measurement_from_state(new)

    def delete_measurement(self, measurement_id: int) -> None:
        with self._actions.begin("delete_measurement") as work:
            key, old = self._existing(work, measurement_id)
            work.put(MEASUREMENT_ROWS, key, None, old=old)

    def _existing(self, work: UnitOfWork, measurement_id: int) -> tuple[RowKey, dict]:
        state = MEASUREMENT_ROWS.read_id(work.conn, measurement_id)
        if state is None:
            raise InvalidLabelError(f"There is no measurement with id {measurement_id} in "
                                    f"the label store {self._db.path}.")
        return MEASUREMENT_ROWS.key_of(state), state

    def measurements(self, image_key: str | None = None, *,
                     reader: str | None = None) -> list[Measurement]:
        """The measurements on one image (all images when None), of all readers unless
        ``reader`` is given; by image, then in the order they were made."""
        def query(conn: sqlite3.Connection) -> list[Measurement]:
            sql = f"SELECT {MEASUREMENT_COLUMNS} FROM measurements WHERE 1"
            params: list[Any] = []
            if image_key is not None:
                sql += " AND image_key = ?"
                params.append(image_key)
            if reader is not None:
                sql += " AND reader = ?"
                params.append(reader)
            rows = conn.execute(sql + " ORDER BY image_key, id", params).fetchall()
            return [measurement_from_state(measurement_state_from_row(r)) for r in rows]

        return self._db.read(query)
