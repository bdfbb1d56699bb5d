"""The log file, and the one sentence an unexpected error becomes.

Every entry point (the command line, the GUI, worker threads) hands an exception it did
not expect to :func:`unexpected_error_sentence`: the traceback goes to the log file in the
user's log folder (owner-only, rotated) and the user reads one sentence naming that file.
Library messages, warnings and tracebacks are written here, never shown; on the terminal
only errors appear, as one line each (:func:`configure_logging`).
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

log = logging.getLogger("medviewer")

LOG_FILE_NAME = "medviewer.log"
MAX_LOG_BYTES = 1024**2
LOG_BACKUPS = 3  # medviewer.log.1 .. .3: at most 4 MB in all
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _PrivateRotatingFile(logging.handlers.RotatingFileHandler):
    """A rotating log whose files only their owner may read (they name patients' files)."""

    write_failed = False

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        # A log that cannot be written (full disk, read-only home) must not print a
        # traceback of its own; the caller's sentence says the details were lost.
        self.write_failed = True

    def _open(self):  # noqa: ANN202 - logging's own signature
        descriptor = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return os.fdopen(descriptor, "a", encoding=self.encoding or "utf-8",
                         errors="backslashreplace")


class OneLineFormatter(logging.Formatter):
    """A record as one line: no traceback or stack (the log file has them)."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info = record.exc_text = record.stack_info = None
        try:
            text = super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved
        return " ".join(text.split("\n"))


def log_file_path() -> Path:
    from medviewer.paths import user_log_dir

    return user_log_dir() / LOG_FILE_NAME


def remove_handlers() -> None:
    """Take back what configure_logging installed (tests, between two homes)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "medviewer_handler", False)]:
        root.removeHandler(handler)
        handler.close()


def configure_logging(verbose: bool = False) -> Path | None:
    """Records at INFO and above to the log file; on stderr, one line per record at ERROR
    and above (DEBUG and above with ``verbose``), since a command says what went wrong in
    its own sentence. Safe to call again (tests change MEDVIEWER_HOME between calls).

    Returns the log file, or None when the log folder cannot be made (the terminal still
    gets its lines).
    """
    root = logging.getLogger()
    remove_handlers()
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setLevel(logging.DEBUG if verbose else logging.ERROR)
    terminal.setFormatter(OneLineFormatter("%(levelname)s %(name)s: %(message)s"))
    terminal.medviewer_handler = True  # type: ignore[attr-defined]
    root.addHandler(terminal)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    try:
        path = log_file_path()
        file_handler = _PrivateRotatingFile(path, maxBytes=MAX_LOG_BYTES,
                                            backupCount=LOG_BACKUPS, delay=True)
    except OSError:
        return None
    file_handler.setLevel(logging.DEBUG if verbose else logging.INFO)
    file_handler.setFormatter(logging.Formatter(_FORMAT))
    file_handler.medviewer_handler = True  # type: ignore[attr-defined]
    root.addHandler(file_handler)
    return path


def _file_handler() -> tuple[_PrivateRotatingFile | None, bool]:
    """The installed log file handler, or a temporary one (True: close it after use)."""
    try:
        path = log_file_path()
    except OSError:
        return None, False
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _PrivateRotatingFile) and handler.baseFilename == str(path):
            return handler, False
    try:
        handler = _PrivateRotatingFile(path, maxBytes=MAX_LOG_BYTES,
                                       backupCount=LOG_BACKUPS, delay=True)
    except OSError:
        return None, False
    handler.setFormatter(logging.Formatter(_FORMAT))
    return handler, True


def unexpected_error_sentence(exc: BaseException, doing: str) -> str:
    """Write ``exc``'s traceback to the log file and return the one sentence to show.

    ``doing`` completes "while ...", e.g. "running 'medviewer info'". The record goes to
    the file alone: the sentence is all the terminal or the window shows.
    """
    kind = type(exc).__name__
    handler, temporary = _file_handler()
    written = False
    if handler is not None:
        record = log.makeRecord(log.name, logging.ERROR, __file__, 0,
                                "Unexpected %s while %s", (kind, doing),
                                (type(exc), exc, exc.__traceback__))
        handler.write_failed = False
        handler.handle(record)
        written = not handler.write_failed
        if temporary:
            handler.close()
    if not written:
        return (f"An unexpected error ({kind}) stopped MedViewer while {doing}, and the "
                "log file that would have held its details could not be written.")
    return (f"An unexpected error ({kind}) stopped MedViewer while {doing}; the details "
            f"are in {handler.baseFilename}.")
