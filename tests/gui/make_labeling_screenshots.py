"""Save screenshots of the labelling workflow (docs/screenshots/labeling*.png) to look at them.

Run under a real X server so fonts and styles are what users see:
    xvfb-run -s "-screen 0 1600x1000x24" .venv/bin/python -m tests.gui.make_labeling_screenshots docs/screenshots
Not a test: it asserts nothing. Uses real Kermany X-rays, a real label store in a temporary
MEDVIEWER_HOME and a real (read-only) disk failure for the failed-write screen.
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import Qt

from medviewer.app.labelling import AiSuggestion
from tests.gui.make_screenshots import hover, pause, settle, wait_until

PROJECT_ROOT = Path(__file__).resolve().parents[2]
KERMANY = PROJECT_ROOT.parent / "shared" / "data" / "xray" / "kermany224" / "test"


def idle(window, ms: int = 250) -> None:
    settle(window, 50)
    wait_until(lambda: not window.label_panel.busy)
    pause(ms)


def copy_kermany(target: Path, per_class: int) -> Path:
    target.mkdir(parents=True)
    for kind in ("NORMAL", "PNEUMONIA"):
        for file in sorted((KERMANY / kind).glob("*.jpeg"))[:per_class]:
            shutil.copy2(file, target / file.name)
    return target


def key(window, which, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    from PySide6.QtTest import QTest

    target = window.image_view.graphics_view
    window.activateWindow()
    wait_until(window.isActiveWindow)  # shortcuts reach only the active window
    target.setFocus()
    QTest.keyClick(target, which, modifier)
    idle(window, 50)


def main(out_dir: str) -> None:
    from medviewer.gui.app import create_application
    from medviewer.gui.main_window import MainWindow
    from medviewer.labels.store import default_store_path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    app = create_application()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MEDVIEWER_HOME"] = str(Path(tmp) / "home")
        folder = copy_kermany(Path(tmp) / "chest-xrays", per_class=6)
        window = MainWindow()
        window.resize(1500, 940)
        window.show()
        panel = window.label_panel
        view = window.image_view

        # 1. The New label set dialog.
        window.open_paths([folder])
        settle(window)
        dialog = panel.show_new_label_set_dialog()
        dialog.name_edit.setText("pneumonia")
        dialog.classes_edit.setPlainText("normal\npneumonia")
        pause(200)
        dialog.grab().save(str(out / "labeling_new_label_set.png"))
        dialog.ok_button.click()
        wait_until(lambda: panel.label_set is not None)
        idle(window)

        # 2. A folder being labelled: some done, an AI suggestion, a note, the filter.
        window.activateWindow()
        for which in (Qt.Key.Key_1, Qt.Key.Key_N, Qt.Key.Key_2, Qt.Key.Key_N, Qt.Key.Key_1,
                      Qt.Key.Key_N, Qt.Key.Key_N, Qt.Key.Key_2, Qt.Key.Key_N):
            key(window, which)
        panel.state.set_suggestion(panel.current_path, AiSuggestion(
            "kermany-densenet@1.0", {"NORMAL": 0.13, "PNEUMONIA": 0.87}, ("PNEUMONIA",),
            ("PNEUMONIA",)))
        key(window, Qt.Key.Key_Return)
        panel.note_edit.setText("right lower lobe consolidation")
        panel.save_note()
        idle(window)
        window.study_filter.set_mode("unlabelled")
        hover(view, 120.5, 100.5)
        idle(window)
        window.grab().save(str(out / "labeling_panel.png"))
        window.study_filter.set_mode("all")

        # 3. Regions on a rotated view: region mode, a rectangle and an ellipse, one selected.
        key(window, Qt.Key.Key_U)
        view.rotate_right()
        key(window, Qt.Key.Key_R)
        panel.set_region_class(1)
        layer = panel.region_layer
        for shape, box in (("rectangle", (40.0, 60.0, 70.0, 90.0)),
                           ("ellipse", (130.0, 70.0, 60.0, 80.0))):
            panel.shape_combo.setCurrentIndex(panel.shape_combo.findData(shape))
            from medviewer.gui.region_items import RegionDraft

            layer.drawn.emit(RegionDraft(shape, *box, frame=view.frame))
            idle(window, 50)
        layer.select(max(panel.regions_on_screen()))
        idle(window)
        window.grab().save(str(out / "labeling_regions.png"))
        key(window, Qt.Key.Key_R)
        view.reset_view()

        # 4. A write the disk refuses: one sentence, nothing shown as saved.
        key(window, Qt.Key.Key_N)
        wal = Path(str(default_store_path()) + "-wal")
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(wal), hard))
        try:
            key(window, Qt.Key.Key_2)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        idle(window)
        window.grab().save(str(out / "labeling_failed_write.png"))

        # 5. Labels > Import labels…: a CSV with problem rows, then Labels > Export labels….
        panel._set_error(None)
        shown = [Path(p) for p in sorted(folder.glob("*.jpeg"))]
        rows = ["path,label,reader"] + [f"{p.name},{'pneumonia' if i % 2 else 'normal'},dr_lee"
                                        for i, p in enumerate(shown)]
        rows[3] = f"{shown[2].name},effusion,dr_lee"
        rows[7] = "IM-0099-0001.jpeg,normal,dr_lee"
        rows[9] = f"{shown[8].name},,dr_lee"
        reads = folder / "reads-dr-lee.csv"
        reads.write_text("\n".join(rows) + "\n", encoding="utf-8")
        importing = panel.transfer.open_import(reads)
        importing.set_combo.setCurrentText("pneumonia")
        pause(200)
        importing.grab().save(str(out / "labeling_import.png"))
        importing.start_check()
        wait_until(lambda: importing.state == "problems")
        pause(200)
        importing.problems_dialog.grab().save(str(out / "labeling_import_problems.png"))
        importing.problems_dialog.import_button.click()
        wait_until(lambda: importing.state == "done")
        idle(window)
        importing.grab().save(str(out / "labeling_import_done.png"))
        importing.close()
        exporting = panel.transfer.show_export_dialog()
        exporting.set_path(Path(tmp) / "exports" / "pneumonia-labels.csv")  # no such folder
        pause(200)
        exporting.grab().save(str(out / "labeling_export.png"))
        exporting.start_export()
        wait_until(lambda: exporting.state in ("done", "failed"))
        idle(window)
        exporting.grab().save(str(out / "labeling_export_failed.png"))
        exporting.close()

        window.close()
    app.processEvents()
    print(f"screenshots saved in {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")
