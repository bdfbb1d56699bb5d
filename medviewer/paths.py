"""Where MedViewer keeps user data, settings and caches.

``MEDVIEWER_HOME`` (set by the tests and by portable installs) puts everything under one
folder, so tests never touch the real user's directories.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from medviewer import APP_NAME

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESOURCES_DIR = PROJECT_ROOT / "resources"
BUILTIN_MODELS_DIR = PROJECT_ROOT / "models"
SAMPLE_STUDY_DIR = RESOURCES_DIR / "sample_study"


def _home_override() -> Path | None:
    home = os.environ.get("MEDVIEWER_HOME")
    return Path(home) if home else None


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def user_data_dir() -> Path:
    home = _home_override()
    return _ensure(home / "data" if home else platformdirs.user_data_path(APP_NAME, False))


def user_config_dir() -> Path:
    home = _home_override()
    return _ensure(home / "config" if home else platformdirs.user_config_path(APP_NAME, False))


def user_cache_dir() -> Path:
    home = _home_override()
    return _ensure(home / "cache" if home else platformdirs.user_cache_path(APP_NAME, False))


def user_models_dir() -> Path:
    return _ensure(user_data_dir() / "models")
