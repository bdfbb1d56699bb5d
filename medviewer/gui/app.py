"""Start the GUI: QApplication, style, main window, then open the given paths or the sample.

Start-up stays fast: nothing here imports torch or onnxruntime (the AI and training parts
import them lazily when first used), and indexing starts only after the window is shown.

``MEDVIEWER_EXIT_AFTER_SHOW=1`` makes the app quit right after the main window's first
paint and print one line with the start-up time (``tests/bench/bench_startup.py`` uses it);
``MEDVIEWER_EXIT_AFTER_SHOW=image`` waits for the first image instead and reports both.
``MEDVIEWER_STARTUP_T0`` (a ``time.time()`` value) is the moment to measure from (default:
the process start).
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

STARTUP_REPORT_PREFIX = "MEDVIEWER_STARTUP"


def configure_pyqtgraph() -> None:
    """Import pyqtgraph with MedViewer's settings (row-major images) now.

    The app itself does this when the image view builds its canvas, just after the window's
    first paint; tests and tools that use pyqtgraph without a window call this.
    """
    from medviewer.gui.lazy import import_pyqtgraph

    import_pyqtgraph()


def apply_style(app) -> None:
    """Fusion with a dark palette (images read best on dark grey) plus resources/style.qss."""
    from PySide6.QtGui import QColor, QPalette

    from medviewer.paths import RESOURCES_DIR

    app.setStyle("Fusion")
    palette = QPalette()
    colours = {
        QPalette.ColorRole.Window: QColor(45, 45, 48),
        QPalette.ColorRole.WindowText: QColor(225, 225, 225),
        QPalette.ColorRole.Base: QColor(30, 30, 32),
        QPalette.ColorRole.AlternateBase: QColor(40, 40, 43),
        QPalette.ColorRole.ToolTipBase: QColor(250, 250, 220),
        QPalette.ColorRole.ToolTipText: QColor(20, 20, 20),
        QPalette.ColorRole.Text: QColor(225, 225, 225),
        QPalette.ColorRole.Button: QColor(55, 55, 58),
        QPalette.ColorRole.ButtonText: QColor(225, 225, 225),
        QPalette.ColorRole.BrightText: QColor(255, 80, 80),
        QPalette.ColorRole.Highlight: QColor(42, 110, 187),
        QPalette.ColorRole.HighlightedText: QColor(255, 255, 255),
        QPalette.ColorRole.Link: QColor(110, 170, 240),
        QPalette.ColorRole.PlaceholderText: QColor(140, 140, 140),
    }
    for role, colour in colours.items():
        palette.setColor(role, colour)
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text,
                 QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(120, 120, 120))
    app.setPalette(palette)
    style_sheet = RESOURCES_DIR / "style.qss"
    try:
        app.setStyleSheet(style_sheet.read_text(encoding="utf-8"))
    except OSError as exc:
        log.warning("Style sheet %s not loaded: %s", style_sheet, exc)


class GuiThreadGarbageCollector:
    """Python's cyclic garbage collection, but only on the GUI thread between events.

    The collector otherwise runs on whichever thread happens to allocate: on a worker, or
    inside a paint, it can delete Qt/pyqtgraph objects Qt is still using, and Qt crashes
    (seen as a segfault in a test run). Automatic collection is switched off and a timer on
    the GUI thread collects the generations that are due, the way pyqtgraph recommends.
    """

    def __init__(self, interval_ms: int = 1000) -> None:
        from PySide6.QtCore import QTimer

        self._threshold = gc.get_threshold()
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._timer = QTimer()
        self._timer.timeout.connect(self.collect_due)
        self._timer.start(interval_ms)

    def collect_due(self) -> None:
        counts = gc.get_count()
        generation = -1
        for level in range(3):
            if counts[level] <= self._threshold[level]:
                break
            generation = level
        if generation >= 0:
            gc.collect(generation)

    def stop(self) -> None:
        """Back to automatic collection (tests call this between tests)."""
        self._timer.stop()
        gc.collect()
        if self._was_enabled:
            gc.enable()


def create_application():
    """The QApplication (created once) and its style; pyqtgraph is imported later."""
    from PySide6.QtWidgets import QApplication

    from medviewer.gui.qt_system_libraries import platform_failure_guard

    app = QApplication.instance()
    if app is None:
        with platform_failure_guard():  # one sentence, not Qt's abort, when libraries lack
            app = QApplication(sys.argv[:1])
        app.setApplicationName("MedViewer")
        app.setApplicationDisplayName("MedViewer")
        apply_style(app)
        app.garbage_collector = GuiThreadGarbageCollector()
    return app


def _report_startup_and_quit(window, wait_for_image: bool) -> None:
    """Print the start-up time and what was imported, then close the window.

    Reports at the main window's first paint, or (``wait_for_image``) once the first image
    is on screen, giving both times.
    """
    from PySide6.QtCore import QEvent, QObject, QTimer

    started = float(os.environ.get("MEDVIEWER_STARTUP_T0") or _process_start_time())
    times: dict[str, float] = {}

    def report() -> None:
        heavy = {name: int(name in sys.modules) for name in ("torch", "onnxruntime")}
        fields = " ".join(f"{key}={value:.4f}" for key, value in times.items())
        print(f"{STARTUP_REPORT_PREFIX} {fields} torch={heavy['torch']} "
              f"onnxruntime={heavy['onnxruntime']}", flush=True)
        window.close()

    class FirstPaint(QObject):
        def eventFilter(self, watched, event):  # noqa: N802 - Qt naming
            if event.type() == QEvent.Type.Paint and "shown_s" not in times:
                times["shown_s"] = time.time() - started
                # CPU seconds of this process so far: the work done, whatever the machine load.
                times["shown_cpu_s"] = time.process_time()
                if not wait_for_image:
                    QTimer.singleShot(0, report)
            return False

    def on_image_shown(_instance) -> None:
        # Queued: the image item repaints before the report.
        times["image_s"] = time.time() - started
        times["image_cpu_s"] = time.process_time()
        QTimer.singleShot(0, report)

    window._first_paint_filter = FirstPaint(window)
    window.installEventFilter(window._first_paint_filter)
    if wait_for_image:
        window.image_view.image_shown.connect(on_image_shown)
        window.image_view.load_failed.connect(lambda _message: report())


def _process_start_time() -> float:
    """This process's start as a time.time() value (Linux); else now."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time()


# ---------------------------------------------------------------- unexpected errors


def _report_class():
    from PySide6.QtCore import QObject, Signal, Slot

    class ErrorReporter(QObject):
        """Shows an unexpected error from any thread as one sentence in one message box.

        ``report`` may be emitted from any thread (the slot runs on the GUI thread); errors
        that come while the box is open are counted in it instead of opening more boxes.
        """

        report = Signal(str)

        def __init__(self, parent_window) -> None:
            super().__init__(parent_window)
            self.window = parent_window
            self.box = None
            self.sentence = ""
            self.more = 0
            self.report.connect(self.show_sentence)

        @Slot(str)
        def show_sentence(self, sentence: str) -> None:
            from PySide6.QtWidgets import QMessageBox

            if self.box is not None and self.box.isVisible():
                self.more += 1
                self.box.setText(f"{self.sentence}\n\n({self.more} more unexpected "
                                 f"error{'s' if self.more > 1 else ''} since; the log file "
                                 "has them all.)")
                return
            self.sentence, self.more = sentence, 0
            self.box = QMessageBox(QMessageBox.Icon.Warning, "MedViewer", sentence,
                                   QMessageBox.StandardButton.Ok, self.window)
            self.box.setObjectName("unexpectedErrorBox")
            self.box.setModal(False)
            self.box.show()

    return ErrorReporter


def install_error_handlers(window):
    """The GUI's outermost handler: an exception no code caught (in a slot, a paint, a
    thread) becomes one sentence in a message box, naming the log file that holds its
    traceback; Qt's own messages go to the log instead of the terminal. Returns the
    reporter (tests look at its box)."""
    import threading

    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    from medviewer.error_log import unexpected_error_sentence

    reporter = _report_class()(window)

    def on_exception(kind, exc, traceback) -> None:
        if issubclass(kind, KeyboardInterrupt):
            from PySide6.QtWidgets import QApplication

            QApplication.quit()
            return
        try:
            reporter.report.emit(unexpected_error_sentence(exc, "handling your last action"))
        except Exception:  # noqa: BLE001 - the last line of defence must not raise
            log.error("Could not report an unexpected error", exc_info=(kind, exc, traceback))

    def on_thread_exception(args) -> None:
        if args.exc_value is not None:
            on_exception(args.exc_type, args.exc_value, args.exc_traceback)

    qt_levels = {QtMsgType.QtDebugMsg: logging.DEBUG, QtMsgType.QtInfoMsg: logging.INFO,
                 QtMsgType.QtWarningMsg: logging.INFO, QtMsgType.QtCriticalMsg: logging.WARNING,
                 QtMsgType.QtFatalMsg: logging.ERROR}

    def on_qt_message(kind, _context, message: str) -> None:
        logging.getLogger("qt").log(qt_levels.get(kind, logging.INFO), "%s", message)

    sys.excepthook = on_exception
    threading.excepthook = on_thread_exception
    qInstallMessageHandler(on_qt_message)
    return reporter


def run_gui(paths: list[str]) -> int:
    """`medviewer [PATH...]`: show the main window and open PATHs (or the sample study)."""
    from PySide6.QtCore import QTimer

    from medviewer.gui.main_window import MainWindow
    from medviewer.paths import SAMPLE_STUDY_DIR

    app = create_application()
    window = MainWindow()
    window.error_reporter = install_error_handlers(window)
    exit_after_show = os.environ.get("MEDVIEWER_EXIT_AFTER_SHOW", "")
    if exit_after_show:
        _report_startup_and_quit(window, wait_for_image=exit_after_show == "image")
    window.show()
    targets: list[str | Path] = list(paths)
    if not targets and SAMPLE_STUDY_DIR.is_dir():
        targets = [SAMPLE_STUDY_DIR]
    if targets:
        # After the first event-loop turn, so the window paints before any work starts.
        QTimer.singleShot(0, lambda: window.open_paths(targets))
    return app.exec()
