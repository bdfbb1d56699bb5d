"""Save screenshots of the reading room in the main window: 2x2 compare with prior and sync,
each measurement tool, the View > Tools menu, corner text, display shutters, Preferences,
the Studies list's right-click menu with a key image.

Run under a real X server (the xcb platform, not offscreen) so fonts, styles and popups are
what users see:
    xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb \\
        .venv/bin/python -m tests.gui.make_readingroom_screenshots docs/screenshots
Not a test: it asserts nothing. Popups are grabbed with the screen, so the menu is shown
over the window it belongs to.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pydicom
from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QApplication

from medviewer.paths import SAMPLE_STUDY_DIR
from tests.gui.make_reading_screenshots import (
    SHARED,
    click,
    dated_copy,
    drag,
    show,
    with_shutter,
)
from tests.gui.make_screenshots import pause, wait_until


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["MEDVIEWER_HOME"] = str(tmp / "home")
        from medviewer.gui.app import configure_pyqtgraph, create_application
        from medviewer.gui.main_window import MainWindow
        from medviewer.settings import Settings, save_settings

        # The reading itself in view: no saliency map over the measurements.
        save_settings(Settings(reader_name="dr.lee", ai_auto_run=False,
                               saliency_overlay=False))
        app = create_application()
        configure_pyqtgraph()
        window = MainWindow()
        window.resize(1560, 960)
        window.move(0, 0)
        window.show()
        pause(500)

        def save(name: str, screen: bool = False) -> None:
            pause(300)
            picture = (app.primaryScreen().grabWindow(0, 0, 0, 1580, 990) if screen
                       else window.grab())
            picture.save(str(out / name))
            print("saved", name)

        # 1. Two studies of one patient, compare with prior, 2x2 with W/L and zoom synced.
        sample = sorted(SAMPLE_STUDY_DIR.glob("*.dcm"))
        studies = tmp / "patient"
        current = dated_copy(studies, sample[0], "20240305")
        dated_copy(studies, sample[3], "20230112")
        window.open_paths([studies])
        wait_until(lambda: not window.is_indexing and window.image_view.instance is not None)
        window.show_path(current.resolve())
        wait_until(lambda: window.image_view.instance.path == current.resolve())
        window.grid.actions_by_name["compare_prior"].trigger()
        beside = window.grid.views()[1]
        wait_until(lambda: beside.instance is not None and not beside.is_loading)
        window.grid.actions_by_name["layout_2x2"].trigger()
        show(window.grid.views()[2], sample[1])
        show(window.grid.views()[3], sample[4])
        main_view = window.image_view
        window.grid.set_active(main_view)
        drag(main_view, (60, 60), (110, 40))  # left drag: window/level, followed by all
        main_view.zoom_by(1.5)  # followed by all, the same size in mm
        main_view.set_tool("distance")
        drag(main_view, (40, 150), (180, 150))
        window.key_images.toggle(main_view.instance)
        wait_until(lambda: not window.key_images.busy)
        save("readingroom_compare_2x2_sync.png")

        # 2. Each measurement tool, one viewport each, with real drags and clicks.
        views = window.grid.views()
        hip = SHARED / "wg04" / "REF" / "RG2_UNC"
        ct = SHARED / "wg04" / "REF" / "CT1_UNC"
        chest = SHARED / "fo-dicom" / "CR-MONO1-10-chest"  # no pixel spacing: calibrate
        window.grid.set_sync("window", False)
        window.grid.set_sync("pan_zoom", False)
        show(views[0], hip)
        window.grid.set_active(views[0])
        views[0].set_tool("distance")
        drag(views[0], (500, 900), (1400, 1150))
        views[0].set_tool("angle")
        drag(views[0], (700, 500), (1100, 1000))
        click(views[0], (1500, 700))
        show(views[1], sample[2])
        window.grid.set_active(views[1])
        views[1].set_tool("cobb")
        drag(views[1], (70, 90), (150, 100))
        drag(views[1], (75, 175), (155, 160))
        show(views[2], ct)
        window.grid.set_active(views[2])
        views[2].apply_preset("ct:CT abdomen")
        views[2].set_tool("rectangle")
        drag(views[2], (180, 260), (260, 330))
        views[2].set_tool("ellipse")
        drag(views[2], (300, 200), (380, 270))
        show(views[3], chest)
        window.grid.set_active(views[3])
        views[3].set_tool("calibrate")
        drag(views[3], (60, 400), (380, 400))
        dialog = views[3].measures.pending_dialog
        dialog.setDoubleValue(300.0)
        dialog.accept()
        views[3].set_tool("distance")
        drag(views[3], (220, 60), (220, 380))
        views[3].set_tool("text")
        click(views[3], (300, 120))
        views[3].measures.pending_dialog.setTextValue("calibrated on a 300 mm line")
        views[3].measures.pending_dialog.accept()
        views[3].set_tool("probe")  # the tool of every viewport now; its value stays shown
        click(views[3], (150, 200))
        save("readingroom_tools.png")

        # 3. View > Tools, open over the window.
        view_menu = window.menus["view"]
        window.menuBar().setActiveAction(view_menu.menuAction())
        pause(300)
        view_menu.setActiveAction(window.reading.tools_menu.menuAction())
        window.reading.tools_menu.popup(
            view_menu.mapToGlobal(view_menu.actionGeometry(
                window.reading.tools_menu.menuAction()).topRight()))
        save("readingroom_tools_menu.png", screen=True)
        window.reading.tools_menu.close()
        view_menu.close()

        # 4. Corner text (1x1, CT lung window).
        window.grid.actions_by_name["layout_1x1"].trigger()
        window.grid.set_active(main_view)
        main_view.set_tool(None)
        show(main_view, ct)
        main_view.apply_preset("ct:CT lung")
        save("readingroom_corner_text.png")

        # 5. Display shutters: circular (black) and polygonal (a CIELab colour).
        window.grid.actions_by_name["layout_1x2"].trigger()
        left, right = window.grid.views()
        # New SOP Instance UIDs: the hip's measurements above are stored with its UID.
        circular = with_shutter(hip, tmp / "circular.dcm", ShutterShape="CIRCULAR",
                                SOPInstanceUID=pydicom.uid.generate_uid(),
                                CenterOfCircularShutter=[1070, 880],
                                RadiusOfCircularShutter=800, ShutterPresentationValue=0)
        corners = [(200, 300), (200, 1500), (1100, 1700), (2000, 1400), (2000, 300)]
        polygonal = with_shutter(hip, tmp / "polygon.dcm", ShutterShape="POLYGONAL\\RECTANGULAR",
                                 SOPInstanceUID=pydicom.uid.generate_uid(),
                                 VerticesOfThePolygonalShutter=[v for p in corners for v in p],
                                 ShutterLeftVerticalEdge=100, ShutterRightVerticalEdge=1660,
                                 ShutterUpperHorizontalEdge=100, ShutterLowerHorizontalEdge=2040,
                                 ShutterPresentationColorCIELabValue=[14000, 33000, 20000])
        show(left, circular)
        show(right, polygonal)
        save("readingroom_shutters.png")

        # 6. Preferences (File > Preferences…) over the window.
        dialog = window.show_preferences()
        dialog.move(window.geometry().center() - dialog.rect().center())
        save("readingroom_preferences.png", screen=True)
        dialog.close()

        # 7. The Studies list's right-click menu on a key image's row.
        window.grid.actions_by_name["layout_1x1"].trigger()
        browser = window.study_browser
        item = browser.item_for(current.resolve())
        browser.tree.scrollToItem(item)
        rect = browser.tree.visualItemRect(item)
        menu = window.study_tools.menu.popup(
            item, browser.tree.viewport().mapToGlobal(rect.center() + QPoint(20, 0)))
        listing = next(a.menu() for a in menu.actions()
                       if a.menu() is not None and a.menu().objectName() == "keyImageList")
        menu.setActiveAction(listing.menuAction())
        listing.popup(menu.mapToGlobal(menu.actionGeometry(listing.menuAction()).topRight()))
        save("readingroom_browser_menu.png", screen=True)
        listing.close()
        menu.close()

        window.close()
        app.processEvents()
    QApplication.processEvents()
    print(f"screenshots saved in {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")
