"""Save screenshots of the Preferences dialog, drawn by a real X server (Xvfb, xcb platform).

    .venv/bin/python -m tests.gui.make_preferences_screenshots docs/screenshots

Starts its own Xvfb on a free display and runs itself there. Writes preferences.png (a
reading-room set-up) and preferences_invalid.png (a relative folder refused). Not a test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def draw(target: Path) -> None:
    from medviewer.app.session import Session
    from medviewer.gui.app import create_application
    from medviewer.gui.preferences_dialog import PreferencesDialog
    from medviewer.settings import Settings, save_settings

    app = create_application()
    save_settings(Settings(reader_name="Dr. A. Lee", mouse_right_drag="zoom",
                           overlay_opacity=0.4, length_unit="mm", pixel_cache_mb=2048))
    dialog = PreferencesDialog(Session())
    dialog.show()
    for _ in range(20):
        app.processEvents()
    dialog.grab().save(str(target / "preferences.png"))
    dialog.retrieve_dir_edit.setText("pacs-cache")
    for _ in range(20):
        app.processEvents()
    dialog.grab().save(str(target / "preferences_invalid.png"))
    print(f"platform {app.platformName()}: wrote {target / 'preferences.png'} and "
          f"{target / 'preferences_invalid.png'}")


def main(target: Path) -> None:
    from tests.gui.x_server import xcb_unavailable, xvfb_display

    reason = xcb_unavailable()
    if reason:
        raise SystemExit(reason)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as home, xvfb_display() as display:
        env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb",
               "MEDVIEWER_HOME": home, "PYTHONPATH": str(PROJECT_ROOT)}
        subprocess.run([sys.executable, "-m", "tests.gui.make_preferences_screenshots",
                        "--draw", str(target.resolve())], env=env, check=True, cwd=PROJECT_ROOT)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--draw"]:
        draw(Path(sys.argv[2]))
    else:
        main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
