"""Labels > Export labels…: label set, format and file; the export job writes it atomically.

The job reads on its own connection (``app/label_transfer.py``), but starts only once a
no-op call on the label panel's store thread has returned: every label the reader gave
before pressing Export is committed, so it is in the file.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout,
    QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget,
)

from medviewer.app.label_transfer import export_job, plural
from medviewer.errors import UserError
from medviewer.gui.label_dialogs import ERROR_STYLE, TransferContext
from medviewer.gui.widgets import wrapping_label
from medviewer.gui.workers import JobWorker

log = logging.getLogger(__name__)

# format -> (combo text, file dialog filter, suffix, unit of the count export returns)
EXPORT_FORMATS = {
    "csv": ("CSV: one row per label (.csv)", "CSV labels (*.csv)", ".csv", "row"),
    "json": ("MedViewer JSON: labels and regions (.json)", "MedViewer labels JSON (*.json)",
             ".json", "image"),
    "coco": ("COCO JSON: regions (.json)", "COCO JSON, regions (*.json)", ".json", "region"),
}


class ExportDialog(QDialog):
    """Label set, format and file; Export writes it off the GUI thread.

    ``state`` is one of ready, exporting, done, failed (``state_changed`` on each change).
    """

    state_changed = Signal(str)
    exported = Signal(str)  # the status bar sentence

    def __init__(self, context: TransferContext, folder: Path,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export labels")
        self.setObjectName("exportLabelsDialog")
        self.context = context
        self.state = "ready"
        self.worker: JobWorker | None = None
        self.file_dialog: QFileDialog | None = None
        self._closed = False
        self._auto_name: str | None = None  # the file name we proposed (until edited)

        self.set_combo = QComboBox()
        self.set_combo.setObjectName("exportLabelSet")
        for label_set in context.labelling.label_sets:
            self.set_combo.addItem(label_set.name, label_set.name)
        if context.labelling.label_set is not None:
            self.set_combo.setCurrentIndex(self.set_combo.findData(context.labelling.label_set.name))
        self.format_combo = QComboBox()
        self.format_combo.setObjectName("exportFormat")
        for fmt, (text, *_rest) in EXPORT_FORMATS.items():
            self.format_combo.addItem(text, fmt)
        self.path_edit = QLineEdit()
        self.path_edit.setObjectName("exportPath")
        self.browse_button = QPushButton("Browse…")
        path_row = QHBoxLayout()
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(self.browse_button)
        self.note_label = QLabel("Exports include patient IDs where the store has them: share "
                                 "them accordingly.")
        self.note_label.setEnabled(False)
        self.note_label.setWordWrap(True)
        self.status_label = QLabel()
        self.status_label.setObjectName("exportStatus")
        self.status_label.setWordWrap(True)
        self.error_label = wrapping_label("exportError", ERROR_STYLE)
        self.error_label.hide()
        self.export_button = QPushButton("Export")
        self.export_button.setDefault(True)
        self.close_button = QPushButton("Close")
        buttons = QDialogButtonBox()
        buttons.addButton(self.export_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.close_button, QDialogButtonBox.ButtonRole.RejectRole)

        form = QFormLayout()
        form.addRow("Label set", self.set_combo)
        form.addRow("Format", self.format_combo)
        form.addRow("File", path_row)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.note_label)
        layout.addWidget(self.status_label)
        layout.addWidget(self.error_label)
        layout.addStretch(1)
        layout.addWidget(buttons)

        self._folder = Path(folder)
        self._propose_name()
        self.set_combo.currentIndexChanged.connect(lambda _i: self._propose_name())
        self.format_combo.currentIndexChanged.connect(lambda _i: self._propose_name())
        self.path_edit.textEdited.connect(self._on_path_edited)
        self.browse_button.clicked.connect(self.show_file_dialog)
        self.export_button.clicked.connect(self.start_export)
        self.close_button.clicked.connect(self.reject)
        if not context.labelling.label_sets:
            self.status_label.setText("There is no label set to export yet.")
            self.export_button.setEnabled(False)
        self.resize(600, 0)

    @property
    def label_set(self) -> str | None:
        return self.set_combo.currentData()

    @property
    def format(self) -> str:
        return self.format_combo.currentData()

    def set_format(self, fmt: str) -> None:
        self.format_combo.setCurrentIndex(self.format_combo.findData(fmt))

    def set_path(self, path: str | Path) -> None:
        """A chosen file: its suffix picks the format (.json keeps JSON or COCO)."""
        self._auto_name = None
        self.path_edit.setText(str(path))
        self._follow_suffix(Path(path))

    def _follow_suffix(self, path: Path) -> None:
        suffix = path.suffix.lower()
        if suffix == ".csv" and self.format != "csv":
            self.set_format("csv")
        elif suffix == ".json" and self.format == "csv":
            self.set_format("json")

    def _on_path_edited(self, text: str) -> None:
        self._auto_name = None
        self._follow_suffix(Path(text.strip()))

    def _propose_name(self) -> None:
        """A file name from the set and format, while the user has not named one."""
        current = Path(self.path_edit.text().strip()) if self.path_edit.text().strip() \
            else None
        if current is not None and self._auto_name is None:
            # Named by the user: only the suffix follows a format change.
            wanted = EXPORT_FORMATS[self.format][2]
            if current.suffix.lower() != wanted:
                self.path_edit.setText(str(current.with_suffix(wanted)))
            return
        folder = current.parent if current is not None else self._folder
        name = self.label_set or "labels"
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        stem = f"{safe}-regions-coco" if self.format == "coco" else f"{safe}-labels"
        self._auto_name = f"{stem}{EXPORT_FORMATS[self.format][2]}"
        self.path_edit.setText(str(folder / self._auto_name))

    def show_file_dialog(self) -> QFileDialog:
        """Choose the file (not modal: the choice arrives through fileSelected)."""
        current = Path(self.path_edit.text().strip() or self._folder)
        dialog = QFileDialog(self, "Export labels to", str(current))
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        filters = [spec[1] for spec in EXPORT_FORMATS.values()]
        dialog.setNameFilters(filters)
        dialog.selectNameFilter(EXPORT_FORMATS[self.format][1])
        dialog.setDefaultSuffix(EXPORT_FORMATS[self.format][2].lstrip("."))
        dialog.filterSelected.connect(self._on_filter_selected)
        dialog.fileSelected.connect(lambda chosen: chosen and self.set_path(chosen))
        self.file_dialog = dialog
        dialog.open()
        return dialog

    def _on_filter_selected(self, name_filter: str) -> None:
        for fmt, spec in EXPORT_FORMATS.items():
            if spec[1] == name_filter:
                self.set_format(fmt)
                if self.file_dialog is not None:
                    self.file_dialog.setDefaultSuffix(spec[2].lstrip("."))

    def target(self) -> Path:
        """The file to write: the format's suffix is added when the name has none."""
        text = self.path_edit.text().strip()
        if not text:
            raise UserError("Choose the file to export to.")
        path = Path(text).expanduser()
        if not path.suffix:
            path = path.with_suffix(EXPORT_FORMATS[self.format][2])
        elif path.suffix.lower() not in (".csv", ".json"):
            raise UserError(f"Cannot tell the format of {path.name}: name it .csv or .json.")
        if path.is_dir():
            raise UserError(f"Cannot export to {path}: it is a folder; add a file name.")
        return path

    def show_error(self, sentence: str) -> None:
        self.error_label.setText(sentence)
        self.error_label.show()
        self.context.shell.show_status(sentence, 15_000)

    def _set_state(self, state: str) -> None:
        self.state = state
        self.state_changed.emit(state)

    def start_export(self) -> bool:
        if self.state == "exporting" or self.label_set is None:
            return False
        self.error_label.hide()
        try:
            target = self.target()
        except UserError as exc:
            self.show_error(str(exc))
            return False
        self._follow_suffix(target)
        set_name, fmt = self.label_set, self.format
        self.export_button.setEnabled(False)
        self.status_label.setText(f"Writing {target.name}…")
        self._set_state("exporting")
        # Through the store thread first: the reader's labels given before are committed.
        self.context.client.call(lambda _store: None,
                               lambda _none: self._run_export(set_name, fmt, target),
                               self._on_export_failed)
        return True

    def _run_export(self, set_name: str, fmt: str, target: Path) -> None:
        if self._closed:
            return
        store_path, reader = self.context.labelling.store_path, self.context.labelling.reader
        worker = JobWorker(lambda cancel: export_job(store_path, set_name, fmt, target, reader,
                                                     cancel), "exporting labels")
        worker.finished.connect(lambda count: self._on_exported(set_name, fmt, target, count))
        worker.failed.connect(self._on_export_failed)
        worker.cancelled.connect(lambda: setattr(self, "worker", None))
        self.worker = worker
        worker.start()

    def _on_exported(self, set_name: str, fmt: str, target: Path, count: int) -> None:
        self.worker = None
        unit = EXPORT_FORMATS[fmt][3]
        kind = {"csv": "CSV", "json": "MedViewer JSON", "coco": "COCO JSON"}[fmt]
        sentence = (f"Wrote {plural(count, unit)} of label set '{set_name}' to {target} "
                    f"({kind}).")
        self.context.shell.show_status(sentence, 15_000)
        self.status_label.setText(f"✓ {sentence}")
        self.export_button.setEnabled(True)
        self._set_state("done")
        self.exported.emit(sentence)
        if not self._closed:
            self.accept()

    def _on_export_failed(self, sentence: str) -> None:
        self.worker = None
        self.export_button.setEnabled(True)
        self.status_label.clear()
        self.show_error(sentence)
        self._set_state("failed")

    def reject(self) -> None:
        self.cancel_export()
        super().reject()

    def cancel_export(self) -> None:
        self._closed = True
        if self.worker is not None:
            self.worker.cancel()

    def wait(self, timeout_ms: int) -> None:
        self.cancel_export()
        if self.worker is not None:
            self.worker.wait(timeout_ms)


