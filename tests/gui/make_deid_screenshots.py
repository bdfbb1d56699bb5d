"""Save screenshots of the de-identify dialog, the mask editor and the dataset export dialog
(docs/screenshots/deid-*.png) to look at them. Not a test. Run under a real X server:

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m tests.gui.make_deid_screenshots docs/screenshots

Uses real files from ../shared/data/dicom (wg04, with its ultrasound and secondary
captures) and a real label store in a temporary MEDVIEWER_HOME.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from PySide6.QtWidgets import QApplication

from tests.gui.make_screenshots import pause, wait_until

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WG04 = PROJECT_ROOT.parent / "shared" / "data" / "dicom" / "wg04"


def main(out: Path) -> None:
    temp = Path(tempfile.mkdtemp())
    os.environ["MEDVIEWER_HOME"] = str(temp / "home")
    app = QApplication.instance() or QApplication(sys.argv)
    from medviewer.dicom.deid.pixels import MaskRect
    from medviewer.gui.dataset_dialog import DatasetExportDialog
    from medviewer.gui.deid_dialog import DeidDialog
    from medviewer.gui.mask_editor import MaskEditor
    from medviewer.labels.identity import resolve_image
    from medviewer.labels.store import LabelStore

    out.mkdir(parents=True, exist_ok=True)
    editor = MaskEditor(WG04 / "REF" / "US1_UNC")
    editor.show()
    wait_until(lambda: editor.canvas.image is not None)
    editor.canvas.rectangles[:] = [MaskRect(0, 0, 640, 42), MaskRect(470, 50, 170, 60)]
    editor._refresh_list()
    editor.canvas.update()
    pause(300)
    editor.grab().save(str(out / "deid-mask-editor.png"))
    editor.preview.setChecked(True)
    pause(300)
    editor.grab().save(str(out / "deid-mask-editor-preview.png"))
    mask = editor.mask()
    editor.reject()

    dialog = DeidDialog([WG04 / "REF"])
    dialog.output.setText(str(temp / "deidentified"))
    dialog.key_file.setText(str(temp / "project.key"))
    dialog.set_mask(mask)
    dialog.show()
    dialog.start()
    wait_until(lambda: dialog.result is not None or bool(dialog.error.text()))
    wait_until(lambda: dialog.start_button.isEnabled())
    dialog.grab().save(str(out / "deid-dialog.png"))
    dialog.reject()

    store_path = temp / "home" / "labels.sqlite"
    files = sorted(p for p in (temp / "deidentified").rglob("IM*"))
    with LabelStore(store_path, reader="alice") as store:
        store.create_label_set("findings", ["normal", "abnormal"])
        for number, path in enumerate(files):
            store.set_label("findings", resolve_image(path),
                            "abnormal" if number % 2 else "normal")
    export = DatasetExportDialog(store_path, "findings")
    export.output.setText(str(temp / "dataset"))
    export.key_file.setText(str(temp / "project.key"))
    export.val.setValue(0.2)
    export.test.setValue(0.2)
    export.show()
    wait_until(lambda: export.label_set.count() > 0)
    export.start()
    wait_until(lambda: export.result is not None or bool(export.error.text()))
    wait_until(lambda: export.start_button.isEnabled())
    export.grab().save(str(out / "deid-dataset-export.png"))
    export.reject()
    app.processEvents()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
