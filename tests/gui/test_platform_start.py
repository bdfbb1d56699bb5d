"""Starting on a real desktop: the app under Xvfb with Qt's xcb platform (not offscreen), and
one sentence naming the missing libraries and the install command when the plugin cannot load.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medviewer.gui.app import STARTUP_REPORT_PREFIX
from medviewer.gui.qt_system_libraries import (
    debian_package,
    missing_libraries,
    platform_failure_sentence,
    platform_plugin_files,
    qt_plugins_dir,
)
from tests.conftest import PROJECT_ROOT
from tests.gui.x_server import xcb_unavailable, xvfb_display

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="Qt's xcb platform and ldd are Linux's")


def app_environment(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("QT_") and k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(PYTHONPATH=str(PROJECT_ROOT), MEDVIEWER_HOME=str(home), **extra)
    return env


@pytest.mark.slow
def test_the_app_starts_and_shows_the_sample_under_a_real_x_server(tmp_path):
    reason = xcb_unavailable()
    if reason:
        pytest.skip(reason)
    with xvfb_display() as display:
        result = subprocess.run(
            [sys.executable, "-m", "medviewer"], cwd=tmp_path, capture_output=True, text=True,
            timeout=120, env=app_environment(tmp_path / "home", QT_QPA_PLATFORM="xcb",
                                             DISPLAY=display, MEDVIEWER_EXIT_AFTER_SHOW="image"))
    assert result.returncode == 0, result.stderr
    report = [line for line in result.stdout.splitlines()
              if line.startswith(STARTUP_REPORT_PREFIX)]
    assert len(report) == 1 and "image_s=" in report[0], result.stdout + result.stderr
    assert "platform plugin" not in result.stderr


def plugin_needing(tmp_path: Path, real: str, fake: str) -> Path:
    """Qt's xcb plugin copied with one needed library renamed to one that does not exist,
    in a folder laid out like Qt's (plugins/platforms beside lib), so Qt's own libraries
    are still found through the plugin's RUNPATH ($ORIGIN/../../lib)."""
    assert len(real) == len(fake)
    plugins = qt_plugins_dir()
    source = plugins / "platforms" / "libqxcb.so"
    data = source.read_bytes()
    assert real.encode() in data, f"{source} does not need {real}"
    platforms = tmp_path / "qt" / "plugins" / "platforms"
    platforms.mkdir(parents=True)
    (platforms / "libqxcb.so").write_bytes(data.replace(real.encode(), fake.encode()))
    (tmp_path / "qt" / "lib").symlink_to(plugins.parent / "lib")
    return platforms


def test_a_missing_library_gives_one_sentence_with_the_install_command(tmp_path):
    platforms = plugin_needing(tmp_path, "libxcb-keysyms.so.1", "libxcb-keysyzz.so.1")
    result = subprocess.run(
        [sys.executable, "-m", "medviewer"], cwd=tmp_path, capture_output=True, text=True,
        timeout=60, env=app_environment(tmp_path / "home", QT_QPA_PLATFORM="xcb",
                                        QT_QPA_PLATFORM_PLUGIN_PATH=str(platforms),
                                        DISPLAY=":9999"))
    assert result.returncode == 1, result.stderr  # not Qt's abort (134) with a core dump
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    sentence = lines[0]
    assert sentence.startswith("medviewer: MedViewer's window cannot open: Qt's xcb platform")
    assert "libxcb-keysyzz.so.1" in sentence
    assert "apt-get install -y " in sentence and " libxcb-keysyzz1" in sentence
    assert "xcb-cursor0" not in sentence  # Qt's own message names the wrong library


def test_ldd_names_what_is_missing_and_nothing_else(tmp_path):
    platforms = plugin_needing(tmp_path, "libxcb-icccm.so.4", "libxcb-iccxx.so.4")
    found = missing_libraries([platforms / "libqxcb.so"])
    assert "libxcb-iccxx.so.4" in found
    assert not any(name.startswith("libQt6") for name in found)  # Qt's own are found
    assert missing_libraries([Path("/bin/ls")]) == []


def test_platform_plugin_files_follow_qt_qpa_platform_plugin_path(tmp_path, monkeypatch):
    platforms = plugin_needing(tmp_path, "libxcb-icccm.so.4", "libxcb-iccxx.so.4")
    assert platform_plugin_files("xcb")[0] == qt_plugins_dir() / "platforms" / "libqxcb.so"
    monkeypatch.setenv("QT_QPA_PLATFORM_PLUGIN_PATH", str(platforms))
    assert platform_plugin_files("xcb") == [platforms / "libqxcb.so"]


@pytest.mark.parametrize(("soname", "package"), [
    ("libxcb-icccm.so.4", "libxcb-icccm4"),
    ("libxcb-keysyms.so.1", "libxcb-keysyms1"),
    ("libxcb-cursor.so.0", "libxcb-cursor0"),
    ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
    ("libxcb-render-util.so.0", "libxcb-render-util0"),
    ("libX11-xcb.so.1", "libx11-xcb1"),
    ("libX11.so.6", "libx11-6"),
    ("libEGL.so.1", "libegl1"),
    ("libdbus-1.so.3", "libdbus-1-3"),
    ("libglib-2.0.so.0", "libglib2.0-0"),
    ("libfontconfig.so.1", "libfontconfig1"),
])
def test_debian_package_of_a_library(soname, package):
    assert debian_package(soname) == package


def test_debian_names_agree_with_dpkg_for_the_installed_xcb_libraries():
    """On this machine, each library Qt's plugin found maps to the package dpkg says owns it."""
    if shutil.which("dpkg") is None:
        pytest.skip("dpkg is not installed, so the package names cannot be checked here.")
    ldd = subprocess.run(["ldd", str(platform_plugin_files("xcb")[0])], capture_output=True,
                         text=True, check=True).stdout
    checked = 0
    for line in ldd.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].startswith(("libxcb", "libxkb", "libX11")) \
                and parts[2].startswith("/"):
            owner = subprocess.run(["dpkg", "-S", os.path.realpath(parts[2])],
                                   capture_output=True, text=True, check=False).stdout
            if owner:
                assert owner.split(":")[0] == debian_package(parts[0]), line
                checked += 1
    assert checked >= 5


def test_a_failure_without_missing_libraries_repeats_qts_reason(tmp_path):
    sentence = platform_failure_sentence("xcb", [
        "could not connect to display :77",
        f'Could not load the Qt platform plugin "xcb" in "{tmp_path}" even though it was found.',
        "This application failed to start because no Qt platform plugin could be initialized."])
    assert sentence == ("MedViewer's window cannot open: Qt's xcb platform plugin could not "
                        "start (could not connect to display :77) (is a desktop session "
                        "running, and DISPLAY set?).")
