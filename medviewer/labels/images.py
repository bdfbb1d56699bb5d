"""What the store knows about an image: its key, and the path, patient ID and size kept
beside it as hints (updated by every write that names the image)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from medviewer.labels.connection import StoreConnection
from medviewer.labels.values import ImageRef, now_iso

# IN (...) lists are chunked below SQLite's bound-parameter limit.
CHUNK = 500


def upsert_image(conn: sqlite3.Connection, image: ImageRef) -> None:
    """Remember the image's hints; a hint not given keeps the one stored."""
    conn.execute(
        "INSERT INTO images (image_key, path, patient_id, width, height, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (image_key) DO UPDATE SET "
        "path = coalesce(excluded.path, path), "
        "patient_id = coalesce(excluded.patient_id, patient_id), "
        "width = coalesce(excluded.width, width), "
        "height = coalesce(excluded.height, height), updated_at = excluded.updated_at",
        (image.key, image.path, image.patient_id, image.width, image.height, now_iso()))


def image_size(conn: sqlite3.Connection, key: str) -> tuple[int, int] | None:
    """(width, height) when known: shapes and measurements must lie inside it."""
    row = conn.execute("SELECT width, height FROM images WHERE image_key = ?",
                       (key,)).fetchone()
    return (row[0], row[1]) if row and row[0] and row[1] else None


class Images:
    """Reading the images the store knows."""

    def __init__(self, db: StoreConnection) -> None:
        self._db = db

    def images(self, image_keys: Iterable[str] | None = None) -> dict[str, ImageRef]:
        """What the store knows about images (path hint, patient id, size), by key."""
        keys = None if image_keys is None else list(dict.fromkeys(image_keys))

        def query(conn: sqlite3.Connection) -> dict[str, ImageRef]:
            sql = "SELECT image_key, path, patient_id, width, height FROM images"
            rows: list[tuple] = []
            if keys is None:
                rows = conn.execute(sql).fetchall()
            else:
                for start in range(0, len(keys), CHUNK):
                    chunk = keys[start:start + CHUNK]
                    rows += conn.execute(
                        f"{sql} WHERE image_key IN ({','.join('?' * len(chunk))})",
                        chunk).fetchall()
            return {r[0]: ImageRef(r[0], r[1], r[2], r[3], r[4]) for r in rows}

        return self._db.read(query)
