"""The study filter above the study tree: show all images, those this reader labelled or
not, or those where readers (or a reader and the AI) disagree, in the chosen label set.

The filter only hides rows; which image matches which mode is the session's labelling state's
answer (:meth:`medviewer.app.labelling.Labelling.matches`), from the labels the store
committed. It re-applies itself when that state or the tree changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QTreeWidgetItem, QWidget

from medviewer.app.labelling import FILTER_MODES
from medviewer.gui.widgets import subscribe

if TYPE_CHECKING:
    from medviewer.app.labelling import Labelling
    from medviewer.gui.study_browser import StudyBrowser


class StudyFilter(QWidget):
    """'Show: all / labelled / unlabelled / disagreeing' above the study tree.

    It hides tree rows (never removes them), keeps the image on screen visible, and hides
    series, studies and patients left with no visible image.
    """

    def __init__(self, labelling: Labelling, browser: StudyBrowser) -> None:
        super().__init__()
        self.setObjectName("labelFilter")
        self.labelling = labelling
        self.browser = browser
        self.combo = QComboBox()
        self.combo.setObjectName("labelFilterCombo")
        for mode, text in FILTER_MODES:
            self.combo.addItem(text, mode)
        self.combo.setToolTip("Filter the images by this reader's labels in the current label "
                              "set, or show those where readers (or reader and AI) disagree")
        self.count_label = QLabel()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addWidget(QLabel("Show:"))
        layout.addWidget(self.combo, 1)
        layout.addWidget(self.count_label)
        self.combo.currentIndexChanged.connect(lambda _i: self.apply())
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(50)
        self._timer.timeout.connect(self.apply)
        events = labelling.events
        for emitter in (events.label_set_changed, events.labels_changed,
                        events.suggestion_changed, events.keys_changed, events.image_changed,
                        events.reader_changed):
            subscribe(self, emitter, self._on_state_changed)
        model = browser.tree.model()
        for signal in (model.rowsInserted, model.rowsRemoved, model.modelReset):
            signal.connect(lambda *_args: self.schedule())

    def _on_state_changed(self, *_args) -> None:
        self.schedule()

    @property
    def mode(self) -> str:
        return self.combo.currentData()

    def set_mode(self, mode: str) -> None:
        index = self.combo.findData(mode)
        if index < 0:
            raise ValueError(f"unknown filter mode {mode!r}")
        self.combo.setCurrentIndex(index)
        self.apply()

    def schedule(self) -> None:
        """Re-apply soon (many changes in a row cost one pass)."""
        self._timer.start()

    def apply(self) -> None:
        self._timer.stop()
        browser = self.browser
        tree = browser.tree
        labelling = self.labelling
        mode = self.mode if labelling.label_set is not None else "all"
        current_path = labelling.current_path
        image_rows: dict[int, Path] = {}
        for path in labelling.known_paths:
            item = browser.item_for(path)
            if item is not None:
                image_rows[id(item)] = path
        shown = total = 0
        for index in range(tree.topLevelItemCount()):
            shown_here, total_here = self._apply_item(tree.topLevelItem(index), mode,
                                                      current_path, image_rows)
            shown += shown_here
            total += total_here
        self.combo.setEnabled(labelling.label_set is not None)
        self.count_label.setText("" if mode == "all" else f"{shown} of {total}")

    def _apply_item(self, item: QTreeWidgetItem, mode: str, current_path: Path | None,
                    image_rows: dict[int, Path]) -> tuple[int, int]:
        path = image_rows.get(id(item))
        if path is not None:
            visible = (mode == "all" or path == current_path
                       or self.labelling.matches(path, mode))
            item.setHidden(not visible)
            return int(visible), 1
        shown = total = 0
        for index in range(item.childCount()):
            s, t = self._apply_item(item.child(index), mode, current_path, image_rows)
            shown, total = shown + s, total + t
        item.setHidden(total > 0 and shown == 0)
        return shown, total

    def visible_paths(self) -> list[Path]:
        """Image rows currently shown (tests)."""
        out = []
        for path in self.labelling.known_paths:
            item = self.browser.item_for(path)
            if item is not None and not _hidden_in_tree(item):
                out.append(path)
        return out


def _hidden_in_tree(item: QTreeWidgetItem) -> bool:
    while item is not None:
        if item.isHidden():
            return True
        item = item.parent()
    return False
