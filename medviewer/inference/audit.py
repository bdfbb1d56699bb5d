"""The prediction audit log: every AI read appended to an SQLite database (WAL).

A row says when (UTC), who (``settings.reader_name``), which model (SHA-256, name, version),
which input (SOP Instance UID, or the SHA-256 of a plain image file), what came out (class
probabilities), against which operating points (and whether they are the card's or the
site's), what the reader was offered (the decision), whether the image was inside the
model's intended use (and whether the reader chose to read it anyway), its
out-of-distribution score, and on which execution provider. No patient names or ids and no
file paths are stored, here or in the ordinary logs.

The log is one subscriber of ``prediction.prediction_made``: :func:`connect_audit_log`
connects it (idempotent). ``medviewer.cli.main``, the one entry point of the command line,
the GUI and the self-test, calls it before anything runs. A second table, ``events``, keeps
decisions about a model that are not reads (a site adopting its own operating point).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medviewer import __version__, paths
from medviewer.inference.prediction import Prediction, prediction_made

SCHEMA_VERSION = 2
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
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_utc TEXT NOT NULL,
    user TEXT NOT NULL,
    kind TEXT NOT NULL,
    model_name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    detail TEXT NOT NULL,
    app_version TEXT NOT NULL
);
"""
# Version 2 adds what the reader was offered and the gates a read passed.
_V2_COLUMNS = (("decision", "TEXT"), ("operating_points_source", "TEXT"),
               ("in_scope", "INTEGER"), ("scope_reasons", "TEXT"),
               ("read_out_of_scope", "INTEGER NOT NULL DEFAULT 0"), ("ood_score", "REAL"),
               ("ood", "INTEGER"))
_write_lock = threading.Lock()
_ready: set[str] = set()  # databases whose schema this process has already brought up to date


def audit_db_path() -> Path:
    return paths.user_data_dir() / "audit.sqlite3"


def _current_user() -> str:
    from medviewer.settings import load_settings

    return load_settings().reader_name or "reader"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _bool(value: bool | None) -> int | None:
    return None if value is None else int(bool(value))


class AuditLog:
    """Appends prediction rows; safe to use from several threads (one short write each)."""

    def __init__(self, path: str | os.PathLike | None = None, user: str | None = None) -> None:
        self.path = Path(path) if path else audit_db_path()
        self.user = user or _current_user()
        if str(self.path) in _ready and self.path.exists():
            return
        connection = self._connect()
        try:
            with _write_lock:
                connection.executescript(_SCHEMA)
                present = {row[1] for row in connection.execute("PRAGMA table_info(predictions)")}
                for name, kind in _V2_COLUMNS:
                    if name not in present:
                        connection.execute(f"ALTER TABLE predictions ADD COLUMN {name} {kind}")
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                connection.commit()
        finally:
            connection.close()
        _ready.add(str(self.path))

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=10.0)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    def record(self, predictions: Iterable[Prediction]) -> int:
        """Append the successful predictions (errors made no prediction); returns the count."""
        now = _now()
        rows = []
        for p in predictions:
            if p.error is not None:
                continue
            outputs = {s.name: round(s.probability, 6) for s in p.scores}
            operating = {s.name: {"threshold": s.threshold, "flagged": s.flagged,
                                  "method": s.method}
                         for s in p.scores if s.threshold is not None}
            decision = p.decision.to_dict() if p.decision else None
            rows.append((now, self.user, p.model_name, p.model_version, p.model_sha256,
                         p.input_uid, p.frame, json.dumps(outputs), json.dumps(operating),
                         p.provider, round(p.inference_ms, 3), __version__,
                         json.dumps(decision), p.operating_points_source, _bool(p.in_scope),
                         json.dumps(p.scope_reasons), int(p.read_out_of_scope),
                         None if p.ood_score is None else round(p.ood_score, 6),
                         _bool(p.ood)))
        if not rows:
            return 0
        connection = self._connect()
        try:
            with _write_lock, connection:
                connection.executemany(
                    "INSERT INTO predictions (time_utc, user, model_name, model_version, "
                    "model_sha256, input_uid, frame, outputs, operating_points, provider, "
                    "inference_ms, app_version, decision, operating_points_source, in_scope, "
                    "scope_reasons, read_out_of_scope, ood_score, ood) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        finally:
            connection.close()
        return len(rows)

    def record_event(self, kind: str, model_name: str, model_version: str, model_sha256: str,
                     detail: dict[str, Any]) -> None:
        """Append a decision about a model that is not a read (e.g. 'site_operating_point')."""
        connection = self._connect()
        try:
            with _write_lock, connection:
                connection.execute(
                    "INSERT INTO events (time_utc, user, kind, model_name, model_version, "
                    "model_sha256, detail, app_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (_now(), self.user, kind, model_name, model_version, model_sha256,
                     json.dumps(detail), __version__))
        finally:
            connection.close()

    def rows(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The newest rows first, JSON columns decoded."""
        return self._select("predictions", limit, ("outputs", "operating_points", "decision",
                                                   "scope_reasons"))

    def events(self, limit: int | None = None) -> list[dict[str, Any]]:
        return self._select("events", limit, ("detail",))

    def _select(self, table: str, limit: int | None, json_columns: tuple[str, ...]
                ) -> list[dict[str, Any]]:
        connection = self._connect()
        connection.row_factory = sqlite3.Row
        try:
            query = f"SELECT * FROM {table} ORDER BY id DESC"
            if limit:
                query += f" LIMIT {int(limit)}"
            out = []
            for row in connection.execute(query):
                item = dict(row)
                for column in json_columns:
                    if item.get(column) is not None:
                        item[column] = json.loads(item[column])
                out.append(item)
            return out
        finally:
            connection.close()


def record_predictions(predictions: Iterable[Prediction]) -> int:
    """Append predictions to the user's audit log (the subscriber's work)."""
    return AuditLog().record(predictions)


def connect_audit_log() -> None:
    """Make the user's audit log a subscriber of every prediction made (idempotent: the
    emitter keeps one subscription per callable)."""
    prediction_made.connect(record_predictions)


def audit_log_connected() -> bool:
    return record_predictions in prediction_made
