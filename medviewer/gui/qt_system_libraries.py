"""The system libraries Qt's platform plugins need, which are missing, and how to install them.

PySide6's wheel carries Qt but not the X11/xcb libraries its ``xcb`` platform plugin links
(a fresh Debian or Ubuntu desktop lacks e.g. libxcb-icccm4 and libxcb-keysyms1). Without
them Qt aborts at start-up with a message that names the wrong library. Here ``ldd`` on the
plugin says which are missing, and each library's Debian package follows from its SONAME.

Used by ``tools/system_packages.py`` (``make run``/``make test`` install them as root or
print the command), ``packaging/build.py`` (the .deb's ``Depends``) and ``gui/app.py`` (one
sentence instead of Qt's abort when the plugin cannot load, :func:`platform_failure_guard`).
Importing it loads no Qt: the tools script runs it before Qt can start.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

# subprocess, shutil and importlib.util are imported where used: the app imports this module
# on every start, and only a failure or the tools need them.

# SONAMEs whose Debian package does not follow the naming rule (see debian_package).
_PACKAGE_EXCEPTIONS = {
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libgobject-2.0.so.0": "libglib2.0-0",
    "libgio-2.0.so.0": "libglib2.0-0",
    "libharfbuzz.so.0": "libharfbuzz0b",
    "libstdc++.so.6": "libstdc++6",
    "libgcc_s.so.1": "libgcc-s1",
    "libc.so.6": "libc6",
    "libm.so.6": "libc6",
}
# Patterns as text: re compiles them on first use, not on every start of the app.
_SONAME = r"^(?P<name>lib[^/]+?)\.so\.(?P<version>[0-9][0-9.]*)$"
_NOT_FOUND = r"(?m)^\s*(\S+)\s+=>\s+not found"


def qt_plugins_dir() -> Path | None:
    """Qt's plugins folder: the running Qt's answer when QtCore is loaded, else PySide6's."""
    if "PySide6.QtCore" in sys.modules:
        from PySide6.QtCore import QLibraryInfo

        return Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath))
    import importlib.util

    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "Qt" / "plugins"


def platform_plugin_files(platform: str = "xcb", plugins_dir: Path | None = None,
                          with_integrations: bool = False) -> list[Path]:
    """The platform plugin's library (and, for xcb, its OpenGL integrations) that exist."""
    folder = os.environ.get("QT_QPA_PLATFORM_PLUGIN_PATH")
    platforms = Path(folder) if folder else None
    plugins_dir = plugins_dir or qt_plugins_dir()
    if platforms is None and plugins_dir is not None:
        platforms = plugins_dir / "platforms"
    files = [platforms / f"libq{platform}.so"] if platforms else []
    if with_integrations and platform == "xcb" and plugins_dir is not None:
        files += sorted((plugins_dir / "xcbglintegrations").glob("*.so"))
    return [f for f in files if f.is_file()]


def missing_libraries(files: Sequence[Path], env: dict[str, str] | None = None) -> list[str]:
    """SONAMEs that ``ldd`` cannot find for these files (their dependencies' too), in order.

    Empty where there is no ``ldd`` (not Linux): nothing can be said there.
    """
    import shutil
    import subprocess

    ldd = shutil.which("ldd")
    if not files or ldd is None:
        return []
    result = subprocess.run([ldd, *map(str, files)], capture_output=True, text=True,
                            env=env, check=False)
    return list(dict.fromkeys(re.findall(_NOT_FOUND, result.stdout)))


def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package that provides a library, by Debian's naming rule.

    ``libNAME.so.N`` is packaged as ``libNAMEN``, or ``libNAME-N`` when NAME ends in a digit
    (libxcb-icccm.so.4 -> libxcb-icccm4, libxkbcommon-x11.so.0 -> libxkbcommon-x11-0);
    a few well-known libraries differ (:data:`_PACKAGE_EXCEPTIONS`).
    """
    if soname in _PACKAGE_EXCEPTIONS:
        return _PACKAGE_EXCEPTIONS[soname]
    match = re.match(_SONAME, soname)
    if not match:
        return soname.lower()
    name, version = match.group("name").lower(), match.group("version").split(".")[0]
    return f"{name}-{version}" if name[-1].isdigit() else f"{name}{version}"


def apt_names(packages: Iterable[str]) -> list[str]:
    """Package names as this machine's apt knows them (Ubuntu 24.04 renamed some ``...t64``).

    A name apt does not know, or no apt at all, is kept as it is.
    """
    import shutil

    wanted = list(dict.fromkeys(packages))
    if not wanted or shutil.which("apt-cache") is None:
        return wanted
    known = _known_to_apt([*wanted, *(f"{p}t64" for p in wanted)])
    return [p if p in known or f"{p}t64" not in known else f"{p}t64" for p in wanted]


def _known_to_apt(names: list[str]) -> set[str]:
    import subprocess

    result = subprocess.run(["apt-cache", "policy", *names], capture_output=True, text=True,
                            check=False)
    known, current = set(), None
    for line in result.stdout.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            current = line[:-1]
        elif current and line.strip().startswith("Candidate:") \
                and "(none)" not in line:
            known.add(current)
    return known


def install_command(packages: Sequence[str]) -> str:
    """The one command that installs these packages (``sudo`` unless we are root)."""
    sudo = "" if os.name == "posix" and os.geteuid() == 0 else "sudo "
    return f"{sudo}apt-get install -y {' '.join(packages)}"


def missing_platform_sentence(platform: str, missing: Sequence[str]) -> str:
    """One sentence for the user: which libraries Qt's platform plugin lacks and the command."""
    import shutil

    libraries = ", ".join(missing)
    if shutil.which("apt-get") is None:
        return (f"MedViewer's window cannot open: Qt's {platform} platform plugin needs "
                f"system libraries that are not installed ({libraries}); install the "
                "packages that provide them.")
    return (f"MedViewer's window cannot open: Qt's {platform} platform plugin needs system "
            f"libraries that are not installed ({libraries}); install them with "
            f"'{install_command(apt_names(debian_package(s) for s in missing))}'.")


def platform_failure_sentence(platform: str, qt_messages: Sequence[str]) -> str:
    """Why Qt could not start its platform plugin, in one sentence.

    Missing libraries (found with ``ldd``) are named with the install command; otherwise
    Qt's own last warning says what went wrong (no display, for instance).
    """
    plugin_folder = None
    for message in qt_messages:
        match = re.search(r'platform plugin "([^"]+)" in "([^"]*)"', message)
        if match:
            platform, plugin_folder = match.group(1), match.group(2) or None
    if plugin_folder:
        files = [f for f in [Path(plugin_folder) / f"libq{platform}.so"] if f.is_file()]
    else:
        files = platform_plugin_files(platform)
    missing = missing_libraries(files)
    if missing:
        return missing_platform_sentence(platform, missing)
    # Qt's generic lines (and its guess at xcb-cursor) say nothing about this failure.
    generic = ("failed to start because no Qt platform plugin", "is needed to load the Qt xcb",
               "Could not load the Qt platform plugin")
    reasons = [m.strip().splitlines()[0] for m in qt_messages
               if m.strip() and not any(text in m for text in generic)]
    reason = reasons[-1].rstrip(".") if reasons else "it did not say why"
    hint = (" (is a desktop session running, and DISPLAY set?)"
            if "display" in reason.lower() else "")
    return (f"MedViewer's window cannot open: Qt's {platform} platform plugin could not "
            f"start ({reason}){hint}.")


def platform_name() -> str:
    """The platform plugin Qt will try first: QT_QPA_PLATFORM's first entry, else the
    desktop's default (wayland on a Wayland session with a compositor, else xcb)."""
    wanted = os.environ.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    if wanted:
        return wanted
    if sys.platform.startswith("linux"):
        if os.environ.get("XDG_SESSION_TYPE") == "wayland" and os.environ.get("WAYLAND_DISPLAY"):
            return "wayland"
        return "xcb"
    return {"darwin": "cocoa", "win32": "windows"}.get(sys.platform, "")


@contextmanager
def platform_failure_guard() -> Iterator[None]:
    """Around creating the QApplication: if Qt cannot start its platform plugin, print one
    sentence saying why (missing libraries and the command to install them) and exit 1,
    instead of Qt's abort with a message that names the wrong library.

    Qt's messages while the guard is on are held back; unless Qt gives up they are logged
    afterwards, and the previous message handler is restored.
    """
    import logging

    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    held: list[tuple[QtMsgType, str]] = []

    def on_message(kind: QtMsgType, _context: object, message: str) -> None:
        held.append((kind, message))
        if kind == QtMsgType.QtFatalMsg:
            sentence = platform_failure_sentence(platform_name() or "xcb",
                                                 [text for _, text in held])
            sys.stderr.write(f"medviewer: {sentence}\n")
            sys.stderr.flush()
            os._exit(1)  # Qt would abort (and dump core) right after this handler

    previous = qInstallMessageHandler(on_message)
    try:
        yield
    finally:
        qInstallMessageHandler(previous)
        log = logging.getLogger("medviewer.gui.app")
        for kind, message in held:
            level = logging.DEBUG if kind == QtMsgType.QtDebugMsg else logging.WARNING
            log.log(level, "Qt: %s", message)
