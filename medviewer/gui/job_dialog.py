"""A dialog that gathers a request, then runs one job on a worker with progress and Cancel.

``JobDialog`` owns the lower half that File > De-identify… and Labels > Export research
dataset… share: the progress bar, the status and error lines, the read-only report and the
Start / Cancel / Close buttons. A subclass lays out its inputs, calls :meth:`run_job` from
``start()`` and says what a finished job means in :meth:`show_result`.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import (
    QDialog, QHBoxLayout, QLayout, QLineEdit, QPlainTextEdit, QProgressBar, QPushButton,
    QVBoxLayout, QWidget,
)

from medviewer.gui.label_dialogs import ERROR_STYLE
from medviewer.gui.widgets import wrapping_label
from medviewer.gui.workers import JobWorker
from medviewer.jobs import Progress


def path_row(edit: QLineEdit, browse: QPushButton) -> QHBoxLayout:
    """A path field with its Choose… button beside it."""
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    row.addWidget(browse)
    return row


class JobDialog(QDialog):
    def __init__(self, title: str, start_text: str, report_placeholder: str, name: str,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.worker: JobWorker | None = None
        self.result = None

        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.status = wrapping_label(f"{name}Status")
        self.error = wrapping_label(f"{name}Error", ERROR_STYLE)
        self.report = QPlainTextEdit()
        self.report.setReadOnly(True)
        self.report.setPlaceholderText(report_placeholder)
        self.start_button = QPushButton(start_text)
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.reject)

    def lay_out(self, *inputs: QWidget | QLayout) -> None:
        """The subclass's inputs from the top, then the job's widgets and the buttons."""
        layout = QVBoxLayout(self)
        for part in inputs:
            if isinstance(part, QLayout):
                layout.addLayout(part)
            else:
                layout.addWidget(part)
        for widget in (self.progress, self.status, self.error):
            layout.addWidget(widget)
        layout.addWidget(self.report, 1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.start_button, self.cancel_button, self.close_button):
            buttons.addWidget(button)
        layout.addLayout(buttons)

    # -- for subclasses
    def start(self) -> None:
        raise NotImplementedError

    def show_result(self, result) -> None:
        raise NotImplementedError

    def run_job(self, job: Callable, description: str) -> None:
        """Start ``job(cancel)`` on a worker; the dialog stays usable and can cancel it."""
        self.error.clear()
        self.worker = JobWorker(job, description)
        self.worker.event.connect(self._on_event)
        self.worker.finished.connect(self._on_finished)
        self.worker.failed.connect(self.error.setText)
        self.worker.cancelled.connect(lambda: self.status.setText(
            "Cancelled: nothing was written."))
        self.worker.ended.connect(lambda: self._running(False))
        self._running(True)
        self.status.setText("Starting…")
        self.worker.start()

    # -- the job
    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    def _running(self, running: bool) -> None:
        self.progress.setVisible(running)
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def _on_event(self, event: object) -> None:
        if isinstance(event, Progress):
            self.progress.setRange(0, event.total or 0)
            self.progress.setValue(event.done)
            self.status.setText(event.message)

    def _on_finished(self, result) -> None:
        self.result = result
        self.show_result(result)

    def done(self, result: int) -> None:
        # Closing waits for the job's cancel point: a half-written output folder is the job's
        # to clean up, not left behind by a dialog that vanished under it.
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait()
        super().done(result)
