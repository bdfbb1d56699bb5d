"""The AI batch results dock: :class:`BatchPanel`, a sortable table filled as results arrive.

:class:`~medviewer.gui.results_panel.AiReader` runs the batch job
(``medviewer.inference.predict.predict_job``) and hands each prediction to the panel; the
panel asks for an image to be shown when a row is clicked.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView, QHBoxLayout, QLabel, QProgressBar, QPushButton, QTableWidget,
    QTableWidgetItem, QVBoxLayout, QWidget,
)

from medviewer.gui.results_view import ERROR_STYLE, FLAG_COLOUR
from medviewer.gui.widgets import wrapping_label
from medviewer.jobs import Progress

if TYPE_CHECKING:
    from medviewer.inference.predict import Prediction


class _NumberItem(QTableWidgetItem):
    """Sorts by its number, not its text."""

    def __init__(self, value: float | None, text: str) -> None:
        super().__init__(text)
        self.value = value

    def __lt__(self, other: QTableWidgetItem) -> bool:
        mine = self.value if self.value is not None else -1.0
        theirs = getattr(other, "value", None)
        return mine < (theirs if theirs is not None else -1.0)


class BatchPanel(QWidget):
    """A batch run's results: one row per image, filled in as they arrive.

    Columns: image, the decision (the one rule's: flagged findings in the flag colour,
    else the "no finding" class; "not read" outside the model's intended use), one
    probability column per finding (sort by it to triage), whether the image is unusual for
    the model, and a note for files without a result.
    """

    image_requested = Signal(object)  # Path of the clicked row's image
    cancel_requested = Signal()

    FIXED_COLUMNS = ("Image", "Decision")
    LAST_COLUMNS = ("Unusual", "Note")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("batchPanel")
        self.classes: list[str] = []
        self.title_label = QLabel("No batch run yet: Models > Run AI on all open images, "
                                  "or on a folder.")
        self.title_label.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setObjectName("batchProgress")
        self.progress.setMaximumWidth(260)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("batchCancel")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.summary_label = wrapping_label("batchSummary")
        # Rows arrive one event at a time; they go into the table a few times a second, in
        # one insertion with sorting off, so a long batch never re-sorts per row.
        self._pending: list[Prediction] = []
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(150)
        self._flush_timer.timeout.connect(self.flush)
        self.table = QTableWidget(0, 0)
        self.table.setObjectName("batchTable")
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.cellClicked.connect(self._on_clicked)
        self.table.itemActivated.connect(lambda item: self._on_clicked(item.row(), 0))
        self._set_columns([])
        top = QHBoxLayout()
        top.addWidget(self.title_label, 1)
        top.addWidget(self.progress)
        top.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.summary_label)

    @property
    def columns(self) -> list[str]:
        return [*self.FIXED_COLUMNS, *(f"P({name})" for name in self.classes),
                *self.LAST_COLUMNS]

    def _set_columns(self, classes: list[str]) -> None:
        self.classes = list(classes)
        names = self.columns
        self.table.setColumnCount(len(names))
        self.table.setHorizontalHeaderLabels(names)
        metrics = self.table.fontMetrics()
        longest_class = max((metrics.horizontalAdvance(c) for c in classes), default=60)
        widths = [metrics.horizontalAdvance("x" * 30), max(longest_class + 24, 120)]
        widths += [max(metrics.horizontalAdvance(f"P({c})") + 28, 70) for c in classes]
        widths += [metrics.horizontalAdvance("Unusual") + 24]
        for column, width in enumerate(widths):
            self.table.setColumnWidth(column, width)

    def start(self, title: str, classes: list[str]) -> None:
        """A new run; ``classes`` are the findings whose probabilities get a column."""
        self._pending.clear()
        self._flush_timer.stop()
        self.table.setSortingEnabled(False)
        self.table.setRowCount(0)
        self._set_columns(classes)
        self.table.setSortingEnabled(True)
        self.title_label.setText(title)
        self.summary_label.clear()
        self.progress.setRange(0, 0)
        self.progress.show()
        self.cancel_button.setEnabled(True)
        self.cancel_button.show()

    def set_progress(self, progress: Progress) -> None:
        if progress.total:
            self.progress.setRange(0, progress.total)
            self.progress.setValue(progress.done)
            self.progress.setFormat(f"{progress.done}/{progress.total}")
        if progress.message and not progress.total:
            self.progress.setFormat(progress.message)

    def add_prediction(self, prediction: Prediction) -> None:
        """Queue a result; it is in the table within a fraction of a second."""
        self._pending.append(prediction)
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def flush(self) -> None:
        """Insert the queued results now."""
        self._flush_timer.stop()
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        self.table.setSortingEnabled(False)  # rows stay where they are inserted
        self.table.setUpdatesEnabled(False)
        try:
            for prediction in pending:
                self._insert(prediction)
        finally:
            self.table.setUpdatesEnabled(True)
            self.table.setSortingEnabled(True)

    def _insert(self, prediction: Prediction) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        name = QTableWidgetItem(prediction.path.name)
        name.setData(Qt.ItemDataRole.UserRole, str(prediction.path))
        name.setToolTip(str(prediction.path))
        cells: list[QTableWidgetItem] = [name]
        if prediction.ok:
            decision = prediction.decision
            if decision is not None and decision.withheld:
                verdict = QTableWidgetItem("not read (outside intended use)")
                verdict.setToolTip(decision.withheld)
            else:
                verdict = QTableWidgetItem(", ".join(prediction.offered) or "—")
                if prediction.flagged:
                    verdict.setForeground(FLAG_COLOUR)
            cells.append(verdict)
            by_name = {s.name: s for s in prediction.scores}
            for class_name in self.classes:
                score = by_name.get(class_name)
                item = (_NumberItem(score.probability, f"{score.probability:.3f}") if score
                        else _NumberItem(None, "—"))
                if score is not None and score.flagged:
                    item.setForeground(FLAG_COLOUR)
                cells.append(item)
            unusual = {True: "unusual", False: "", None: "no check"}[prediction.ood]
            cells.append(QTableWidgetItem(unusual))
            cells.append(QTableWidgetItem(""))
        else:
            cells.append(QTableWidgetItem("—"))
            cells += [_NumberItem(None, "—") for _ in self.classes]
            cells.append(QTableWidgetItem("—"))
            note = QTableWidgetItem(prediction.error or "")
            note.setToolTip(prediction.error or "")
            note.setForeground(QColor(255, 154, 138))
            cells.append(note)
        for column, item in enumerate(cells):
            self.table.setItem(row, column, item)

    def finish(self, summary: str, error: bool = False) -> None:
        self.flush()
        self.progress.hide()
        self.cancel_button.hide()
        self.summary_label.setText(summary)
        self.summary_label.setStyleSheet(ERROR_STYLE if error else "")

    def rows(self) -> list[dict[str, str]]:
        """The table as shown (sorted order), one {column name: text} per row."""
        self.flush()
        names = self.columns
        out = []
        for row in range(self.table.rowCount()):
            out.append({name: (self.table.item(row, c).text() if self.table.item(row, c)
                               else "") for c, name in enumerate(names)})
        return out

    def path_at(self, row: int) -> Path | None:
        item = self.table.item(row, 0)
        value = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        return Path(value) if value else None

    def _on_clicked(self, row: int, _column: int) -> None:
        path = self.path_at(row)
        if path is not None:
            self.image_requested.emit(path)
