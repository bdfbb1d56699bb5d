"""Longest GUI event-loop stall while the training wizard trains, against the same loop idle.

A QTimer on the GUI thread fires every 10 ms and records the gap between firings: a gap of
G ms means the event loop could not run for about G - 10 ms (nothing repaints, no click is
handled). The wizard is driven through its real pages, in one process:

- baseline: the same timer with nothing else running (5 s),
- opening: the wizard opens and loads PyTorch on its worker (the process's first torch import),
- reading: the data page reads and splits the folder on a worker,
- training: a Kermany subset (150 images per class, 64 px, smallcnn, 3 epochs, the wizard's
  default device and CPU threads), from its start to the end, split into decoding the images
  and the epochs,
- evaluating (scoring validation/test) and exporting (ONNX export, parity, registration),
- replay: the events of that training fed to the same page at the same pace with no training
  running, i.e. the GUI's own drawing work on this machine (separates it from the worker's
  effect),
Each variant runs in a fresh process (so each imports PyTorch for the first time):
``wizard`` as shipped, and ``no-gc-handling`` with the wizard's GC handling replaced by a
no-op (no ``gc.disable()`` while importing PyTorch, no ``gc.freeze()`` after), to show what
the full garbage collections over torch's objects cost the GUI.

Target: the longest stall during training under 100 ms. Run alone with
``.venv/bin/python -m tests.bench wizard_stall``; ``python -m tests.bench.bench_wizard_stall
--screenshots DIR`` also saves a screenshot of every page (use xvfb-run for real fonts).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import subprocess
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[2]
KERMANY = PROJECT_ROOT.parent / "shared" / "data" / "xray" / "kermany224" / "train"
PER_CLASS = 150
INPUT_SIZE = 64
EPOCHS = 3
BATCH_SIZE = 32
TICK_MS = 10
BASELINE_S = 5.0
TARGET_MS = 100.0


class StallMeter:
    """Records every gap between the firings of a 10 ms timer on the GUI thread."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.ticks: list[tuple[float, float]] = []  # (time, gap since the previous firing)
        self._last = time.perf_counter()
        self._timer = QTimer()
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._tick)
        self._timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.ticks.append((now, now - self._last))
        self._last = now

    def gaps_ms(self, start: float, end: float) -> np.ndarray:
        return np.array([gap for t, gap in self.ticks if start < t <= end]) * 1000.0


class GcClock:
    """Durations of full (generation 2) garbage collections, on whichever thread ran them."""

    def __init__(self) -> None:
        self.full: list[tuple[float, float]] = []  # (end time, seconds)
        self._started: dict[int, float] = {}
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        import threading

        key = threading.get_ident()
        if phase == "start":
            self._started[key] = time.perf_counter()
        elif info.get("generation") == 2 and key in self._started:
            now = time.perf_counter()
            self.full.append((now, now - self._started.pop(key)))

    def between(self, start: float, end: float) -> list[float]:
        return [seconds * 1000 for t, seconds in self.full if start < t <= end]

    def close(self) -> None:
        gc.callbacks.remove(self._callback)


def record_train_events(page) -> list[tuple[float, object]]:
    """Record what the train page is given (set before the run starts; bench only)."""
    recorded: list[tuple[float, object]] = []
    handler = page.dispatch

    def record(event) -> None:
        recorded.append((time.perf_counter(), event))
        handler(event)

    page.dispatch = record  # start() connects the worker to page.dispatch
    return recorded


def replay(page, recorded: list[tuple[float, object]]) -> None:
    """Feed recorded events to the page at their original pace, with nothing training."""
    from PySide6.QtCore import QTimer

    handler = type(page).dispatch.__get__(page)
    page.curves.clear()
    page.started = None
    first = recorded[0][0]
    start = time.perf_counter()
    position = 0

    def step() -> None:
        nonlocal position
        now = time.perf_counter() - start
        while position < len(recorded) and recorded[position][0] - first <= now:
            handler(recorded[position][1])
            position += 1

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(step)
    timer.start()
    run_loop_until(lambda: position >= len(recorded))
    timer.stop()


def run_loop_until(predicate, timeout_s: float = 900.0) -> None:
    """Let the event loop run until predicate() holds (a bench helper, never app code)."""
    from PySide6.QtCore import QEventLoop, QTimer

    deadline = time.perf_counter() + timeout_s
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("the wizard did not get there in time")
        loop = QEventLoop()
        QTimer.singleShot(50, loop.quit)
        loop.exec()


def run_loop_for(seconds: float) -> None:
    end = time.perf_counter() + seconds
    run_loop_until(lambda: time.perf_counter() >= end)


def make_subset(folder: Path) -> Path:
    rng = random.Random(11)
    for class_name in ("NORMAL", "PNEUMONIA"):
        files = sorted((KERMANY / class_name).iterdir())
        (folder / class_name).mkdir(parents=True)
        for path in rng.sample(files, PER_CLASS):
            shutil.copyfile(path, folder / class_name / path.name)
    return folder


def click_next(wizard) -> None:
    from PySide6.QtWidgets import QWizard

    button = wizard.button(QWizard.WizardButton.NextButton)
    if not button.isEnabled():
        raise RuntimeError(f"Next is disabled on page {wizard.currentId()}")
    button.click()


def train_once(wizard, meter: StallMeter, marks: dict, prefix: str) -> None:
    """From the settings page: Next starts a run; marks the click, the first timer tick after
    the Train page's first paint (where the training phase starts), first batch and end."""
    from PySide6.QtWidgets import QApplication

    page = wizard.train_page
    marks[f"{prefix} click"] = time.perf_counter()
    click_next(wizard)
    QApplication.processEvents()  # lays out and paints the Train page
    painted = time.perf_counter()
    run_loop_until(lambda: meter.ticks[-1][0] >= painted)
    marks[f"{prefix} start"] = next(t for t, _ in meter.ticks if t >= painted)
    run_loop_until(lambda: page.curves.batch_count > 0 or page.outcome)
    marks[f"{prefix} first batch"] = time.perf_counter()
    run_loop_until(lambda: bool(page.outcome))
    marks[f"{prefix} end"] = time.perf_counter()
    if page.outcome != "finished":
        raise RuntimeError(f"training ended as {page.outcome}: {page.details.text()}")


def summarise(meter: StallMeter, name: str, start: float, end: float,
              baseline_max: float | None) -> dict:
    gaps = meter.gaps_ms(start, end)
    row = {"phase": name, "seconds": end - start, "ticks": len(gaps),
           "max_ms": float(gaps.max()) if gaps.size else float("nan"),
           "p99_ms": float(np.percentile(gaps, 99)) if gaps.size else float("nan"),
           "over_100": int((gaps > TARGET_MS).sum())}
    row["ratio"] = row["max_ms"] / baseline_max if baseline_max else 1.0
    return row


VARIANTS = ("wizard", "no-gc-handling")


def main(screenshots: str | None = None) -> dict:
    """Both variants, each in a fresh process; prints one table."""
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-wizard-") as tmp:
        for variant in VARIANTS:
            out = Path(tmp) / f"{variant}.json"
            command = [sys.executable, "-m", "tests.bench.bench_wizard_stall", "--variant",
                       variant, "--json-out", str(out)]
            if screenshots and variant == "wizard":
                command += ["--screenshots", str(screenshots)]
            env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM",
                                                                   "offscreen")}
            completed = subprocess.run(command, cwd=PROJECT_ROOT, env=env, text=True,
                                       capture_output=True)
            if completed.returncode != 0 or not out.is_file():
                raise RuntimeError(f"the {variant} run failed:\n{completed.stderr[-3000:]}")
            results[variant] = json.loads(out.read_text())
    _print(results)
    return results


def _print(results: dict) -> None:
    first = results["wizard"]
    print(f"training wizard, GUI event-loop stalls (10 ms timer): {2 * PER_CLASS} Kermany "
          f"images, {INPUT_SIZE} px, smallcnn, {EPOCHS} epochs, batch {BATCH_SIZE}, device "
          f"{first['device']}, {first['threads']} CPU thread(s); {os.cpu_count()} cores, load "
          f"average {first['load']:.1f} / {results['no-gc-handling']['load']:.1f}")
    print(f"{'variant':15s} {'phase':44s} {'s':>5s} {'max gap':>8s} {'p99':>6s} "
          f"{'>100ms':>6s} {'max/base':>8s}")
    for variant, result in results.items():
        for row in result["rows"]:
            print(f"{variant:15s} {row['phase']:44s} {row['seconds']:5.1f} "
                  f"{row['max_ms']:6.0f}ms {row['p99_ms']:4.0f}ms {row['over_100']:6d} "
                  f"{row['ratio']:7.1f}x")
        full = result["full_gc_ms"]
        print(f"{variant:15s} full garbage collections from opening to the end of training: "
              f"{len(full)}, longest {max(full, default=0):.0f} ms")
    print(f"curve redraws: {first['redraws']} in {first['epoch_seconds']:.1f} s of epochs "
          f"(at most 4 per second)")
    training = next(r for r in first["rows"] if r["phase"] == "training: whole run")
    print(f"longest stall while training: {training['max_ms']:.0f} ms (target < "
          f"{TARGET_MS:.0f} ms): {'OK' if training['max_ms'] < TARGET_MS else 'OVER TARGET'}")


def run_variant(variant: str, screenshots: str | None = None) -> dict:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    home = Path(tempfile.mkdtemp(prefix="bench-wizard-"))
    os.environ["MEDVIEWER_HOME"] = str(home)
    shots = Path(screenshots) if screenshots else None
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    if variant == "no-gc-handling":
        from medviewer.app import training as app_training

        app_training.without_gc_pauses = contextlib.nullcontext
    try:
        return _run(home, shots)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _grab(wizard, shots: Path | None, name: str) -> None:
    if shots is not None:
        run_loop_for(0.4)
        wizard.grab().save(str(shots / f"wizard_{name}.png"))


def _grab_finished_runs(shots: Path) -> None:
    """A second wizard's first page choosing the run just trained (screenshots only)."""
    from medviewer.gui.training_wizard import TrainingWizard

    again = TrainingWizard()
    again.show()
    run_loop_until(lambda: again.tools is not None)
    again.data_page.finished_radio.setChecked(True)
    run_loop_until(again.data_page.isComplete)
    _grab(again, shots, "1_finished_runs")
    again.shutdown()
    again.close()


def _run(home: Path, shots: Path | None) -> dict:
    from medviewer.gui.app import configure_pyqtgraph, create_application

    app = create_application()
    configure_pyqtgraph()
    data = make_subset(home / "kermany-subset")
    meter = StallMeter()
    gc_clock = GcClock()
    marks: dict[str, float] = {}

    marks["baseline start"] = time.perf_counter()
    run_loop_for(BASELINE_S)
    marks["baseline end"] = time.perf_counter()

    from medviewer.gui.training_wizard import TrainingWizard

    marks["opening start"] = time.perf_counter()
    wizard = TrainingWizard()
    wizard.show()
    run_loop_until(lambda: wizard.tools is not None)
    marks["opening end"] = time.perf_counter()

    marks["reading start"] = time.perf_counter()
    wizard.data_page.set_source("folder", str(data))
    run_loop_until(wizard.data_page.isComplete)
    marks["reading end"] = time.perf_counter()
    _grab(wizard, shots, "1_data")

    click_next(wizard)
    model = wizard.model_page
    model.arch_combo.setCurrentIndex(model.arch_combo.findData("smallcnn"))
    model.input_spin.setValue(INPUT_SIZE)
    _grab(wizard, shots, "2_model")
    click_next(wizard)
    settings = wizard.settings_page
    settings.epochs_spin.setValue(EPOCHS)
    settings.batch_spin.setValue(BATCH_SIZE)
    device = settings.device
    threads = settings.threads_spin.value()
    _grab(wizard, shots, "3_settings")

    recorded = record_train_events(wizard.train_page)
    train_once(wizard, meter, marks, "training")
    del wizard.train_page.dispatch
    redraws = wizard.train_page.curves.redraw_count
    _grab(wizard, shots, "4_train")
    marks["replay start"] = time.perf_counter()
    replay(wizard.train_page, recorded)
    marks["replay end"] = time.perf_counter()

    marks["evaluating start"] = time.perf_counter()
    click_next(wizard)
    evaluate = wizard.evaluate_page
    run_loop_until(lambda: evaluate.evaluation is not None or not wizard.is_running("score"))
    marks["evaluating end"] = time.perf_counter()
    if evaluate.evaluation is None:
        raise RuntimeError(evaluate.status_label.text())
    # Move the operating point one ROC step, as a user tuning it would.
    evaluate.slider.setValue(max(evaluate.slider.minimum(), evaluate.slider.value() - 1))
    _grab(wizard, shots, "5_evaluate")

    click_next(wizard)
    export = wizard.export_page
    export.name_edit.setText("bench-wizard")
    marks["exporting start"] = time.perf_counter()
    export.export_button.click()
    run_loop_until(lambda: not wizard.is_running("export"))
    marks["exporting end"] = time.perf_counter()
    if export.outcome is None:
        raise RuntimeError(export.result_label.text())
    _grab(wizard, shots, "6_export")
    if shots is not None:
        _grab_finished_runs(shots)
    wizard.shutdown()
    wizard.close()
    app.processEvents()
    gc_clock.close()

    baseline = summarise(meter, "baseline (idle)", marks["baseline start"],
                         marks["baseline end"], None)
    base_max = baseline["max_ms"]
    phases = (("opening (wizard built, PyTorch loaded)", "opening start", "opening end"),
              ("reading + splitting the folder", "reading start", "reading end"),
              ("switching to the Train page (first paint)", "training click",
               "training start"),
              ("training: whole run", "training start", "training end"),
              ("training: decoding images", "training start", "training first batch"),
              ("training: epochs", "training first batch", "training end"),
              ("replay: same GUI updates, nothing training", "replay start", "replay end"),
              ("evaluating (scoring val/test)", "evaluating start", "evaluating end"),
              ("exporting (ONNX, parity, register)", "exporting start", "exporting end"))
    rows = [baseline] + [summarise(meter, name, marks[a], marks[b], base_max)
                         for name, a, b in phases]
    return {"rows": rows, "redraws": redraws, "device": device, "threads": threads,
            "epoch_seconds": marks["training end"] - marks["training first batch"],
            "full_gc_ms": gc_clock.between(marks["opening start"], marks["training end"]),
            "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screenshots", help="also save wizard_*.png of every page here")
    parser.add_argument("--variant", choices=VARIANTS,
                        help="run one variant in this process (used by main())")
    parser.add_argument("--json-out", help="with --variant: write its figures here")
    parser.add_argument("--epochs", type=int, default=EPOCHS,
                        help="for screenshots of a longer run (figures are for the default)")
    parser.add_argument("--per-class", type=int, default=PER_CLASS)
    arguments = parser.parse_args()
    EPOCHS, PER_CLASS = arguments.epochs, arguments.per_class
    if arguments.variant:
        figures = run_variant(arguments.variant, arguments.screenshots)
        if arguments.json_out:
            Path(arguments.json_out).write_text(json.dumps(figures))
        else:
            _print({arguments.variant: figures, "no-gc-handling": figures})
    else:
        main(arguments.screenshots)
