"""Save screenshots of the viewer's main screens (for docs/screenshots and for looking at them).

Run under a real X server so fonts and styles are what users see:
    xvfb-run -s "-screen 0 1600x1000x24" .venv/bin/python -m tests.gui.make_screenshots docs/screenshots
(it also runs with QT_QPA_PLATFORM=offscreen). Not a test: it asserts nothing.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QEventLoop, QTimer

from medviewer.paths import SAMPLE_STUDY_DIR

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED = PROJECT_ROOT.parent / "shared" / "data" / "dicom"
PYDICOM_FILES = Path(__import__("pydicom").__file__).parent / "data" / "test_files"


def wait_until(predicate, timeout_ms: int = 30_000) -> None:
    """Run the event loop until predicate() is true (a script helper, never app code)."""
    loop = QEventLoop()
    timer = QTimer()
    timer.timeout.connect(lambda: predicate() and loop.quit())
    timer.start(20)
    QTimer.singleShot(timeout_ms, loop.quit)
    loop.exec()
    timer.stop()
    if not predicate():
        raise TimeoutError("the window did not get there in time")


def pause(ms: int) -> None:
    """Let the event loop run for ``ms`` (paints, queued signals)."""
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def settle(window, ms: int = 300) -> None:
    wait_until(lambda: not window.is_indexing and not window.image_view.is_loading
               and not window.study_browser.is_busy)
    pause(ms)


def hover(view, x: float, y: float) -> None:
    from PySide6.QtCore import QEvent, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    viewport = view.graphics_view.viewport()
    pos = view.map_image_to_widget(x, y)
    event = QMouseEvent(QEvent.Type.MouseMove, pos, viewport.mapToGlobal(pos),
                        Qt.MouseButton.NoButton, Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(viewport, event)


def main(out_dir: str) -> None:
    from medviewer.gui.app import create_application
    from medviewer.gui.main_window import MainWindow

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    app = create_application()
    with tempfile.TemporaryDirectory() as tmp:
        import os

        os.environ["MEDVIEWER_HOME"] = str(Path(tmp) / "home")
        window = MainWindow()
        window.resize(1500, 940)
        window.show()
        view = window.image_view

        # 1. The bundled sample study, cursor over the image.
        window.open_paths([SAMPLE_STUDY_DIR])
        settle(window)
        hover(view, 110.5, 90.5)
        window.grab().save(str(out / "main_window_sample.png"))

        # 2. A multi-frame MR, frame 10, window/level changed.
        window.close_all()
        window.open_paths([SHARED / "fo-dicom" / "MOVEKNEE.dcm"])
        settle(window)
        view.set_frame(9)
        center, width = view.voi.center, view.voi.width
        view.set_window(center * 0.8, width * 0.55)
        hover(view, 128.5, 120.5)
        window.grab().save(str(out / "multiframe_window_level.png"))

        # 3. Tag search finding an element inside a sequence.
        window.close_all()
        window.open_paths([SAMPLE_STUDY_DIR])
        settle(window)
        window.focus_tag_search()
        window.tag_browser.set_filter("code")
        window.grab().save(str(out / "tag_search.png"))
        window.tag_browser.set_filter("")

        # 4. Measurement on a CT with Pixel Spacing, after a rotation.
        window.close_all()
        window.open_paths([SHARED / "wg04" / "REF" / "CT1_UNC"])
        settle(window)
        view.apply_preset("ct:CT bone")
        view.rotate_right()
        view.actions_by_name["measure"].setChecked(True)
        view.add_measurement((120, 200), (390, 260))
        view.add_measurement((256, 90), (256, 420))
        settle(window, 100)
        window.grab().save(str(out / "measurement.png"))
        view.actions_by_name["measure"].setChecked(False)

        # 5. A folder with broken files: the non-modal list.
        broken = Path(tmp) / "mixed"
        broken.mkdir()
        shutil.copy(PYDICOM_FILES / "CT_small.dcm", broken / "good_ct.dcm")
        (broken / "notes.dcm").write_bytes(b"this is not an image" * 20)
        (broken / "empty.dcm").write_bytes(b"")
        data = (PYDICOM_FILES / "MR_small.dcm").read_bytes()
        (broken / "cut_short.dcm").write_bytes(data[: len(data) - 3000])
        window.close_all()
        window.problems.clear()
        window.open_paths([broken])
        settle(window)
        window.show_problems()
        settle(window, 200)
        window.grab().save(str(out / "problems_list.png"))

        # 6. Help > Keyboard shortcuts.
        dialog = window.show_shortcuts()
        settle(window, 200)
        dialog.grab().save(str(out / "keyboard_shortcuts.png"))
        dialog.close()
        window.close()
    app.processEvents()
    print(f"screenshots saved in {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")
