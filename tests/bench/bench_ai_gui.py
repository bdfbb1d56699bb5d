"""The AI workflow in the viewer against the same work done directly on one thread.

1. Reading the shown image: from ``ImageView.show_instance`` to the saliency overlay on
   screen (worker start, the 40 ms read debounce, queued signals, bars, overlay), against
   ``read_image_job`` driven on the calling thread (preprocess, inference with CAM, map and
   picture, audit row): the same work without the GUI.
2. The GUI thread meanwhile: the longest gap between 2 ms timer ticks while those reads
   run, against the longest gap with the window idle for as long.
3. Batch: ``AiBatch.run`` filling the table, against ``predict_paths`` on the same
   files and session (both audited).

Uses the shipped model from models/ when there is one, else a 224x224 stand-in CAM model
(mean brightness: inference costs almost nothing, so 1. and 3. show the GUI's own overhead).
Images: kermany224 test JPEGs and the wg04 RG1 chest radiograph (1955 x 1841, CR PA: inside
the shipped model's intended use; the RG2 hip it used before is now withheld, unread). Both
sides explain the PNEUMONIA class, chosen as a reader would in the class box, so a map is
made and shown whether or not the image is flagged (the overlay is off by default for an
image with nothing flagged).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from tests.bench.event_loop import run_until

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED = PROJECT_ROOT.parent / "shared" / "data"
READS_SMALL = 12
READS_LARGE = 4
BATCH_IMAGES = 200


class StallMeter:
    """Longest gap between ticks of a 2 ms timer: how long the GUI thread was busy."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(2)
        self.timer.timeout.connect(self._tick)
        self.last = 0.0
        self.longest = 0.0

    def _tick(self) -> None:
        now = time.perf_counter()
        self.longest = max(self.longest, now - self.last)
        self.last = now

    def start(self) -> None:
        self.last = time.perf_counter()
        self.longest = 0.0
        self.timer.start()

    def stop(self) -> float:
        self.timer.stop()
        return self.longest


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="medviewer-bench-ai-gui-") as tmp:
        os.environ["MEDVIEWER_HOME"] = str(Path(tmp) / "home")
        _run(Path(tmp))


def _run(tmp: Path) -> None:
    from medviewer.dicom.reader import open_instance
    from medviewer.gui.app import configure_pyqtgraph, create_application
    from medviewer.inference.predict import predict_paths
    from medviewer.inference.registry import import_model, list_models
    from medviewer.jobs import CancelFlag, run_to_end
    from tests.gui.make_ai_screenshots import stand_in_model

    app = create_application()
    configure_pyqtgraph()
    shipped = [e for e in list_models() if e.source == "built-in"]
    entry = shipped[0] if shipped else import_model(stand_in_model(tmp / "src"))
    print(f"model: {entry.key} ({'shipped' if shipped else 'stand-in, ~free inference'})")

    from medviewer.app import ai_reading
    from medviewer.gui import results_panel
    from medviewer.gui.main_window import MainWindow
    from medviewer.gui.overlay import saliency_rgba

    window = MainWindow()
    window.resize(1600, 960)
    window.show()
    ai, view = window.ai, window.image_view
    ai.choose_model(entry.key)
    run_until(lambda: ai.model is not None)
    session = ai.model
    print(f"provider: {session.provider}")
    explained = entry.card.classes[-1]  # as if chosen in the class box (PNEUMONIA)
    ai.state.chosen_class = explained

    kermany = sorted((SHARED / "xray/kermany224/test/PNEUMONIA").glob("*.jpeg"))
    small = [open_instance(p) for p in kermany[:READS_SMALL]]
    large = [open_instance(SHARED / "dicom/wg04/JLSN/RG1_JLSN") for _ in range(READS_LARGE)]
    for instance in small + large:
        instance.display_frame(0)  # decoded before timing: both sides start from pixels

    def core(instance) -> float:
        started = time.perf_counter()
        run_to_end(ai_reading.read_image_job(session, instance, 0, explained,
                                             ("jet", saliency_rgba), CancelFlag()))
        return time.perf_counter() - started

    shown: list[object] = []
    ai.saliency_shown.connect(shown.append)
    meter = StallMeter()

    def gui(instance) -> tuple[float, float]:
        view.show_instance(instance)  # emits image_shown: the read starts from here
        started = time.perf_counter()
        count = len(shown)
        meter.start()
        run_until(lambda: len(shown) > count and ai.overlay.is_showing)
        elapsed = time.perf_counter() - started
        return elapsed, meter.stop()

    def idle_stall(seconds: float) -> float:
        started = time.perf_counter()
        meter.start()
        run_until(lambda: time.perf_counter() - started >= seconds, seconds + 5)
        return meter.stop()

    rows = []
    for label, instances in (("224x224 JPEG", small), ("1955x1841 radiograph", large)):
        core_times, gui_times, stalls = [], [], []
        for instance in instances:  # alternate, so load changes hit both sides alike
            core_times.append(core(instance))
            elapsed, stall = gui(instance)
            gui_times.append(elapsed)
            stalls.append(stall)
        core_ms = statistics.median(core_times) * 1000
        gui_ms = statistics.median(gui_times) * 1000
        idle = idle_stall(sum(gui_times))
        rows.append((label, core_ms, gui_ms, max(stalls) * 1000, idle * 1000))
    print(f"\n1-2. reading the shown image (median of {READS_SMALL} / {READS_LARGE}; "
          f"includes the {results_panel.READ_DELAY_MS} ms debounce)")
    print(f"{'image':<22}{'core read':>12}{'in the GUI':>12}{'ratio':>8}{'overhead':>10}"
          f"{'GUI stall':>11}{'idle stall':>12}")
    for label, core_ms, gui_ms, stall_ms, idle_ms in rows:
        print(f"{label:<22}{core_ms:>10.1f}ms{gui_ms:>10.1f}ms{gui_ms / core_ms:>7.2f}x"
              f"{gui_ms - core_ms:>8.1f}ms{stall_ms:>9.1f}ms{idle_ms:>10.1f}ms")

    files = sorted((SHARED / "xray/kermany224/test/NORMAL").glob("*.jpeg"))[:BATCH_IMAGES // 2]
    files += sorted((SHARED / "xray/kermany224/test/PNEUMONIA").glob("*.jpeg"))[
        :BATCH_IMAGES - len(files)]
    baseline, in_gui = [], []
    for _ in range(2):
        started = time.perf_counter()
        predict_paths(files, session)
        baseline.append(time.perf_counter() - started)
        ended: list[str] = []
        ai.batch.ended.connect(ended.append)
        started = time.perf_counter()
        ai.batch.run(files, f"{len(files)} images")
        run_until(lambda: bool(ended))
        in_gui.append(time.perf_counter() - started)
        ai.batch.ended.disconnect(ended.append)
        assert ended == ["finished"] and ai.batch.panel.table.rowCount() == len(files)
    base_rate = len(files) / min(baseline)
    gui_rate = len(files) / min(in_gui)
    print(f"\n3. batch of {len(files)} kermany224 JPEGs (best of 2, alternating)")
    print(f"predict_paths: {base_rate:.0f} img/s; in the GUI (table filling): {gui_rate:.0f} "
          f"img/s; ratio {gui_rate / base_rate:.2f}")
    window.close()
    app.processEvents()


if __name__ == "__main__":
    main()
