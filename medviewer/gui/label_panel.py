"""The label panel: fast point-and-click (or keyboard-only) labels that are never lost.

Why this module is longer than 800 lines: it is one dock's view of the labelling state and
the store calls behind each of its buttons and keys, which share its saving/saved reporting
(``write``). Its parts that stand alone are already elsewhere: regions (label_regions.py),
keys (label_keys.py), import/export (label_transfer.py), the store thread
(label_store_client.py), the state and navigation (app/labelling.py).

What the reader gets (a dock, the Labels menu, a status bar field, a filter above the study
tree and region drawing on the image):

- choose or create a label set (name, classes, single- or multi-label);
- one button per class, keys 1..9 (multi-label: each key toggles its class); Enter accepts the
  AI suggestion when a model gave one (:meth:`LabelPanel.set_ai_suggestion`); N / P next /
  previous image, U the next image this reader has not labelled; Ctrl+Z undoes the reader's
  last action; an optional note per label; labelled / total for the open folder or study;
- regions: R toggles region mode, a left drag draws a rectangle (or ellipse) of the region
  class (number keys choose it in region mode), click selects, Delete removes
  (:class:`~medviewer.gui.label_regions.RegionEditor`, which the panel owns).

Saved means committed. Every store call runs on ONE worker thread (:class:`StoreClient` in
label_store_client.py), in the order the reader acted, and what the panel shows as saved comes
only from the store's replies: a class button shows ✓ after ``set_label`` returned, a region
turns from dashed grey "(saving…)" to its class colour after ``add_region`` returned. A failed
write shows the store's one sentence in red and nothing is shown as saved. Why a worker and
not the GUI thread: a commit is one fsync (p99 about 22 ms on the development machine, far
more on a network share or a busy disk), and the GUI thread must never wait on a disk; one
thread keeps the reader's actions in order, so rapid keys (1, 2, N, 1...) commit exactly as
pressed. On close, calls already asked for are finished before the thread stops.

Keys: while a label set is chosen and this panel is open, 1..9 and R belong to labelling. The
image view's "1" (actual size, still on the tool bar) is released and its "R" (rotate right)
moves to Shift+R; both come back when the panel is closed.

State lives in the session (``session.labelling``, ``medviewer/app/labelling.py``): the label
sets, the reader, the open images' keys and committed labels, the AI's suggestions and the
navigation. The panel is a view of it that also runs the store calls; it is built with a
session, a shell (``gui/shell.py``) and the image view it labels, never a main window.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QComboBox, QFrame, QGridLayout, QHBoxLayout, QInputDialog, QLabel, QLineEdit, QProgressBar,
    QPushButton, QScrollArea, QSizePolicy, QToolButton, QVBoxLayout, QWidget,
)

from medviewer.errors import UserError
from medviewer.gui.label_dialogs import (
    ERROR_STYLE, NewLabelSetDialog, reader_dialog, store_file_dialog,
)
from medviewer.gui.label_keys import LabellingKeys
from medviewer.gui.label_regions import RegionEditor
from medviewer.gui.label_store_client import StoreClient, decide_label, press_class_key
from medviewer.gui.label_transfer import LabelTransfer
from medviewer.gui.lazy import LazyModule
from medviewer.gui.prefetch import Prefetcher
from medviewer.gui.widgets import subscribe, window_action, wrapping_label
from medviewer.settings import MAX_READER_NAME, SettingsError

if TYPE_CHECKING:
    from medviewer.app.labelling import Labelling
    from medviewer.app.session import Session
    from medviewer.dicom.catalog import Catalog
    from medviewer.dicom.reader import Instance
    from medviewer.gui.image_view import ImageView
    from medviewer.gui.region_items import RegionLayer
    from medviewer.gui.shell import Shell
    from medviewer.labels import store as store_module
    from medviewer.labels.store import (
        ImageLabel, ImageRef, LabelSet, LabelStore, Region, UndoResult,
    )
else:  # the store (sqlite3) loads on first use, not at start-up
    store_module = LazyModule("medviewer.labels.store")

log = logging.getLogger(__name__)

MAX_CLASS_KEYS = 9
PREFETCH_AHEAD = 3
PREFETCH_DELAY_MS = 40  # after an image is shown, before its neighbours are decoded
SOURCE_TEXT = {"manual": "manual", "ai_accepted": "AI accepted", "ai_overridden": "AI overridden",
               "imported": "imported"}
SAVED_STYLE = "color: #7ddc7d;"
# Saved classes (checked buttons) and region mode must be visible at a glance.
PANEL_STYLE = """
#labelPanel QPushButton[role="class"] { text-align: left; padding: 6px 10px; }
#labelPanel QPushButton:checked { background-color: #2f6b3b; border: 1px solid #7ddc7d;
                                  border-radius: 3px; color: #ffffff; }
"""


# ---------------------------------------------------------------- the panel


class LabelPanel(QWidget):
    """The Labels dock. Create it with :func:`install_labeling`."""

    committed = Signal(object)  # what the store returned for a write (ImageLabel, Region, ...)
    write_failed = Signal(str)  # the sentence shown
    labels_loaded = Signal()  # the committed labels of the open images are known

    def __init__(self, session: Session, shell: Shell, view: ImageView) -> None:
        super().__init__()
        self.setObjectName("labelPanel")
        self.session = session
        self.state: Labelling = session.labelling
        self.shell = shell
        self.view = view
        self.client = StoreClient(self.state.store_path, self.state.reader, self)
        self.prefetcher = Prefetcher(parent=self)
        self.view.instance_source = self.prefetcher.ready
        self._pending: dict[str, int] = {}  # image key -> writes waiting for their reply
        self._last_saved: dict[str, str] = {}  # image key -> "saved ..." text of this session
        self._error: str | None = None
        self._dock = None
        self.keys = LabellingKeys(lambda: [self.view])
        self._dialog: NewLabelSetDialog | None = None
        self._reader_dialog: QInputDialog | None = None
        self._prefetch_timer = QTimer(self)
        self._prefetch_timer.setSingleShot(True)
        self._prefetch_timer.setInterval(PREFETCH_DELAY_MS)
        self._prefetch_timer.timeout.connect(
            lambda: self.prefetcher.want(self.state.prefetch_targets(self.current_path,
                                                                     PREFETCH_AHEAD)))

        self._build_widgets()
        self._build_actions()
        self._connect()
        self._rebuild_class_buttons()
        self._refresh_all()

    # ------------------------------------------------------------ construction
    def _build_widgets(self) -> None:
        self.set_combo = QComboBox()
        self.set_combo.setObjectName("labelSetCombo")
        self.set_combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.set_combo.setToolTip("The label set being labelled")
        self.new_set_button = QPushButton("New…")
        self.new_set_button.setToolTip("Create a label set: name, classes, single/multi-label")
        top = QHBoxLayout()
        top.addWidget(QLabel("Label set"))
        top.addWidget(self.set_combo, 1)
        top.addWidget(self.new_set_button)

        self.set_info = QLabel()
        self.set_info.setObjectName("labelSetInfo")
        self.set_info.setWordWrap(True)
        self.class_box = QWidget()
        self.class_grid = QGridLayout(self.class_box)
        self.class_grid.setContentsMargins(0, 0, 0, 0)
        self.class_buttons: list[QPushButton] = []

        self.ai_label = QLabel()
        self.ai_label.setObjectName("aiSuggestion")
        self.ai_label.setWordWrap(True)
        self.accept_button = QPushButton("Accept AI (Enter)")
        self.accept_button.setToolTip("Take the AI's suggestion as your label")

        self.saved_label = QLabel()
        self.saved_label.setObjectName("savedState")
        self.saved_label.setWordWrap(True)
        self.error_label = wrapping_label("labelError", ERROR_STYLE)
        self.error_label.hide()

        self.note_edit = QLineEdit()
        self.note_edit.setObjectName("labelNote")
        self.note_edit.setPlaceholderText("Note (optional; Enter saves)")
        self.note_edit.setClearButtonEnabled(True)

        self.progress_label = QLabel()
        self.progress_label.setObjectName("labelProgress")
        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(False)
        self.progress_bar.setMaximumHeight(8)

        self.previous_button = QPushButton("◀ Prev (P)")
        self.next_button = QPushButton("Next (N) ▶")
        self.unlabelled_button = QPushButton("Next unlabelled (U)")
        self.undo_button = QPushButton("Undo (Ctrl+Z)")
        self.redo_button = QPushButton("Redo (Ctrl+Y)")  # short: the dock keeps its width
        self.redo_button.setToolTip("Re-apply what Undo took back (Ctrl+Y or Ctrl+Shift+Z)")
        navigation = QGridLayout()
        navigation.addWidget(self.previous_button, 0, 0)
        navigation.addWidget(self.next_button, 0, 1)
        navigation.addWidget(self.unlabelled_button, 1, 0, 1, 2)
        navigation.addWidget(self.undo_button, 2, 0)
        navigation.addWidget(self.redo_button, 2, 1)

        self.regions = RegionEditor(self)
        # The region controls under the names callers know on the panel.
        self.region_action = self.regions.region_action
        self.region_button = self.regions.region_button
        self.shape_combo = self.regions.shape_combo
        self.region_class_combo = self.regions.region_class_combo
        self.region_list = self.regions.region_list
        self.delete_region_button = self.regions.delete_region_button

        self.setStyleSheet(PANEL_STYLE)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(top)
        layout.addWidget(self.set_info)
        layout.addWidget(self.class_box)
        layout.addWidget(self.ai_label)
        layout.addWidget(self.accept_button)
        layout.addWidget(self.saved_label)
        layout.addWidget(self.error_label)
        layout.addWidget(self.note_edit)
        layout.addSpacing(4)
        layout.addWidget(self.progress_label)
        layout.addWidget(self.progress_bar)
        layout.addLayout(navigation)
        layout.addSpacing(6)
        self.regions.add_to(layout)
        layout.addStretch(1)

        self.reader_button = QToolButton()
        self.reader_button.setObjectName("readerField")
        self.reader_button.setAutoRaise(True)
        self.reader_button.setToolTip("Labels are saved under this reader name; click to "
                                      "change it")

    def _action(self, text: str, slot: Callable[[], None], tip: str = "") -> QAction:
        return window_action(self.shell.dialog_parent(), text, slot, tip)

    def _build_actions(self) -> None:
        menu = self.shell.menu("labels")
        self.new_set_action = self._action("&New label set…", self.show_new_label_set_dialog)
        self.reader_action = self._action("&Reader…", self.show_reader_dialog,
                                          "Change the reader name labels are saved under")
        self.store_action = self._action("Label &store…", self.choose_store,
                                         "Use another label store file (e.g. a project's)")
        self.transfer = LabelTransfer(self.state, self.client, self.shell,
                                      self.reload_from_store)
        self.import_action = self._action("&Import labels…", self.transfer.show_import_dialog,
                                          "Import labels from CSV, MedViewer JSON or COCO JSON")
        self.export_action = self._action("&Export labels…", self.transfer.show_export_dialog,
                                          "Write a label set to CSV, MedViewer JSON or COCO JSON")
        self.evaluate_action = self._action(
            "E&valuate the AI on this label set…", self.evaluate_on_label_set,
            "How the active model does on the images of this label set (their majority "
            "label among human readers), before it is used here")
        self.dataset_action = self._action(
            "Export research &dataset…", self.show_dataset_dialog,
            "A label set's images, labels, patient-level split and manifest, de-identified "
            "if asked, for training elsewhere or sharing")
        menu.addAction(self.new_set_action)
        menu.addAction(self.reader_action)
        menu.addAction(self.store_action)
        menu.addAction(self.import_action)
        menu.addAction(self.export_action)
        menu.addAction(self.dataset_action)
        menu.addAction(self.evaluate_action)
        menu.addSeparator()
        self.class_actions: list[QAction] = []
        for index in range(MAX_CLASS_KEYS):
            action = self._action(f"Class {index + 1}",
                                  lambda i=index: self.press_class_index(i))
            self.class_actions.append(action)
        self.accept_action = self._action("&Accept AI suggestion", self.accept_ai_suggestion)
        self.next_action = self._action("&Next image", lambda: self.go(1))
        self.previous_action = self._action("&Previous image", lambda: self.go(-1))
        self.unlabelled_action = self._action("Next &unlabelled image", self.go_unlabelled)
        self.undo_action = self._action("&Undo last label action", self.undo)
        self.redo_action = self._action("&Redo label action", self.redo)
        self.clear_action = self._action("&Clear my label", self.clear_label)
        delete_region_action = self.regions.delete_region_action
        for action in (*self.class_actions, self.accept_action, self.next_action,
                       self.previous_action, self.unlabelled_action, self.undo_action,
                       self.redo_action,
                       self.clear_action, self.region_action, delete_region_action):
            menu.addAction(action)
        self.keys.keys_for = {
            self.accept_action: ["Return", "Enter"], self.next_action: ["N"],
            self.previous_action: ["P"], self.unlabelled_action: ["U"],
            self.undo_action: ["Ctrl+Z"], self.redo_action: ["Ctrl+Shift+Z", "Ctrl+Y"],
            self.clear_action: ["Backspace"],
            self.region_action: ["R"], delete_region_action: ["Delete"],
        }
        for index, action in enumerate(self.class_actions):
            self.keys.keys_for[action] = [str(index + 1)]
        self.keys.class_actions = self.class_actions

    def _connect(self) -> None:
        self.set_combo.activated.connect(self._on_set_chosen)
        self.new_set_button.clicked.connect(self.show_new_label_set_dialog)
        self.accept_button.clicked.connect(self.accept_ai_suggestion)
        self.previous_button.clicked.connect(lambda: self.go(-1))
        self.next_button.clicked.connect(lambda: self.go(1))
        self.unlabelled_button.clicked.connect(self.go_unlabelled)
        self.undo_button.clicked.connect(self.undo)
        self.redo_button.clicked.connect(self.redo)
        self.note_edit.returnPressed.connect(self.save_note)
        self.reader_button.clicked.connect(self.show_reader_dialog)
        self.shell.add_status_field(self.reader_button)
        events = self.session.events
        for emitter, callback in ((events.image_shown, self._on_image_shown),
                                  (events.image_gone, self._on_image_gone),
                                  (events.catalog_opened, self._on_catalog_opened),
                                  (events.catalogs_closed, self._on_catalogs_closed),
                                  (events.settings_changed, self._on_settings_changed),
                                  (self.state.events.suggestion_changed,
                                   self._on_suggestion_changed)):
            subscribe(self, emitter, callback)
        self.shell.add_shutdown_step(self.shutdown, order=90)  # last: writes finish first
        # Start-up stays fast: the store is read after the window's first event-loop turn.
        QTimer.singleShot(0, self.reload_label_sets)

    def attach_dock(self, dock) -> None:
        self._dock = dock
        dock.toggleViewAction().toggled.connect(lambda _on: self._update_keys())
        self._update_keys()

    # ------------------------------------------------------------ what the panel shows
    @property
    def label_set(self) -> LabelSet | None:
        return self.state.label_set

    @property
    def label_sets(self) -> list[LabelSet]:
        return self.state.label_sets

    @property
    def reader(self) -> str:
        return self.state.reader

    @property
    def current_path(self) -> Path | None:
        return self.state.current_path

    @property
    def current_key(self) -> str | None:
        return self.state.current_key

    # ------------------------------------------------------------ store and label sets
    @property
    def store_path(self) -> Path:
        return self.state.store_path

    def set_store_path(self, path: Path) -> None:
        """Use another store file; calls already asked for finish on the old one first."""
        self.client.shutdown()
        self.client.path = Path(path)
        self.state.use_store(Path(path))
        self._set_error(None)
        self.reload_label_sets()

    def choose_store(self) -> None:
        dialog = store_file_dialog(self.shell.dialog_parent(), self.store_path.parent)
        dialog.fileSelected.connect(lambda chosen: chosen and self.set_store_path(Path(chosen)))
        dialog.open()

    def reload_label_sets(self, select: str | None = None) -> None:
        """Read the label sets (and pick this reader's most recent one) on the store thread."""
        if not self.store_path.exists():
            self._on_label_sets(([], None), select)  # nothing to read: no file created yet
            return
        reader = self.reader

        def read(store: LabelStore) -> tuple[list[LabelSet], str | None]:
            sets = store.label_sets()
            recent = store.history(reader=reader, limit=1, in_label_set=True)
            return sets, (recent[0].label_set if recent else None)

        self.read(read, lambda result: self._on_label_sets(result, select))

    def _on_label_sets(self, result: tuple[list[LabelSet], str | None],
                       select: str | None) -> None:
        sets, recent = result
        self.state.set_label_sets(sets)
        names = [s.name for s in sets]
        wanted = select or (self.label_set.name if self.label_set else None) or recent
        if wanted not in names:
            wanted = names[0] if names else None
        self.set_combo.blockSignals(True)
        self.set_combo.clear()
        for label_set in sets:
            kind = "multi-label" if label_set.multi_label else "single-label"
            self.set_combo.addItem(f"{label_set.name}  ({kind})", label_set.name)
        if not sets:
            self.set_combo.addItem("(no label set yet: New…)", None)
        self.set_combo.setEnabled(bool(sets))
        if wanted is not None:
            self.set_combo.setCurrentIndex(self.set_combo.findData(wanted))
        self.set_combo.blockSignals(False)
        self.choose_label_set(wanted)

    def reload_from_store(self, select: str | None = None) -> None:
        """Show what the store holds after a change made outside the panel (an import):
        the label sets (choosing ``select``), the open images' labels, this image's regions."""
        self._last_saved.clear()
        self.reload_label_sets(select)
        self._load_labels(self.state.known_paths)
        self.regions.load()

    def _on_set_chosen(self, index: int) -> None:
        self.choose_label_set(self.set_combo.itemData(index))

    def choose_label_set(self, name: str | None) -> None:
        changed = self.state.choose_label_set(name)
        chosen = self.label_set
        if chosen is not None and self.set_combo.currentData() != chosen.name:
            self.set_combo.setCurrentIndex(self.set_combo.findData(chosen.name))
        if changed:
            self._rebuild_class_buttons()
            self._update_keys()
            self._load_labels(self.state.known_paths)
            self.regions.load()
        self._refresh_all()

    def show_new_label_set_dialog(self) -> NewLabelSetDialog:
        if self._dialog is None:
            self._dialog = NewLabelSetDialog(self.shell.dialog_parent())
            self._dialog.submitted.connect(self.create_label_set)
        self._dialog.error_label.hide()
        self._dialog.ok_button.setEnabled(True)
        self._dialog.open()
        return self._dialog

    def create_label_set(self, name: str, classes: list[str], multi_label: bool) -> None:
        """Create it on the store thread; the dialog closes only once it is saved."""
        def done(label_set: LabelSet) -> None:
            if self._dialog is not None:
                self._dialog.accept()
            self.shell.show_status(f"Label set '{label_set.name}' created.", 5000)
            self.reload_label_sets(select=label_set.name)

        def failed(sentence: str) -> None:
            if self._dialog is not None and self._dialog.isVisible():
                self._dialog.show_error(sentence)
            else:
                self._set_error(sentence)

        self.client.call(lambda store: store.create_label_set(name, classes,
                                                              multi_label=multi_label),
                         done, failed)

    def show_dataset_dialog(self):
        """Labels > Export research dataset… for the chosen label set."""
        from medviewer.gui.dataset_dialog import DatasetExportDialog

        name = self.label_set.name if self.label_set is not None else None
        return self.shell.keep_dialog(DatasetExportDialog(self.store_path, name,
                                                          self.shell.dialog_parent()))

    def evaluate_on_label_set(self) -> None:
        """The label set's images with their majority human label (read on the store
        thread), handed to the session's shell as an evaluation request."""
        if self.label_set is None:
            self.show_status("Choose or create a label set first (Labels > New label set).")
            return
        if self.label_set.multi_label:
            self.show_status("Evaluating needs a single-label label set (one class per "
                             "image).")
            return
        set_name = self.label_set.name

        def pairs(store: LabelStore) -> list[tuple[Path, str]]:
            from medviewer.labels.consensus import training_labels

            items = training_labels(store, set_name).items
            return [(Path(i.path), i.labels[0]) for i in items if i.path and i.labels]

        def done(found: list[tuple[Path, str]]) -> None:
            if not found:
                self.show_status(f"Label set '{set_name}' has no image with a human label "
                                 f"and a known file to evaluate on.")
                return
            self.session.request_evaluation(found, f"label set '{set_name}'")

        self.read(pairs, done)

    # ------------------------------------------------------------ reader
    def show_reader_dialog(self) -> QInputDialog:
        dialog = reader_dialog(self.shell.dialog_parent(), self.reader)
        dialog.textValueSelected.connect(self.set_reader_name)
        self._reader_dialog = dialog
        dialog.open()
        return dialog

    def set_reader_name(self, name: str) -> bool:
        """Label as ``name`` from now on, and keep it in the settings (the panel takes it
        up from settings_changed, as it does a name changed in Preferences)."""
        try:
            problem = self.session.update_settings(reader_name=name)
        except SettingsError:  # the settings' own rule for a reader name
            self.shell.show_status(
                f"A reader name must be 1 to {MAX_READER_NAME} characters without tabs or "
                f"line breaks.", 8000)
            return False
        if problem:
            self.shell.show_status(f"The reader name is used now, but {problem[0].lower()}"
                                   f"{problem[1:]}", 10_000)
        return True

    def _on_settings_changed(self, settings) -> None:
        name = settings.reader_name
        if name == self.reader:
            return
        self.state.set_reader(name)
        self.client.reader = name
        self.client.call(lambda store: setattr(store, "reader", name))
        self._last_saved.clear()
        self.regions.load()
        self._refresh_all()

    # ------------------------------------------------------------ opened images
    def _on_catalog_opened(self, catalog: Catalog) -> None:
        paths = self.state.paths_opened_from(Path(catalog.root))
        unknown = [p for p in paths if self.state.key_for(p) is None]
        if unknown:
            self._identify(unknown)
        self._load_labels(paths)

    def _on_catalogs_closed(self, _none: None) -> None:
        self._refresh_all()

    def _identify(self, paths: list[Path]) -> None:
        """Key DICOM files without a SOP Instance UID by content (hashing: store thread)."""
        def identify(_store: LabelStore) -> dict[Path, str]:
            from medviewer.labels.identity import resolve_image

            found = {}
            for path in paths:
                try:
                    found[path] = resolve_image(path).key
                except UserError:
                    continue
            return found

        def done(found: dict[Path, str]) -> None:
            self.state.add_keys(found)
            self._load_labels(list(found))

        self.read(identify, done)

    def key_for(self, path: Path) -> str | None:
        return self.state.key_for(path)

    def _load_labels(self, paths: list[Path]) -> None:
        """Read the committed decisions (all readers) of these images on the store thread."""
        if self.label_set is None or not self.store_path.exists():
            return
        keys = self.state.keys_of(paths)
        if not keys:
            return
        set_name = self.label_set.name
        self.state.loading_labels += 1

        def done(labels: list[ImageLabel]) -> None:
            self.state.loading_labels -= 1
            if self.state.labels_loaded(set_name, keys, labels):
                self._refresh_all()
                self.labels_loaded.emit()

        def failed(sentence: str) -> None:
            self.state.loading_labels -= 1
            self._set_error(sentence)

        self.client.call(lambda store: store.current_labels(set_name, keys), done, failed)

    # ------------------------------------------------------------ the image on screen
    def _on_image_shown(self, instance: Instance) -> None:
        path = Path(instance.path)
        if instance.content_hash or instance.sop_instance_uid:
            self.state.show_image(path, store_module.ImageRef.from_instance(instance))
        else:
            self.state.show_image(path, None)

            def done(ref: ImageRef) -> None:
                if self.current_path == path:
                    self.state.set_current_ref(path, ref)
                    self.regions.load()
                    self._refresh_all()

            self.read(lambda _store: store_module.ImageRef.from_instance(instance), done)
        self.regions.image_shown()
        if self.prefetcher.enabled:
            self.prefetcher.keep(path, instance)
        # After the new image is painted: decoding on a worker competes for the CPU (and
        # the GIL) with painting, and the reader looks at the image far longer than this.
        self._prefetch_timer.start()
        self._refresh_all()

    def _on_image_gone(self, _none: None = None) -> None:
        if self.view.instance is None:
            self.state.image_gone()
            self.regions.image_gone()
            self._refresh_all()

    def target_image(self, doing: str) -> ImageRef | None:
        """The image an action applies to: the one on screen, once it is fully shown (None,
        and why in the status bar, while there is none)."""
        if self.label_set is None:
            self.show_status("Choose or create a label set first (Labels > New label set).")
            return None
        if self.view.instance is None or self.current_path is None:
            self.show_status(f"Open an image to {doing}.")
            return None
        if self.view.is_loading:
            self.show_status(f"Wait until the image is shown to {doing}.")
            return None
        if self.view.requested_path is not None \
                and Path(self.view.requested_path) != self.current_path:
            self.show_status(f"{Path(self.view.requested_path).name} could not be shown, so it "
                              f"cannot be labelled.")
            return None
        if self.state.current_ref is None:
            self.show_status("Still identifying this image; try again in a moment.")
            return None
        return self.state.current_ref

    # ------------------------------------------------------------ labelling actions
    def press_class_index(self, index: int) -> None:
        """Key ``index + 1``: label the image (or, in region mode, pick the region class)."""
        if self.label_set is None or index >= len(self.label_set.classes):
            return
        if self.regions.drawing:
            self.regions.set_region_class(index)
            return
        self.press_class(self.label_set.classes[index])

    def press_class(self, class_name: str) -> None:
        image = self.target_image("label it")
        if image is None or self.label_set is None:
            return
        set_name, reader = self.label_set.name, self.reader
        ai = self.state.suggested_classes()
        self._write_label(image.key, lambda store: press_class_key(store, set_name, image,
                                                                   reader, class_name, ai))

    def accept_ai_suggestion(self) -> None:
        """Enter: take the AI's suggestion; with no suggestion only a status message shows."""
        if self.note_edit.hasFocus():  # Enter in the note field saves the note
            self.save_note()
            return
        if self.label_set is None or self.current_path is None:
            self.show_status("No AI suggestion: no image or label set is open.")
            return
        suggestion = self.state.suggestion()
        if suggestion is None:
            self.show_status("No AI suggestion for this image (no model has read it).")
            return
        classes = suggestion.classes_for(self.label_set)
        if classes is None:
            self.show_status(suggestion.describe(self.label_set))
            return
        if not classes:
            self.show_status(f"The AI ({suggestion.model_name}) suggests none of the classes; "
                              f"choose with the number keys.")
            return
        image = self.target_image("accept the suggestion")
        if image is None:
            return
        set_name, reader = self.label_set.name, self.reader
        self._write_label(image.key, lambda store: decide_label(store, set_name, image, reader,
                                                                classes, classes))

    def clear_label(self) -> None:
        image = self.target_image("clear its label")
        if image is None or self.label_set is None:
            return
        set_name, reader = self.label_set.name, self.reader
        self._write_label(image.key, lambda store: decide_label(store, set_name, image, reader,
                                                                (), None))

    def save_note(self) -> None:
        image = self.target_image("add a note")
        if image is None or self.label_set is None:
            return
        mine = self.my_label(image.key)
        text = self.note_edit.text().strip() or None
        if mine is None:
            self.show_status("Choose a class first: a note belongs to a label.")
            return
        if text == mine.note:
            return
        set_name, reader = self.label_set.name, self.reader
        self._write_label(image.key, lambda store: store.set_note(set_name, image, text,
                                                                  reader=reader))

    def write(self, call: Callable[[LabelStore], Any], saved: Callable[[Any], str | None], *,
              image_key: str | None = None, failed: Callable[[], None] | None = None,
              nothing_done: str | None = None) -> None:
        """Queue a write on the store thread; report its outcome the one way writes are reported.

        ``saved(result)`` takes the store's result into what the panel holds and returns the
        "✓ …" line to show for ``image_key`` (or None). Then the error line clears and
        :attr:`committed` is emitted. A failure runs ``failed()`` (take back what was shown
        as saving), shows the store's sentence (panel and status bar) and emits
        :attr:`write_failed`. With ``image_key`` the image shows "Saving…" until the reply.
        ``nothing_done``: the status message when the store returns None for "nothing to do"
        (undo with nothing left); then nothing else is reported.
        """
        if image_key is not None:
            self._pending[image_key] = self._pending.get(image_key, 0) + 1
            self._refresh_current()

        def done(result: Any) -> None:
            if image_key is not None:
                self._settle(image_key)
            if result is None and nothing_done is not None:
                self.show_status(nothing_done)
                return
            self._set_error(None)
            line = saved(result)
            if image_key is not None:
                if line is not None:
                    self._last_saved[image_key] = line
                self._refresh_all()
            self.committed.emit(result)

        def on_error(sentence: str) -> None:
            if image_key is not None:
                self._settle(image_key)
            if failed is not None:
                failed()
            self._set_error(sentence)
            if image_key is not None:
                self._refresh_all()
            self.write_failed.emit(sentence)

        self.client.call(call, done, on_error)

    def read(self, call: Callable[[LabelStore], Any], done: Callable[[Any], None]) -> None:
        """Queue a read on the store thread; a failure shows the store's sentence."""
        self.client.call(call, done, self._set_error)

    def _write_label(self, key: str, call: Callable[[LabelStore], ImageLabel | None]) -> None:
        """A write whose result is this reader's decision on one image (None: cleared)."""
        set_name = self.label_set.name if self.label_set else None

        def saved(label: ImageLabel | None) -> str | None:
            if set_name is None or not self.state.label_written(set_name, key, label):
                return None
            if label is None:
                return f"✓ Saved: label cleared at {_clock()}."
            return _saved_text(label, _clock())

        self.write(call, saved, image_key=key)

    def _settle(self, key: str) -> None:
        left = self._pending.get(key, 0) - 1
        if left > 0:
            self._pending[key] = left
        else:
            self._pending.pop(key, None)

    def undo(self) -> None:
        """Ctrl+Z: take back this reader's last action in the label set."""
        self._revert("undo")

    def redo(self) -> None:
        """Ctrl+Shift+Z / Ctrl+Y: re-apply what the last undo took back."""
        self._revert("redo")

    def _revert(self, verb: str) -> None:
        if self.label_set is None:
            self.show_status(f"Nothing to {verb}: no label set is chosen.")
            return
        set_name, reader = self.label_set.name, self.reader

        def reverted(result: UndoResult) -> None:
            paths = self.state.paths_of(result.image_keys)
            for key in result.image_keys:
                self._last_saved.pop(key, None)
            names = ", ".join(p.name for p in paths[:3]) or "an image not open here"
            what = "your undo" if result.kind == "undo" else result.kind.replace("_", " ")
            self.show_status(f"{'Undone' if verb == 'undo' else 'Redone'}: {what} on {names}.")
            self._load_labels(paths)
            if self.current_key in result.image_keys:
                self.regions.load()

        def act(store: LabelStore) -> UndoResult | None:
            revert = store.undo if verb == "undo" else store.redo
            return revert(reader, label_set=set_name)

        self.write(act, reverted,
                   nothing_done=f"Nothing of yours to {verb} in label set '{set_name}'.")

    def _on_suggestion_changed(self, path: Path) -> None:
        if path == self.current_path:
            self._refresh_current()

    # ------------------------------------------------------------ navigation
    def go(self, step: int) -> None:
        target, why = self.state.step(step)
        if target is None:
            self.show_status(why)
            return
        self.session.request_show(target)

    def go_unlabelled(self) -> None:
        target, why = self.state.next_unlabelled_target()
        if target is None:
            self.show_status(why)
            return
        self.session.request_show(target)

    # ------------------------------------------------------------ regions (label_regions.py)
    @property
    def region_layer(self) -> RegionLayer:
        return self.regions.region_layer

    def set_region_class(self, index: int) -> None:
        self.regions.set_region_class(index)

    def regions_on_screen(self) -> dict[int, Region]:
        return self.regions.regions_on_screen()

    # ------------------------------------------------------------ what is shown
    def my_label(self, key: str | None) -> ImageLabel | None:
        """This reader's committed decision on an image (None: none, or not loaded yet)."""
        return self.state.my_label(key)

    def committed_labels(self, key: str) -> dict[str, ImageLabel]:
        return self.state.committed_labels(key)

    def _refresh_all(self) -> None:
        self._refresh_current()
        self._refresh_progress()
        self.regions.refresh()
        self.reader_button.setText(f"Reader: {self.reader}")

    def _rebuild_class_buttons(self) -> None:
        for button in self.class_buttons:
            self.class_grid.removeWidget(button)
            button.deleteLater()
        self.class_buttons = []
        classes = self.label_set.classes if self.label_set is not None else ()
        self.regions.use_classes(classes, MAX_CLASS_KEYS)
        for index, class_name in enumerate(classes):
            button = QPushButton()
            button.setObjectName(f"classButton{index + 1}")
            button.setCheckable(True)
            button.setMinimumHeight(34)
            button.setProperty("role", "class")
            button.clicked.connect(lambda _c=False, i=index: self._on_class_button(i))
            self.class_grid.addWidget(button, index, 0)
            self.class_buttons.append(button)
        for index, action in enumerate(self.class_actions):
            exists = index < len(classes)
            action.setText(f"Label &{index + 1}: {classes[index]}" if exists
                           else f"Class {index + 1}")
            action.setVisible(exists)
            action.setEnabled(exists)
        if self.label_set is None:
            self.set_info.setText("Create a label set to start labelling: Labels > New label "
                                  "set (or New… above).")
        else:
            kind = ("multi-label: each key toggles its class" if self.label_set.multi_label
                    else "single-label: one class per image")
            self.set_info.setText(f"{len(classes)} classes, {kind}.")

    def _on_class_button(self, index: int) -> None:
        self._refresh_current()  # the button shows the committed state, not the click
        if self.label_set is not None and index < len(self.label_set.classes):
            self.press_class(self.label_set.classes[index])

    def _refresh_current(self) -> None:
        key = self.current_key
        mine = self.my_label(key)
        chosen = set(mine.classes) if mine is not None else set()
        classes = self.label_set.classes if self.label_set is not None else ()
        has_image = self.current_path is not None
        for index, (button, class_name) in enumerate(zip(self.class_buttons, classes)):
            saved = class_name in chosen
            key_text = f"{index + 1}" if index < MAX_CLASS_KEYS else " "
            button.setText(f"{'✓' if saved else '  '}  {key_text}   {class_name}")
            button.setChecked(saved)
            button.setEnabled(has_image)
            button.setToolTip(f"{class_name}: {'saved' if saved else 'not chosen'}"
                              + (f" (key {index + 1})" if index < MAX_CLASS_KEYS else ""))
        pending = self._pending.get(key, 0) if key is not None else 0
        if self.label_set is None:
            text = ""
        elif not has_image:
            text = "Open an image to label it."
        elif pending:
            text = "Saving…"
        elif key is not None and key in self._last_saved:
            text = self._last_saved[key]
        elif mine is not None:
            text = _saved_text(mine)
        elif not self.state.is_loaded(key) and self.state.loading_labels:
            text = "Reading saved labels…"
        else:
            text = "Not labelled by you yet."
        self.saved_label.setText(text)
        style = SAVED_STYLE if text.startswith("✓") else ""
        if self.saved_label.styleSheet() != style:  # restyling costs, text changes do not
            self.saved_label.setStyleSheet(style)
        if not self.note_edit.hasFocus():
            self.note_edit.setText(mine.note or "" if mine is not None else "")
        self.note_edit.setEnabled(mine is not None)
        suggestion = self.state.suggestion()
        if self.label_set is None or not has_image:
            self.ai_label.setText("")
        elif suggestion is None:
            self.ai_label.setText("No AI suggestion for this image.")
        else:
            self.ai_label.setText(suggestion.describe(self.label_set))
        self.accept_button.setEnabled(bool(self.state.suggested_classes()))
        for widget in (self.next_button, self.previous_button, self.unlabelled_button):
            widget.setEnabled(has_image)
        self.undo_button.setEnabled(self.label_set is not None)
        self.redo_button.setEnabled(self.label_set is not None)

    def _refresh_progress(self) -> None:
        done, total = self.state.progress()
        scope = self.state.scope_of(self.current_path)
        if self.label_set is None or not total or scope is None:
            self.progress_label.setText("")
            self.progress_bar.hide()
            return
        self.progress_label.setText(f"Labelled {done} / {total} in {scope.root.name}")
        self.progress_bar.show()
        self.progress_bar.setRange(0, total)
        self.progress_bar.setValue(done)

    def _set_error(self, sentence: str | None) -> None:
        self._error = sentence
        if sentence:
            self.error_label.setText(sentence)
            self.error_label.show()
            self.shell.show_status(sentence, 15_000)
        else:
            self.error_label.clear()
            self.error_label.hide()

    @property
    def error(self) -> str | None:
        return self._error

    def show_status(self, text: str) -> None:
        self.shell.show_status(text, 4000)

    # ------------------------------------------------------------ keys (label_keys.py)
    @property
    def labelling_active(self) -> bool:
        dock_open = self._dock is None or self._dock.toggleViewAction().isChecked()
        return self.label_set is not None and dock_open

    def _update_keys(self) -> None:
        n_classes = len(self.label_set.classes) if self.label_set is not None else 0
        self.keys.update(self.labelling_active, n_classes)

    def set_key_views(self, views: Callable[[], Sequence[ImageView]]) -> None:
        """The image views whose keys labelling moves (a viewport grid's; default: the
        labelled view alone); the holder calls it again when it adds a view."""
        self.keys.set_views(views)
        self._update_keys()

    # ------------------------------------------------------------ closing
    def shutdown(self, timeout_ms: int = 10_000) -> None:
        """Finish every store call already asked for and stop the panel's threads (a shell
        shutdown step: the window's close runs it)."""
        self._prefetch_timer.stop()
        self.transfer.shutdown(timeout_ms)
        self.prefetcher.clear()
        self.prefetcher.wait_for_workers(timeout_ms)
        self.client.shutdown(timeout_ms)

    @property
    def busy(self) -> bool:
        """Store calls waiting for their reply, or images being prefetched."""
        return self.client.pending > 0 or self.prefetcher.busy or \
            self._prefetch_timer.isActive()


def _clock() -> str:
    return datetime.now().strftime("%H:%M:%S")


def _saved_text(label: ImageLabel, at: str | None = None) -> str:
    when = at
    if when is None:
        try:
            when = datetime.fromisoformat(label.labelled_at).astimezone().strftime(
                "%Y-%m-%d %H:%M")
        except ValueError:
            when = label.labelled_at
    source = SOURCE_TEXT.get(label.source, label.source)
    note = " · note" if label.note else ""
    return f"✓ Saved: {' + '.join(label.classes)} ({source}{note}) at {when}."


def install_labeling(shell: Shell, session: Session, view: ImageView) -> LabelPanel:
    """Add the Labels dock, menu, reader field and region drawing to a shell."""
    panel = LabelPanel(session, shell, view)
    # Scrolls rather than grows: a region list or a long note never resizes the image view
    # (nor pushes the window past a small screen).
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setWidget(panel)
    dock = shell.add_panel("labels", "Labels", scroll, Qt.DockWidgetArea.RightDockWidgetArea)
    panel.attach_dock(dock)
    return panel
