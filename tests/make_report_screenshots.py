"""Save the pages of a sample AI read report as PNGs (docs/screenshots/report_*.png).

    .venv/bin/python -m tests.make_report_screenshots docs/screenshots

Reads the sample study's flagged image with the shipped demo model, with a reader's label
and note in a scratch label store, once identified and once de-identified, and renders the
pages with pdftoppm. Not a test: it asserts nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path


def main(target: Path) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="medviewer-report-shots-"))
    os.environ["MEDVIEWER_HOME"] = str(scratch / "home")
    from medviewer.cli import main as cli
    from medviewer.dicom.reader import open_instance
    from medviewer.labels.store import ImageRef, LabelStore, default_store_path
    from medviewer.paths import SAMPLE_STUDY_DIR

    image = SAMPLE_STUDY_DIR / "S02_I03.dcm"
    with LabelStore(default_store_path(), reader="dr.lee") as store:
        store.create_label_set("chest", ["normal", "pneumonia"])
        key = ImageRef.from_instance(open_instance(image))
        store.set_label("chest", key, ["pneumonia"])
        store.set_note("chest", key, "Patchy opacity, right lower zone; agree with the AI.")
    target.mkdir(parents=True, exist_ok=True)
    for name, extra in (("report", []), ("report_deidentified", ["--deidentify"])):
        pdf = scratch / f"{name}.pdf"
        if cli(["report", str(image), "-o", str(pdf), "--reader", "dr.lee", *extra]) != 0:
            raise SystemExit(f"the report {name} failed")
        subprocess.run(["pdftoppm", "-r", "80", "-png", str(pdf), str(target / f"{name}_page")],
                       check=True)
    for png in sorted(target.glob("report*_page-*.png")):
        print(png)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
