"""The PDF report of an AI read against the same read written as a saliency PNG.

Both run in this process on the sample study's flagged image with the shipped demo model
(session loaded and warmed once, outside the timings): the baseline is what
``medviewer saliency`` does (CAM from the forward pass, blended overlay saved as PNG), the
report adds the PDF (identification, findings, both images, model card, disclaimer).
Medians of alternating runs; the ratio is the report's cost over the read it reports on.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

RUNS = int(os.environ.get("MEDVIEWER_BENCH_REPORT_RUNS", "9"))


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="medviewer-bench-report-") as scratch:
        os.environ["MEDVIEWER_HOME"] = str(Path(scratch) / "home")
        from PIL import Image

        from medviewer.app.report import ReportRequest, report_job
        from medviewer.dicom.reader import open_instance
        from medviewer.inference.registry import resolve_model
        from medviewer.inference.runtime import get_session
        from medviewer.inference.saliency import blend_overlay, saliency_for
        from medviewer.jobs import run_to_end
        from medviewer.paths import SAMPLE_STUDY_DIR

        image = SAMPLE_STUDY_DIR / "S02_I03.dcm"
        session = get_session(resolve_model("pneumonia-demo"), "cpu")
        output = Path(scratch) / "out"

        def saliency_png() -> None:
            instance = open_instance(image)
            _, saliency = saliency_for(session, instance)
            Image.fromarray(blend_overlay(instance.display_frame(0), saliency.values)).save(
                output.with_suffix(".png"))

        def report() -> None:
            run_to_end(report_job(ReportRequest(image, session, output.with_suffix(".pdf"))))

        saliency_png()
        report()  # first use: reportlab's import and font registration, timed below
        timings: dict[str, list[float]] = {"saliency png": [], "pdf report": []}
        for _ in range(RUNS):
            for name, run in (("saliency png", saliency_png), ("pdf report", report)):
                started = time.perf_counter()
                run()
                timings[name].append(time.perf_counter() - started)
        base = statistics.median(timings["saliency png"])
        pdf = statistics.median(timings["pdf report"])
        size = output.with_suffix(".pdf").stat().st_size
        print(f"saliency PNG (baseline): {base * 1000:.0f} ms median of {RUNS}")
        print(f"PDF report:              {pdf * 1000:.0f} ms median of {RUNS} "
              f"({pdf / base:.1f}x the baseline; {size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
