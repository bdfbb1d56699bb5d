"""The prediction audit log: every AI read appended to an SQLite database (WAL).

A row says when (UTC), who (``settings.reader_name``), which model (SHA-256, name, version),
which input (SOP Instance UID, or the SHA-256 of a plain image file), what came out (class
probabilities), against which operating points, and on which execution provider. No patient
names or ids and no file paths are stored, here or in the ordinary logs.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medviewer import __version__, paths

if TYPE_CHECKING:
    from medviewer.inference.predict import Prediction

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_utc TEXT NOT NULL,
    user TEXT NOT NULL,
    model_name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    input_uid TEXT NOT NULL,
    frame INTEGER NOT NULL,
    outputs TEXT NOT NULL,
    operating_points TEXT NOT NULL,
    provider TEXT NOT NULL,
    inference_ms REAL,
    app_version TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS predictions_input ON predictions (input_uid);
"""
_write_lock = threading.Lock()


def audit_db_path() -> Path:
    return paths.user_data_dir() / "audit.sqlite3"


def _current_user() -> str:
    from medviewer.settings import load_settings

    return load_settings().reader_name or "reader"


class AuditLog:
    """Appends prediction rows; safe to use from several threads (one short write each)."""

    def __init__(self, path: str | os.PathLike | None = None, user: str | None = None) -> None:
        self.path = Path(path) if path else audit_db_path()
        self.user = user or _current_user()
        connection = self._connect()
        try:
            with _write_lock:
                connection.executescript(_SCHEMA)
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                connection.commit()
        finally:
            connection.close()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=10.0)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    def record(self, predictions: Iterable[Prediction]) -> int:
        """Append the successful predictions (errors made no prediction); returns the count."""
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        rows = []
        for p in predictions:
            if p.error is not None:
                continue
            outputs = {s.name: round(s.probability, 6) for s in p.scores}
            operating = {s.name: {"threshold": s.threshold, "flagged": s.flagged,
                                  "method": s.method}
                         for s in p.scores if s.threshold is not None}
            rows.append((now, self.user, p.model_name, p.model_version, p.model_sha256,
                         p.input_uid, p.frame, json.dumps(outputs), json.dumps(operating),
                         p.provider, round(p.inference_ms, 3), __version__))
        if not rows:
            return 0
        connection = self._connect()
        try:
            with _write_lock, connection:
                connection.executemany(
                    "INSERT INTO predictions (time_utc, user, model_name, model_version, "
                    "model_sha256, input_uid, frame, outputs, operating_points, provider, "
                    "inference_ms, app_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows)
        finally:
            connection.close()
        return len(rows)

    def rows(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The newest rows first, outputs and operating points decoded."""
        connection = self._connect()
        connection.row_factory = sqlite3.Row
        try:
            query = "SELECT * FROM predictions ORDER BY id DESC"
            if limit:
                query += f" LIMIT {int(limit)}"
            out = []
            for row in connection.execute(query):
                item = dict(row)
                item["outputs"] = json.loads(item["outputs"])
                item["operating_points"] = json.loads(item["operating_points"])
                out.append(item)
            return out
        finally:
            connection.close()


def record_predictions(predictions: Iterable[Prediction]) -> int:
    """Append predictions to the user's audit log."""
    return AuditLog().record(predictions)
