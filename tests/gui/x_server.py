"""A private Xvfb X server for tests and screenshots that need the real xcb platform.

``Xvfb -displayfd`` picks a free display number itself, so several test runs on one machine
never collide; the server is stopped when the block ends. ``xcb_unavailable()`` says in one
sentence why the xcb platform cannot run here (for ``pytest.skip``), or returns None.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from medviewer.gui.qt_system_libraries import (
    apt_names,
    debian_package,
    install_command,
    missing_libraries,
    platform_plugin_files,
)

START_TIMEOUT_S = 20


def xcb_unavailable() -> str | None:
    """Why a real X server with Qt's xcb platform cannot run here, or None when it can."""
    if shutil.which("Xvfb") is None:
        return "Xvfb is not installed (make test installs it when run as root)."
    missing = missing_libraries(platform_plugin_files("xcb"))
    if missing:
        return (f"Qt's xcb platform lacks {', '.join(missing)} (install with "
                f"'{install_command(apt_names(debian_package(m) for m in missing))}').")
    return None


@contextmanager
def xvfb_display(size: str = "1600x1000x24") -> Iterator[str]:
    """Start Xvfb on a free display and yield its name (":N")."""
    read_end, write_end = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", size, "-nolisten", "tcp",
         "-noreset"], pass_fds=(write_end,), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], START_TIMEOUT_S)
        number = os.read(read_end, 64).decode().strip() if ready else ""
        if not number:
            raise RuntimeError(f"Xvfb did not report a display within {START_TIMEOUT_S} s")
        yield f":{number}"
    finally:
        os.close(read_end)
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
