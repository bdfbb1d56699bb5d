"""User settings: one small typed object stored as JSON in the platform's config dir."""

from __future__ import annotations

import getpass
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from medviewer.paths import user_config_dir

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MAX_RECENT = 10


def _default_reader() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name on some service accounts
        return "reader"


@dataclass
class Settings:
    schema_version: int = SCHEMA_VERSION
    reader_name: str = field(default_factory=_default_reader)
    recent_paths: list[str] = field(default_factory=list)
    default_model: str = ""
    use_tensorrt: bool = False
    pixel_cache_mb: int = 1024
    overlay_opacity: float = 0.45
    # Main window size/position and dock layout, as Qt's saveGeometry/saveState in base64.
    window_geometry: str = ""
    window_state: str = ""

    def add_recent(self, path: str | Path) -> None:
        text = str(path)
        self.recent_paths = [text] + [p for p in self.recent_paths if p != text]
        del self.recent_paths[MAX_RECENT:]


def settings_path() -> Path:
    return user_config_dir() / "settings.json"


def load_settings(path: Path | None = None) -> Settings:
    """Read settings; a missing or unreadable file gives defaults (and is logged, not fatal)."""
    path = path or settings_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError) as exc:
        log.warning("Settings file %s is unreadable (%s); using defaults", path, exc)
        return Settings()
    known = {f.name for f in fields(Settings)}
    values = {k: v for k, v in raw.items() if k in known}
    values["schema_version"] = SCHEMA_VERSION
    try:
        return Settings(**values)
    except TypeError:
        return Settings()


def save_settings(settings: Settings, path: Path | None = None) -> None:
    """Write atomically so a crash never leaves a half-written settings file."""
    path = path or settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".settings-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(asdict(settings), handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
