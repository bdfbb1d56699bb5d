"""Cold start of the viewer to its first painted main window, against a bare PySide6 window.

Each run is a fresh process, timed from just before it is spawned (so interpreter start and
every import count) to the main window's first paint, and on to the first image of the
bundled sample study on screen, as reported by the process itself
(``MEDVIEWER_EXIT_AFTER_SHOW=image``, see medviewer/gui/app.py). The same process reports
whether torch or onnxruntime were imported by then. Baseline, same run: ``python -c`` that imports
PySide6.QtWidgets and shows an empty QMainWindow, timed the same way. Runs alternate between
the two so machine load affects both alike; medians are compared.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RUNS = int(os.environ.get("MEDVIEWER_BENCH_STARTUP_RUNS", "7"))
TARGET_S = 1.5
PREFIX = "MEDVIEWER_STARTUP"

BASELINE_CODE = f"""
import os, sys, time
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication(sys.argv[:1])
window = QMainWindow()
window.resize(1400, 900)
class FirstPaint(QObject):
    seen = False
    def eventFilter(self, watched, event):
        if event.type() == QEvent.Type.Paint and not self.seen:
            self.seen = True
            elapsed = time.time() - float(os.environ["MEDVIEWER_STARTUP_T0"])
            print(f"{PREFIX} shown_s={{elapsed:.4f}} shown_cpu_s={{time.process_time():.4f}} "
                  f"torch={{int('torch' in sys.modules)}} "
                  f"onnxruntime={{int('onnxruntime' in sys.modules)}}", flush=True)
            QTimer.singleShot(0, window.close)
        return False
first_paint = FirstPaint()
window.installEventFilter(first_paint)
window.show()
sys.exit(app.exec())
"""


def _run(command: list[str], home: Path) -> dict[str, float]:
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"),
               MEDVIEWER_EXIT_AFTER_SHOW="image", MEDVIEWER_HOME=str(home))
    env["MEDVIEWER_STARTUP_T0"] = repr(time.time())
    started = time.perf_counter()
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    exited_s = time.perf_counter() - started
    line = next((l for l in done.stdout.splitlines() if l.startswith(PREFIX)), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"{command[1:3]} failed (exit {done.returncode}): "
                           f"{done.stderr.strip()[-800:]}")
    fields = dict(item.split("=", 1) for item in line.split()[1:])
    result = {"torch": int(fields["torch"]), "onnxruntime": int(fields["onnxruntime"]),
              "exited_s": exited_s}
    for key in ("shown_s", "shown_cpu_s", "image_s", "image_cpu_s"):
        if key in fields:
            result[key] = float(fields[key])
    return result


def main() -> None:
    python = sys.executable
    app_command = [python, "-m", "medviewer"]  # no PATH: the bundled sample study
    baseline_command = [python, "-c", BASELINE_CODE]
    app_runs: list[dict[str, float]] = []
    baseline_runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="medviewer-bench-startup-") as tmp:
        home = Path(tmp)  # settings and the index cache: the sample is re-indexed from cache
        # One untimed run of each warms the OS file cache (.pyc, shared libraries).
        _run(baseline_command, home)
        _run(app_command, home)
        for _ in range(RUNS):
            baseline_runs.append(_run(baseline_command, home))
            app_runs.append(_run(app_command, home))

    def median(runs, key):
        return statistics.median(r[key] for r in runs)

    app_shown = median(app_runs, "shown_s")
    base_shown = median(baseline_runs, "shown_s")
    print(f"runs: {RUNS} of each, alternating; platform {os.environ.get('QT_QPA_PLATFORM', 'offscreen')}")
    print(f"{'wall clock from spawn':40} {'median':>8} {'min':>8} {'max':>8}")
    rows = (("baseline: bare QMainWindow shown", baseline_runs, "shown_s"),
            ("medviewer main window shown", app_runs, "shown_s"),
            ("medviewer first sample image shown", app_runs, "image_s"))
    for label, runs, key in rows:
        values = [r[key] for r in runs]
        print(f"{label:40} {statistics.median(values):7.3f}s {min(values):7.3f}s "
              f"{max(values):7.3f}s")
    print(f"{'process CPU time (all threads)':40}")
    cpu_rows = (("baseline: bare QMainWindow shown", baseline_runs, "shown_cpu_s"),
                ("medviewer main window shown", app_runs, "shown_cpu_s"),
                ("medviewer first sample image shown", app_runs, "image_cpu_s"))
    for label, runs, key in cpu_rows:
        values = [r[key] for r in runs]
        print(f"{label:40} {statistics.median(values):7.3f}s {min(values):7.3f}s "
              f"{max(values):7.3f}s")
    print(f"{'medviewer process exit (after close)':36} {median(app_runs, 'exited_s'):7.3f}s")
    app_cpu, base_cpu = median(app_runs, "shown_cpu_s"), median(baseline_runs, "shown_cpu_s")
    print(f"ratio medviewer / baseline: wall {app_shown / base_shown:.2f}x "
          f"({app_shown - base_shown:+.3f}s), CPU {app_cpu / base_cpu:.2f}x "
          f"({app_cpu - base_cpu:+.3f}s)")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    torch_runs = sum(r["torch"] for r in app_runs)
    ort_runs = sum(r["onnxruntime"] for r in app_runs)
    print(f"torch imported in {torch_runs}/{RUNS} runs; onnxruntime imported in "
          f"{ort_runs}/{RUNS} runs")
    for label, value in (("wall clock", app_shown), ("CPU time", app_cpu)):
        verdict = "meets" if value < TARGET_S and torch_runs == 0 else "MISSES"
        print(f"target: shown < {TARGET_S} s with torch never imported, by {label} "
              f"({value:.3f} s) -> {verdict}")
    print("(wall clock counts the time other processes hold the CPUs; CPU time is the work "
          "this process did, whatever the load)")


if __name__ == "__main__":
    main()
