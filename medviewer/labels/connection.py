"""The label store's SQLite connection: opening a file safely, transactions, and SQLite's
errors as one sentence for the user.

Opening checks the file's header and (unless told not to) runs ``PRAGMA quick_check``,
switches to WAL with ``synchronous=FULL``, and creates or migrates the schema, backing up an
older file first. :class:`StoreConnection` is the one connection a
:class:`~medviewer.labels.store.LabelStore` and all its parts share: every query runs in
:meth:`StoreConnection.read` and every write in one :meth:`StoreConnection.transaction`,
both behind one lock, so the store can be shared between threads.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from medviewer.files import disk_is_full
from medviewer.labels import schema
from medviewer.labels.durable_files import fsync_dir, fsync_file, unused_path
from medviewer.labels.errors import (
    DamagedStoreError,
    LabelError,
    NewerStoreError,
    NotALabelStoreError,
    StoreUnavailableError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
BUSY_TIMEOUT_MS = 10_000
_SQLITE_MAGIC = b"SQLite format 3\x00"


class StoreConnection:
    """One SQLite connection behind a lock; every query and transaction goes through it.

    Contract: :meth:`transaction` yields the connection inside ``BEGIN IMMEDIATE``; leaving
    the block normally means the transaction committed (and, with ``synchronous=FULL``, the
    WAL was fsynced); any exception rolls everything back. :meth:`read` runs a query
    function. Both translate SQLite's errors into one-sentence ``LabelError``s (damaged,
    busy, full, read-only), and hold a re-entrant lock, so a read may run inside a
    transaction on the same thread.
    """

    def __init__(self, path: Path, *, check: bool = True) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._conn = self._open(check)

    # -- opening, checking, closing

    def _open(self, check: bool) -> sqlite3.Connection:
        path = self.path
        if path.is_dir():
            raise NotALabelStoreError(path, "it is a folder")
        existed = path.exists() and path.stat().st_size > 0
        if existed:
            with open(path, "rb") as handle:
                head = handle.read(len(_SQLITE_MAGIC))
            if head != _SQLITE_MAGIC:
                raise DamagedStoreError(path, "its header is not an SQLite database header")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                   timeout=BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"Cannot open the label store {path}: {exc}.") from None
        try:
            if check and existed:
                problems = _quick_check(conn)
                if problems:
                    raise DamagedStoreError(path, f"SQLite's integrity check reports: "
                                                  f"{problems[0]}")
            self._configure(conn)
            self._prepare_schema(conn, existed)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise self._translate(exc, "open") from None
            raise
        return conn

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            # Network shares cannot do WAL; a rollback journal with FULL sync is as durable.
            log.warning("Label store %s cannot use WAL (journal mode is %s)", self.path, mode)
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        # Up to 64 MB of page cache (allocated as used): whole-set queries stay in memory.
        conn.execute("PRAGMA cache_size = -65536")

    def _prepare_schema(self, conn: sqlite3.Connection, existed: bool) -> None:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                              ).fetchone()[0]
        if app_id not in (0, schema.APPLICATION_ID):
            raise NotALabelStoreError(self.path, "another program's SQLite file")
        if version == 0 and tables:
            raise NotALabelStoreError(self.path, "an SQLite file with other tables")
        if version > schema.SCHEMA_VERSION:
            raise NewerStoreError(self.path, version, schema.SCHEMA_VERSION)
        if version == schema.SCHEMA_VERSION:
            return
        backup = None
        if version > 0:
            backup = self._backup_before_migration(conn, version)
            log.info("Migrating label store %s from schema %d to %d (backup %s)", self.path,
                     version, schema.SCHEMA_VERSION, backup)
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated it while we waited for the write lock.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            schema.migrate(conn, version)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error) and self._translate(exc, "write") is exc:
                kept = f"; a backup is at {backup}" if backup else ""
                raise LabelError(
                    f"Cannot upgrade the label store {self.path} from schema version "
                    f"{version} to {schema.SCHEMA_VERSION} ({exc}); the file was left as it "
                    f"was{kept}.") from None
            raise
        if not existed:
            fsync_dir(self.path.parent)  # the new file's directory entry must survive too

    def _backup_before_migration(self, conn: sqlite3.Connection, version: int) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        backup = unused_path(self.path.with_name(f"{self.path.name}.v{version}-backup-{stamp}"))
        target = sqlite3.connect(backup)
        try:
            conn.backup(target)
        finally:
            target.close()
        fsync_file(backup)
        fsync_dir(backup.parent)
        return backup

    def check(self, full: bool = False) -> list[str]:
        """SQLite's own check: an empty list when the file is sound."""
        with self._lock:
            try:
                return _integrity_check(self.sqlite, full)
            except sqlite3.Error as exc:
                return [str(exc)]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @property
    def sqlite(self) -> sqlite3.Connection:
        """The sqlite3 connection itself (for checks and tests; writes go through
        :meth:`transaction`)."""
        if self._conn is None:
            raise StoreUnavailableError(f"The label store {self.path} is closed.")
        return self._conn

    @property
    def schema_version(self) -> int:
        return self.read(lambda c: c.execute("PRAGMA user_version").fetchone()[0])

    # -- transactions and error translation

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; leaving the block normally means it committed."""
        with self._lock:
            conn = self.sqlite
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._translate(exc, "write") from None
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:  # the connection is unusable; the error below says why
                        pass
                if isinstance(exc, sqlite3.Error):
                    raise self._translate(exc, "write") from None
                raise

    def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """``query(connection)`` under the lock, SQLite's errors as one sentence."""
        with self._lock:
            try:
                return query(self.sqlite)
            except sqlite3.Error as exc:
                raise self._translate(exc, "read") from None

    def _translate(self, exc: sqlite3.Error, doing: str) -> Exception:
        text = str(exc)
        lower = text.lower()
        if "malformed" in lower or "not a database" in lower or "corrupt" in lower:
            return DamagedStoreError(self.path, text)
        verb = "save to" if doing == "write" else "read"
        if "locked" in lower or "busy" in lower:
            return StoreUnavailableError(
                f"Cannot {verb} the label store {self.path}: another program holds it "
                f"locked; nothing was changed, try again.")
        if "disk is full" in lower or (isinstance(exc, sqlite3.OperationalError)
                                        and "i/o" in lower and disk_is_full(self.path)):
            # A read can fail for lack of room too (SQLite's WAL index needs some).
            return StoreUnavailableError(
                f"Cannot {verb if doing == 'write' else 'use'} the label store {self.path}: "
                f"the disk is full; nothing was {'saved' if doing == 'write' else 'changed'}.")
        if "readonly" in lower or "read-only" in lower:
            return StoreUnavailableError(f"Cannot {verb} the label store {self.path}: the "
                                         f"file is read-only; nothing was saved.")
        if isinstance(exc, sqlite3.OperationalError) and ("i/o" in lower or "disk" in lower
                                                          or "unable to open" in lower):
            return StoreUnavailableError(f"Cannot {verb} the label store {self.path}: {text}.")
        return exc  # a programming error: keep its traceback


def _quick_check(conn: sqlite3.Connection) -> list[str]:
    return _integrity_check(conn, full=False)


def _integrity_check(conn: sqlite3.Connection, full: bool) -> list[str]:
    pragma = "integrity_check" if full else "quick_check"
    rows = [r[0] for r in conn.execute(f"PRAGMA {pragma}")]
    return [] if rows == ["ok"] else rows
