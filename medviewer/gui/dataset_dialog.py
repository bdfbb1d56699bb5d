"""Labels > Export research dataset…: what `medviewer labels export-dataset` does, in a dialog.

``DatasetExportDialog(store_path, label_set, parent)``: label set (read from the store on a
worker), output folder, de-identification (and key file), image kind, format, split by
patient or image with the fractions, then :func:`medviewer.app.dataset_export.
export_dataset_job` on a :class:`JobWorker` with progress and Cancel, and the counts per
split and class when it is done.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLineEdit,
    QPushButton, QWidget,
)

from medviewer.gui.job_dialog import JobDialog, path_row
from medviewer.gui.widgets import wrapping_label
from medviewer.gui.workers import JobWorker

IMAGE_CHOICES = {"png": "PNG of the model's input", "dicom": "de-identified DICOM"}
FORMAT_CHOICES = {"folder": "folder per split and class, labels.csv",
                  "coco": "COCO annotations.json (with regions)"}


def _label_set_names(store_path: Path | None):
    from medviewer.labels.store import LabelStore

    yield from ()
    with LabelStore(store_path, reader="dataset-export") as store:
        return [s.name for s in store.label_sets()]


class DatasetExportDialog(JobDialog):
    def __init__(self, store_path: str | Path | None = None, label_set: str | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__("Export research dataset", "Export",
                         "Counts per split and class appear here.", "dataset", parent)
        self.store_path = Path(store_path) if store_path else None
        self._wanted_set = label_set

        self.label_set = QComboBox()
        self.output = QLineEdit()
        self.output.setPlaceholderText("a new or empty folder")
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._choose_output)
        self.deidentify = QCheckBox("De-identify: pseudonymous image and patient IDs")
        self.deidentify.setChecked(True)
        self.key_file = QLineEdit()
        self.key_file.setPlaceholderText("none: pseudonyms for this export only")
        key_browse = QPushButton("Choose…")
        key_browse.clicked.connect(self._choose_key)
        self.images = QComboBox()
        for value, text in IMAGE_CHOICES.items():
            self.images.addItem(text, value)
        self.format = QComboBox()
        for value, text in FORMAT_CHOICES.items():
            self.format.addItem(text, value)
        self.split_by = QComboBox()
        self.split_by.addItem("patient (no patient in two splits)", "patient")
        self.split_by.addItem("image", "image")
        self.val = self._fraction(0.15)
        self.test = self._fraction(0.15)
        fractions = QHBoxLayout()
        fractions.addWidget(self.val)
        fractions.addWidget(wrapping_label("testLabel"))
        fractions.itemAt(1).widget().setText("test")
        fractions.addWidget(self.test)
        fractions.addStretch(1)
        self.burned = QCheckBox("Include images flagged for burned-in text (I checked them)")

        form = QFormLayout()
        form.addRow("Label set:", self.label_set)
        form.addRow("Dataset folder:", path_row(self.output, browse))
        form.addRow("", self.deidentify)
        form.addRow("Project key file:", path_row(self.key_file, key_browse))
        form.addRow("Images:", self.images)
        form.addRow("Format:", self.format)
        form.addRow("Split by:", self.split_by)
        form.addRow("Validation fraction:", fractions)
        form.addRow("", self.burned)

        self.lay_out(form)
        self.resize(640, 600)
        self.deidentify.toggled.connect(self._deidentify_toggled)
        self._sets_worker = JobWorker(lambda cancel: _label_set_names(self.store_path),
                                      "reading the label sets")
        self._sets_worker.finished.connect(self._set_names)
        self._sets_worker.failed.connect(self.error.setText)
        self._sets_worker.start()

    @staticmethod
    def _fraction(value: float) -> QDoubleSpinBox:
        box = QDoubleSpinBox()
        box.setRange(0.0, 0.9)
        box.setSingleStep(0.05)
        box.setValue(value)
        return box

    def _set_names(self, names: list[str]) -> None:
        self.label_set.addItems(names)
        if self._wanted_set in names:
            self.label_set.setCurrentText(self._wanted_set)
        if not names:
            self.error.setText("The label store has no label sets yet.")

    def _deidentify_toggled(self, on: bool) -> None:
        self.key_file.setEnabled(on)
        dicom = self.images.findData("dicom")
        self.images.model().item(dicom).setEnabled(on)
        if not on:
            self.images.setCurrentIndex(self.images.findData("png"))

    def _choose_output(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Dataset folder (new or empty)")
        if path:
            self.output.setText(path)

    def _choose_key(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Project key file", options=QFileDialog.Option.DontConfirmOverwrite)
        if path:
            self.key_file.setText(path)

    def start(self) -> None:
        from medviewer.app.dataset_export import DatasetExportRequest, export_dataset_job

        self.error.clear()
        if not self.label_set.currentText() or not self.output.text().strip():
            self.error.setText("Choose a label set and a dataset folder.")
            return
        key = self.key_file.text().strip()
        request = DatasetExportRequest(
            self.label_set.currentText(), Path(self.output.text().strip()),
            store_path=self.store_path, deidentify=self.deidentify.isChecked(),
            key_file=Path(key) if key and self.deidentify.isChecked() else None,
            images=self.images.currentData(), format=self.format.currentData(),
            split_by=self.split_by.currentData(), val_fraction=self.val.value(),
            test_fraction=self.test.value(), confirm_burned_in=self.burned.isChecked(),
            options=frozenset({"retain-modified-dates"}))
        self.run_job(lambda cancel: export_dataset_job(request, cancel),
                     "exporting a research dataset")

    def show_result(self, result) -> None:
        self.status.setText(f"Exported {result.images} images of {result.patients} patients "
                            f"to {result.output}.")
        lines = [f"{split}: " + (", ".join(f"{n} {c}" for c, n in sorted(counts.items()))
                                 or "none") for split, counts in result.counts.items()]
        lines += [f"left out: {s}" for s in result.skipped]
        if result.mapping_file is not None:
            lines.append(f"Private mapping: {result.mapping_file}")
        self.report.setPlainText("\n".join(lines))

    def done(self, result: int) -> None:
        self._sets_worker.wait()
        super().done(result)
