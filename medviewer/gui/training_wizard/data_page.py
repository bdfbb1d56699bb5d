"""The Data page: where the labelled images come from, and the split by patient they give
(read on a worker with the trainer's own functions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QFileDialog, QGridLayout, QGroupBox,
                               QHBoxLayout, QLabel, QLineEdit, QProgressBar, QPushButton,
                               QRadioButton, QSpinBox, QVBoxLayout)

from medviewer.app.training import DataSummary, read_training_data
from medviewer.gui.training_wizard.page_helpers import (WizardHost, WizardPage, cell,
                                                        fit_height, note, read_only_table,
                                                        set_error)


class DataPage(WizardPage):
    """Where the labelled images come from, and the split by patient they give."""

    SOURCES = (("folder", "A folder with one sub-folder per class"),
               ("csv", "A CSV file of path,label (optional third column: patient)"),
               ("labelset", "A label set from MedViewer's label store"))

    def __init__(self, wizard: WizardHost) -> None:
        super().__init__(wizard, "Data", "Choose labelled images. They are split into "
                         "training, validation and test sets by patient, so no patient's "
                         "images are in two sets.")
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

        layout = QVBoxLayout(self)
        layout.addWidget(source_box)
        layout.addLayout(split_row)
        layout.addWidget(self.busy_bar)
        layout.addWidget(self.status_label)
        layout.addWidget(self.table)
        layout.addWidget(self.split_note)
        layout.addStretch(1)

        self.summary: DataSummary | None = None
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
        self._source_changed()

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
        return self.summary is not None and not self.owner.is_running("data")

