"""The index cache: one SQLite file per indexed folder, so re-opening a folder reads only
the files that changed.

Each row is a file's path relative to the folder (as bytes: a name need not be valid UTF-8),
its size and modification time, and its catalog record as JSON. The cache holds header
fields (patient names and IDs included) and error sentences, never pixels, in the user's
cache folder, which only its owner may enter. Every failure (a corrupt file, a locked
database, a full disk) degrades to "no cache"; a file that cannot be read is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medviewer import paths

log = logging.getLogger(__name__)

MAX_CACHE_FILES = 200  # index caches kept (one per folder opened), most recent first
# 2: paths as bytes, so any file name can be a key; 3: study time and issuer of patient ID
CACHE_SCHEMA_VERSION = 3


@dataclass(frozen=True)
class FileStamp:
    size: int
    mtime_ns: int


class IndexCache:
    """One SQLite file per indexed folder: relative path -> stamp + record (JSON).

    Every failure (corrupt file, locked database, full disk) degrades to "no cache"; a
    cache file that cannot be read is deleted and rebuilt.
    """

    def __init__(self, root: Path, cache_dir: Path | None) -> None:
        # Paths are stored as their bytes: a file name need not be valid UTF-8.
        self.root_key = os.fsencode(str(root))
        self.conn: sqlite3.Connection | None = None
        try:
            self.db_path = cache_file_for(root, cache_dir)
            is_new = not self.db_path.exists()
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # no usable cache folder (read-only home, a file in the way)
            log.info("index cache disabled: %s", exc)
            return
        try:
            self.conn = self._open()
        except sqlite3.Error as exc:
            log.info("index cache unreadable (%s); rebuilding it", exc)
            self._discard()
            try:
                self.conn = self._open()
            except sqlite3.Error as exc2:
                log.info("index cache disabled: %s", exc2)
                self.conn = None
        if is_new:
            prune_old_caches(self.db_path, keep=MAX_CACHE_FILES)
        elif self.conn is not None:
            try:
                os.utime(self.db_path)  # mark as recently used, for pruning
            except OSError:
                pass

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, timeout=5.0)
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            conn.execute("CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, "
                         "size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, record TEXT NOT NULL)")
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("schema") != str(CACHE_SCHEMA_VERSION) \
                    or meta.get("root") != self.root_key:
                with conn:
                    conn.execute("DELETE FROM files")
                    conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)",
                                 (str(CACHE_SCHEMA_VERSION),))
                    conn.execute("INSERT OR REPLACE INTO meta VALUES ('root', ?)",
                                 (self.root_key,))
            conn.commit()
        except sqlite3.Error:
            conn.close()
            raise
        return conn

    def _discard(self) -> None:
        for suffix in ("", "-journal", "-wal", "-shm"):
            try:
                Path(str(self.db_path) + suffix).unlink(missing_ok=True)
            except OSError as exc:
                log.info("cannot delete the broken index cache: %s", exc)

    def load(self) -> dict[str, tuple[FileStamp, str]]:
        if self.conn is None:
            return {}
        try:
            rows = self.conn.execute("SELECT path, size, mtime_ns, record FROM files").fetchall()
        except sqlite3.Error as exc:
            log.info("index cache unreadable (%s); rebuilding it", exc)
            self.close()
            self._discard()
            try:
                self.conn = self._open()
            except sqlite3.Error:
                self.conn = None
            return {}
        return {os.fsdecode(path): (FileStamp(size, mtime), record)
                for path, size, mtime, record in rows}

    def save(self, upserts: list[tuple[str, FileStamp, dict[str, Any]]],
             deletes: Iterable[str]) -> None:
        deletes = list(deletes)
        if self.conn is None or (not upserts and not deletes):
            return
        try:
            with self.conn:
                self.conn.executemany("DELETE FROM files WHERE path = ?",
                                      ((os.fsencode(p),) for p in deletes))
                self.conn.executemany(
                    "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
                    ((os.fsencode(rel), stamp.size, stamp.mtime_ns,
                      json.dumps(record, separators=(",", ":")))
                     for rel, stamp, record in upserts))
        except sqlite3.Error as exc:
            log.info("could not update the index cache: %s", exc)

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except sqlite3.Error:
                pass
            self.conn = None


def prune_old_caches(current: Path, keep: int) -> None:
    """Keep ``current`` and the most recently used other caches, ``keep`` in all."""
    try:
        others = [p for p in current.parent.glob("*.sqlite") if p != current]
        others.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        for stale in others[max(keep - 1, 0):]:
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(str(stale) + suffix).unlink(missing_ok=True)
    except OSError as exc:  # another process pruning at the same time, permissions...
        log.info("could not prune old index caches: %s", exc)


def cache_file_for(root: Path, cache_dir: Path | None = None) -> Path:
    """Where the index cache of a folder lives (named by a hash: no folder names on disk)."""
    base = cache_dir if cache_dir is not None else paths.user_cache_dir() / "index"
    key = hashlib.sha256(str(root.resolve()).encode("utf-8", "surrogateescape")).hexdigest()
    return base / f"{key[:32]}.sqlite"
