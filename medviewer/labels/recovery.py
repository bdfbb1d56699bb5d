"""Recovering a damaged label store: keep the damaged file, rebuild from what is readable.

``recover(path)``:

1. copies the damaged file (and its ``-wal`` / ``-journal``) aside as
   ``<name>.damaged-<timestamp><suffix>``; that copy is never modified or deleted;
2. works on a second, throw-away copy and reads every table row by row in rowid order,
   skipping forward past pages SQLite reports as malformed (the approach of the sqlite3
   shell's ``.recover``, done through the public API that Python has);
3. writes the rows into a fresh store of the damaged file's schema version, migrates it to
   the current version, writes back rows that were unreadable from their latest state in
   the history (through their row kind), re-creates label sets and classes that labels
   still refer to, checks it with ``PRAGMA integrity_check`` and only then moves it into
   place.

Run it with MedViewer closed: nothing else may have the store open meanwhile.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from medviewer.errors import UserError
from medviewer.labels import schema
from medviewer.labels.durable_files import fsync_dir, fsync_file, unused_path
from medviewer.labels.row_kinds import row_kinds
from medviewer.labels.unit_of_work import RowKey
from medviewer.labels.values import now_iso

log = logging.getLogger(__name__)

_SIDE_FILES = ("-wal", "-journal")
_BATCH = 500
# A damaged stretch is skipped by probing ever larger rowid steps; 2**63 ends the table.
_MAX_ROWID = 2**63 - 1


@dataclass
class RecoveryReport:
    path: Path
    damaged_copy: Path
    schema_version_found: int | None
    rows_salvaged: dict[str, int] = field(default_factory=dict)
    rows_rejected: dict[str, int] = field(default_factory=dict)
    damaged_stretches: dict[str, int] = field(default_factory=dict)
    unreadable_tables: list[str] = field(default_factory=list)
    placeholders: list[str] = field(default_factory=list)
    rebuilt_from_history: dict[str, int] = field(default_factory=dict)

    @property
    def labels_salvaged(self) -> int:
        return self.rows_salvaged.get("image_labels", 0)

    @property
    def labels_restored(self) -> int:
        """Labels back in the rebuilt store: salvaged rows plus those rebuilt from history."""
        return self.labels_salvaged + self.rebuilt_from_history.get("image_labels", 0)

    def summary(self) -> str:
        lost = sum(self.damaged_stretches.values()) + sum(self.rows_rejected.values())
        rebuilt = sum(self.rebuilt_from_history.values())
        parts = [f"Rebuilt {self.path}: image labels salvaged {self.labels_salvaged}, "
                 f"regions salvaged {self.rows_salvaged.get('regions', 0)}, measurements "
                 f"salvaged {self.rows_salvaged.get('measurements', 0)}"]
        if rebuilt:
            parts.append(f", {rebuilt} more restored from the label history")
        if lost or self.unreadable_tables:
            parts.append("; some rows were unreadable")
        parts.append(f"; the damaged file is kept as {self.damaged_copy}.")
        return "".join(parts)

    def as_dict(self) -> dict:
        return {"path": str(self.path), "damaged_copy": str(self.damaged_copy),
                "schema_version_found": self.schema_version_found,
                "rows_salvaged": self.rows_salvaged, "rows_rejected": self.rows_rejected,
                "damaged_stretches": self.damaged_stretches,
                "unreadable_tables": self.unreadable_tables,
                "placeholders": self.placeholders,
                "rebuilt_from_history": self.rebuilt_from_history}


def recover(path: Path) -> RecoveryReport:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"There is no label store at {path} to recover.")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = unused_path(path.with_name(f"{path.stem}.damaged-{stamp}{path.suffix}"))
    _copy_with_side_files(path, aside)
    for suffix in _SIDE_FILES:
        if Path(f"{aside}{suffix}").exists():
            fsync_file(Path(f"{aside}{suffix}"))
    fsync_file(aside)
    fsync_dir(path.parent)
    log.warning("Label store %s set aside as %s for recovery", path, aside)

    work = Path(tempfile.mkdtemp(prefix=".labels-recover-", dir=path.parent))
    try:
        damaged = work / "damaged.sqlite"
        _copy_with_side_files(aside, damaged)
        rebuilt = work / "rebuilt.sqlite"
        report = RecoveryReport(path, aside, _header_version(aside))
        _rebuild(damaged, rebuilt, report)
        fsync_file(rebuilt)
        # The old -wal/-shm belong to the damaged file (copied aside above); left in place
        # SQLite would replay them onto the rebuilt file.
        for suffix in (*_SIDE_FILES, "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        os.replace(rebuilt, path)
        fsync_dir(path.parent)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.warning("Label store %s rebuilt: %s", path, report.rows_salvaged)
    return report


def _copy_with_side_files(source: Path, target: Path) -> None:
    shutil.copy2(source, target)
    for suffix in _SIDE_FILES:
        side = Path(f"{source}{suffix}")
        if side.exists():
            shutil.copy2(side, Path(f"{target}{suffix}"))


def _header_version(path: Path) -> int | None:
    """PRAGMA user_version straight from the file header (bytes 60-63, big-endian)."""
    with open(path, "rb") as handle:
        header = handle.read(100)
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        return None
    return int.from_bytes(header[60:64], "big")


def _rebuild(damaged: Path, rebuilt: Path, report: RecoveryReport) -> None:
    version = report.schema_version_found
    if version is None or not 1 <= version <= schema.SCHEMA_VERSION:
        version = schema.SCHEMA_VERSION
    target = sqlite3.connect(rebuilt, isolation_level=None)
    try:
        target.execute("BEGIN")
        schema.migrate(target, 0, version)
        source = _open_damaged(damaged)
        try:
            for table in _tables(target):
                _copy_table(source, target, table, report)
        finally:
            if source is not None:
                source.close()
        # Migrated before the history is replayed: the row kinds write current rows.
        if version < schema.SCHEMA_VERSION:
            schema.migrate(target, version)
        _restore_from_history(target, report)
        _restore_references(target, report)
        target.execute("COMMIT")
        problems = [r[0] for r in target.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:  # cannot happen for a file we just wrote; never install it
            raise UserError(f"Rebuilding the label store {report.path} failed its own check "
                            f"({problems[0]}); the damaged file is kept as "
                            f"{report.damaged_copy}.")
        target.execute("PRAGMA journal_mode = WAL")
    finally:
        target.close()


def _open_damaged(path: Path) -> sqlite3.Connection | None:
    try:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.DatabaseError as exc:
        log.warning("Damaged label store has no readable schema (%s)", exc)
        return None


def _tables(conn: sqlite3.Connection) -> list[str]:
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return [t for t in schema.TABLES if t in names]


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def _copy_table(source: sqlite3.Connection | None, target: sqlite3.Connection, table: str,
                report: RecoveryReport) -> None:
    salvaged = rejected = stretches = 0
    try:
        if source is None:
            raise sqlite3.DatabaseError("no readable schema")
        source_columns = set(_columns(source, table))
        if not source_columns:
            raise sqlite3.DatabaseError("table missing")
    except sqlite3.DatabaseError:
        report.unreadable_tables.append(table)
        return
    columns = [c for c in _columns(target, table) if c in source_columns]
    names = ", ".join(columns)
    insert = (f"INSERT OR IGNORE INTO {table} ({names}) "
              f"VALUES ({', '.join('?' * len(columns))})")
    # The salvage writes history rows as they were: the append-only triggers only block
    # UPDATE/DELETE, and foreign keys are off on this connection.
    for rows, skipped in _readable_rows(source, table, names):
        stretches += skipped
        for row in rows:
            try:
                cursor = target.execute(insert, row)
            except (sqlite3.IntegrityError, sqlite3.InterfaceError, OverflowError):
                rejected += 1
                continue
            if cursor.rowcount == 1:
                salvaged += 1
            else:
                rejected += 1
    report.rows_salvaged[table] = salvaged
    report.rows_rejected[table] = rejected
    report.damaged_stretches[table] = stretches


def _readable_rows(conn: sqlite3.Connection, table: str, names: str):
    """Yield (rows, damaged stretches skipped) in rowid order, stepping over bad pages."""
    after = -_MAX_ROWID - 1
    batch_sql = f"SELECT rowid, {names} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?"
    while True:
        try:
            rows = conn.execute(batch_sql, (after, _BATCH)).fetchall()
        except sqlite3.DatabaseError:
            rows = None
        if rows is not None:
            if not rows:
                return
            after = rows[-1][0]
            yield [r[1:] for r in rows], 0
            continue
        # Something in the next batch is unreadable: go one row at a time, then probe.
        try:
            row = conn.execute(batch_sql, (after, 1)).fetchone()
        except sqlite3.DatabaseError:
            row = None
            found = _probe_past_damage(conn, table, names, after)
            if found is None:
                yield [], 1
                return
            row = found
            yield [row[1:]], 1
            after = row[0]
            continue
        if row is None:
            return
        after = row[0]
        yield [row[1:]], 0


def _probe_past_damage(conn: sqlite3.Connection, table: str, names: str,
                       after: int) -> tuple | None:
    """The first readable row beyond a damaged stretch.

    Seeks into a damaged page fail and seeks beyond it succeed: probe rowids in growing
    steps until one succeeds, then bisect back to the smallest start that still reads, so
    no readable row right after the damage is skipped.
    """
    sql = f"SELECT rowid, {names} FROM {table} WHERE rowid >= ? ORDER BY rowid LIMIT 1"

    def attempt(start: int) -> tuple[bool, tuple | None]:
        try:
            return True, conn.execute(sql, (start,)).fetchone()
        except sqlite3.DatabaseError:
            return False, None

    base = max(after, 0)
    failed, step = base, 1
    while True:
        start = base + step
        if start > _MAX_ROWID:
            return None
        ok, row = attempt(start)
        if ok:
            break
        failed, step = start, step * 2
    good = start
    while good - failed > 1:
        middle = (good + failed) // 2
        ok, candidate = attempt(middle)
        if ok:
            good, row = middle, candidate
        else:
            failed = middle
    return row


def _restore_from_history(conn: sqlite3.Connection, report: RecoveryReport) -> None:
    """Bring back current rows (labels, regions, ...) whose rows were unreadable.

    Every action appends the state it wrote to ``changes``; where a row was lost but its
    latest recorded change survived, that change's new state is the row, written back
    through its row kind. A row is identified by all of the change's key columns (for
    kinds with an id the other columns never change).
    """
    tables = _tables(conn)
    if "changes" not in tables:
        return
    kinds = [kind for kind in row_kinds() if kind.table in tables]
    latest = conn.execute(
        "SELECT c.target, c.label_set_id, c.image_key, c.reader, c.row_id, c.new "
        "FROM changes c JOIN (SELECT max(id) AS id FROM changes "
        "  GROUP BY target, label_set_id, image_key, reader, row_id) last "
        "ON last.id = c.id WHERE c.new IS NOT NULL").fetchall()
    restored = {kind.target: 0 for kind in kinds}
    by_target = {kind.target: kind for kind in kinds}
    for target, set_id, image_key, reader, row_id, text in latest:
        kind = by_target.get(target)
        if kind is None:
            continue
        key = RowKey(set_id, image_key, reader, row_id)
        try:
            if kind.read(conn, key) is not None:
                continue
            kind.write(conn, key, kind.from_history(json.loads(text)))
            restored[target] += 1
        except (ValueError, KeyError, TypeError, sqlite3.Error):
            continue
    for kind in kinds:
        report.rebuilt_from_history[kind.table] = restored[kind.target]


def _restore_references(conn: sqlite3.Connection, report: RecoveryReport) -> None:
    """Re-create label sets and classes that salvaged labels refer to but that were lost."""
    referenced: dict[int, dict[str, bool]] = {}
    for set_id, classes_text in conn.execute("SELECT label_set_id, classes FROM image_labels"):
        try:
            classes = json.loads(classes_text)
        except (TypeError, ValueError):
            continue
        entry = referenced.setdefault(set_id, {})
        for name in classes if isinstance(classes, list) else []:
            entry[str(name)] = entry.get(str(name), False) or len(classes) > 1
    has_regions = "regions" in _tables(conn)
    if has_regions:
        for set_id, name in conn.execute("SELECT label_set_id, class_name FROM regions"):
            referenced.setdefault(set_id, {}).setdefault(str(name), False)
    for set_id, classes in referenced.items():
        row = conn.execute("SELECT name FROM label_sets WHERE id = ?", (set_id,)).fetchone()
        if row is None:
            name = f"recovered-{set_id}"
            multi = int(any(classes.values()))
            conn.execute("INSERT INTO label_sets (id, name, multi_label, description, "
                         "created_at) VALUES (?, ?, ?, ?, ?)",
                         (set_id, name, multi, "re-created by recovery: its definition was "
                                               "unreadable", now_iso()))
            report.placeholders.append(f"label set {name}")
        known = {r[0] for r in conn.execute("SELECT name FROM classes WHERE label_set_id = ?",
                                            (set_id,))}
        position = conn.execute("SELECT coalesce(max(position) + 1, 0) FROM classes "
                                "WHERE label_set_id = ?", (set_id,)).fetchone()[0]
        for class_name in sorted(set(classes) - known):
            conn.execute("INSERT INTO classes (label_set_id, position, name) VALUES (?, ?, ?)",
                         (set_id, position, class_name))
            position += 1
            report.placeholders.append(f"class {class_name} of label set id {set_id}")
