"""Start-up of a built bundle against the same code run from the venv (docs/performance.md).

    python packaging/measure_startup.py [dist/medviewer-viewer] [--runs 7]

Each run is a fresh process, offscreen, timed from just before it is spawned to the main
window's first paint and to the first sample image on screen, as the process reports itself
(``MEDVIEWER_EXIT_AFTER_SHOW=image``, medviewer/gui/app.py). Bundle and venv runs alternate
so machine load affects both alike; medians are compared. Each run gets a fresh
MEDVIEWER_HOME (cold index cache), and the bundle runs with a clean environment.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "MEDVIEWER_STARTUP"


def one_run(command: list[str], env: dict[str, str], cwd: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="medviewer-startup-") as home:
        run_env = {**env, "QT_QPA_PLATFORM": "offscreen", "MEDVIEWER_EXIT_AFTER_SHOW": "image",
                   "MEDVIEWER_HOME": home, "MEDVIEWER_STARTUP_T0": repr(time.time())}
        done = subprocess.run(command, cwd=cwd, env=run_env, capture_output=True, text=True,
                              timeout=180)
    line = next((l for l in done.stdout.splitlines() if l.startswith(PREFIX)), None)
    if line is None:
        raise SystemExit(f"{command[0]} reported no start-up time: {done.stderr[-500:]}")
    return {k: float(v) for k, v in (f.split("=") for f in line.split()[1:])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", nargs="?", type=Path, default=ROOT / "dist" / "medviewer-viewer")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    executable = args.bundle / ("medviewer-cli.exe" if sys.platform == "win32" else "medviewer")
    if not executable.is_file():
        raise SystemExit(f"No bundle at {args.bundle}: build it with `make package`.")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from build import clean_environment

    results: dict[str, list[dict[str, float]]] = {"venv": [], "bundle": []}
    with tempfile.TemporaryDirectory() as outside:
        for _ in range(args.runs):
            results["venv"].append(one_run([sys.executable, "-m", "medviewer"],
                                           dict(os.environ), ROOT))
            results["bundle"].append(one_run([str(executable)], clean_environment(),
                                             Path(outside)))
    medians = {}
    for name, runs in results.items():
        medians[name] = {key: statistics.median(r[key] for r in runs)
                         for key in ("shown_s", "image_s")}
        print(f"{name:6s}: window shown {medians[name]['shown_s']:.3f} s, first image "
              f"{medians[name]['image_s']:.3f} s (medians of {args.runs}); torch imported in "
              f"{sum(int(r.get('torch', 0)) for r in runs)}/{args.runs}")
    for key in ("shown_s", "image_s"):
        print(f"bundle / venv {key}: {medians['bundle'][key] / medians['venv'][key]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
