"""Settings: every field checked on load, bad values replaced by defaults with one notice each,
old files still loading, unknown keys kept, and the session refusing bad values."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from medviewer.app.session import Session
from medviewer.settings import (
    RULES,
    SCHEMA_VERSION,
    Settings,
    SettingsError,
    check_setting,
    load_settings,
    load_settings_with_notices,
    save_settings,
    settings_path,
)


def write(values: object) -> Path:
    path = settings_path()
    path.write_text(json.dumps(values), encoding="utf-8")
    return path


def test_every_field_has_a_rule_and_the_defaults_pass_it():
    names = {name for name in Settings.__dataclass_fields__ if name != "extra"}
    assert names == set(RULES)
    defaults = Settings()
    for name in names:
        assert check_setting(name, getattr(defaults, name)) == getattr(defaults, name), name


def test_a_version_1_file_loads_with_its_values_and_new_fields_at_their_defaults():
    # Written by the release before the reading-room settings existed.
    write({"schema_version": 1, "reader_name": "dr.lee", "recent_paths": ["/data/a"],
           "default_model": "pneumonia-demo@1.3", "use_tensorrt": True, "pixel_cache_mb": 2048,
           "overlay_opacity": 0.3, "window_geometry": "AdnQyw==", "window_state": ""})
    settings, notices = load_settings_with_notices()
    assert notices == []
    assert (settings.reader_name, settings.recent_paths, settings.default_model) == (
        "dr.lee", ["/data/a"], "pneumonia-demo@1.3")
    assert settings.use_tensorrt is True and settings.pixel_cache_mb == 2048
    assert settings.overlay_opacity == 0.3
    assert settings.mouse_left_drag == "window_level" and settings.ai_auto_run is True
    assert settings.length_unit == "mm" and settings.corner_text is True
    save_settings(settings)
    assert json.loads(settings_path().read_text())["schema_version"] == SCHEMA_VERSION


@pytest.mark.parametrize(("name", "bad"), [
    ("reader_name", ""),
    ("reader_name", "two\nlines"),
    ("reader_name", 42),
    ("recent_paths", "/not/a/list"),
    ("recent_paths", ["/ok", 3]),
    ("use_tensorrt", "yes"),
    ("use_tensorrt", 1),
    ("pixel_cache_mb", "lots"),
    ("pixel_cache_mb", 10),
    ("pixel_cache_mb", True),
    ("pixel_cache_mb", 1.5),
    ("overlay_opacity", 1.5),
    ("overlay_opacity", -0.1),
    ("overlay_opacity", None),
    ("mouse_left_drag", "spin"),
    ("mouse_wheel", "pan"),
    ("corner_text", "off"),
    ("saliency_overlay", 0),
    ("ai_auto_run", None),
    ("retrieve_cache_mb", 99),
    ("retrieve_cache_mb", 2**40),
    ("retrieve_cache_dir", "relative/folder"),
    ("length_unit", "inch"),
    ("viewport_layout", "3x3"),
    ("sync_frames", "yes"),
    ("window_state", ["not", "text"]),
])
def test_a_wrong_value_falls_back_to_its_default_with_one_notice(name, bad, caplog):
    path = write({"reader_name": "dr.lee", "length_unit": "cm", name: bad}
                 if name not in ("reader_name", "length_unit") else {name: bad})
    with caplog.at_level(logging.WARNING, logger="medviewer.settings"):
        settings, notices = load_settings_with_notices()
    default = getattr(Settings(), name)
    assert getattr(settings, name) == default
    assert len(notices) == 1
    notice = notices[0]
    assert str(path) in notice and f"'{name}'" in notice and "default" in notice
    assert notice.endswith(".") and notice.count(". ") == 0  # one sentence
    assert notice in caplog.text
    # The other values in the file are kept.
    if name not in ("reader_name", "length_unit"):
        assert settings.reader_name == "dr.lee" and settings.length_unit == "cm"


def test_several_bad_values_give_one_notice_each_and_good_ones_stay():
    write({"pixel_cache_mb": "x", "overlay_opacity": 7, "mouse_right_drag": "pan",
           "retrieve_cache_dir": "/srv/pacs-cache", "overlay_opacity_typo": 1})
    settings, notices = load_settings_with_notices()
    assert len(notices) == 2
    assert settings.mouse_right_drag == "pan"
    assert settings.retrieve_cache_dir == "/srv/pacs-cache"


def test_ints_are_accepted_for_float_settings():
    write({"overlay_opacity": 1})
    settings, notices = load_settings_with_notices()
    assert notices == [] and settings.overlay_opacity == 1.0
    assert isinstance(settings.overlay_opacity, float)


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", "\"text\"", ""])
def test_an_unreadable_file_gives_defaults_and_a_notice(content):
    path = settings_path()
    path.write_text(content, encoding="utf-8")
    settings, notices = load_settings_with_notices()
    assert settings == Settings()
    assert len(notices) == 1 and str(path) in notices[0]


def test_a_missing_file_gives_defaults_without_a_notice():
    settings_path().unlink(missing_ok=True)
    assert load_settings_with_notices() == (Settings(), [])


def test_keys_from_a_newer_version_are_kept_when_saving():
    write({"schema_version": 9, "reader_name": "dr.lee", "hanging_protocols": {"CR": "1x2"}})
    settings, notices = load_settings_with_notices()
    assert notices == []
    settings.length_unit = "cm"
    save_settings(settings)
    saved = json.loads(settings_path().read_text())
    assert saved["hanging_protocols"] == {"CR": "1x2"}
    assert saved["length_unit"] == "cm" and "extra" not in saved


def test_too_many_recent_paths_are_cut_to_the_limit():
    write({"recent_paths": [f"/data/{i}" for i in range(30)]})
    assert len(load_settings().recent_paths) == 10


def test_check_setting_names_the_setting_and_the_rule():
    with pytest.raises(SettingsError, match=r"'pixel_cache_mb' cannot be 5: it must be a whole "
                                            r"number of MB from 64 to 65536\."):
        check_setting("pixel_cache_mb", 5)
    with pytest.raises(SettingsError, match="no setting called 'colour'"):
        check_setting("colour", "red")
    assert check_setting("reader_name", "  dr.lee ") == "dr.lee"


def test_session_refuses_a_bad_value_and_changes_nothing():
    session = Session()
    heard: list[Settings] = []
    session.events.settings_changed.connect(heard.append)
    with pytest.raises(SettingsError):
        session.update_settings(length_unit="cm", overlay_opacity=3.0)
    assert session.settings.length_unit == "mm" and heard == []
    assert session.update_settings(length_unit="cm", ai_auto_run=False) is None
    assert heard == [session.settings]
    assert load_settings().length_unit == "cm" and load_settings().ai_auto_run is False


def test_session_keeps_the_load_notices_for_the_gui():
    write({"mouse_left_drag": 3})
    session = Session()
    assert session.settings.mouse_left_drag == "window_level"
    assert len(session.settings_notices) == 1 and "mouse_left_drag" in session.settings_notices[0]
