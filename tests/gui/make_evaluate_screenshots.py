"""Save screenshots of local validation: the Evaluate dialog and the model dialog listing it.

    xvfb-run -s "-screen 0 1600x1000x24" .venv/bin/python -m tests.gui.make_evaluate_screenshots docs/screenshots

Evaluates the shipped demo model on 120 Kermany test images (60 per class) in a temporary
MEDVIEWER_HOME, so no real user's records are touched. Not a test: it asserts nothing.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
KERMANY = PROJECT_ROOT.parent / "shared" / "data" / "xray" / "kermany224" / "test"


def main(out_dir: str) -> None:
    os.environ["MEDVIEWER_HOME"] = tempfile.mkdtemp(prefix="medviewer-shots-")
    from PySide6.QtCore import QEventLoop, QTimer

    from medviewer.gui.app import create_application
    from medviewer.gui.evaluate_dialog import EvaluateDialog
    from medviewer.gui.models_dialog import ModelInfoDialog
    from medviewer.inference.audit import connect_audit_log
    from medviewer.inference.registry import scan_models

    connect_audit_log()
    app = create_application()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entry = max((e for e in scan_models()[0] if e.name == "pneumonia-demo"),
                key=lambda e: e.version)
    pairs = [(p, c) for c in ("NORMAL", "PNEUMONIA")
             for p in sorted((KERMANY / c).iterdir())[:60]]
    dialog = EvaluateDialog([entry], entry.key, pairs=pairs, source="label set 'ward check'")
    dialog.resize(1000, 640)
    dialog.show()
    dialog.threshold_spin.setValue(0.3)
    loop = QEventLoop()
    worker = dialog.start()
    worker.ended.connect(loop.quit)
    QTimer.singleShot(300_000, loop.quit)
    loop.exec()
    app.processEvents()
    dialog.grab().save(str(out / "evaluate_dialog.png"))

    info = ModelInfoDialog(entry, "CPUExecutionProvider")
    info.resize(760, 900)
    info.show()
    app.processEvents()
    view = info.view
    anchor = view.toPlainText().find("Checks on every answer")
    cursor = view.textCursor()
    cursor.setPosition(max(0, anchor))
    view.setTextCursor(cursor)
    view.ensureCursorVisible()
    bar = view.verticalScrollBar()
    bar.setValue(min(bar.maximum(), bar.value() + view.viewport().height() // 2 - 40))
    app.processEvents()
    info.grab().save(str(out / "model_info_local_validation.png"))
    info.close()
    dialog.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")
