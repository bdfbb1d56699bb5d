"""Labels > Import labels…: the options dialog, its validation job and the problems list.

A file (CSV, MedViewer JSON or COCO JSON) -> :class:`ImportDialog` (label set, classes of a
new set, reader for rows without one) -> a validation job on its own connection
(``app/label_transfer.py``) -> with problems, a :class:`ProblemsDialog` (nothing is written
without consent, as the CLI without ``--yes``) -> ``apply_import`` through the label panel's
store thread -> the panel re-reads label sets, labels and regions.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit,
    QPlainTextEdit, QProgressBar, QPushButton, QVBoxLayout, QWidget,
)

from medviewer.app.label_transfer import import_summary, plural, validation_job
from medviewer.gui.label_dialogs import ERROR_STYLE, SUCCESS_STYLE, TransferContext
from medviewer.gui.widgets import wrapping_label
from medviewer.gui.workers import JobWorker
from medviewer.jobs import Progress

if TYPE_CHECKING:
    from medviewer.labels.io import ImportPlan
    from medviewer.labels.store import ImportResult

log = logging.getLogger(__name__)

MAX_PROBLEMS_SHOWN = 200
FILE_OWN_SET = "(the file's own label set)"
IMPORT_FILTERS = ("Label files (*.csv *.json)", "CSV labels (*.csv)",
                  "MedViewer labels JSON (*.json)", "COCO JSON (*.json)", "All files (*)")


class ProblemsDialog(QDialog):
    """The rows an import would leave out; "Import the other N" or Cancel (the default)."""

    def __init__(self, plan: ImportPlan, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import labels: problems")
        self.setObjectName("importProblemsDialog")
        problems = sorted(plan.problems, key=lambda p: p.row)
        where = problems[0].where if problems else "row"
        self.summary_label = QLabel(
            f"{plural(plan.problem_count, where)} of {plan.rows_total} in "
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
            f"{plural(plan.rows_ok, where)} as one step that Undo reverts.")
        self.hint_label.setWordWrap(True)
        self.import_button = QPushButton(f"Import the other {plural(plan.rows_ok, where)}"
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

    def __init__(self, context: TransferContext, source: Path,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import labels")
        self.setObjectName("importLabelsDialog")
        self.context = context
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
        existing = [s.name for s in context.labelling.label_sets]

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
        chosen = context.labelling.label_set
        current = chosen.name if chosen is not None else None
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
        self.reader_edit = QLineEdit(context.labelling.reader)
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
        return next((s for s in self.context.labelling.label_sets if s.name == name), None)

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
        self.context.shell.show_status(sentence, 15_000)

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
        store_path, source = self.context.labelling.store_path, self.source
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
                f"{plural(len(plan.labels), 'label')} and "
                f"{plural(len(plan.regions), 'region')} into '{plan.label_set}'…")
            self._apply(plan, accept_partial=False)
            return
        self.status_label.setText(f"{plural(plan.problem_count, plan.problems[0].where)}"
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
        self.context.shell.show_status(
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
        self.context.client.call(
            lambda store: label_io.apply_import(store, plan, accept_partial=accept_partial),
            lambda result: self._on_imported(plan, result), self._on_import_failed)

    def _on_imported(self, plan: ImportPlan, result: ImportResult) -> None:
        self.result = result
        summary = import_summary(plan, result)
        log.info("Import from the Labels menu: %d labels, %d regions into one label set",
                 result.labels_written, result.regions_written)
        self.context.shell.show_status(summary, 15_000)
        if not self._shut_down:  # a reply delivered after close must not restart the thread
            self.context.reload(plan.label_set)
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


