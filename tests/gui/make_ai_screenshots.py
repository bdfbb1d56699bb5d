"""Save screenshots of the AI reading screens (results panel, overlay, model card, batch table).

Run under a real X server so fonts and styles are what users see:
    xvfb-run -s "-screen 0 1600x1000x24" .venv/bin/python -m tests.gui.make_ai_screenshots docs/screenshots
Uses the shipped demo model in models/ when there is one; otherwise a stand-in model whose
card says plainly that it is not a classifier. Not a test: it asserts nothing.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
KERMANY = PROJECT_ROOT.parent / "shared" / "data" / "xray" / "kermany224" / "test"
WG04 = PROJECT_ROOT.parent / "shared" / "data" / "dicom" / "wg04" / "REF"


def stand_in_model(folder: Path) -> Path:
    """A 224 x 224 CAM model (mean brightness, 7 x 7 maps) with an honest card."""
    from tests.gui.ai_helpers import build_model

    return build_model(
        folder, "cam", "screenshot-stand-in", {"height": 224, "width": 224, "pool": 32},
        classes=["NORMAL", "PNEUMONIA"], input={"channels": 1, "height": 224, "width": 224},
        outputs={"cam": "cam"}, description="Stand-in for screenshots: it scores mean "
                                            "brightness, it is not a classifier.",
        operating_points={"PNEUMONIA": {"threshold": 0.45, "method": "fixed for screenshots"}},
        intended_use="Screenshots of the user interface only; a demo, not for clinical use.",
        training={"data": "none (no training)"}, metrics={})


def main(out_dir: str) -> None:
    from PySide6.QtCore import Qt

    from medviewer.gui.app import create_application
    from medviewer.inference.registry import import_model, list_models
    from tests.gui.make_screenshots import settle, wait_until

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    app = create_application()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MEDVIEWER_HOME"] = str(Path(tmp) / "home")
        shipped = [e for e in list_models() if e.source == "built-in"]
        entry = shipped[0] if shipped else import_model(stand_in_model(Path(tmp) / "src"))
        print(f"model: {entry.key} ({entry.source})")

        from medviewer.gui.main_window import MainWindow

        window = MainWindow()
        window.resize(1600, 960)
        window.show()
        ai = window.ai
        ai.choose_model(entry.key)
        wait_until(lambda: ai.model is not None or not ai.is_loading)

        # 1. A chest X-ray read: bars against the operating point, CAM overlay on the image.
        study = Path(tmp) / "chest"
        study.mkdir()
        pneumonia = sorted((KERMANY / "PNEUMONIA").glob("*.jpeg"))[:14]
        normal = sorted((KERMANY / "NORMAL").glob("*.jpeg"))[:10]
        for path in pneumonia + normal:
            shutil.copy(path, study / path.name)
        data = (WG04 / "CT1_UNC").read_bytes()
        (study / "CT1_truncated.dcm").write_bytes(data[: len(data) // 2])
        window.open_paths([study / pneumonia[3].name])
        settle(window)
        wait_until(lambda: ai.read is not None and ai.overlay.is_showing)
        settle(window, 300)
        window.grab().save(str(out / "ai_overlay.png"))
        ai.panel.content.grab().save(str(out / "ai_results_panel.png"))  # all of it, unscrolled

        # 1b. A normal chest: nothing flagged, so no map is shown unless asked for.
        window.open_paths([study / normal[0].name])
        settle(window)
        wait_until(lambda: ai.read is not None and ai.read.instance.path.name == normal[0].name)
        settle(window, 300)
        ai.panel.content.grab().save(str(out / "ai_results_normal.png"))

        # 1c. A CT slice: outside the model's intended use, not read as a finding.
        ct = Path(tmp) / "ct" / "CT1.dcm"
        ct.parent.mkdir()
        shutil.copy(WG04 / "CT1_UNC", ct)
        window.open_paths([ct])
        settle(window)
        wait_until(lambda: ai.read is not None and ai.read.instance.path == ct)
        settle(window, 300)
        window.grab().save(str(out / "ai_out_of_scope.png"))
        ai.panel.content.grab().save(str(out / "ai_results_out_of_scope.png"))

        # 1d. A picture that is no chest X-ray at all (an MR slice as PNG): unusual image.
        from PIL import Image

        from medviewer.dicom.reader import open_instance

        mr = Path(tmp) / "unusual" / "mr-slice.png"
        mr.parent.mkdir()
        frame = open_instance(WG04 / "MR1_UNC").display_frame(0)
        Image.fromarray(frame).resize((448, 448)).save(mr)
        window.open_paths([mr])
        settle(window)
        wait_until(lambda: ai.read is not None and ai.read.instance.path == mr)
        settle(window, 300)
        ai.panel.content.grab().save(str(out / "ai_results_unusual.png"))
        window.open_paths([study / pneumonia[3].name])
        settle(window)
        wait_until(lambda: ai.read is not None and ai.overlay.is_showing)

        # 2. The same image, rotated and flipped: the overlay follows.
        window.image_view.rotate_right()
        window.image_view.flip_horizontal()
        ai.panel.colour_combo.setCurrentText("inferno")
        ai.panel.opacity_slider.setValue(60)
        settle(window, 300)
        window.image_view.graphics_view.grab().save(str(out / "ai_overlay_rotated.png"))
        window.image_view.reset_view()
        ai.panel.colour_combo.setCurrentText("jet")
        ai.panel.opacity_slider.setValue(45)

        # 3. The model card.
        dialog = ai.show_model_info()
        settle(window, 300)
        dialog.grab().save(str(out / "ai_model_info.png"))
        dialog.close()

        # 4. A batch over the folder (one file is broken), sorted by probability.
        ai.batch.run([study], study.name)
        wait_until(lambda: not ai.batch.running, 120_000)
        columns = ai.batch.panel.columns
        finding = next((c for c in columns if c.startswith("P(")), columns[1])
        ai.batch.panel.table.sortItems(columns.index(finding), Qt.SortOrder.DescendingOrder)
        settle(window, 300)
        window.grab().save(str(out / "ai_batch.png"))

        # 5. An import refusal.
        from tests.inference import onnx_models

        bad = onnx_models.mean_model(Path(tmp) / "bad" / "lung-nodules.onnx")
        onnx_models.write_card(bad, sha256="0" * 64)
        ai.import_model_files(bad, bad.with_suffix(".json"))
        wait_until(lambda: ai.message_box is not None and ai.message_box.isVisible())
        settle(window, 300)
        ai.message_box.grab().save(str(out / "ai_import_refused.png"))
        window.close()
    app.processEvents()
    print(f"screenshots saved in {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")
