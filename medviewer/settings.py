"""User settings: one small typed object stored as JSON in the platform's config dir.

Every field has a rule (:data:`RULES`: its type and range or choices). A value that breaks its
rule, in the file or from a caller, never reaches a widget: on load it falls back to the
field's default and a notice says so (logged, and returned by :func:`load_settings_with_notices`
so the GUI can show it once); :func:`check_setting` refuses it with a :class:`SettingsError`.

Older files keep loading: a field they lack takes its default without a notice. Keys this
version does not know (written by a newer MedViewer) are kept in ``extra`` and written back.
"""

from __future__ import annotations

import getpass
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from medviewer.errors import UserError
from medviewer.paths import user_config_dir, write_atomically

log = logging.getLogger(__name__)

# 2: reading-room settings (mouse mappings, overlay defaults, AI auto-run, retrieve cache,
# units). Version 1 files load unchanged: the new fields take their defaults.
SCHEMA_VERSION = 2
MAX_RECENT = 10
MAX_READER_NAME = 200  # as the label store allows

# What a mouse drag does on the image; "tool" is the measurement tool chosen in the toolbar.
DRAG_ACTIONS = ("window_level", "pan", "zoom", "tool")
WHEEL_ACTIONS = ("frames", "zoom")
LENGTH_UNITS = ("mm", "cm")
VIEWPORT_LAYOUTS = ("1x1", "1x2", "2x1", "2x2")  # rows x columns of the viewport grid


class SettingsError(UserError):
    """A setting given a value outside its rule; ``str()`` is one sentence."""


def _default_reader() -> str:
    try:
        name = getpass.getuser()
    except Exception:  # no login name on some service accounts
        return "reader"
    return name if _reader_name_problem(name) is None else "reader"


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
    # -- reading room (schema 2)
    mouse_left_drag: str = "window_level"
    mouse_middle_drag: str = "pan"
    mouse_right_drag: str = "zoom"
    mouse_wheel: str = "frames"
    corner_text: bool = True  # patient/study text in the image's corners
    saliency_overlay: bool = True  # the AI's saliency overlay shown when a read arrives
    ai_auto_run: bool = True  # read each image with the AI when it is opened
    retrieve_cache_mb: int = 10240  # studies retrieved from a PACS, kept on disk
    retrieve_cache_dir: str = ""  # '' means the user cache folder's 'retrieve' folder
    length_unit: str = "mm"
    # The viewport grid's layout and what it synchronises, as the reader left them.
    viewport_layout: str = "1x1"
    sync_window: bool = True
    sync_pan_zoom: bool = True
    sync_frames: bool = True
    # Keys from a newer MedViewer: kept so saving here does not lose them.
    extra: dict[str, Any] = field(default_factory=dict)

    def add_recent(self, path: str | Path) -> None:
        text = str(path)
        self.recent_paths = [text] + [p for p in self.recent_paths if p != text]
        del self.recent_paths[MAX_RECENT:]

    def to_dict(self) -> dict[str, Any]:
        """What the settings file holds (``extra``'s keys at the top level, as read)."""
        data = {f.name: _copy(getattr(self, f.name)) for f in fields(self) if f.name != "extra"}
        for key, value in self.extra.items():
            data.setdefault(key, value)
        return data


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


# ---------------------------------------------------------------- rules


@dataclass(frozen=True)
class Rule:
    """What a setting may hold: a type, and a range, choices or a check of its own."""

    kind: type
    describe: str  # completes "must be ...", e.g. "a whole number from 64 to 65536"
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    check: Callable[[Any], str | None] | None = None  # returns the problem, or None

    def problem(self, value: Any) -> str | None:
        """Why ``value`` breaks this rule (a phrase), or None when it is fine."""
        if not _is_kind(value, self.kind):
            return f"it must be {self.describe}"
        if self.kind is float and not math.isfinite(value):
            return f"it must be {self.describe}"
        if self.minimum is not None and value < self.minimum:
            return f"it must be {self.describe}"
        if self.maximum is not None and value > self.maximum:
            return f"it must be {self.describe}"
        if self.choices and value not in self.choices:
            return f"it must be {self.describe}"
        return self.check(value) if self.check else None


def _is_kind(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):  # JSON true is not a number here
        return False
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def _reader_name_problem(value: str) -> str | None:
    text = value.strip()
    if not text or len(text) > MAX_READER_NAME or any(ch in text for ch in "\r\n\t"):
        return f"it must be 1 to {MAX_READER_NAME} characters without tabs or line breaks"
    return None


def _text_list_problem(value: list) -> str | None:
    if not all(isinstance(item, str) for item in value):
        return "it must be a list of paths"
    return None


def _folder_problem(value: str) -> str | None:
    if value and not Path(value).expanduser().is_absolute():
        return "it must be empty (the default folder) or a full folder path"
    return None


def _choices(values: tuple[str, ...]) -> str:
    return "one of " + ", ".join(values)


RULES: dict[str, Rule] = {
    "schema_version": Rule(int, "a whole number", minimum=0),
    "reader_name": Rule(str, f"1 to {MAX_READER_NAME} characters of text",
                        check=_reader_name_problem),
    "recent_paths": Rule(list, "a list of paths", check=_text_list_problem),
    "default_model": Rule(str, "a model name or NAME@VERSION"),
    "use_tensorrt": Rule(bool, "true or false"),
    "pixel_cache_mb": Rule(int, "a whole number of MB from 64 to 65536",
                           minimum=64, maximum=65536),
    "overlay_opacity": Rule(float, "a number from 0 to 1", minimum=0.0, maximum=1.0),
    "window_geometry": Rule(str, "text"),
    "window_state": Rule(str, "text"),
    "mouse_left_drag": Rule(str, _choices(DRAG_ACTIONS), choices=DRAG_ACTIONS),
    "mouse_middle_drag": Rule(str, _choices(DRAG_ACTIONS), choices=DRAG_ACTIONS),
    "mouse_right_drag": Rule(str, _choices(DRAG_ACTIONS), choices=DRAG_ACTIONS),
    "mouse_wheel": Rule(str, _choices(WHEEL_ACTIONS), choices=WHEEL_ACTIONS),
    "corner_text": Rule(bool, "true or false"),
    "saliency_overlay": Rule(bool, "true or false"),
    "ai_auto_run": Rule(bool, "true or false"),
    "retrieve_cache_mb": Rule(int, "a whole number of MB from 100 to 1048576",
                              minimum=100, maximum=1_048_576),
    "retrieve_cache_dir": Rule(str, "a folder path", check=_folder_problem),
    "length_unit": Rule(str, _choices(LENGTH_UNITS), choices=LENGTH_UNITS),
    "viewport_layout": Rule(str, _choices(VIEWPORT_LAYOUTS), choices=VIEWPORT_LAYOUTS),
    "sync_window": Rule(bool, "true or false"),
    "sync_pan_zoom": Rule(bool, "true or false"),
    "sync_frames": Rule(bool, "true or false"),
}


def check_setting(name: str, value: Any) -> Any:
    """``value`` as the setting holds it (ints widened to float where a float is wanted, text
    stripped where it is a name), or SettingsError saying which rule it breaks."""
    rule = RULES.get(name)
    if rule is None:
        raise SettingsError(f"There is no setting called '{name}'.")
    problem = rule.problem(value)
    if problem is not None:
        raise SettingsError(f"The setting '{name}' cannot be {_shown(value)}: {problem}.")
    if rule.kind is float:
        return float(value)
    if name == "reader_name":
        return value.strip()
    if isinstance(value, list):
        return list(value)
    return value


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------- the file


def settings_path() -> Path:
    return user_config_dir() / "settings.json"


def load_settings_with_notices(path: Path | None = None) -> tuple[Settings, list[str]]:
    """The settings in the file, and one sentence per value that was replaced by its default.

    A missing file gives the defaults without a notice; an unreadable one gives the
    defaults with a notice. Notices are logged here too.
    """
    path = path or settings_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings(), []
    except (OSError, ValueError) as exc:
        return Settings(), _logged([f"The settings file {path} could not be read ({exc}); "
                                    "the default settings are used."])
    if not isinstance(raw, dict):
        return Settings(), _logged([f"The settings file {path} does not hold settings "
                                    "(it is not a JSON object); the default settings are used."])
    settings = Settings()
    notices: list[str] = []
    for key, value in raw.items():
        if key == "schema_version" or key == "extra":
            continue
        if key not in RULES:
            settings.extra[key] = value
            continue
        try:
            setattr(settings, key, check_setting(key, value))
        except SettingsError as exc:
            default = getattr(settings, key)
            shown = _shown(default) if default != "" else "empty"
            notices.append(f"In {path}, {str(exc)[0].lower()}{str(exc)[1:-1]}; its default "
                           f"({shown}) is used instead.")
    if len(settings.recent_paths) > MAX_RECENT:
        del settings.recent_paths[MAX_RECENT:]
    return settings, _logged(notices)


def _logged(notices: list[str]) -> list[str]:
    for notice in notices:
        log.warning("%s", notice)
    return notices


def load_settings(path: Path | None = None) -> Settings:
    """Read settings; bad values fall back to defaults (logged, never fatal)."""
    return load_settings_with_notices(path)[0]


def save_settings(settings: Settings, path: Path | None = None) -> None:
    """Write atomically so a crash never leaves a half-written settings file."""
    data = settings.to_dict()
    data["schema_version"] = SCHEMA_VERSION
    write_atomically(path or settings_path(), json.dumps(data, indent=2))
