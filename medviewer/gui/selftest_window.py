"""The GUI part of ``medviewer --self-test``: the main window shows the sample study offscreen.

It lives in ``gui/`` because it drives Qt; ``medviewer/selftest.py`` orchestrates the checks
and calls :func:`check_main_window` lazily.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEventLoop, QLibraryInfo, QTimer, qInstallMessageHandler
from PySide6.QtWidgets import QMessageBox

from medviewer.selftest import NATIVE_QT_PLATFORMS, GuiChecks, SelfTestFailure, one_line

log = logging.getLogger(__name__)


def check_main_window(timeout_s: float, studio: bool) -> str:
    """Show the sample study in a main window, check About and Training; return the platform.

    Raises SelfTestFailure with the reason when any of it does not work.
    """
    check_qt_platform_plugins()
    # Qt's own console chatter (e.g. the offscreen plugin's notes) goes to the debug log,
    # so the self-test prints its one line only.
    previous_handler = qInstallMessageHandler(
        lambda _kind, _context, message: log.debug("Qt: %s", message))
    try:
        return _show_sample_in_window(timeout_s, studio)
    finally:
        qInstallMessageHandler(previous_handler)


def _show_sample_in_window(timeout_s: float, studio: bool) -> str:
    from medviewer import paths
    from medviewer.gui.app import create_application
    from medviewer.gui.main_window import MainWindow

    app = create_application()
    window = MainWindow()
    outcome: dict[str, str] = {}
    loop = QEventLoop()

    def shown(_instance: Any) -> None:
        outcome.setdefault("result", "shown")
        loop.quit()

    def failed(message: str) -> None:
        outcome.setdefault("result", message)
        loop.quit()

    def uncaught(kind: type, exc: BaseException, _traceback: Any) -> None:
        # An exception in a slot (e.g. a module missing from a bundle) ends the wait at once.
        log.debug("Uncaught exception in the GUI", exc_info=(kind, exc, _traceback))
        outcome.setdefault("result", one_line(exc))
        loop.quit()

    window.image_view.image_shown.connect(shown)
    window.image_view.load_failed.connect(failed)
    previous_hook = sys.excepthook
    sys.excepthook = uncaught
    try:
        window.show()
        QTimer.singleShot(0, lambda: window.open_paths([paths.SAMPLE_STUDY_DIR]))
        QTimer.singleShot(int(timeout_s * 1000), loop.quit)
        loop.exec()
        if outcome.get("result") == "shown":
            outcome["result"] = _check_about_box(window)
        if outcome.get("result") == "shown" and not studio:
            outcome["result"] = _check_training_explains_studio(window)
    finally:
        window.close()
        window.deleteLater()
        app.processEvents()
        sys.excepthook = previous_hook
    result = outcome.get("result")
    if result is None:
        raise SelfTestFailure(f"the main window showed no image within {timeout_s:.0f} s")
    if result != "shown":
        raise SelfTestFailure(f"the main window could not show the sample image: {result}")
    return app.platformName()


def _check_about_box(window: Any) -> str:
    """Help > About lists the versions and the execution provider (package metadata works)."""
    try:
        window.show_about()
    except Exception as exc:  # noqa: BLE001 - reported as the window's failure
        return f"Help > About failed: {one_line(exc)}"
    box = window.findChild(QMessageBox, "aboutBox")
    text = box.text() if box is not None else ""
    if box is not None:
        box.close()
    if "Execution provider:" not in text or "onnxruntime:" not in text:
        return "Help > About does not list the versions and the execution provider"
    return "shown"


def _check_training_explains_studio(window: Any) -> str:
    """Viewer edition: Training > Train a model… must say what Studio adds, not fail."""
    try:
        shown = window.open_training_wizard()
    except Exception as exc:  # noqa: BLE001 - reported as the window's failure
        return f"Training > Train a model… failed without torch: {one_line(exc)}"
    text = shown.text() if hasattr(shown, "text") else ""
    shown.close()
    if "Studio" not in text:
        return "Training > Train a model… does not explain what the Studio edition adds"
    return "shown"


def check_training_tools() -> str:
    """Load PyTorch and the training code as the wizard does; return torch's version.

    The GUI-thread garbage collector must still own collection afterwards: were automatic
    collection back on, a pass could start on the training thread and delete Qt objects
    the GUI is drawing (a crash, not an error message).
    """
    import gc

    from medviewer.app.training import load_training_tools
    from medviewer.gui.app import create_application
    from medviewer.jobs import run_to_end

    app = create_application()
    if getattr(app, "garbage_collector", None) is None or gc.isenabled():
        raise SelfTestFailure("garbage collection is not confined to the GUI thread")
    info = run_to_end(load_training_tools())
    if gc.isenabled():
        raise SelfTestFailure("loading PyTorch switched automatic garbage collection back on, "
                              "so it could run on the training thread")
    return info.torch_version


def check_qt_platform_plugins() -> None:
    """Qt aborts the process when a platform plugin is missing: check the files first."""
    folder = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms"
    present = {p.name.split(".")[0].removeprefix("libq").removeprefix("q")
               for p in folder.glob("*") if p.is_file()} if folder.is_dir() else set()
    wanted = {os.environ.get("QT_QPA_PLATFORM", "offscreen").split(":")[0]}
    native = NATIVE_QT_PLATFORMS.get(sys.platform)
    if native:
        wanted.add(native)
    missing = sorted(wanted - present)
    if missing:
        raise SelfTestFailure(f"the Qt platform plugin(s) {', '.join(missing)} are missing "
                              f"from {folder}")


# What `medviewer --self-test` runs in Qt (medviewer.cli hands it to the self-test).
GUI_CHECKS = GuiChecks(main_window=check_main_window, training_tools=check_training_tools)
