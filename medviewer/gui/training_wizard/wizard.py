"""The training wizard: Data -> Model -> Settings -> Train -> Evaluate -> Export, or from
the first page straight to Evaluate -> Export with a finished run from the runs folder.

It owns the jobs its pages start (one per purpose, each on a ``JobWorker``) and the way it
closes: asking before work would be lost (a training or export still running, or a model
trained here and not exported), then stopping the jobs without blocking the GUI thread.
The pages are one module each; their work is Qt-free in ``medviewer.app.training`` and
``medviewer.app.training_export``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QMessageBox, QWidget, QWizard

from medviewer.app.training import (WEIGHT_AVERAGE_DECAY, ToolsInfo, load_training_tools,
                                   runs_dir)
from medviewer.gui.training_wizard.data_page import DataPage
from medviewer.gui.training_wizard.evaluate_page import EvaluatePage
from medviewer.gui.training_wizard.export_page import ExportPage
from medviewer.gui.training_wizard.model_page import ModelPage
from medviewer.gui.training_wizard.page_helpers import (PAGE_DATA, PAGE_EVALUATE, PAGE_EXPORT,
                                                        PAGE_MODEL, PAGE_SETTINGS, PAGE_TRAIN)
from medviewer.gui.training_wizard.settings_page import SettingsPage
from medviewer.gui.training_wizard.train_page import TrainPage
from medviewer.gui.workers import JobWorker
from medviewer.jobs import CancelFlag

__all__ = ["PAGE_DATA", "PAGE_EVALUATE", "PAGE_EXPORT", "PAGE_MODEL", "PAGE_SETTINGS",
           "PAGE_TRAIN", "TrainingWizard"]
# Closing while one of these runs asks first: their work would be lost.
CONFIRM_JOBS = {"train": "Training", "export": "The export"}


class TrainingWizard(QWizard):
    """Data -> Model -> Settings -> Train -> Evaluate -> Export; every long step on a worker.

    Closing while training or exporting asks first, then stops the job (within one batch;
    the best checkpoint stays on disk) and closes once its thread has ended. Finishing or
    closing with a model trained here and not exported asks too (export, close, or stay).
    """

    model_registered = Signal(object)  # medviewer.inference.registry.ModelEntry
    tools_ready = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Train a model")
        self.setObjectName("trainingWizard")
        self.setWindowFlag(Qt.WindowType.Window, True)
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.setOption(QWizard.WizardOption.NoDefaultButton, True)
        self.resize(1180, 820)
        self.tools: ToolsInfo | None = None
        self._workers: dict[str, JobWorker] = {}
        self._live: set[JobWorker] = set()
        self._closing = False
        self._close_accepted = False
        self.stop_question: QMessageBox | None = None
        self.export_question: QMessageBox | None = None

        # Settings first: the data page reads its seed.
        self.settings_page = SettingsPage(self)
        self.data_page = DataPage(self)
        self.model_page = ModelPage(self)
        self.train_page = TrainPage(self)
        self.evaluate_page = EvaluatePage(self)
        self.export_page = ExportPage(self)
        for page_id, page in ((PAGE_DATA, self.data_page), (PAGE_MODEL, self.model_page),
                              (PAGE_SETTINGS, self.settings_page),
                              (PAGE_TRAIN, self.train_page),
                              (PAGE_EVALUATE, self.evaluate_page),
                              (PAGE_EXPORT, self.export_page)):
            self.setPage(page_id, page)
        self.setStartId(PAGE_DATA)
        self.start_job("tools", load_training_tools, "loading the training tools",
                       on_finished=self._on_tools, on_failed=self._on_tools_failed)

    # -- tools
    def _on_tools(self, tools: ToolsInfo) -> None:
        self.tools = tools
        self.data_page.fill_label_sets(tools.label_sets)
        self.settings_page.tools_loaded(tools)
        self.model_page.tools_loaded(tools)
        self.tools_ready.emit()

    def _on_tools_failed(self, sentence: str) -> None:
        self.model_page.tools_loaded(None, f"The training tools could not be loaded: "
                                           f"{sentence}")

    # -- what the pages chose
    def choices(self) -> dict:
        """Plain values for :func:`make_train_config` (built on the worker)."""
        data, model, settings = self.data_page, self.model_page, self.settings_page
        choices = {
            "data": data.spec(), "arch": model.arch, "input_size": model.input_spin.value(),
            "val_fraction": data.val_spin.value() / 100,
            "test_fraction": data.test_spin.value() / 100,
            "epochs": settings.epochs_spin.value(), "batch_size": settings.batch_spin.value(),
            "lr": settings.lr_spin.value(), "patience": settings.patience_spin.value(),
            "ema_decay": WEIGHT_AVERAGE_DECAY if settings.average_check.isChecked() else 0.0,
            "augment": settings.augment_check.isChecked(),
            "augment_strength": settings.augment_strength,
            "balance": settings.balance_combo.currentData(), "device": settings.device,
            "num_threads": settings.threads_spin.value(), "seed": settings.seed_spin.value(),
        }
        if model.fine_tune and model.checkpoint is not None:
            choices["init_checkpoint"] = model.checkpoint.path
        return choices

    # -- the run the Evaluate and Export pages work on
    def current_run_dir(self) -> Path | None:
        """The finished run chosen on the first page, else the run trained on the Train page."""
        finished = self.data_page.finished_run
        if finished is not None:
            return Path(finished.run_dir)
        return self.train_page.run_dir

    def current_checkpoint(self) -> Path | None:
        run_dir = self.current_run_dir()
        if run_dir is None:
            return None
        path = run_dir / "checkpoints" / "best.pt"
        return path if path.is_file() else None

    def unexported_run(self) -> Path | None:
        """The run trained in this wizard, when it has a checkpoint and no export of it
        succeeded here (None otherwise)."""
        train = self.train_page
        if train.running or train.best_checkpoint is None:
            return None
        if str(train.run_dir) in self.export_page.exported_runs:
            return None
        return train.run_dir

    # -- workers
    def start_job(self, purpose: str, factory: Callable[[CancelFlag], Generator],
                  description: str, *, on_event: Callable | None = None,
                  on_finished: Callable | None = None, on_failed: Callable | None = None,
                  on_cancelled: Callable | None = None) -> JobWorker:
        """Run a job for one purpose; a job already running for it is cancelled and ignored."""
        self.cancel(purpose)
        worker = JobWorker(factory, description)

        def current(handler: Callable | None, last: bool = True) -> Callable:
            def call(*args: Any) -> None:
                if last:  # its thread has ended: pages asking is_running() get False
                    self._live.discard(worker)
                if handler is not None and self._workers.get(purpose) is worker:
                    handler(*args)
            return call

        worker.event.connect(current(on_event, last=False))
        worker.finished.connect(current(on_finished))
        worker.failed.connect(current(on_failed))
        worker.cancelled.connect(current(on_cancelled))
        worker.ended.connect(lambda: self._on_worker_ended(worker))
        self._workers[purpose] = worker
        self._live.add(worker)
        worker.start()
        return worker

    def is_running(self, purpose: str) -> bool:
        """True from start until the job's outcome (finished, failed, cancelled) is handled."""
        return self._workers.get(purpose) in self._live

    def cancel(self, purpose: str) -> None:
        if self.is_running(purpose):
            self._workers[purpose].cancel()

    def running_jobs(self) -> list[str]:
        return [p for p, w in self._workers.items() if w in self._live]

    def _on_worker_ended(self, worker: JobWorker) -> None:
        self._live.discard(worker)
        if self._closing and not self._live:
            self._closing = False
            (QWizard.accept if self._close_accepted else QWizard.reject)(self)

    def shutdown(self, timeout_ms: int = 120_000) -> bool:
        """Cancel every job and wait for its thread (application exit, tests)."""
        ok = True
        for worker in list(self._live):
            ok = worker.wait(timeout_ms) and ok
        # Their outcome signals are still queued: nothing is left to handle them.
        self._workers.clear()
        self._live.clear()
        return ok

    # -- closing
    def confirm_stop(self) -> bool:
        """Ask before stopping a training or an export (True: stop it); True when none runs."""
        running = [CONFIRM_JOBS[p] for p in self.running_jobs() if p in CONFIRM_JOBS]
        if not running:
            return True
        kept = ""
        if "train" in self.running_jobs():
            kept = " The best checkpoint so far is kept in the run folder."
        box = QMessageBox(QMessageBox.Icon.Question, "Stop and close?",
                          f"{running[0]} is still running. Stop it and close the wizard?{kept}",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        self.stop_question = box
        try:
            return box.exec() == QMessageBox.StandardButton.Yes
        finally:
            self.stop_question = None
            box.deleteLater()

    def ask_about_unexported(self, offer_export: bool) -> str:
        """"close" when no model trained here is left unexported or the user lets it be,
        "export" (only with ``offer_export``: the Export page is shown) or "stay"."""
        run_dir = self.unexported_run()
        if run_dir is None:
            return "close"
        where = "the runs folder" if run_dir.parent == runs_dir() else str(run_dir.parent)
        box = QMessageBox(QMessageBox.Icon.Question, "Close without exporting?",
                          "The model trained in this run has not been exported, so it is not "
                          "in the model list. Close without exporting it?", parent=self)
        box.setInformativeText(
            f"The run stays in {where} ({run_dir.name}): it can be exported later from this "
            f"wizard's first page (Evaluate and export a finished run) or with "
            f"medviewer export.")
        export_button = box.addButton("Export now", QMessageBox.ButtonRole.AcceptRole) \
            if offer_export else None
        close_button = box.addButton("Close without exporting",
                                     QMessageBox.ButtonRole.DestructiveRole)
        stay_button = box.addButton("Stay", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(export_button or stay_button)
        box.setEscapeButton(stay_button)
        self.export_question = box
        try:
            box.exec()
            clicked = box.clickedButton()
        finally:
            self.export_question = None
            box.deleteLater()
        if export_button is not None and clicked is export_button:
            return "export"
        return "close" if clicked is close_button else "stay"

    def confirm_close(self, offer_export: bool = False) -> str:
        """Ask what closing would lose: a running training or export ("close" or "stay"),
        else a model trained here and not exported (see :meth:`ask_about_unexported`)."""
        if any(purpose in CONFIRM_JOBS for purpose in self.running_jobs()):
            return "close" if self.confirm_stop() else "stay"
        return self.ask_about_unexported(offer_export)

    def reject(self) -> None:
        """Cancel, Esc and the window's close button: ask if work would be lost, then stop."""
        self._close_after_asking(accept=False)

    def accept(self) -> None:
        """Finish (on the Export page): asks first when the model was not exported."""
        self._close_after_asking(accept=True)

    def _close_after_asking(self, accept: bool) -> None:
        if self._closing:
            return
        on_export_page = self.currentId() == PAGE_EXPORT and \
            self.export_page.export_button.isEnabled()
        answer = self.confirm_close(offer_export=on_export_page)
        if answer == "stay":
            return
        if answer == "export":
            self.export_page.export()
            return
        self._stop_then_close(accept=accept)

    def _stop_then_close(self, accept: bool = False) -> None:
        live = list(self._live)
        if not live:
            (QWizard.accept if accept else QWizard.reject)(self)
            return
        # Close once the threads have ended (within one batch); the GUI keeps running.
        self._closing = True
        self._close_accepted = accept
        for worker in live:
            worker.cancel()
        self.train_page.headline.setText("Stopping…")
        for button in (QWizard.WizardButton.BackButton, QWizard.WizardButton.NextButton,
                       QWizard.WizardButton.FinishButton, QWizard.WizardButton.CancelButton):
            self.button(button).setEnabled(False)

    def done(self, result: int) -> None:  # noqa: D102 - every way of closing ends here
        self.data_page._reread.stop()  # no data read may start after the wizard closed
        super().done(result)

    @property
    def closing(self) -> bool:
        return self._closing

