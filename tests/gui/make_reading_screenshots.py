"""Save screenshots of the reading-room view: the 2x2 grid with sync, frame sync, each
measurement tool, corner text, display shutters and overlay planes, the right-click menu.

Run under a real X server (the xcb platform, not offscreen) so fonts and styles are what
users see:
    xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb \
        .venv/bin/python -m tests.gui.make_reading_screenshots docs/screenshots
Not a test: it asserts nothing. The views live in a ViewportGrid inside a plain window,
as the main window will hold them.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pydicom
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication, QMainWindow

from medviewer.paths import SAMPLE_STUDY_DIR
from tests.gui.make_screenshots import pause, wait_until

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED = PROJECT_ROOT.parent / "shared" / "data" / "dicom"
PYDICOM_DATA = Path(pydicom.__file__).parent.parent / "data_store" / "data"


def show(view, path) -> None:
    view.open_path(path)
    wait_until(lambda: view.instance is not None and Path(view.instance.path) == Path(path)
               and not view.is_loading)
    pause(100)


def mouse(view, kind, x, y, button=Qt.MouseButton.LeftButton, buttons=None) -> None:
    viewport = view.graphics_view.viewport()
    pos = view.map_image_to_widget(x, y)
    event = QMouseEvent(kind, pos, viewport.mapToGlobal(pos), button,
                        button if buttons is None else buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(viewport, event)
    pause(30)


def drag(view, start, end, button=Qt.MouseButton.LeftButton) -> None:
    """A real drag (press, moves, release) between two image points."""
    mouse(view, QEvent.Type.MouseButtonPress, *start, button)
    for t in (0.3, 0.7, 1.0):
        x = start[0] + (end[0] - start[0]) * t
        y = start[1] + (end[1] - start[1]) * t
        mouse(view, QEvent.Type.MouseMove, x, y, Qt.MouseButton.NoButton, button)
    mouse(view, QEvent.Type.MouseButtonRelease, *end, button, Qt.MouseButton.NoButton)


def click(view, point) -> None:
    mouse(view, QEvent.Type.MouseButtonPress, *point)
    mouse(view, QEvent.Type.MouseButtonRelease, *point, buttons=Qt.MouseButton.NoButton)


def dated_copy(folder: Path, source: Path, date: str, time: str = "101500") -> Path:
    ds = pydicom.dcmread(source)
    ds.StudyDate, ds.StudyTime = date, time
    ds.StudyInstanceUID = pydicom.uid.generate_uid()
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{source.stem}_{date}.dcm"
    ds.save_as(path)
    return path


def with_shutter(source: Path, target: Path, **attributes) -> Path:
    ds = pydicom.dcmread(source)
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.save_as(target)
    return target


def main(out_dir: str) -> None:
    from medviewer.dicom.catalog import index_path
    from medviewer.gui.app import configure_pyqtgraph, create_application
    from medviewer.gui.viewport_grid import ViewportGrid
    from medviewer.jobs import run_to_end

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    app = create_application()
    configure_pyqtgraph()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        import os

        os.environ["MEDVIEWER_HOME"] = str(tmp / "home")
        window = QMainWindow()
        window.setWindowTitle("MedViewer — reading")
        grid = ViewportGrid()
        window.setCentralWidget(grid)
        grid.message.connect(lambda text: window.statusBar().showMessage(text))
        window.resize(1500, 940)
        window.show()
        pause(300)

        def save(name: str) -> None:
            pause(250)
            window.grab().save(str(out / name))
            print("saved", name)

        # 1. Compare with prior, 2x2, W/L and zoom synchronised from the active view.
        sample = sorted(SAMPLE_STUDY_DIR.glob("*.dcm"))
        current = dated_copy(tmp / "now", sample[0], "20240305")
        dated_copy(tmp / "prior", sample[3], "20230112")
        dated_copy(tmp / "prior", sample[5], "20210620")
        catalogs = [run_to_end(index_path(tmp / "now")), run_to_end(index_path(tmp / "prior"))]
        grid.catalogs_provider = lambda: catalogs
        main_view = grid.primary_view
        show(main_view, current)
        beside = grid.compare_with_prior()
        wait_until(lambda: beside.instance is not None and not beside.is_loading)
        grid.set_layout("2x2")
        show(grid.views()[2], sample[1])
        show(grid.views()[3], sample[4])
        grid.set_active(main_view)
        drag(main_view, (60, 60), (110, 40))  # left drag: window/level, followed by all
        main_view.zoom_by(1.6)  # followed by all, the same size in mm
        main_view.measures.add("distance", [(40.0, 150.0), (180.0, 150.0)])
        window.statusBar().showMessage(
            "Active view top left (blue frame): W/L and zoom synchronised; "
            "top right is the prior study (compare with prior)")
        save("reading_compare_2x2_sync.png")

        # 2. Frame scrolling synchronised: two multi-frame MR series, 1x2.
        grid.set_layout("1x2")
        knee = SHARED / "fo-dicom" / "MOVEKNEE.dcm"
        left, right = grid.views()
        grid.set_sync("window", False)
        show(left, knee)
        show(right, knee)
        right.set_frame(3)  # the right one starts 3 frames further on
        grid.set_active(left)
        for _ in range(6):
            left.step_frame(1)  # followed by the right view, step by step
        window.statusBar().showMessage(f"Frame sync: left at frame {left.frame + 1}, right "
                                       f"follows at frame {right.frame + 1}")
        save("reading_frames_sync.png")
        grid.set_sync("window", True)

        # 3. Each measurement tool, drawn with real mouse drags and clicks.
        grid.set_layout("1x2")
        left, right = grid.views()
        grid.set_sync("pan_zoom", False)
        hip = SHARED / "wg04" / "REF" / "RG2_UNC"
        show(left, hip)
        left.set_tool("distance")
        drag(left, (500, 900), (1400, 1150))
        left.set_tool("angle")
        drag(left, (700, 500), (1100, 1000))
        click(left, (1500, 700))
        show(right, sample[2])
        right.set_tool("cobb")
        drag(right, (70, 90), (150, 100))
        drag(right, (75, 175), (155, 160))
        window.statusBar().showMessage("Distance and angle on a hip radiograph (left); Cobb "
                                       "angle between two endplates (right)")
        save("reading_tools_distance_angle_cobb.png")

        ct = SHARED / "wg04" / "REF" / "CT1_UNC"
        show(left, ct)
        left.apply_preset("ct:CT abdomen")
        left.set_tool("rectangle")
        drag(left, (180, 260), (260, 330))
        left.set_tool("ellipse")
        drag(left, (300, 200), (380, 270))
        chest = SHARED / "fo-dicom" / "CR-MONO1-10-chest"  # no pixel spacing: calibrate
        show(right, chest)
        right.set_tool("calibrate")
        drag(right, (60, 400), (380, 400))
        dialog = right.measures.pending_dialog
        dialog.setDoubleValue(300.0)
        dialog.accept()
        right.set_tool("distance")
        drag(right, (220, 60), (220, 380))
        right.set_tool("text")
        click(right, (300, 120))
        right.measures.pending_dialog.setTextValue("calibrated on a 300 mm line")
        right.measures.pending_dialog.accept()
        right.set_tool("probe")
        click(right, (150, 200))
        window.statusBar().showMessage("ROIs in HU on a CT (left); calibration from a known "
                                       "distance, a distance, the pixel probe and a note on a "
                                       "chest without pixel spacing (right)")
        save("reading_tools_roi_calibration_probe.png")

        # 4. Corner text, a custom layout, and the right-click menu.
        grid.set_layout("1x1")
        show(grid.primary_view, ct)
        grid.primary_view.apply_preset("ct:CT lung")
        save("reading_corner_text.png")
        view = grid.primary_view
        menu = view.build_context_menu((256.0, 256.0))
        menu.popup(view.mapToGlobal(view.rect().center()))
        pause(300)
        menu.grab().save(str(out / "reading_context_menu.png"))
        print("saved reading_context_menu.png")
        menu.close()

        # 5. Display shutters: circular (black) and polygonal (a CIELab colour).
        grid.set_layout("1x2")
        left, right = grid.views()
        circular = with_shutter(hip, tmp / "circular.dcm", ShutterShape="CIRCULAR",
                                CenterOfCircularShutter=[1070, 880],
                                RadiusOfCircularShutter=800, ShutterPresentationValue=0)
        corners = [(200, 300), (200, 1500), (1100, 1700), (2000, 1400), (2000, 300)]
        polygonal = with_shutter(hip, tmp / "polygon.dcm", ShutterShape="POLYGONAL\\RECTANGULAR",
                                 VerticesOfThePolygonalShutter=[v for p in corners for v in p],
                                 ShutterLeftVerticalEdge=100, ShutterRightVerticalEdge=1660,
                                 ShutterUpperHorizontalEdge=100, ShutterLowerHorizontalEdge=2040,
                                 ShutterPresentationColorCIELabValue=[14000, 33000, 20000])
        show(left, circular)
        show(right, polygonal)
        window.statusBar().showMessage("Display shutters: circular in black (left), polygonal "
                                       "with a rectangle in the file's CIELab colour (right)")
        save("reading_shutters.png")

        # 6. Overlay planes: a Siemens MR's graphics; a mammogram's marks, one off the image.
        show(left, PYDICOM_DATA / "MR-SIEMENS-DICOM-WithOverlays.dcm")
        show(right, SHARED / "fo-dicom" / "OutOfBoundsOverlay.dcm")
        right.zoom_by(1.0)
        window.statusBar().showMessage("Overlay planes (60xx) drawn in white: MR graphics "
                                       "(left), mammogram marks cut at the image edge (right)")
        save("reading_overlay_planes.png")

        grid.wait_for_workers()
        window.close()
    app.processEvents()
    print(f"screenshots saved in {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")
