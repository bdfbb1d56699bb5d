"""The Data page: where the labelled images come from, and the split by patient they give
(read on a worker with the trainer's own functions); or, instead of training, a finished
run from the runs folder to evaluate and export (the wizard then goes straight to the
Evaluate page)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (QAbstractItemView, QButtonGroup, QComboBox, QFileDialog,
                               QGridLayout, QGroupBox, QHBoxLayout, QHeaderView, QLabel,
                               QLineEdit, QProgressBar, QPushButton, QRadioButton, QSpinBox,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from medviewer.app.training import (DataSummary, FinishedRun, finished_runs_job,
                                    read_training_data, runs_dir)
from medviewer.gui.training_wizard.page_helpers import (PAGE_EVALUATE, WizardHost, WizardPage,
                                                        cell, fit_height, note,
                                                        read_only_table, set_error)

RUN_COLUMNS = ("Started", "Data", "Architecture", "Epochs", "Best validation AUROC", "Ended")


class DataPage(WizardPage):
    """Where the labelled images come from, and the split by patient they give."""

    SOURCES = (("folder", "A folder with one sub-folder per class"),
               ("csv", "A CSV file of path,label (optional third column: patient)"),
               ("labelset", "A label set from MedViewer's label store"))

    def __init__(self, wizard: WizardHost) -> None:
        super().__init__(wizard, "Data", "Choose labelled images. They are split into "
                         "training, validation and test sets by patient, so no patient's "
                         "images are in two sets.")
        self.train_radio = QRadioButton("Train a model on labelled images")
        self.train_radio.setChecked(True)
        self.finished_radio = QRadioButton("Evaluate and export a finished run (skips "
                                           "training)")
        start_row = QHBoxLayout()
        start_row.addWidget(self.train_radio)
        start_row.addSpacing(24)
        start_row.addWidget(self.finished_radio)
        start_row.addStretch(1)
        self.source_buttons = QButtonGroup(self)
        source_box = QGroupBox("Source")
        source_layout = QGridLayout(source_box)
        for row, (key, text) in enumerate(self.SOURCES):
            button = QRadioButton(text)
            button.setObjectName(f"source_{key}")
            self.source_buttons.addButton(button, row)
            source_layout.addWidget(button, row, 0, 1, 3)
        self.source_buttons.button(0).setChecked(True)
        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("Folder or CSV file")
        self.browse_button = QPushButton("Browse…")
        self.label_set_combo = QComboBox()
        self.label_set_combo.addItem("Reading the label store…", None)
        source_layout.addWidget(QLabel("Path"), 3, 0)
        source_layout.addWidget(self.path_edit, 3, 1)
        source_layout.addWidget(self.browse_button, 3, 2)
        source_layout.addWidget(QLabel("Label set"), 4, 0)
        source_layout.addWidget(self.label_set_combo, 4, 1, 1, 2)
        source_layout.setColumnStretch(1, 1)

        self.val_spin = QSpinBox()
        self.test_spin = QSpinBox()
        for spin, value in ((self.val_spin, 15), (self.test_spin, 15)):
            spin.setRange(0, 45)
            spin.setSuffix(" %")
            spin.setValue(value)
        self.val_spin.setMinimum(5)
        split_row = QHBoxLayout()
        split_row.addWidget(QLabel("Validation"))
        split_row.addWidget(self.val_spin)
        split_row.addSpacing(16)
        split_row.addWidget(QLabel("Test"))
        split_row.addWidget(self.test_spin)
        split_row.addSpacing(16)
        split_row.addWidget(note("of the images, by patient; the rest is for training. "
                                  "The seed on the Settings page also decides the split."), 1)

        self.status_label = note()
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)
        self.busy_bar.setMaximumHeight(10)
        self.busy_bar.setTextVisible(False)
        self.busy_bar.hide()
        self.table = read_only_table(0, 4)
        self.table.setHorizontalHeaderLabels(["Train", "Validation", "Test", "All"])
        self.split_note = note()

        self.training_part = QWidget()
        training_layout = QVBoxLayout(self.training_part)
        training_layout.setContentsMargins(0, 0, 0, 0)
        training_layout.addWidget(source_box)
        training_layout.addLayout(split_row)
        training_layout.addWidget(self.busy_bar)
        training_layout.addWidget(self.status_label)
        training_layout.addWidget(self.table)
        training_layout.addWidget(self.split_note)

        self.runs_table = QTableWidget(0, len(RUN_COLUMNS))
        self.runs_table.setObjectName("finishedRuns")
        self.runs_table.setHorizontalHeaderLabels(RUN_COLUMNS)
        self.runs_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.runs_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.runs_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.runs_table.verticalHeader().hide()
        header = self.runs_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.runs_note = note()
        self.runs_part = QGroupBox("Finished runs (those with a best checkpoint)")
        runs_layout = QVBoxLayout(self.runs_part)
        runs_layout.addWidget(self.runs_table, 1)
        runs_layout.addWidget(self.runs_note)

        layout = QVBoxLayout(self)
        layout.addLayout(start_row)
        layout.addWidget(self.training_part)
        layout.addWidget(self.runs_part, 1)
        layout.addStretch(1)
        self._stretch_index = layout.count() - 1

        self.summary: DataSummary | None = None
        self.runs: list[FinishedRun] = []
        self._requested: tuple | None = None
        self._reread = QTimer(self)
        self._reread.setSingleShot(True)
        self._reread.setInterval(400)
        self._reread.timeout.connect(self.read_data)
        self.source_buttons.idToggled.connect(lambda _id, on: on and self._source_changed())
        self.path_edit.textChanged.connect(lambda _t: self._reread.start())
        self.label_set_combo.currentIndexChanged.connect(lambda _i: self._reread.start())
        self.val_spin.valueChanged.connect(lambda _v: self._reread.start())
        self.test_spin.valueChanged.connect(lambda _v: self._reread.start())
        self.browse_button.clicked.connect(self.browse)
        self.finished_radio.toggled.connect(lambda _on: self._start_changed())
        self.runs_table.itemSelectionChanged.connect(self.completeChanged.emit)
        wizard.tools_ready.connect(self.completeChanged.emit)
        self._source_changed()
        self._start_changed()

    # -- train, or export a finished run
    @property
    def from_finished_run(self) -> bool:
        return self.finished_radio.isChecked()

    @property
    def finished_run(self) -> FinishedRun | None:
        """The finished run chosen (None while training a new model, or none is chosen)."""
        if not self.from_finished_run:
            return None
        rows = self.runs_table.selectionModel().selectedRows()
        return self.runs[rows[0].row()] if rows and rows[0].row() < len(self.runs) else None

    def _start_changed(self) -> None:
        finished = self.from_finished_run
        self.training_part.setVisible(not finished)
        self.runs_part.setVisible(finished)
        self.layout().setStretch(self._stretch_index, 0 if finished else 1)
        self.setSubTitle(
            "Choose a finished run: its best checkpoint is scored on its own validation and "
            "test images on the Evaluate page, then exported." if finished else
            "Choose labelled images. They are split into training, validation and test sets "
            "by patient, so no patient's images are in two sets.")
        if finished:
            self.list_runs()
        self.completeChanged.emit()

    def list_runs(self) -> None:
        """Read the runs folder again (on a worker: it may be on a slow disk)."""
        self.runs_note.setText("Reading the runs folder…")
        self.owner.start_job("runs", finished_runs_job, "listing the finished runs",
                             on_finished=self._on_runs, on_failed=self._on_runs_failed)
        self.completeChanged.emit()

    def _on_runs(self, runs: list[FinishedRun]) -> None:
        chosen = self.finished_run
        self.runs = runs
        self.runs_table.setRowCount(len(runs))
        for row, run in enumerate(runs):
            auroc = "–" if run.best_val_auroc is None else f"{run.best_val_auroc:.3f}"
            epochs = "–" if run.epochs_run is None else str(run.epochs_run)
            data = "/".join(Path(run.data).parts[-2:]) if run.data else "–"
            size = f", {run.input_size} px" if run.input_size else ""
            for column, text in enumerate((run.started, data, f"{run.arch}{size}", epochs,
                                           auroc, run.ended)):
                item = QTableWidgetItem(text)
                item.setToolTip(f"{run.run_dir}\ndata: {run.data or 'unknown'}")
                self.runs_table.setItem(row, column, item)
        paths = [r.run_dir for r in runs]
        if chosen is not None and chosen.run_dir in paths:
            self.runs_table.selectRow(paths.index(chosen.run_dir))
        elif runs:
            self.runs_table.selectRow(0)
        set_error(self.runs_note, "")
        self.runs_note.setText(
            f"{len(runs)} run{'s' if len(runs) > 1 else ''} in {runs_dir()}, newest first. "
            f"Hover over a run for its folder." if runs else f"No run in {runs_dir()} has a checkpoint yet: train a model first.")
        self.completeChanged.emit()

    def _on_runs_failed(self, sentence: str) -> None:
        self.runs = []
        self.runs_table.setRowCount(0)
        set_error(self.runs_note, sentence)
        self.completeChanged.emit()

    def nextId(self) -> int:  # noqa: N802 - Qt naming
        return PAGE_EVALUATE if self.from_finished_run else super().nextId()

    # -- inputs
    @property
    def source_kind(self) -> str:
        return self.SOURCES[max(0, self.source_buttons.checkedId())][0]

    def set_source(self, kind: str, value: str) -> None:
        """Choose a source as the user would (tests and scripts)."""
        index = [k for k, _ in self.SOURCES].index(kind)
        self.source_buttons.button(index).setChecked(True)
        if kind == "labelset":
            self.label_set_combo.setCurrentIndex(self.label_set_combo.findData(value))
        else:
            self.path_edit.setText(value)
        self._reread.stop()
        self.read_data()

    def spec(self) -> str:
        if self.source_kind == "labelset":
            name = self.label_set_combo.currentData()
            return f"labelset:{name}" if name else ""
        return self.path_edit.text().strip()

    def fill_label_sets(self, label_sets: list[tuple[str, list[str]]]) -> None:
        current = self.label_set_combo.currentData()
        self.label_set_combo.blockSignals(True)
        self.label_set_combo.clear()
        for name, classes in label_sets:
            self.label_set_combo.addItem(f"{name} ({', '.join(classes)})", name)
        if not label_sets:
            self.label_set_combo.addItem("No single-label label sets yet", None)
        index = self.label_set_combo.findData(current)
        self.label_set_combo.setCurrentIndex(max(0, index))
        self.label_set_combo.blockSignals(False)
        if self.source_kind == "labelset":
            self._reread.start()

    def _source_changed(self) -> None:
        is_labelset = self.source_kind == "labelset"
        self.path_edit.setEnabled(not is_labelset)
        self.browse_button.setEnabled(not is_labelset)
        self.label_set_combo.setEnabled(is_labelset)
        self.path_edit.setPlaceholderText(
            "A CSV file of path,label" if self.source_kind == "csv"
            else "A folder with one sub-folder per class")
        self._reread.start()

    def browse(self) -> None:
        start = self.path_edit.text().strip() or str(Path.home())
        if self.source_kind == "csv":
            path, _ = QFileDialog.getOpenFileName(self, "Training CSV", start,
                                                  "CSV files (*.csv);;All files (*)")
        else:
            path = QFileDialog.getExistingDirectory(self, "Training folder", start)
        if path:
            self.path_edit.setText(path)

    # -- reading on a worker
    def read_data(self, labelled: Any = None) -> None:
        spec = self.spec()
        seed = self.owner.settings_page.seed_spin.value()
        request = (spec, self.val_spin.value() / 100, self.test_spin.value() / 100, seed)
        if self.summary is not None and self._summary_key(self.summary) == request:
            return
        if self.owner.is_running("data") and request == self._requested:
            return
        self.summary = None
        self._requested = request
        self.table.setRowCount(0)
        self.split_note.clear()
        self.completeChanged.emit()
        if not spec:
            self.owner.cancel("data")
            self.busy_bar.hide()
            set_error(self.status_label, "")
            self.status_label.setText("Choose a folder, a CSV file or a label set.")
            return
        set_error(self.status_label, "")
        self.status_label.setText(f"Reading {spec}…")
        self.busy_bar.show()
        self.owner.start_job(
            "data",
            lambda cancel: read_training_data(*request, labelled=labelled, cancel=cancel),
            "reading the training data",
            on_finished=self._on_summary, on_failed=self._on_failed)

    def resplit(self) -> None:
        """The seed changed: split the images already read again (on a worker)."""
        if self.summary is not None and self.summary.spec == self.spec():
            labelled = self.summary.labelled
            self.summary = None
            self.read_data(labelled)
        elif self._requested is not None:
            self._requested = None
            self.read_data()

    @staticmethod
    def _summary_key(summary: DataSummary) -> tuple:
        return (summary.spec, summary.val_fraction, summary.test_fraction, summary.seed)

    def _on_summary(self, summary: DataSummary) -> None:
        self.busy_bar.hide()
        if self._summary_key(summary) != self._requested:
            return  # the inputs changed meanwhile; a newer read is on its way
        self.summary = summary
        names = summary.class_names
        splits = ("train", "val", "test")
        self.table.setRowCount(len(names) + 2)
        self.table.setVerticalHeaderLabels(names + ["All images", "Patients"])
        for row, name in enumerate(names):
            for column, split in enumerate(splits):
                self.table.setItem(row, column, cell(f"{summary.counts[split][name]:,}"))
            total = sum(summary.counts[s][name] for s in splits)
            self.table.setItem(row, 3, cell(f"{total:,}", bold=True))
        totals = [summary.total(s) for s in splits]
        for column, value in enumerate(totals + [sum(totals)]):
            self.table.setItem(len(names), column, cell(f"{value:,}", bold=True))
        if summary.split_by == "patient":
            patients = [summary.patients[s] for s in splits]
            for column, value in enumerate(patients + [sum(patients)]):
                self.table.setItem(len(names) + 1, column, cell(f"{value:,}"))
            self.split_note.setText(
                f"Split by patient (seed {summary.seed}): {sum(patients):,} patients, none "
                f"of them in two sets. Images without a patient id count as their own "
                f"patient.")
        else:
            for column in range(4):
                self.table.setItem(len(names) + 1, column, cell("–"))
            self.split_note.setText(
                f"No patient ids were found (no DICOM Patient ID, no patient in the file "
                f"names or the CSV), so images are split one by one (seed {summary.seed}): "
                f"images of one patient may end up in two sets.")
        fit_height(self.table)
        self.status_label.setText(
            f"{sum(totals):,} images in {len(names)} classes from {summary.source}.")
        self.completeChanged.emit()

    def _on_failed(self, sentence: str) -> None:
        self.busy_bar.hide()
        self._requested = None
        set_error(self.status_label, sentence)
        self.completeChanged.emit()

    def isComplete(self) -> bool:  # noqa: N802 - Qt naming
        if self.from_finished_run:  # scoring it needs PyTorch loaded
            return self.finished_run is not None and self.owner.tools is not None \
                and not self.owner.is_running("runs")
        return self.summary is not None and not self.owner.is_running("data")

