"""The label panel: fast point-and-click (or keyboard-only) labels that are never lost.

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
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox, QFrame, QGridLayout, QHBoxLayout, QInputDialog, QLabel, QLineEdit, QProgressBar,
    QPushButton, QScrollArea, QSizePolicy, QToolButton, QVBoxLayout, QWidget,
)

from medviewer.errors import UserError
from medviewer.gui.label_dialogs import (
    ERROR_STYLE, NewLabelSetDialog, reader_dialog, store_file_dialog,
)
from medviewer.gui.label_filter import StudyFilter
from medviewer.gui.label_regions import RegionEditor
from medviewer.gui.label_store_client import StoreClient, decide_label, press_class_key
from medviewer.gui.label_transfer import LabelTransfer
from medviewer.gui.lazy import LazyModule
from medviewer.gui.prefetch import Prefetcher
from medviewer.gui.study_browser import display_order
from medviewer.gui.widgets import window_action, wrapping_label
from medviewer.settings import load_settings, save_settings

if TYPE_CHECKING:
    from medviewer.dicom.catalog import Catalog
    from medviewer.dicom.reader import Instance
    from medviewer.gui.main_window import MainWindow
    from medviewer.gui.region_items import RegionLayer
    from medviewer.labels import store as store_module
    from medviewer.labels.store import (
        ImageLabel, ImageRef, LabelSet, LabelStore, Region, UndoResult,
    )
else:  # the store (sqlite3) loads on first use, not at start-up
    store_module = LazyModule("medviewer.labels.store")

log = logging.getLogger(__name__)

AI_THRESHOLD = 0.5  # multi-label: a class is suggested at this probability or more
MAX_CLASS_KEYS = 9
PREFETCH_AHEAD = 3
PREFETCH_DELAY_MS = 40  # after an image is shown, before its neighbours are decoded
SOURCE_TEXT = {"manual": "manual", "ai_accepted": "AI accepted", "ai_overridden": "AI overridden",
               "imported": "imported"}
# Image view keys that labelling takes while it is active, and where they move meanwhile.
MOVED_VIEW_KEYS = {"rotate_right": "Shift+R"}
SAVED_STYLE = "color: #7ddc7d;"
# Saved classes (checked buttons) and region mode must be visible at a glance.
PANEL_STYLE = """
#labelPanel QPushButton[role="class"] { text-align: left; padding: 6px 10px; }
#labelPanel QPushButton:checked { background-color: #2f6b3b; border: 1px solid #7ddc7d;
                                  border-radius: 3px; color: #ffffff; }
"""


# ---------------------------------------------------------------- AI suggestions


@dataclass(frozen=True)
class AiSuggestion:
    """What a model said about one image: class name -> probability."""

    model_name: str
    probabilities: Mapping[str, float]

    def _matched(self, label_set: LabelSet) -> dict[str, float]:
        by_fold = {name.casefold(): name for name in label_set.classes}
        matched: dict[str, float] = {}
        for name, probability in self.probabilities.items():
            target = name if name in label_set.classes else by_fold.get(str(name).casefold())
            if target is not None:
                matched[target] = max(float(probability), matched.get(target, 0.0))
        return matched

    def classes_for(self, label_set: LabelSet) -> tuple[str, ...] | None:
        """The suggested classes in this label set; None when no model class is in the set.

        Single-label: the most probable class. Multi-label: every class at
        :data:`AI_THRESHOLD` or more (possibly none).
        """
        matched = self._matched(label_set)
        if not matched:
            return None
        if label_set.multi_label:
            return tuple(c for c in label_set.classes if matched.get(c, -1.0) >= AI_THRESHOLD)
        best = max(label_set.classes, key=lambda c: matched.get(c, -1.0))
        return (best,)

    def describe(self, label_set: LabelSet | None) -> str:
        if label_set is None:
            return f"AI ({self.model_name})"
        matched = self._matched(label_set)
        if not matched:
            names = ", ".join(sorted(map(str, self.probabilities))) or "none"
            return (f"AI ({self.model_name}): its classes ({names}) are not in label set "
                    f"'{label_set.name}'.")
        ranked = sorted(matched.items(), key=lambda item: -item[1])[:3]
        odds = ", ".join(f"{name} {probability * 100:.0f} %" for name, probability in ranked)
        suggested = self.classes_for(label_set) or ()
        verdict = " + ".join(suggested) if suggested else "none of the classes"
        return f"AI ({self.model_name}) suggests {verdict} — {odds}. Enter accepts."


# ---------------------------------------------------------------- the panel


@dataclass
class _Scope:
    """One opened folder, file or DICOMDIR: its images in browser order."""

    root: Path
    paths: list[Path]


class LabelPanel(QWidget):
    """The Labels dock. Create it with :func:`install_labeling`."""

    label_set_changed = Signal(object)  # LabelSet or None
    committed = Signal(object)  # what the store returned for a write (ImageLabel, Region, ...)
    write_failed = Signal(str)  # the sentence shown
    labels_loaded = Signal()  # the committed labels of the open images are known

    def __init__(self, window: MainWindow, store_path: Path | None = None) -> None:
        super().__init__()
        self.setObjectName("labelPanel")
        self.main_window = window
        self.view = window.image_view
        self.reader = window.settings.reader_name
        self.client = StoreClient(store_path, self.reader, self)
        self.prefetcher = Prefetcher(parent=self)
        self.view.instance_source = self.prefetcher.ready
        self.label_set: LabelSet | None = None
        self.label_sets: list[LabelSet] = []
        self.current_path: Path | None = None
        self.current_key: str | None = None
        self._current_ref: ImageRef | None = None
        self._labels: dict[str, dict[str, ImageLabel]] = {}  # key -> reader -> committed
        self._keys: dict[Path, str] = {}
        self._scopes: list[_Scope] = []
        # path -> (its scope, as present in the browser now); rebuilt when the tree changes
        self._scope_index: dict[Path, _Scope] | None = None
        self._suggestions: dict[Path, AiSuggestion] = {}
        self._pending: dict[str, int] = {}  # image key -> writes waiting for their reply
        self._last_saved: dict[str, str] = {}  # image key -> "saved ..." text of this session
        self._error: str | None = None
        self._loading_labels = 0
        self._view_keys_taken: dict[QAction, list[QKeySequence]] = {}
        self._dialog: NewLabelSetDialog | None = None
        self._reader_dialog: QInputDialog | None = None
        self._prefetch_timer = QTimer(self)
        self._prefetch_timer.setSingleShot(True)
        self._prefetch_timer.setInterval(PREFETCH_DELAY_MS)
        self._prefetch_timer.timeout.connect(lambda: self._prefetch_around(self.current_path))

        self._build_widgets()
        self._build_actions()
        self.filter = StudyFilter(self)
        window.study_browser.layout().insertWidget(0, self.filter)
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
        return window_action(self.main_window, text, slot, tip)

    def _build_actions(self) -> None:
        menu = self.main_window.menus["labels"]
        self.new_set_action = self._action("&New label set…", self.show_new_label_set_dialog)
        self.reader_action = self._action("&Reader…", self.show_reader_dialog,
                                          "Change the reader name labels are saved under")
        self.store_action = self._action("Label &store…", self.choose_store,
                                         "Use another label store file (e.g. a project's)")
        self.transfer = LabelTransfer(self)
        self.import_action = self._action("&Import labels…", self.transfer.show_import_dialog,
                                          "Import labels from CSV, MedViewer JSON or COCO JSON")
        self.export_action = self._action("&Export labels…", self.transfer.show_export_dialog,
                                          "Write a label set to CSV, MedViewer JSON or COCO JSON")
        menu.addAction(self.new_set_action)
        menu.addAction(self.reader_action)
        menu.addAction(self.store_action)
        menu.addAction(self.import_action)
        menu.addAction(self.export_action)
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
        self._keys_for: dict[QAction, list[str]] = {
            self.accept_action: ["Return", "Enter"], self.next_action: ["N"],
            self.previous_action: ["P"], self.unlabelled_action: ["U"],
            self.undo_action: ["Ctrl+Z"], self.redo_action: ["Ctrl+Shift+Z", "Ctrl+Y"],
            self.clear_action: ["Backspace"],
            self.region_action: ["R"], delete_region_action: ["Delete"],
        }
        for index, action in enumerate(self.class_actions):
            self._keys_for[action] = [str(index + 1)]

    def _connect(self) -> None:
        window = self.main_window
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
        window.add_status_field(self.reader_button)
        self.view.image_shown.connect(self._on_image_shown)
        self.view.load_failed.connect(lambda _sentence: self._on_image_gone())
        window.catalog_opened.connect(self._on_catalog_opened)
        model = window.study_browser.tree.model()
        for signal in (model.rowsInserted, model.rowsRemoved, model.modelReset):
            signal.connect(lambda *_args: self._tree_changed())
        # Start-up stays fast: the store is read after the window's first event-loop turn.
        QTimer.singleShot(0, self.reload_label_sets)

    def attach_dock(self, dock) -> None:
        self._dock = dock
        dock.toggleViewAction().toggled.connect(lambda _on: self._update_keys())
        self._update_keys()

    # ------------------------------------------------------------ store and label sets
    @property
    def store_path(self) -> Path:
        return self.client.path

    def set_store_path(self, path: Path) -> None:
        """Use another store file; calls already asked for finish on the old one first."""
        self.client.shutdown()
        self.client.path = Path(path)
        self._labels.clear()
        self._set_error(None)
        self.reload_label_sets()

    def choose_store(self) -> None:
        dialog = store_file_dialog(self.main_window, self.store_path.parent)
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
            recent = store.history(reader=reader, limit=1)
            return sets, (recent[0].label_set if recent else None)

        self.read(read, lambda result: self._on_label_sets(result, select))

    def _on_label_sets(self, result: tuple[list[LabelSet], str | None],
                       select: str | None) -> None:
        sets, recent = result
        self.label_sets = list(sets)
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
        self._load_labels(self.known_paths)
        self.regions.load()

    def _on_set_chosen(self, index: int) -> None:
        self.choose_label_set(self.set_combo.itemData(index))

    def choose_label_set(self, name: str | None) -> None:
        chosen = next((s for s in self.label_sets if s.name == name), None)
        changed = chosen != self.label_set
        self.label_set = chosen
        if chosen is not None and self.set_combo.currentData() != chosen.name:
            self.set_combo.setCurrentIndex(self.set_combo.findData(chosen.name))
        if changed:
            self._labels.clear()
            self._rebuild_class_buttons()
            self._update_keys()
            self._load_labels([p for scope in self._scopes for p in scope.paths])
            self.regions.load()
            self.label_set_changed.emit(chosen)
        self._refresh_all()

    def show_new_label_set_dialog(self) -> NewLabelSetDialog:
        if self._dialog is None:
            self._dialog = NewLabelSetDialog(self.main_window)
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
            self.main_window.statusBar().showMessage(f"Label set '{label_set.name}' created.", 5000)
            self.reload_label_sets(select=label_set.name)

        def failed(sentence: str) -> None:
            if self._dialog is not None and self._dialog.isVisible():
                self._dialog.show_error(sentence)
            else:
                self._set_error(sentence)

        self.client.call(lambda store: store.create_label_set(name, classes,
                                                              multi_label=multi_label),
                         done, failed)

    # ------------------------------------------------------------ reader
    def show_reader_dialog(self) -> QInputDialog:
        dialog = reader_dialog(self.main_window, self.reader)
        dialog.textValueSelected.connect(self.set_reader_name)
        self._reader_dialog = dialog
        dialog.open()
        return dialog

    def set_reader_name(self, name: str) -> bool:
        """Label as ``name`` from now on, and keep it in the settings."""
        name = name.strip()
        if not name or len(name) > 200 or any(ch in name for ch in "\r\n\t"):
            self.main_window.statusBar().showMessage(
                "A reader name must be 1 to 200 characters without tabs or line breaks.", 8000)
            return False
        self.reader = name
        self.client.reader = name
        self.client.call(lambda store: setattr(store, "reader", name))
        fresh = load_settings()  # other parts of the app may have saved settings meanwhile
        fresh.reader_name = name
        try:
            save_settings(fresh)
        except OSError as exc:
            self.main_window.statusBar().showMessage(
                f"The reader name is used now but could not be saved in the settings "
                f"({exc.strerror or exc}).", 10_000)
        self.main_window.settings.reader_name = name
        self._last_saved.clear()
        self.regions.load()
        self._refresh_all()
        return True

    # ------------------------------------------------------------ opened images
    def _on_catalog_opened(self, catalog: Catalog) -> None:
        paths = []
        for record in display_order(catalog):  # N / P walk the browser's rows
            path = Path(record.path)
            paths.append(path)
            if record.content_hash:
                self._keys[path] = store_module.HASH_PREFIX + record.content_hash.lower()
            elif record.sop_instance_uid:
                self._keys[path] = record.sop_instance_uid
        if not paths:
            return
        root = Path(catalog.root)
        self._scopes = [s for s in self._scopes if s.root != root]
        self._scopes.append(_Scope(root, paths))
        self._scope_index = None
        unknown = [p for p in paths if p not in self._keys]
        if unknown:
            self._identify(unknown)
        self._load_labels(paths)

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
            self._keys.update(found)
            self._load_labels(list(found))

        self.read(identify, done)

    @property
    def known_paths(self) -> list[Path]:
        seen: dict[Path, None] = {}
        for scope in self._scopes:
            seen.update(dict.fromkeys(scope.paths))
        return list(seen)

    def key_for(self, path: Path) -> str | None:
        return self._keys.get(Path(path))

    def _load_labels(self, paths: list[Path]) -> None:
        """Read the committed decisions (all readers) of these images on the store thread."""
        if self.label_set is None or not self.store_path.exists():
            return
        keys = [self._keys[p] for p in paths if p in self._keys]
        if not keys:
            return
        set_name = self.label_set.name
        self._loading_labels += 1

        def done(labels: list[ImageLabel]) -> None:
            self._loading_labels -= 1
            if self.label_set is None or self.label_set.name != set_name:
                return
            for key in keys:
                self._labels[key] = {}
            for label in labels:
                self._labels.setdefault(label.image_key, {})[label.reader] = label
            self._refresh_all()
            self.labels_loaded.emit()

        def failed(sentence: str) -> None:
            self._loading_labels -= 1
            self._set_error(sentence)

        self.client.call(lambda store: store.current_labels(set_name, keys), done, failed)

    def _scope_of(self, path: Path | None) -> _Scope | None:
        """The folder/study ``path`` was opened with, limited to images still in the browser
        (the one opened last when several hold it)."""
        if path is None:
            return None
        if self._scope_index is None:
            browser = self.main_window.study_browser
            index: dict[Path, _Scope] = {}
            for scope in self._scopes:
                present = _Scope(scope.root, [p for p in scope.paths
                                              if browser.item_for(p) is not None])
                index.update(dict.fromkeys(present.paths, present))
            self._scope_index = index
        return self._scope_index.get(path)

    def _tree_changed(self) -> None:
        self._scope_index = None
        self.filter.schedule()

    # ------------------------------------------------------------ the image on screen
    def _on_image_shown(self, instance: Instance) -> None:
        path = Path(instance.path)
        self.current_path = path
        self._current_ref = None
        self.current_key = None
        if instance.content_hash or instance.sop_instance_uid:
            self._current_ref = store_module.ImageRef.from_instance(instance)
            self.current_key = self._current_ref.key
            self._keys[path] = self.current_key
        else:
            def done(ref: ImageRef) -> None:
                if self.current_path == path:
                    self._current_ref, self.current_key = ref, ref.key
                    self._keys[path] = ref.key
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

    def _on_image_gone(self) -> None:
        if self.view.instance is None:
            self.current_path = self.current_key = self._current_ref = None
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
        if self._current_ref is None:
            self.show_status("Still identifying this image; try again in a moment.")
            return None
        return self._current_ref

    def _prefetch_around(self, path: Path | None) -> None:
        scope = self._scope_of(path)
        if scope is None or path not in scope.paths:
            return
        index = scope.paths.index(path)
        wanted = scope.paths[index + 1:index + 1 + PREFETCH_AHEAD]
        if index > 0:
            wanted.append(scope.paths[index - 1])
        unlabelled = self._next_unlabelled(scope, index)
        if unlabelled is not None:
            wanted.append(unlabelled)
        self.prefetcher.want(wanted)

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
        ai = self._suggested_classes()
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
        suggestion = self._suggestions.get(self.current_path)
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
            if self.label_set is None or self.label_set.name != set_name:
                return None
            self._labels.setdefault(key, {})
            if label is None:
                self._labels[key].pop(self.reader, None)
                return f"✓ Saved: label cleared at {_clock()}."
            self._labels[key][label.reader] = label
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
            paths = [p for p, k in self._keys.items() if k in result.image_keys]
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

    # ------------------------------------------------------------ AI suggestions (API)
    def set_ai_suggestion(self, class_probabilities: Mapping[str, float], model_name: str,
                          image_path: str | Path | None = None) -> None:
        """Show a model's class probabilities for an image; Enter then accepts them.

        ``image_path`` is the image the model read (default: the one on screen), so a result
        that arrives after the reader moved on stays with its own image. Class names are
        matched to the label set's exactly, else ignoring case; single-label sets suggest
        the most probable class, multi-label sets every class at 50 % or more.
        """
        path = Path(image_path) if image_path is not None else self.current_path
        if path is None:
            return
        self._suggestions[path] = AiSuggestion(model_name, dict(class_probabilities))
        if path == self.current_path:
            self._refresh_current()
        self.filter.schedule()

    def clear_ai_suggestion(self, image_path: str | Path | None = None) -> None:
        path = Path(image_path) if image_path is not None else self.current_path
        if path is not None and self._suggestions.pop(path, None) is not None:
            self._refresh_current()
            self.filter.schedule()

    def ai_suggestion(self, image_path: str | Path | None = None) -> AiSuggestion | None:
        path = Path(image_path) if image_path is not None else self.current_path
        return self._suggestions.get(path) if path is not None else None

    def _suggested_classes(self, path: Path | None = None) -> tuple[str, ...] | None:
        suggestion = self.ai_suggestion(path)
        if suggestion is None or self.label_set is None:
            return None
        classes = suggestion.classes_for(self.label_set)
        return classes if classes else None

    # ------------------------------------------------------------ navigation
    def go(self, step: int) -> None:
        scope = self._scope_of(self.current_path)
        if scope is None or self.current_path not in scope.paths:
            self.show_status("Open a folder or study to move through its images.")
            return
        index = scope.paths.index(self.current_path) + step
        if not 0 <= index < len(scope.paths):
            where = "last" if step > 0 else "first"
            self.show_status(f"This is the {where} image of {scope.root.name}.")
            return
        self._open(scope.paths[index])

    def go_unlabelled(self) -> None:
        scope = self._scope_of(self.current_path)
        if scope is None or self.current_path not in scope.paths:
            self.show_status("Open a folder or study to move through its images.")
            return
        if self.label_set is None:
            self.show_status("Choose or create a label set first (Labels > New label set).")
            return
        target = self._next_unlabelled(scope, scope.paths.index(self.current_path))
        if target is None:
            self.show_status(f"Every image of {scope.root.name} has your label in "
                              f"'{self.label_set.name}'.")
            return
        self._open(target)

    def _next_unlabelled(self, scope: _Scope, index: int) -> Path | None:
        if self.label_set is None:
            return None
        n = len(scope.paths)
        for offset in range(1, n):
            path = scope.paths[(index + offset) % n]
            key = self._keys.get(path)
            if key is None or self.my_label(key) is None:
                return path
        return None

    def _open(self, path: Path) -> None:
        browser = self.main_window.study_browser
        item = browser.item_for(path)
        if item is not None:
            node = item
            while node is not None:  # a filtered-out row is shown while it is the current one
                node.setHidden(False)
                node = node.parent()
        if not browser.select_path(path):
            self.view.open_path(path)

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
        if key is None:
            return None
        return self._labels.get(key, {}).get(self.reader)

    def committed_labels(self, key: str) -> dict[str, ImageLabel]:
        return dict(self._labels.get(key, {}))

    def matches(self, path: Path, mode: str) -> bool:
        key = self._keys.get(path)
        mine = self.my_label(key)
        if mode == "labelled":
            return mine is not None
        if mode == "unlabelled":
            return mine is None
        if mode == "disagreeing":
            return self.disagrees(path)
        return True

    def disagrees(self, path: Path) -> bool:
        """Human readers differ, a reader overrode the AI, or a stored/shown AI read differs."""
        key = self._keys.get(path)
        labels = self._labels.get(key, {}) if key is not None else {}
        human = {r: l.classes for r, l in labels.items() if not store_module.is_ai_reader(r)}
        if len(set(human.values())) > 1:
            return True
        if any(l.source == "ai_overridden" and l.ai_classes is not None
               and set(l.ai_classes) != set(l.classes) for r, l in labels.items()
               if r in human):
            return True
        ai_reads = {l.classes for r, l in labels.items() if store_module.is_ai_reader(r)}
        suggested = self._suggested_classes(path)
        if suggested is not None:
            ai_reads.add(tuple(suggested))
        return any(set(ai) != set(classes) for ai in ai_reads for classes in human.values())

    def progress(self) -> tuple[int, int]:
        """(labelled by this reader, images) in the folder or study on screen."""
        scope = self._scope_of(self.current_path)
        if scope is None:
            return 0, 0
        done = sum(1 for p in scope.paths if self.my_label(self._keys.get(p)) is not None)
        return done, len(scope.paths)

    def _refresh_all(self) -> None:
        self._refresh_current()
        self._refresh_progress()
        self.regions.refresh()
        self.reader_button.setText(f"Reader: {self.reader}")
        self.filter.schedule()

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
        elif key is not None and key not in self._labels and self._loading_labels:
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
        suggestion = self.ai_suggestion()
        if self.label_set is None or not has_image:
            self.ai_label.setText("")
        elif suggestion is None:
            self.ai_label.setText("No AI suggestion for this image.")
        else:
            self.ai_label.setText(suggestion.describe(self.label_set))
        self.accept_button.setEnabled(bool(self._suggested_classes()))
        for widget in (self.next_button, self.previous_button, self.unlabelled_button):
            widget.setEnabled(has_image)
        self.undo_button.setEnabled(self.label_set is not None)
        self.redo_button.setEnabled(self.label_set is not None)

    def _refresh_progress(self) -> None:
        done, total = self.progress()
        scope = self._scope_of(self.current_path)
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
            self.main_window.statusBar().showMessage(sentence, 15_000)
        else:
            self.error_label.clear()
            self.error_label.hide()

    @property
    def error(self) -> str | None:
        return self._error

    def show_status(self, text: str) -> None:
        self.main_window.statusBar().showMessage(text, 4000)

    # ------------------------------------------------------------ keys
    @property
    def labelling_active(self) -> bool:
        dock = getattr(self, "_dock", None)
        dock_open = dock is None or dock.toggleViewAction().isChecked()
        return self.label_set is not None and dock_open

    def _update_keys(self) -> None:
        """Give the labelling keys to the actions while labelling is active, else release."""
        active = self.labelling_active
        n_classes = len(self.label_set.classes) if self.label_set is not None else 0
        claimed: set[str] = set()
        for action, keys in self._keys_for.items():
            usable = active and (action not in self.class_actions
                                 or self.class_actions.index(action) < n_classes)
            action.setShortcuts([QKeySequence(k) for k in keys] if usable else [])
            if usable:
                claimed.update(QKeySequence(k).toString() for k in keys)
        # Restore image view keys taken earlier, then take the ones labelling uses now.
        for action, original in self._view_keys_taken.items():
            action.setShortcuts(original)
        self._view_keys_taken.clear()
        if not claimed:
            return
        for name, action in self.view.actions_by_name.items():
            keys = action.shortcuts()
            kept = [k for k in keys if k.toString() not in claimed]
            if len(kept) != len(keys):
                self._view_keys_taken[action] = keys
                if name in MOVED_VIEW_KEYS:
                    kept.append(QKeySequence(MOVED_VIEW_KEYS[name]))
                action.setShortcuts(kept)

    # ------------------------------------------------------------ closing
    def shutdown(self, timeout_ms: int = 10_000) -> None:
        """Finish every store call already asked for and stop the panel's threads.

        ``MainWindow.wait_for_workers`` (its close handler) calls this.
        """
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


def install_labeling(window: MainWindow, store_path: Path | None = None) -> LabelPanel:
    """Add the Labels dock, menu, reader field, study filter and region drawing to a window."""
    panel = LabelPanel(window, store_path)
    # Scrolls rather than grows: a region list or a long note never resizes the image view
    # (nor pushes the window past a small screen).
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setWidget(panel)
    dock = window.add_panel("labels", "Labels", scroll, Qt.DockWidgetArea.RightDockWidgetArea)
    panel.attach_dock(dock)
    if "tags" in window.docks:
        window.splitDockWidget(dock, window.docks["tags"], Qt.Orientation.Vertical)
    return panel
