"""The audit log: one row per prediction, nothing identifying, WAL, reader from settings."""

from __future__ import annotations

import logging
import sqlite3

from medviewer import paths
from medviewer.inference.audit import AuditLog, audit_db_path
from medviewer.inference.predict import predict_paths
from medviewer.settings import Settings, save_settings


def test_each_prediction_is_one_row_with_model_input_outputs_and_provider(install,
                                                                           kermany_images,
                                                                           caplog):
    save_settings(Settings(reader_name="dr-reader"))
    entry = install("mean", name="chest",
                    operating_points={"finding": {"threshold": 0.4, "method": "youden on validation"}})
    with caplog.at_level(logging.DEBUG, logger="medviewer"):
        results = predict_paths(kermany_images[:2], entry, device="cpu")
    rows = sorted(AuditLog().rows(), key=lambda r: r["id"])
    assert len(rows) == 2
    for row, result in zip(rows, results):
        assert row["user"] == "dr-reader"
        assert row["time_utc"].endswith("+00:00") and "T" in row["time_utc"]
        assert (row["model_name"], row["model_version"], row["model_sha256"]) == (
            "chest", "1.0", entry.card.sha256)
        assert row["input_uid"] == result.input_uid and row["frame"] == 0
        assert row["provider"] == "CPUExecutionProvider"
        assert row["outputs"] == {s.name: round(s.probability, 6) for s in result.scores}
        finding = result.score("finding")
        assert row["operating_points"] == {"finding": {
            "threshold": 0.4, "flagged": finding.flagged, "method": "youden on validation"}}
    # No file names or folders anywhere: not in the database, not in the log records.
    raw = audit_db_path().read_bytes()
    for path in kermany_images[:2]:
        assert path.name.encode() not in raw and path.stem not in caplog.text
    assert str(paths.user_data_dir()) in str(audit_db_path())


def test_database_uses_wal_and_survives_reopening(tmp_path):
    log = AuditLog(tmp_path / "audit.sqlite3", user="someone")
    assert log.record([]) == 0
    connection = sqlite3.connect(tmp_path / "audit.sqlite3")
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 2
    finally:
        connection.close()
    assert AuditLog(tmp_path / "audit.sqlite3").rows() == []


def test_a_version_1_log_gains_the_new_columns_and_keeps_its_rows(tmp_path):
    path = tmp_path / "audit.sqlite3"
    connection = sqlite3.connect(path)
    connection.executescript(
        "CREATE TABLE predictions (id INTEGER PRIMARY KEY AUTOINCREMENT, time_utc TEXT NOT NULL,"
        " user TEXT NOT NULL, model_name TEXT NOT NULL, model_version TEXT NOT NULL,"
        " model_sha256 TEXT NOT NULL, input_uid TEXT NOT NULL, frame INTEGER NOT NULL,"
        " outputs TEXT NOT NULL, operating_points TEXT NOT NULL, provider TEXT NOT NULL,"
        " inference_ms REAL, app_version TEXT NOT NULL);"
        "INSERT INTO predictions VALUES (1, 't', 'u', 'm', '1', 'h', 'uid', 0, '{}', '{}',"
        " 'CPU', 1.0, '0.1'); PRAGMA user_version = 1;")
    connection.commit()
    connection.close()
    log = AuditLog(path, user="someone")
    [old] = log.rows()
    assert old["input_uid"] == "uid" and old["decision"] is None
    assert old["read_out_of_scope"] == 0 and old["ood"] is None
    log.record_event("site_operating_point", "m", "1", "h", {"class": "x"})
    assert log.events()[0]["detail"] == {"class": "x"}
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 2
    finally:
        connection.close()
