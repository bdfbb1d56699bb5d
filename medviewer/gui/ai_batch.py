"""AI batch runs: the model over every open image or a folder, rows as results arrive.

:class:`AiBatch` is owned by :class:`~medviewer.gui.results_panel.AiReader` (whose model it
runs and whose worker tracking it shares) and owns the batch table's dock and the Models
menu's batch actions. The job is ``medviewer.inference.predict.predict_job``; unreadable
files go to the session's problems.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QFileDialog, QMenu

from medviewer.gui.batch_panel import BatchPanel
from medviewer.gui.workers import JobWorker
from medviewer.jobs import CancelFlag, Progress

if TYPE_CHECKING:
    from medviewer.app.ai_reading import AiState
    from medviewer.app.session import Session
    from medviewer.gui.shell import Shell

BATCH_SIZE = 8


class BatchHost(Protocol):
    """What the batch uses of the AI reader that owns it (results_panel.AiReader)."""

    shell: Shell
    app_session: Session
    state: AiState
    model: Any  # the loaded ModelSession, or None
    entry: Any  # the chosen ModelEntry, or None

    def status(self, sentence: str, ms: int = 10_000) -> None: ...

    def start(self, worker: JobWorker) -> JobWorker: ...

    def fit_results_dock(self) -> None: ...


class AiBatch(QObject):
    """The batch table, its actions and the one batch job that may run at a time."""

    ended = Signal(str)  # 'finished' | 'cancelled' | 'failed'

    def __init__(self, reader: BatchHost) -> None:
        super().__init__(reader)
        self.reader = reader
        self.batch_size = BATCH_SIZE
        self._worker: JobWorker | None = None
        self._total = 0
        self._done = 0
        self._errors = 0
        self._flagged = 0
        self.panel = BatchPanel()
        self.dock = reader.shell.add_panel("batch", "AI batch results", self.panel,
                                           Qt.DockWidgetArea.BottomDockWidgetArea,
                                           tabify_with="problems")
        self.dock.hide()
        self.panel.cancel_requested.connect(self.cancel)
        self.panel.image_requested.connect(reader.app_session.request_show)

    def add_actions(self, menu: QMenu) -> None:
        self.run_action = menu.addAction("Run AI on all &open images", self.run_on_open)
        self.run_action.setShortcut(QKeySequence("Ctrl+Shift+R"))
        self.folder_action = menu.addAction("Run AI on a &folder…", self.choose_folder)
        self.cancel_action = menu.addAction("&Cancel AI batch", self.cancel)
        self.cancel_action.setEnabled(False)

    def _show_dock(self) -> None:
        dock = self.dock
        first_time = dock.isHidden()
        dock.show()
        dock.raise_()
        if first_time:
            window = self.reader.shell.dialog_parent()
            self.reader.shell.resize_panel(dock, max(160, window.height() // 4))
            QTimer.singleShot(0, self.reader.fit_results_dock)

    def _status(self, sentence: str, ms: int = 10_000) -> None:
        self.reader.status(sentence, ms)

    # ------------------------------------------------------------ starting and stopping
    def run_on_open(self) -> JobWorker | None:
        """Run the model over every open image."""
        paths = [record.path for record in self.reader.app_session.open_records()]
        if not paths:
            self._status("Open a study or a folder first, then run the AI on it.")
            return None
        return self.run(paths, f"{len(paths)} open image" + ("" if len(paths) == 1 else "s"))

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.reader.shell.dialog_parent(),
                                                  "Run the AI on a folder", str(Path.home()))
        if folder:
            self.run([Path(folder)], Path(folder).name)

    def run(self, paths: list[Path], description: str) -> JobWorker | None:
        """Predict every image in ``paths`` (files and folders) on a worker, rows as they come."""
        if self.running:
            self._status("An AI batch is already running: cancel it first.")
            return None
        reader = self.reader
        model = reader.model or reader.entry
        if model is None:
            self._status(reader.state.error or "No AI model is loaded.")
            return None
        key = reader.entry.key if reader.entry else ""
        batch_size = self.batch_size

        def job(cancel: CancelFlag):
            from medviewer.inference.predict import predict_job

            return predict_job(list(paths), model, batch_size=batch_size, cancel=cancel)

        worker = JobWorker(job, "running the AI batch")
        worker.event.connect(self._on_event)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        self._worker = worker
        self._done = self._errors = self._flagged = 0
        # Files only: the total is known now (a folder's comes with the job's progress).
        self._total = 0 if any(Path(p).is_dir() or Path(p).name.upper() == "DICOMDIR"
                               for p in paths) else len(paths)
        card = model.card  # the findings (classes with an operating point) get a column each
        findings = [c for c in card.classes if card.operating_point(c)] or list(card.classes)
        self.panel.start(f"{key} on {description}", findings)
        self.cancel_action.setEnabled(True)
        self._show_dock()
        return reader.start(worker)

    @property
    def running(self) -> bool:
        return self._worker is not None and self._worker.is_running()

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self.panel.cancel_button.setEnabled(False)
            self.panel.summary_label.setText("Cancelling…")

    # ------------------------------------------------------------ the job's events
    def _on_event(self, event: Any) -> None:
        from medviewer.inference.predict import PredictionReady

        if self.sender() is not self._worker:
            return
        if isinstance(event, Progress):
            if event.total:
                self._total = event.total
            self.panel.set_progress(event)
        elif isinstance(event, PredictionReady):
            prediction = event.prediction
            self._done += 1
            self._flagged += bool(prediction.flagged)
            if not prediction.ok:
                self._errors += 1
                self.reader.app_session.report_problem(prediction.path, prediction.error or "")
            self.panel.add_prediction(prediction)

    def _summary(self) -> str:
        done, errors = self._done, self._errors
        text = f"{done - errors} image" + ("" if done - errors == 1 else "s") + " read"
        text += f", {self._flagged} flagged"
        if errors:
            text += f", {errors} could not be read"
        return text

    def _on_finished(self, _predictions: list) -> None:
        self._end(self._summary() + ".", "finished")

    def _on_failed(self, sentence: str) -> None:
        self._status(sentence, 15_000)
        self._end(sentence, "failed", error=True)

    def _on_cancelled(self) -> None:
        total = f" of {self._total}" if self._total else ""
        self._end(f"Cancelled after {self._done}{total} images: {self._summary()}.",
                  "cancelled")

    def _end(self, summary: str, outcome: str, error: bool = False) -> None:
        self._worker = None
        self.cancel_action.setEnabled(False)
        self.panel.finish(summary, error)
        self._status(f"AI batch: {summary}")
        self.ended.emit(outcome)
