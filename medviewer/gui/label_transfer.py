"""Labels > Import labels… and Export labels…: what `medviewer labels import|export` does,
in the app.

Import: a file (CSV, MedViewer JSON or COCO JSON) -> :class:`ImportDialog` (label set,
classes of a new set, reader for rows without one) -> a validation job -> with problems, a
:class:`ProblemsDialog` (nothing is written without consent, as the CLI without ``--yes``)
-> ``apply_import`` -> the panel re-reads label sets, labels and regions.

Export: :class:`ExportDialog` (label set, format, file) -> an export job -> the count and
the path in the status bar.

Where each step runs, and why:

- Validation runs on its own :class:`JobWorker` with its own store connection, not on the
  panel's store thread: it reads the header of (or hashes) every image the file names,
  seconds to minutes for thousands of rows, and on the store thread every key the reader
  pressed meanwhile would wait behind it. It only reads the store (the target label set);
  the store is WAL SQLite, so a second connection reads alongside the store thread's writes.
- The write (``apply_import``) goes through the panel's store thread: it is ordered with the
  reader's own label writes, and the store checks the plan again inside its one transaction
  (one undo step), so a label set changed since validation is never half-written.
- Export reads on its own connection too (a big set on a slow disk must not hold up
  labelling), but starts only once a no-op call on the store thread has returned: every
  label the reader gave before pressing Export is committed, so it is in the file.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout,
    QLabel, QLineEdit, QPlainTextEdit, QProgressBar, QPushButton, QVBoxLayout, QWidget,
)

from medviewer.errors import UserError
from medviewer.gui.label_dialogs import ERROR_STYLE
from medviewer.gui.widgets import wrapping_label
from medviewer.gui.workers import JobWorker
from medviewer.jobs import CancelFlag, Progress

if TYPE_CHECKING:
    from medviewer.gui.label_panel import LabelPanel
    from medviewer.labels.io import ImportPlan
    from medviewer.labels.store import ImportResult, LabelStore

log = logging.getLogger(__name__)

MAX_PROBLEMS_SHOWN = 200
SUCCESS_STYLE = "color: #7ddc7d;"
FILE_OWN_SET = "(the file's own label set)"
IMPORT_FILTERS = ("Label files (*.csv *.json)", "CSV labels (*.csv)",
                  "MedViewer labels JSON (*.json)", "COCO JSON (*.json)", "All files (*)")
# format -> (combo text, file dialog filter, suffix, unit of the count export returns)
EXPORT_FORMATS = {
    "csv": ("CSV: one row per label (.csv)", "CSV labels (*.csv)", ".csv", "row"),
    "json": ("MedViewer JSON: labels and regions (.json)", "MedViewer labels JSON (*.json)",
             ".json", "image"),
    "coco": ("COCO JSON: regions (.json)", "COCO JSON, regions (*.json)", ".json", "region"),
}


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}{'' if count == 1 else 's'}"


def _open_store(path: Path, reader: str) -> LabelStore:
    """A second connection to the panel's store (on a worker thread)."""
    from medviewer.labels.errors import StoreUnavailableError
    from medviewer.labels.store import LabelStore

    try:
        # No integrity check: the panel's own connection checked this file when it opened it,
        # and a quick_check of a large store costs seconds each time.
        return LabelStore(path, reader=reader, check=False)
    except OSError as exc:
        raise StoreUnavailableError(f"Cannot open the label store {path}: "
                                    f"{exc.strerror or exc}.") from None


def validation_job(store_path: Path, source: Path, label_set: str | None, *,
                   classes: list[str] | None, multi_label: bool, reader: str,
                   cancel: CancelFlag) -> Generator[Progress, None, ImportPlan]:
    """Job: validate an import file against the store on a connection of its own."""
    from medviewer.labels import io as label_io

    store = _open_store(store_path, reader)
    try:
        return (yield from label_io.validate_file_job(
            store, source, label_set, classes=classes, multi_label=multi_label,
            reader=reader, cancel=cancel))
    finally:
        store.close()


def export_job(store_path: Path, label_set: str, fmt: str, target: Path, reader: str,
               cancel: CancelFlag) -> Generator[Progress, None, int]:
    """Job: write one label set to ``target`` (atomically); returns export's count."""
    from medviewer.labels import io as label_io

    store = _open_store(store_path, reader)
    try:
        store.label_set(label_set)  # a clear sentence if it was deleted meanwhile
        cancel.raise_if_cancelled()
        yield Progress(0, None, f"Writing {target.name}")
        write, _ = label_io.EXPORTERS[fmt]
        return write(store, label_set, target)
    finally:
        store.close()


def import_summary(plan: ImportPlan, result: ImportResult) -> str:
    """One sentence: what was written, and that one Undo reverts it."""
    if result.action_id is None:
        return f"Nothing was imported: {plan.source.name} holds no labels or regions."
    extras = []
    if result.label_set_created:
        extras.append("a new label set")
    if result.labels_unchanged:
        extras.append(f"{result.labels_unchanged} already there")
    if plan.problem_count:
        where = plan.problems[0].where
        extras.append(f"{_plural(plan.problem_count, f'problem {where}')} left out")
    extra = f" ({', '.join(extras)})" if extras else ""
    return (f"Imported {_plural(result.labels_written, 'label')} and "
            f"{_plural(result.regions_written, 'region')} into '{plan.label_set}'{extra}; "
            f"Undo reverts the whole import.")


# ---------------------------------------------------------------- import


class ProblemsDialog(QDialog):
    """The rows an import would leave out; "Import the other N" or Cancel (the default)."""

    def __init__(self, plan: ImportPlan, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import labels: problems")
        self.setObjectName("importProblemsDialog")
        problems = sorted(plan.problems, key=lambda p: p.row)
        where = problems[0].where if problems else "row"
        self.summary_label = QLabel(
            f"{_plural(plan.problem_count, where)} of {plan.rows_total} in "
            f"{plan.source.name} {'has' if plan.problem_count == 1 else 'have'} problems; "
            f"nothing has been imported yet.")
        self.summary_label.setWordWrap(True)
        self.problem_list = QPlainTextEdit()
        self.problem_list.setObjectName("importProblems")
        self.problem_list.setReadOnly(True)
        self.problem_list.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        lines = [str(p) for p in problems[:MAX_PROBLEMS_SHOWN]]
        if plan.problem_count > MAX_PROBLEMS_SHOWN:
            lines.append(f"… and {plan.problem_count - MAX_PROBLEMS_SHOWN} more (the command "
                         f"'medviewer labels import --json' lists the first {len(problems)}).")
        self.problem_list.setPlainText("\n".join(lines))
        self.hint_label = QLabel(
            f"Importing leaves these {where}s out and writes the other "
            f"{_plural(plan.rows_ok, where)} as one step that Undo reverts.")
        self.hint_label.setWordWrap(True)
        self.import_button = QPushButton(f"Import the other {_plural(plan.rows_ok, where)}"
                                         if plan.rows_ok else f"No {where} can be imported")
        self.import_button.setEnabled(plan.rows_ok > 0)
        self.import_button.setAutoDefault(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setDefault(True)  # Enter must not import by surprise
        buttons = QDialogButtonBox()
        buttons.addButton(self.import_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.RejectRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.problem_list, 1)
        layout.addWidget(self.hint_label)
        layout.addWidget(buttons)
        self.resize(640, 380)


class ImportDialog(QDialog):
    """Options for one file, then check -> (problems?) -> import; shows where it is.

    ``state`` is one of ready, checking, problems, importing, done, failed; every change
    emits ``state_changed``. Closing it cancels a running check (nothing is written).
    """

    state_changed = Signal(str)
    imported = Signal(object)  # the ImportResult

    def __init__(self, panel: LabelPanel, source: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import labels")
        self.setObjectName("importLabelsDialog")
        self.panel = panel
        from medviewer.labels.io import import_kind  # the store loads on first use

        self.source = Path(source)
        self.kind = import_kind(self.source)
        self.state = "ready"
        self.plan: ImportPlan | None = None
        self.result: ImportResult | None = None
        self.worker: JobWorker | None = None
        self.problems_dialog: ProblemsDialog | None = None
        self._closed = False
        self._shut_down = False
        existing = [s.name for s in panel.label_sets]

        self.file_label = QLabel(str(self.source))
        self.file_label.setWordWrap(True)
        self.file_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        kind_text = ("CSV: one row per label (path, label[, reader])" if self.kind == "csv"
                     else "MedViewer JSON or COCO JSON (told apart by content)")
        self.set_combo = QComboBox()
        self.set_combo.setObjectName("importLabelSet")
        self.set_combo.setEditable(True)
        self.set_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        if self.kind == "json":
            self.set_combo.addItem(FILE_OWN_SET)
        self.set_combo.addItems(existing)
        current = panel.label_set.name if panel.label_set is not None else None
        if self.kind == "csv":
            self.set_combo.setCurrentText(current or "")
            self.set_combo.lineEdit().setPlaceholderText("an existing set, or a new name")
        self.set_combo.setToolTip("The label set to import into: choose one, or type a new "
                                  "name")
        self.classes_edit = QLineEdit()
        self.classes_edit.setObjectName("importClasses")
        self.classes_edit.setPlaceholderText("e.g. normal, pneumonia (in key order)")
        self.multi_check = QCheckBox("Multi-label: an image may have several classes")
        self.set_info = QLabel()
        self.set_info.setEnabled(False)
        self.set_info.setWordWrap(True)
        self.reader_edit = QLineEdit(panel.reader)
        self.reader_edit.setToolTip("Rows (or COCO annotations) that name no reader are "
                                    "imported as this reader's")

        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("importProgress")
        self.progress_bar.setMaximumHeight(12)
        self.progress_bar.setTextVisible(False)
        self.progress_bar.hide()
        self.status_label = QLabel("The file is checked first; nothing is written until "
                                   "then.")
        self.status_label.setObjectName("importStatus")
        self.status_label.setWordWrap(True)
        self.error_label = wrapping_label("importError", ERROR_STYLE)
        self.error_label.hide()

        self.import_button = QPushButton("Check and import")
        self.import_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        buttons = QDialogButtonBox()
        buttons.addButton(self.import_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.RejectRole)
        self.import_button.clicked.connect(self.start_check)
        self.cancel_button.clicked.connect(self.reject)

        self.form = QFormLayout()
        self.form.addRow("File", self.file_label)
        self.form.addRow("Format", QLabel(kind_text))
        self.form.addRow("Label set", self.set_combo)
        self.form.addRow("", self.set_info)
        self.form.addRow("Classes", self.classes_edit)
        self.form.addRow("", self.multi_check)
        self.form.addRow("Default reader", self.reader_edit)
        layout = QVBoxLayout(self)
        layout.addLayout(self.form)
        layout.addSpacing(6)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)
        layout.addWidget(self.error_label)
        layout.addStretch(1)
        layout.addWidget(buttons)
        self.set_combo.currentTextChanged.connect(lambda _text: self._show_set_fields())
        self._show_set_fields()
        self.resize(560, 0)

    # -- the options
    def chosen_label_set(self) -> str | None:
        """The typed or chosen name; None: the file's own (JSON)."""
        text = self.set_combo.currentText().strip()
        return None if text in ("", FILE_OWN_SET) and self.kind == "json" else text

    def chosen_classes(self) -> list[str]:
        return [c.strip() for c in self.classes_edit.text().split(",") if c.strip()]

    def _existing_set(self, name: str | None):
        return next((s for s in self.panel.label_sets if s.name == name), None)

    def _show_set_fields(self) -> None:
        name = self.chosen_label_set()
        existing = self._existing_set(name)
        new_csv_set = self.kind == "csv" and existing is None
        # Classes matter for a new CSV set; JSON and COCO files bring their own.
        self.form.setRowVisible(self.classes_edit, new_csv_set)
        self.form.setRowVisible(self.multi_check, new_csv_set)
        if existing is not None:
            kind = "multi-label" if existing.multi_label else "single-label"
            self.set_info.setText(f"Classes: {', '.join(existing.classes)} ({kind}).")
        elif name is None:
            self.set_info.setText("The label set the file names (created if new, with the "
                                  "file's classes).")
        elif self.kind == "csv":
            self.set_info.setText(f"A new label set '{name}' is created: give its classes."
                                  if name else "Name the label set to import into.")
        else:
            self.set_info.setText(f"A new label set '{name}' is created with the file's "
                                  f"classes.")

    def _set_inputs_enabled(self, enabled: bool) -> None:
        for widget in (self.set_combo, self.classes_edit, self.multi_check, self.reader_edit):
            widget.setEnabled(enabled)

    def _set_state(self, state: str) -> None:
        self.state = state
        self.state_changed.emit(state)

    def show_error(self, sentence: str) -> None:
        self.error_label.setText(sentence)
        self.error_label.show()
        self.panel.main_window.statusBar().showMessage(sentence, 15_000)

    # -- checking (a job of its own)
    def start_check(self) -> bool:
        """Validate the options here, then the file on a worker; False if the options
        are incomplete (the sentence is shown)."""
        if self.state in ("checking", "importing", "done"):
            return False
        self.error_label.hide()
        name = self.chosen_label_set()
        classes = self.chosen_classes()
        reader = self.reader_edit.text().strip()
        if self.kind == "csv" and not name:
            self.show_error("Name the label set to import into.")
            return False
        if self.kind == "csv" and self._existing_set(name) is None and not classes:
            self.show_error(f"A new label set '{name}' needs its classes: type them, "
                            f"separated by commas.")
            return False
        if not reader or len(reader) > 200:
            self.show_error("Give the reader name for rows that name none (1 to 200 "
                            "characters).")
            return False
        new_csv_set = self.kind == "csv" and self._existing_set(name) is None
        store_path, source = self.panel.store_path, self.source
        multi = self.multi_check.isChecked() and new_csv_set
        wanted = classes if new_csv_set else None
        worker = JobWorker(lambda cancel: validation_job(
            store_path, source, name, classes=wanted, multi_label=multi, reader=reader,
            cancel=cancel), "checking the labels to import")
        worker.event.connect(self._on_progress)
        worker.finished.connect(self._on_checked)
        worker.failed.connect(self._on_check_failed)
        worker.cancelled.connect(self._on_check_cancelled)
        self.worker = worker
        self._set_inputs_enabled(False)
        self.import_button.setEnabled(False)
        self.progress_bar.setRange(0, 0)
        self.progress_bar.show()
        self.status_label.setText(f"Checking {source.name}: reading the images it names…")
        self._set_state("checking")
        worker.start()
        return True

    def _on_progress(self, event: object) -> None:
        if not isinstance(event, Progress) or self.state != "checking":
            return
        if event.total:
            self.progress_bar.setRange(0, event.total)
            self.progress_bar.setValue(event.done)
            self.status_label.setText(f"Checking {self.source.name}: {event.done} of "
                                      f"{event.total}…")

    def _on_checked(self, plan: ImportPlan) -> None:
        self.worker = None
        self.progress_bar.hide()
        if self._closed:
            return
        self.plan = plan
        if not plan.problems:
            self.status_label.setText(
                f"No problems in {self.source.name}: importing "
                f"{_plural(len(plan.labels), 'label')} and "
                f"{_plural(len(plan.regions), 'region')} into '{plan.label_set}'…")
            self._apply(plan, accept_partial=False)
            return
        self.status_label.setText(f"{_plural(plan.problem_count, plan.problems[0].where)}"
                                  f" of {plan.rows_total} have problems; nothing has been "
                                  f"imported.")
        self._set_state("problems")
        dialog = ProblemsDialog(plan, self)
        dialog.accepted.connect(lambda: self._apply(plan, accept_partial=True))
        dialog.rejected.connect(self._on_problems_declined)
        self.problems_dialog = dialog
        dialog.open()

    def _on_check_failed(self, sentence: str) -> None:
        self.worker = None
        self.progress_bar.hide()
        if self._closed:
            return
        self.status_label.setText("Nothing was imported.")
        self._ready_again()
        self.show_error(sentence)
        self._set_state("failed")

    def _on_check_cancelled(self) -> None:
        self.worker = None
        self.panel.main_window.statusBar().showMessage(
            f"Import of {self.source.name} cancelled; nothing was imported.", 8000)

    def _on_problems_declined(self) -> None:
        self.status_label.setText("Nothing was imported: fix the file (or the options) and "
                                  "check again.")
        self._ready_again()
        self._set_state("ready")

    def _ready_again(self) -> None:
        self._set_inputs_enabled(True)
        self.import_button.setEnabled(True)
        self.import_button.setText("Check again")

    # -- writing (the panel's store thread)
    def _apply(self, plan: ImportPlan, *, accept_partial: bool) -> None:
        from medviewer.labels import io as label_io

        self._set_state("importing")
        self.import_button.setEnabled(False)
        self.cancel_button.setEnabled(False)  # the write is queued; it cannot be taken back
        self.panel.client.call(
            lambda store: label_io.apply_import(store, plan, accept_partial=accept_partial),
            lambda result: self._on_imported(plan, result), self._on_import_failed)

    def _on_imported(self, plan: ImportPlan, result: ImportResult) -> None:
        self.result = result
        summary = import_summary(plan, result)
        log.info("Import from the Labels menu: %d labels, %d regions into one label set",
                 result.labels_written, result.regions_written)
        self.panel.main_window.statusBar().showMessage(summary, 15_000)
        if not self._shut_down:  # a reply delivered after close must not restart the thread
            self.panel.reload_from_store(select=plan.label_set)
        self.status_label.setText(f"✓ {summary}")
        self.status_label.setStyleSheet(SUCCESS_STYLE)
        self.import_button.hide()
        self.cancel_button.setText("Close")
        self.cancel_button.setEnabled(True)
        self.cancel_button.setDefault(True)
        self._set_state("done")
        self.imported.emit(result)

    def _on_import_failed(self, sentence: str) -> None:
        self.cancel_button.setEnabled(True)
        self.status_label.setText("Nothing was imported.")
        self._ready_again()
        self.show_error(sentence)
        self._set_state("failed")

    # -- closing
    def reject(self) -> None:
        if self.state == "importing":
            return  # the write is on its way; its reply closes nothing but shows the result
        self.cancel_check()
        super().reject()

    def cancel_check(self) -> None:
        """Stop a running check; nothing is written (its result is dropped)."""
        self._closed = True
        if self.worker is not None:
            self.worker.cancel()

    def wait(self, timeout_ms: int) -> None:
        """The window is closing: stop the check and wait for its thread."""
        self._shut_down = True
        self.cancel_check()
        if self.worker is not None:
            self.worker.wait(timeout_ms)


# ---------------------------------------------------------------- export


class ExportDialog(QDialog):
    """Label set, format and file; Export writes it off the GUI thread.

    ``state`` is one of ready, exporting, done, failed (``state_changed`` on each change).
    """

    state_changed = Signal(str)
    exported = Signal(str)  # the status bar sentence

    def __init__(self, panel: LabelPanel, folder: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export labels")
        self.setObjectName("exportLabelsDialog")
        self.panel = panel
        self.state = "ready"
        self.worker: JobWorker | None = None
        self.file_dialog: QFileDialog | None = None
        self._closed = False
        self._auto_name: str | None = None  # the file name we proposed (until edited)

        self.set_combo = QComboBox()
        self.set_combo.setObjectName("exportLabelSet")
        for label_set in panel.label_sets:
            self.set_combo.addItem(label_set.name, label_set.name)
        if panel.label_set is not None:
            self.set_combo.setCurrentIndex(self.set_combo.findData(panel.label_set.name))
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
        if not panel.label_sets:
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
        self.panel.main_window.statusBar().showMessage(sentence, 15_000)

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
        self.panel.client.call(lambda _store: None,
                               lambda _none: self._run_export(set_name, fmt, target),
                               self._on_export_failed)
        return True

    def _run_export(self, set_name: str, fmt: str, target: Path) -> None:
        if self._closed:
            return
        store_path, reader = self.panel.store_path, self.panel.reader
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
        sentence = (f"Wrote {_plural(count, unit)} of label set '{set_name}' to {target} "
                    f"({kind}).")
        self.panel.main_window.statusBar().showMessage(sentence, 15_000)
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


# ---------------------------------------------------------------- the menu actions


class LabelTransfer(QObject):
    """Owns the import and export dialogs (and so their jobs) of one label panel."""

    def __init__(self, panel: LabelPanel) -> None:
        super().__init__(panel)
        self.panel = panel
        self.import_dialog: ImportDialog | None = None
        self.export_dialog: ExportDialog | None = None
        self.file_dialog: QFileDialog | None = None
        self._finished: list[QDialog] = []  # closed dialogs whose job may still be ending
        self._import_folder: Path | None = None
        self._export_folder: Path | None = None

    def _import_start_folder(self) -> Path:
        if self._import_folder is not None:
            return self._import_folder
        if self.panel.current_path is not None:  # label files often sit by their images
            return self.panel.current_path.parent
        return Path.home()

    def show_import_dialog(self) -> QFileDialog:
        """Labels > Import labels…: choose the file (the options dialog follows)."""
        dialog = QFileDialog(self.panel.main_window, "Import labels",
                             str(self._import_start_folder()))
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptOpen)
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setNameFilters(list(IMPORT_FILTERS))
        dialog.fileSelected.connect(lambda chosen: chosen and self.open_import(Path(chosen)))
        self.file_dialog = dialog
        dialog.open()
        return dialog

    def open_import(self, source: Path) -> ImportDialog | None:
        """The options dialog for one file (shown; None and one sentence if it cannot be
        imported at all)."""
        self._import_folder = Path(source).parent
        if self.import_dialog is not None and self.import_dialog.state in ("checking",
                                                                            "importing"):
            self.import_dialog.raise_()
            self.panel.main_window.statusBar().showMessage(
                "An import is still running; wait for it to finish.", 8000)
            return None
        try:
            dialog = ImportDialog(self.panel, source, self.panel.main_window)
        except UserError as exc:
            self.panel.main_window.statusBar().showMessage(str(exc), 15_000)
            return None
        self._retire(self.import_dialog)
        self.import_dialog = dialog
        dialog.open()
        return dialog

    def show_export_dialog(self) -> ExportDialog:
        """Labels > Export labels…"""
        if self.export_dialog is not None and self.export_dialog.state == "exporting":
            self.export_dialog.raise_()
            return self.export_dialog
        dialog = ExportDialog(self.panel, self._export_folder or Path.home(),
                              self.panel.main_window)
        dialog.exported.connect(lambda _s: self._remember_export_folder(dialog))
        self._retire(self.export_dialog)
        self.export_dialog = dialog
        dialog.open()
        return dialog

    def _remember_export_folder(self, dialog: ExportDialog) -> None:
        self._export_folder = Path(dialog.path_edit.text().strip()).expanduser().parent

    def _retire(self, dialog: QDialog | None) -> None:
        """Keep an old dialog until its job ended; Qt deletes it with the window otherwise."""
        if dialog is None:
            return
        dialog.close()
        self._finished = [d for d in self._finished if d.worker is not None] + [dialog]

    def shutdown(self, timeout_ms: int = 10_000) -> None:
        """Cancel running checks and exports and wait for them (the window is closing)."""
        for dialog in (*self._finished, self.import_dialog, self.export_dialog):
            if dialog is not None:
                dialog.wait(timeout_ms)

