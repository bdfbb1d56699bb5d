"""The main window: study browser, image view and tag browser, menus and a status bar.

It is the GUI's composition root: it holds the Qt-free session (``medviewer/app/session.py``),
tells it what the browser and the image view do, and builds the panels with the session and
itself as their shell (``gui/shell.py``: docks, menus, status bar, close guards, shutdown
steps). Panels never reach back into the window or into each other; an empty menu stays
hidden until a panel adds an action to it.
"""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

import shiboken6
from PySide6.QtCore import QByteArray, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog, QDockWidget, QFileDialog, QLabel,
    QMainWindow, QMenu, QMessageBox, QProgressBar, QToolBar, QToolButton, QWidget,
)

from medviewer import __version__
from medviewer.app.session import Session
from medviewer.gui.image_view import ImageView
from medviewer.gui.lazy import LazyModule
from medviewer.gui.main_window_parts import MenuVisibility, ProblemsPanel, ShortcutsDialog
from medviewer.gui.path_mime import accept_path_drag, take_dropped_paths
from medviewer.gui.reading_room import ReadingRoom, StatusFields
from medviewer.gui.shell import CloseGuard, ShutdownStep, ShutdownSteps
from medviewer.gui.study_browser import StudyBrowser
from medviewer.gui.tag_browser import TagBrowser
from medviewer.gui.workers import JobWorker
from medviewer.jobs import Progress
from medviewer.settings import Settings, load_settings, save_settings

if TYPE_CHECKING:
    from medviewer.dicom import catalog as catalog_module
    from medviewer.dicom.catalog import Catalog, InstanceRecord
else:  # pydicom loads on first use (on the indexing worker), after the window is shown
    catalog_module = LazyModule("medviewer.dicom.catalog")

log = logging.getLogger(__name__)

# Bumped when the set of panels changes, so an old saved layout is not applied.
LAYOUT_VERSION = 1

MENU_NAMES = (("file", "&File"), ("view", "&View"), ("models", "&Models"),
              ("labels", "&Labels"), ("training", "&Training"), ("help", "&Help"))

class MainWindow(QMainWindow):
    catalog_opened = Signal(object)  # Catalog, after it is in the browser and the session
    indexing_ended = Signal()  # the queue of paths to index is empty again

    def __init__(self, settings: Settings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = Session(settings)
        self.settings = self.session.settings
        self._shutdown = ShutdownSteps()
        self._dialogs: list[QDialog] = []
        self._shutdown.add_shutdown_step(self._close_dialogs, order=10)
        self.setWindowTitle("MedViewer")
        self.setObjectName("mainWindow")
        self.setAcceptDrops(True)
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks
                            | QMainWindow.DockOption.AllowTabbedDocks)
        self.resize(1400, 900)

        self.image_view = ImageView()  # the grid's primary view: the panels work on it
        self.study_browser = StudyBrowser()
        self.tag_browser = TagBrowser()
        self.problems = ProblemsPanel()
        self.docks: dict[str, QDockWidget] = {}
        self.add_panel("studies", "Studies", self.study_browser, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.add_panel("tags", "Tags", self.tag_browser, Qt.DockWidgetArea.RightDockWidgetArea)
        self.add_panel("problems", "Files that could not be opened", self.problems,
                       Qt.DockWidgetArea.BottomDockWidgetArea)
        self.docks["problems"].hide()
        self._docks_sized = False

        self._index_queue: deque[Path] = deque()
        self._indexer: JobWorker | None = None
        self._indexing_path: Path | None = None
        self._show_next_catalog = False
        self._shortcuts_dialog: ShortcutsDialog | None = None

        self._build_status_bar()
        self.reading = ReadingRoom(self.session, self.image_view, StatusFields(
            self.statusBar(), self.readout_label, self.zoom_label, self.voi_label,
            self.frame_label), self)
        self.grid = self.reading.grid
        self.setCentralWidget(self.grid)
        self._build_menus()
        self._build_tool_bar()
        self._connect()
        self._connect_session()
        self._install_ai()
        self._install_labeling()
        self._install_training()
        self._arrange_docks()
        self._default_layout = self.saveState(LAYOUT_VERSION)
        self._layout_restored = self._restore_layout()

    # ------------------------------------------------------------ extension points
    def add_panel(self, name: str, title: str, widget: QWidget,
                  area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea,
                  tabify_with: str | None = None) -> QDockWidget:
        """Add a dock (results, labels, ...); it appears in View > Panels."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"{name}Dock")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        if tabify_with and tabify_with in self.docks:
            self.tabifyDockWidget(self.docks[tabify_with], dock)
        self.docks[name] = dock
        if hasattr(self, "panels_menu"):
            self.panels_menu.addAction(dock.toggleViewAction())
        return dock

    def _arrange_docks(self) -> None:
        """Reading panels (AI results, labels) stay in view; the tags share a tab with the
        last of them (Ctrl+F brings the tags to the front). The right-hand column runs to
        the bottom; the batch table and the problem list sit under the image, so reading
        panels are not squeezed."""
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        if "labels" in self.docks:
            self.splitDockWidget(self.docks["labels"], self.docks["tags"],
                                 Qt.Orientation.Vertical)
        partner = next((name for name in ("labels", "results") if name in self.docks), None)
        if partner is not None:
            self.tabifyDockWidget(self.docks[partner], self.docks["tags"])
            self.docks[partner].raise_()

    def add_status_field(self, widget: QWidget, stretch: int = 0) -> None:
        """A permanent field at the right of the status bar (AI provider, reader name, ...)."""
        self.statusBar().addPermanentWidget(widget, stretch)

    # The rest of the shell protocol (gui/shell.py) that panels use.
    def show_status(self, text: str, timeout_ms: int = 5000) -> None:
        self.statusBar().showMessage(text, timeout_ms)

    def report_error(self, sentence: str) -> None:
        self._report_error(sentence)

    def menu(self, name: str) -> QMenu:
        return self.menus[name]

    def dialog_parent(self) -> QWidget:
        return self

    def resize_panel(self, dock: QDockWidget, height: int) -> None:
        self.resizeDocks([dock], [height], Qt.Orientation.Vertical)

    def add_close_guard(self, guard: CloseGuard) -> None:
        self._shutdown.add_close_guard(guard)

    def add_shutdown_step(self, step: ShutdownStep, order: int = 50) -> None:
        self._shutdown.add_shutdown_step(step, order)

    # ------------------------------------------------------------ construction
    def _status_label(self, name: str, tip: str, min_width: int = 0) -> QLabel:
        label = QLabel()
        label.setObjectName(name)
        label.setToolTip(tip)
        if min_width:
            label.setMinimumWidth(min_width)
        return label

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("indexProgress")
        self.progress_bar.setMaximumWidth(180)
        self.progress_bar.setTextVisible(True)
        self.progress_label = QLabel()
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Stop indexing")
        self.cancel_button.clicked.connect(self.cancel_indexing)
        self.problems_button = QToolButton()
        self.problems_button.setObjectName("problemsButton")
        self.problems_button.setToolTip("Show the list of files that could not be opened")
        self.problems_button.clicked.connect(self.show_problems)
        self.readout_label = self._status_label(
            "readoutLabel", "Position (column, row) and value under the cursor", 230)
        self.zoom_label = self._status_label("zoomLabel", "Zoom: screen pixels per image pixel", 80)
        self.voi_label = self._status_label("voiLabel", "Window/level or VOI LUT in use", 200)
        self.frame_label = self._status_label("frameLabel", "Frame", 90)
        for widget in (self.progress_label, self.progress_bar, self.cancel_button,
                       self.problems_button):
            bar.addPermanentWidget(widget)
            widget.hide()
        for widget in (self.readout_label, self.zoom_label, self.voi_label, self.frame_label):
            bar.addPermanentWidget(widget)
        # Fields added later with add_status_field (AI provider, reader) go after these.

    def _build_menus(self) -> None:
        self.menus: dict[str, QMenu] = {}
        self._menu_visibility = MenuVisibility(self)
        for key, title in MENU_NAMES:
            menu = self.menuBar().addMenu(title)
            menu.setObjectName(f"{key}Menu")
            self.menus[key] = menu
            if key in ("models", "labels", "training"):
                menu.menuAction().setVisible(False)
                menu.installEventFilter(self._menu_visibility)

        file_menu = self.menus["file"]
        self.open_file_action = file_menu.addAction("&Open file…", self.choose_file)
        self.open_file_action.setShortcut(QKeySequence.StandardKey.Open)
        self.open_folder_action = file_menu.addAction("Open &folder…", self.choose_folder)
        self.open_folder_action.setShortcut(QKeySequence("Ctrl+Shift+O"))
        self.pacs_action = file_menu.addAction("Query/retrieve from a &PACS…",
                                               self.show_pacs_panel)
        self.pacs_action.setShortcut(QKeySequence("Ctrl+Shift+P"))
        self.pacs_action.setToolTip("Search a PACS or DICOMweb server, retrieve studies, "
                                    "send AI results back")
        self.recent_menu = file_menu.addMenu("&Recent items")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self.export_image_menu = file_menu.addMenu("&Export image")
        self.reading.fill_export_menu(self.export_image_menu)
        file_menu.addSeparator()
        self.close_all_action = file_menu.addAction("&Close all", self.close_all)
        self.close_all_action.setShortcut(QKeySequence("Ctrl+Shift+W"))
        file_menu.addSeparator()
        self.deid_action = file_menu.addAction("&De-identify DICOM…", self.show_deid_dialog)
        self.deid_action.setToolTip("Write a de-identified copy of DICOM files (PS3.15 "
                                    "Annex E), e.g. to share them")
        self.preferences_action = file_menu.addAction("&Preferences…", self.show_preferences)
        self.preferences_action.setShortcut(QKeySequence("Ctrl+,"))
        file_menu.addSeparator()
        self.quit_action = file_menu.addAction("&Quit", self.close)
        self.quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        self._fill_recent_menu()

        self.reading.fill_view_menu(self.menus["view"])
        view = self.menus["view"]
        self.panels_menu = view.addMenu("&Panels")
        for dock in self.docks.values():
            self.panels_menu.addAction(dock.toggleViewAction())
        self.reset_layout_action = view.addAction("&Reset panel layout", self.reset_layout)
        self.tag_search_action = QAction("Search &tags", self)
        self.tag_search_action.setShortcut(QKeySequence.StandardKey.Find)
        self.tag_search_action.triggered.connect(self.focus_tag_search)
        view.addAction(self.tag_search_action)

        help_menu = self.menus["help"]
        self.shortcuts_action = help_menu.addAction("&Keyboard shortcuts", self.show_shortcuts)
        self.shortcuts_action.setShortcut(QKeySequence.StandardKey.HelpContents)
        help_menu.addAction("&About MedViewer", self.show_about)

    def _build_tool_bar(self) -> None:
        bar = QToolBar("Image tools")
        bar.setObjectName("imageToolBar")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        bar.addAction(self.open_file_action)
        bar.addAction(self.open_folder_action)
        bar.addSeparator()
        self.reading.fill_tool_bar(bar)
        bar.toggleViewAction().setText("&Tool bar")
        self.panels_menu.addAction(bar.toggleViewAction())
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        self.tool_bar = bar

    def _connect(self) -> None:
        view = self.image_view
        self.docks["tags"].visibilityChanged.connect(self.tag_browser.set_in_view)
        self.reading.header_changed.connect(
            lambda instance: self.tag_browser.set_dataset(instance.header if instance else None))
        view.image_shown.connect(self._on_image_shown)
        view.load_failed.connect(self._on_image_failed)
        self.grid.message.connect(lambda sentence: self.statusBar().showMessage(sentence, 10_000))
        self.grid.prior_missing.connect(self.offer_pacs_for_prior)
        self.grid.open_dropped_files = self._open_dropped_files
        self.study_browser.instance_selected.connect(self._on_instance_selected)
        self.study_browser.thumbnail_failed.connect(self.problems.add)
        self.problems.changed.connect(self._on_problems_changed)

    def _connect_session(self) -> None:
        """What the browser and the view do becomes the session's state; what the session
        asks for (open, show, a problem) the window does."""
        session = self.session
        self.image_view.image_shown.connect(session.show_image)
        self.image_view.load_failed.connect(lambda _sentence: session.image_failed())
        session.events.image_gone.connect(
            lambda _none: self.image_view.instance is None and self.setWindowTitle("MedViewer"))
        session.events.open_requested.connect(self.open_paths)
        session.events.show_requested.connect(self.show_path)
        session.events.send_requested.connect(lambda paths: self.show_pacs_panel()
                                              .send_files(paths))
        session.events.problem.connect(lambda problem: self.problems.add(str(problem[0]),
                                                                         problem[1]))

    def _install_ai(self) -> None:
        """Models menu, AI results docks, provider field, saliency overlay (results_panel.py)."""
        from medviewer.gui.results_panel import install_ai

        self.ai = install_ai(self, self.session, self.image_view)

    def _install_labeling(self) -> None:
        """Labels dock and menu, reader field, regions (label_panel.py) and the study filter
        above the tree (label_filter.py)."""
        from medviewer.gui.label_filter import StudyFilter
        from medviewer.gui.label_panel import install_labeling

        self.label_panel = install_labeling(self, self.session, self.image_view)
        # Labelling's keys (1..9, R) are taken from every viewport, not only the primary.
        self.label_panel.set_key_views(self.reading.all_views)
        self.grid.view_added.connect(lambda _view: self.label_panel.set_key_views(
            self.reading.all_views))
        self._install_measurement_store()
        self._install_study_tools()
        self.study_filter = StudyFilter(self.session.labelling, self.study_browser)
        self.study_browser.layout().insertWidget(0, self.study_filter)

    def _install_measurement_store(self) -> None:
        """Measurements kept with their image in the label store, through the label panel's
        store thread (the one thread that touches the store); undo in View > Tools and the
        right-click menu, the export beside the label export."""
        from medviewer.gui.measurement_store import MeasurementStore

        store = self.measurement_store = MeasurementStore(self.label_panel.client, self, self)
        for view in self.reading.all_views():
            store.watch(view)
        self.grid.view_added.connect(store.watch)
        self.reading.tools_menu.addActions([store.undo_action, store.redo_action])
        labels = self.menus["labels"].actions()
        after = labels.index(self.label_panel.export_action) + 1
        self.menus["labels"].insertAction(labels[after] if after < len(labels) else None,
                                          store.export_action)

    def _install_study_tools(self) -> None:
        """Key images (K; ★ in the browser), the browser's right-click menu, File > Close
        study (gui/study_tools.py)."""
        from medviewer.gui.study_tools import StudyTools

        self.study_tools = StudyTools(self, self.session, self.study_browser, self.reading)
        self.key_images = self.study_tools.key_images
        self.catalog_opened.connect(lambda _catalog: self.study_tools.catalog_opened())
        self.menus["file"].insertAction(self.close_all_action,
                                        self.study_tools.close_study_action)

    def close_images(self, paths: list[Path]) -> list[Path]:
        """Close these images (a study, a series) and keep the rest open."""
        return self.study_tools.close_images(paths)

    def _install_training(self) -> None:
        """Training > Train a model… (the training_wizard package is imported when chosen)."""
        self.train_model_action = self.menus["training"].addAction(
            "&Train a model…", self.open_training_wizard)
        self.train_model_action.setObjectName("trainModelAction")

    def open_training_wizard(self):
        """The training wizard (PyTorch loads on a worker), or what the Studio edition adds."""
        from medviewer.gui.training_wizard import open_training_wizard

        return open_training_wizard(self)

    # ------------------------------------------------------------ opening
    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open file", self._dialog_folder(),
            "DICOM and images (*.dcm *.dicom *.ima *.png *.jpg *.jpeg DICOMDIR);;All files (*)")
        if path:
            self.open_paths([path])

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open folder", self._dialog_folder())
        if path:
            self.open_paths([path])

    def _dialog_folder(self) -> str:
        for recent in self.settings.recent_paths:
            folder = Path(recent) if Path(recent).is_dir() else Path(recent).parent
            if folder.is_dir():
                return str(folder)
        return str(Path.home())

    def open_paths(self, paths: list[str | Path]) -> None:
        """Index each path (file, folder or DICOMDIR) on a worker and add it to the browser."""
        for path in paths:
            self._index_queue.append(Path(path))
        self._show_next_catalog = True  # the first of these to index is shown
        if self._indexer is None:
            self._index_next()

    def _index_next(self) -> None:
        if not self._index_queue:
            self._indexing_path = None
            self._show_progress(False)
            self.indexing_ended.emit()
            return
        path = self._index_queue.popleft()
        self._indexing_path = path
        worker = JobWorker(lambda cancel: catalog_module.index_path(path, cancel=cancel),
                           "indexing")
        worker.event.connect(self._on_index_event)
        worker.finished.connect(self._on_indexed)
        worker.failed.connect(self._on_index_failed)
        worker.cancelled.connect(
            lambda: self.statusBar().showMessage(f"Indexing of {path.name} cancelled.", 10_000))
        worker.ended.connect(self._on_index_ended)
        self._indexer = worker
        self._show_progress(True, f"Indexing {path.name}…")
        worker.start()

    def _show_progress(self, visible: bool, text: str = "") -> None:
        self.progress_label.setText(text)
        self.progress_bar.setRange(0, 0)  # busy until the first count arrives
        for widget in (self.progress_label, self.progress_bar, self.cancel_button):
            widget.setVisible(visible)

    def _on_index_event(self, event) -> None:
        if isinstance(event, Progress):
            if event.total:
                self.progress_bar.setRange(0, event.total)
                self.progress_bar.setValue(event.done)
            if event.message:
                self.progress_label.setText(event.message)

    def _on_indexed(self, catalog: Catalog) -> None:
        path = self._indexing_path
        for error in catalog.errors:
            self.problems.add(str(error.path), error.reason)
        added = self.study_browser.add_catalog(catalog)
        records = catalog.instances()
        if catalog.could_open:  # a path where nothing opened is not a recent item
            self._remember(path)
        if records and self._show_next_catalog:
            self._show_next_catalog = False
            self.study_browser.select_path((added or records)[0].path)
        if added:
            message = f"Opened {len(added)} image" + ("" if len(added) == 1 else "s")
            if catalog.errors:
                message += f"; {len(catalog.errors)} could not be opened"
            self.statusBar().showMessage(message + ".", 10_000)
        elif records:
            self.statusBar().showMessage(f"{path} is already open.", 10_000)
        elif catalog.errors:
            sentence = catalog.errors[0].reason if len(catalog.errors) == 1 else (
                f"None of the {len(catalog.errors)} files in {path} could be opened.")
            self._report_error(sentence)
        else:
            self._report_error(f"No images were found in {path}.")
        self.session.add_catalog(catalog)
        self.catalog_opened.emit(catalog)

    def _on_index_failed(self, message: str) -> None:
        self._report_error(message)

    def _on_index_ended(self) -> None:
        self._indexer = None
        self._index_next()

    def cancel_indexing(self) -> None:
        """Stop the running index job and drop the queued ones."""
        self._index_queue.clear()
        if self._indexer is not None:
            self._indexer.cancel()
            self.progress_label.setText("Cancelling…")

    @property
    def is_indexing(self) -> bool:
        return self._indexer is not None

    def _remember(self, path: Path | None) -> None:
        if path is None:
            return
        # Reload first: other parts of the app may have saved settings meanwhile.
        fresh = load_settings()
        fresh.add_recent(str(Path(path).resolve()))
        try:
            save_settings(fresh)
        except OSError as exc:
            log.warning("Could not save settings: %s", exc)
        self.settings.recent_paths = fresh.recent_paths

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = load_settings().recent_paths
        for index, path in enumerate(recent):
            label = f"&{index + 1} {path}" if index < 9 else path
            action = self.recent_menu.addAction(label)
            action.setData(path)
            action.triggered.connect(lambda _c=False, p=path: self.open_recent(p))
        if not recent:
            self.recent_menu.addAction("No recent items").setEnabled(False)

    def open_recent(self, path: str) -> None:
        if not Path(path).exists():
            self._report_error(f"Cannot open {path}: it no longer exists.")
            return
        self.open_paths([path])

    def close_all(self) -> None:
        self.cancel_indexing()
        self.study_browser.clear()
        self.reading.clear_views()
        self.session.close_all()

    # ------------------------------------------------------------ image and tags
    def _open_dropped_files(self, view: ImageView, paths: list[Path]) -> None:
        """Files dropped on a viewport from another program are opened (indexed into the
        browser, the first shown in the primary view) and shown in the viewport dropped on."""
        self.open_paths(paths)
        if view is not self.image_view:
            self.grid.show_paths(view, paths)

    def _on_instance_selected(self, record: InstanceRecord) -> None:
        self.image_view.open_path(record.path)

    def show_path(self, path: Path) -> None:
        """Show an image: selected in the browser (its row shown even if the filter hid it)
        when the browser lists it, else opened directly (a batch row of a folder)."""
        item = self.study_browser.item_for(path)
        while item is not None:  # a filtered-out row is shown while it is the current one
            item.setHidden(False)
            item = item.parent()
        if not self.study_browser.select_path(Path(path)):
            self.image_view.open_path(path)

    def _on_image_shown(self, instance) -> None:
        from medviewer.dicom.instance import pixel_cache  # loaded with the image shown

        budget = int(self.settings.pixel_cache_mb) * 1024 * 1024  # Preferences' size
        if pixel_cache.budget_bytes != budget:
            pixel_cache.set_budget(budget)
        name = instance.path.name
        self.setWindowTitle(f"{name} — MedViewer")
        self.readout_label.clear()

    def _on_image_failed(self, sentence: str) -> None:
        if self.image_view.requested_path is not None:
            self.problems.add(str(self.image_view.requested_path), sentence)
        self._report_error(sentence)

    def _report_error(self, sentence: str) -> None:
        """One sentence in the status bar and above the image; never a dialog or traceback."""
        self.statusBar().showMessage(sentence, 15_000)
        self.image_view.show_message(sentence)

    def focus_tag_search(self) -> None:
        self.docks["tags"].show()
        self.docks["tags"].raise_()
        self.tag_browser.search.setFocus()
        self.tag_browser.search.selectAll()

    # ------------------------------------------------------------ problems
    def _on_problems_changed(self, count: int) -> None:
        if count:
            noun = "file" if count == 1 else "files"
            self.problems_button.setText(f"⚠ {count} {noun} could not be opened")
        self.problems_button.setVisible(count > 0)

    def show_problems(self) -> None:
        dock = self.docks["problems"]
        first_time = dock.isHidden()
        dock.show()
        dock.raise_()
        if first_time:  # a list of sentences: a short strip, not half the window
            self.resizeDocks([dock], [max(120, self.height() // 6)], Qt.Orientation.Vertical)

    # ------------------------------------------------------------ help
    def all_actions(self) -> list[QAction]:
        out: list[QAction] = []

        def walk(menu: QMenu) -> None:
            for action in menu.actions():
                if action.menu() is not None:
                    walk(action.menu())
                elif not action.isSeparator():
                    out.append(action)

        for menu in self.menus.values():
            walk(menu)
        return out

    def show_shortcuts(self) -> ShortcutsDialog:
        """Built afresh each time, so actions added by other panels are listed too."""
        if self._shortcuts_dialog is not None:
            self._shortcuts_dialog.close()
            self._shortcuts_dialog.deleteLater()
        # Presets change with the image; one row describes them all.
        self._shortcuts_dialog = ShortcutsDialog(
            self.all_actions(), self, skip=tuple(self.reading.active_view.preset_actions()),
            gestures=self.reading.mouse_gestures())
        self._shortcuts_dialog.show()
        self._shortcuts_dialog.raise_()
        return self._shortcuts_dialog

    # ------------------------------------------------------------ dialogs of their own
    def keep_dialog(self, dialog: QDialog) -> QDialog:
        """Show a non-modal dialog this window closes when it closes (its job is then
        cancelled and joined by the dialog's own ``done``); deleted once closed."""
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._dialogs.append(dialog)
        dialog.destroyed.connect(lambda *_args: self._dialogs.remove(dialog)
                                 if dialog in self._dialogs else None)
        dialog.show()
        dialog.raise_()
        return dialog

    def _close_dialogs(self, _timeout_ms: int) -> None:
        for dialog in list(self._dialogs):
            if shiboken6.isValid(dialog) and dialog.isVisible():
                dialog.done(QDialog.DialogCode.Rejected)

    def show_pacs_panel(self):
        """File > Query/retrieve from a PACS: the panel is built the first time it is asked
        for, so start-up does not pay for it."""
        if "pacs" not in self.docks:
            from medviewer.gui.pacs_panel import PacsPanel

            self.pacs_panel = PacsPanel(self.session, self,
                                        open_study_uids=self._open_study_uids)
            self.add_panel("pacs", "PACS", self.pacs_panel, Qt.DockWidgetArea.LeftDockWidgetArea,
                           tabify_with="studies")
        dock = self.docks["pacs"]
        dock.show()
        dock.raise_()
        return self.pacs_panel

    def offer_pacs_for_prior(self, patient_id: str) -> QMessageBox:
        """No earlier study of the patient is open here: say so and offer the PACS panel,
        with the patient's ID filled in (its Priors button finds them on a server)."""
        who = f"patient {patient_id}" if patient_id else "this patient (no patient ID)"
        for earlier in self.findChildren(QMessageBox, "noPriorBox"):  # one offer at a time
            earlier.close()
        box = QMessageBox(QMessageBox.Icon.Information, "Compare with prior",
                          f"No earlier study of {who} is open here; a PACS may have one.",
                          QMessageBox.StandardButton.Close, self)
        box.setObjectName("noPriorBox")
        box.setModal(False)
        search = box.addButton("Search the PACS…", QMessageBox.ButtonRole.AcceptRole)
        search.setObjectName("searchPacsButton")

        def search_pacs() -> None:
            panel = self.show_pacs_panel()
            panel.patient_id.setText(patient_id)
            panel.patient_id.setFocus()

        search.clicked.connect(search_pacs)
        self.keep_dialog(box)
        return box

    def _open_study_uids(self) -> set[str]:
        """Studies open in this window: the retrieve cache never evicts them."""
        return {study.uid for catalog in self.session.catalogs
                for patient in catalog.patients for study in patient.studies}

    def show_preferences(self) -> QDialog:
        from medviewer.gui.preferences_dialog import PreferencesDialog

        return self.keep_dialog(PreferencesDialog(self.session, self))

    def show_deid_dialog(self) -> QDialog:
        """File > De-identify DICOM…, with the open folders and files as its inputs."""
        from medviewer.gui.deid_dialog import DeidDialog

        inputs = [Path(c.root) for c in self.session.catalogs]
        return self.keep_dialog(DeidDialog(inputs, self))

    def _show_settings_notices(self) -> None:
        """Settings that were replaced by their defaults at load: said once, not hidden."""
        notices = self.session.settings_notices
        if not notices:
            return
        box = QMessageBox(QMessageBox.Icon.Warning, "Settings were reset",
                          "\n".join(notices), QMessageBox.StandardButton.Ok, self)
        box.setObjectName("settingsNotices")
        self.keep_dialog(box)

    def show_about(self) -> QMessageBox:
        # Versions and the execution provider (a tiny onnxruntime probe, cached per process).
        from medviewer.selftest import installation_info

        versions = "\n".join(f"{key}: {value}" for key, value in installation_info().items())
        box = QMessageBox(QMessageBox.Icon.Information, "About MedViewer",
                          f"MedViewer {__version__}\n\nView DICOM and X-ray studies, run AI "
                          "reads, label images and retrain models, offline.\n\nNot for "
                          "diagnostic use with the bundled sample and test images.\n\n"
                          + versions, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("aboutBox")
        box.setModal(False)
        box.show()
        return box

    # ------------------------------------------------------------ drag and drop
    def dragEnterEvent(self, event):  # noqa: N802 - Qt naming
        accept_path_drag(event)

    def dragMoveEvent(self, event):  # noqa: N802 - Qt naming
        accept_path_drag(event)

    def dropEvent(self, event):  # noqa: N802 - Qt naming
        paths = take_dropped_paths(event)
        if paths:
            self.open_paths(paths)

    def showEvent(self, event):  # noqa: N802 - Qt naming
        super().showEvent(event)
        if not self._docks_sized:
            self._docks_sized = True
            if not self._layout_restored:
                self._size_docks()
            QTimer.singleShot(0, self._show_settings_notices)

    def _size_docks(self) -> None:
        """Side panels in proportion to the window the user actually gets."""
        width = self.width()
        self.resizeDocks([self.docks["studies"], self.docks["tags"]],
                         [max(220, int(width * 0.19)), max(300, int(width * 0.3))],
                         Qt.Orientation.Horizontal)

    # ------------------------------------------------------------ layout memory
    def _restore_layout(self) -> bool:
        """The size, position and panels of the last session; False when there is none or
        it no longer fits (another version's panels, an unreadable value)."""
        try:
            geometry = QByteArray.fromBase64(self.settings.window_geometry.encode("ascii"))
            state = QByteArray.fromBase64(self.settings.window_state.encode("ascii"))
        except (UnicodeEncodeError, AttributeError):
            return False
        if geometry.isEmpty() or state.isEmpty():
            return False
        self.restoreGeometry(geometry)
        return self.restoreState(state, LAYOUT_VERSION)

    def save_layout(self) -> None:
        fresh = load_settings()  # other parts of the app may have saved settings meanwhile
        fresh.window_geometry = bytes(self.saveGeometry().toBase64()).decode("ascii")
        fresh.window_state = bytes(self.saveState(LAYOUT_VERSION).toBase64()).decode("ascii")
        try:
            save_settings(fresh)
        except OSError as exc:
            log.warning("Could not save the window layout: %s", exc)

    def reset_layout(self) -> None:
        """Back to the panels as first installed (View > Reset panel layout)."""
        self.restoreState(self._default_layout, LAYOUT_VERSION)
        for name in ("studies", "tags"):
            self.docks[name].show()
        self._size_docks()

    # ------------------------------------------------------------ closing
    def wait_for_workers(self, timeout_ms: int = 10_000) -> None:
        """Cancel every job this window started and wait for their threads."""
        self._index_queue.clear()
        if self._indexer is not None:
            self._indexer.wait(timeout_ms)
        self.study_browser.wait_for_workers(timeout_ms)
        self.reading.wait_for_workers(timeout_ms)
        # The panels' own steps: AI jobs, the wizard, then label writes already asked for.
        self._shutdown.shut_down(timeout_ms)

    def closeEvent(self, event):  # noqa: N802 - Qt naming
        if not self._shutdown.may_close():
            event.ignore()
            return
        self.save_layout()
        self.wait_for_workers()
        if self._shortcuts_dialog is not None:
            self._shortcuts_dialog.close()
        super().closeEvent(event)
