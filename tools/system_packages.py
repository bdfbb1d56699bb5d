"""Install the system packages MedViewer needs beside its Python packages (Debian/Ubuntu).

    python tools/system_packages.py run [--optional]    # Qt's xcb platform libraries
    python tools/system_packages.py test [--optional]   # those, plus Xvfb and poppler-utils

``make run`` and ``make test`` call this after the venv is installed. It finds what is
missing (``ldd`` on PySide6's xcb plugin; ``Xvfb``, ``pdftoppm`` and ``pdftotext`` on PATH)
and, as root, installs it with apt-get; otherwise it prints the one command that would, and
exits 1 (0 with ``--optional``, where tests that need the tools skip with a sentence instead,
and for ``run`` when Qt will use another platform than xcb, e.g. on a Wayland desktop).
Nothing missing: it prints nothing and takes a fraction of a second.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medviewer.gui.qt_system_libraries import (  # noqa: E402 - after the path is set
    apt_names,
    debian_package,
    install_command,
    missing_libraries,
    platform_name,
    platform_plugin_files,
)

# Programs the test suite runs, and the package that brings each.
TEST_PROGRAMS = {"Xvfb": "xvfb", "pdftoppm": "poppler-utils", "pdftotext": "poppler-utils"}


def missing_packages(purpose: str) -> tuple[list[str], list[str]]:
    """(packages to install, what is missing in words) for ``run`` or ``test``."""
    libraries = missing_libraries(platform_plugin_files("xcb", with_integrations=True))
    packages = [debian_package(name) for name in libraries]
    missing = list(libraries)
    if purpose == "test":
        for program, package in TEST_PROGRAMS.items():
            if shutil.which(program) is None:
                packages.append(package)
                missing.append(program)
    return apt_names(packages), missing


def apt_install(packages: list[str]) -> bool:
    """apt-get install, with one `apt-get update` first if the lists do not know them."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    if subprocess.run(command, env=env, check=False).returncode == 0:
        return True
    print("[system-packages] apt-get install failed; updating the package lists and retrying",
          flush=True)
    subprocess.run(["apt-get", "update"], env=env, check=False)
    return subprocess.run(command, env=env, check=False).returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("purpose", choices=("run", "test"))
    parser.add_argument("--optional", action="store_true",
                        help="exit 0 even when packages are missing and cannot be installed")
    args = parser.parse_args(argv)
    if not sys.platform.startswith("linux"):
        return 0  # Qt's wheels carry what they need on Windows and macOS
    packages, missing = missing_packages(args.purpose)
    if not packages:
        return 0
    # A Wayland desktop starts Qt without xcb: say what is missing but let `make run` go on.
    failure = 0 if args.optional or (args.purpose == "run" and platform_name() != "xcb") else 1
    what = ", ".join(missing)
    if shutil.which("apt-get") is None:
        print(f"MedViewer needs {what}, which this system lacks: install the packages that "
              f"provide them ({', '.join(packages)} on Debian and Ubuntu).", file=sys.stderr)
        return failure
    if os.geteuid() != 0:
        print(f"MedViewer needs {what}, which this system lacks; install them with: "
              f"{install_command(packages)}", file=sys.stderr)
        return failure
    print(f"[system-packages] installing {' '.join(packages)} (for {what})", flush=True)
    if not apt_install(packages):
        print(f"Installing {' '.join(packages)} failed (apt-get's message is above).",
              file=sys.stderr)
        return failure
    packages, missing = missing_packages(args.purpose)
    if packages:
        print(f"Still missing after installing: {', '.join(missing)}.", file=sys.stderr)
        return failure
    return 0


if __name__ == "__main__":
    sys.exit(main())
