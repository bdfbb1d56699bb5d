"""Where MedViewer keeps user data, settings and caches.

``MEDVIEWER_HOME`` (set by the tests and by portable installs) puts everything under one
folder, so tests never touch the real user's directories.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import platformdirs

from medviewer import APP_NAME

# In a packaged (PyInstaller) bundle, resources/ and models/ sit inside the bundle's folder.
if getattr(sys, "frozen", False):
    PROJECT_ROOT = Path(getattr(sys, "_MEIPASS", Path(sys.executable).resolve().parent))
else:
    PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESOURCES_DIR = PROJECT_ROOT / "resources"
# MEDVIEWER_MODELS_DIR points the built-in models folder elsewhere (self-test, site installs).
BUILTIN_MODELS_DIR = Path(os.environ.get("MEDVIEWER_MODELS_DIR") or PROJECT_ROOT / "models")
SAMPLE_STUDY_DIR = RESOURCES_DIR / "sample_study"


def _home_override() -> Path | None:
    home = os.environ.get("MEDVIEWER_HOME")
    return Path(home) if home else None


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _ensure_private(path: Path) -> Path:
    """An app folder only its owner may enter: the index cache, label store and audit log
    under it hold patient names and IDs, and reading-room machines are shared."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.name == "posix":
        try:
            if path.stat().st_mode & 0o077:
                path.chmod(0o700)
        except OSError:  # not ours to change (a shared, admin-made folder): leave it
            pass
    return path


def new_file_mode() -> int:
    """The mode ``open()`` gives a new file (0666 less the umask). Atomic writers that go
    through ``tempfile.mkstemp`` (always 0600) set it, so a model card or a label export
    is as readable as any file the user writes."""
    umask = 0o022
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                umask = int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):  # not Linux: the usual default
        pass
    return 0o666 & ~umask


def user_data_dir() -> Path:
    home = _home_override()
    return _ensure_private(home / "data" if home
                           else platformdirs.user_data_path(APP_NAME, False))


def user_config_dir() -> Path:
    home = _home_override()
    return _ensure_private(home / "config" if home
                           else platformdirs.user_config_path(APP_NAME, False))


def user_cache_dir() -> Path:
    home = _home_override()
    return _ensure_private(home / "cache" if home
                           else platformdirs.user_cache_path(APP_NAME, False))


def user_log_dir() -> Path:
    """Where the log file lives (tracebacks name files and patients: owner-only too)."""
    home = _home_override()
    return _ensure_private(home / "logs" if home
                           else platformdirs.user_log_path(APP_NAME, False))


def user_models_dir() -> Path:
    return _ensure(user_data_dir() / "models")


DEFAULT_STORE_NAME = "labels.sqlite"


def default_store_path() -> Path:
    """The label store file the app and the commands use unless told another."""
    return user_data_dir() / DEFAULT_STORE_NAME


def write_atomically(path: Path, data: str | bytes, *, private: bool = True) -> None:
    """Write ``data`` so the file is complete or untouched.

    A temporary file beside it is fsynced, then renamed over the target, then the folder is
    fsynced: a crash leaves the old file or the new one, never half of one. ``private``
    (the app's own files: settings, key images, which can name patients) keeps mkstemp's
    owner-only 0600; otherwise the file gets the mode a new file of the user's gets (a
    report they save and hand on).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    try:
        if not private and hasattr(os, "fchmod"):
            os.fchmod(fd, new_file_mode())
        with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w",
                       **({} if isinstance(data, bytes) else {"encoding": "utf-8"})) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if os.name == "posix":  # Windows cannot open a folder; NTFS journals the rename
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
