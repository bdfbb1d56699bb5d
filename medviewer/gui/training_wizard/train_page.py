"""The Train page: runs the trainer on a worker and shows its events, live curves and the
time left."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout

from medviewer.app.training import format_duration, runs_dir, train_job
from medviewer.gui.training_wizard.page_helpers import (SPLIT_TITLES, WizardHost, WizardPage,
                                                        note, set_error)
from medviewer.gui.widgets import bold_label
from medviewer.jobs import EventConsumer, Progress
from medviewer.training.events import (BatchProgress, CheckpointSaved, EarlyStopped, EpochEnd,
                                       RunStarted, TestEvaluated)


class TrainPage(WizardPage, EventConsumer):
    """Runs the trainer on a worker and shows its progress and curves."""

    # The test figures are shown on the Evaluate page, scored there with the threshold
    # the user picks.
    ignored_events = (TestEvaluated,)

    def __init__(self, wizard: WizardHost) -> None:
        super().__init__(wizard, "Train", "The model trains in the background; the viewer "
                         "stays usable. Stopping keeps the best checkpoint so far.")
        from medviewer.gui.curves import TrainingCurves

        self.headline = bold_label("")
        self.details = note()
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.eta_label = QLabel()
        self.eta_label.setMinimumWidth(220)
        self.stop_button = QPushButton("Stop training")
        self.stop_button.setToolTip("Stop after the current batch; the best checkpoint so far "
                                    "is kept and can be evaluated and exported.")
        self.curves = TrainingCurves()
        self.epoch_label = note()
        row = QHBoxLayout()
        row.addWidget(self.progress, 1)
        row.addWidget(self.eta_label)
        row.addWidget(self.stop_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.headline)
        layout.addWidget(self.details)
        layout.addLayout(row)
        layout.addWidget(self.curves, 1)
        layout.addWidget(self.epoch_label)
        self.stop_button.clicked.connect(self.stop)

        self.run_dir: Path | None = None
        self.result: Any = None  # TrainResult when the run ended normally
        self.outcome = ""  # "", "finished", "cancelled", "failed"
        self.best_epoch: int | None = None
        self.best_auroc: float | None = None
        self.started: Any = None  # RunStarted
        self._batch_started_at: float | None = None
        self._batches_done = 0
        self._last_eta_update = 0.0

    @property
    def best_checkpoint(self) -> Path | None:
        if self.run_dir is None:
            return None
        path = self.run_dir / "checkpoints" / "best.pt"
        return path if path.is_file() else None

    def initializePage(self) -> None:  # noqa: N802 - Qt naming
        self.start()

    def start(self) -> None:
        owner = self.owner
        choices = owner.choices()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = runs_dir() / f"{stamp}-{choices['arch']}"
        suffix = 2
        while run_dir.exists():
            run_dir = runs_dir() / f"{stamp}-{choices['arch']}-{suffix}"
            suffix += 1
        self.run_dir = run_dir
        self.result, self.outcome, self.started = None, "", None
        self.best_epoch = self.best_auroc = None
        self._batch_started_at, self._batches_done = None, 0
        self.curves.clear()
        self.epoch_label.clear()
        self.progress.setRange(0, 0)
        self.progress.setFormat("%p %")
        self.eta_label.clear()
        self.stop_button.setEnabled(True)
        source = "from scratch" if not choices.get("init_checkpoint") else "fine-tuning"
        self.headline.setText(f"Preparing {choices['arch']} ({source})…")
        set_error(self.details, "")
        self.details.setText(f"Run folder: {run_dir}")
        owner.start_job("train", lambda cancel: train_job(choices, str(run_dir), cancel),
                        "training a model", on_event=self.dispatch,
                        on_finished=self._on_finished, on_failed=self._on_failed,
                        on_cancelled=self._on_cancelled)
        self._update_navigation()

    def stop(self) -> None:
        if self.owner.is_running("train"):
            self.owner.cancel("train")
            self.stop_button.setEnabled(False)
            self.headline.setText("Stopping after the current batch…")

    @property
    def running(self) -> bool:
        return self.owner.is_running("train")

    # -- events from the trainer (jobs.EventConsumer hands each to its on_<type> method)
    def on_progress(self, event: Progress) -> None:
        # Throttled progress can arrive late: once batches run, it is stale.
        if event.total and self.started is None:
            self.progress.setRange(0, event.total)
            self.progress.setValue(event.done)
            self.progress.setFormat(f"{event.message} %v/%m")

    def on_run_started(self, event: RunStarted) -> None:
        self.started = event
        self.curves.set_epochs(event.epochs)
        counts = ", ".join(f"{SPLIT_TITLES[k].lower()} {v:,}" for k, v in
                           event.counts.items())
        self.headline.setText(f"Training {self.owner.model_page.arch} on {event.device}")
        self.details.setText(f"{counts} images (split by {event.split_by}); classes "
                             f"{', '.join(event.class_names)}; {event.parameters:,} "
                             f"parameters. Run folder: {self.run_dir}")

    def on_checkpoint_saved(self, event: CheckpointSaved) -> None:
        if event.best:
            self.epoch_label.setText(self.epoch_label.text() + "  Saved as the best so far.")

    def on_early_stopped(self, event: EarlyStopped) -> None:
        self.epoch_label.setText(self.epoch_label.text() + f"  Stopped early: no better "
                                 f"validation AUROC since epoch {event.best_epoch}.")

    def on_batch_progress(self, event: BatchProgress) -> None:
        now = time.perf_counter()
        if self._batch_started_at is None:
            self._batch_started_at = now
            self.progress.setFormat("epoch %v/%m")
        epochs = self.started.epochs if self.started else event.epoch
        start_epoch = self.started.start_epoch if self.started else 0
        total = (epochs - start_epoch) * event.batches
        self._batches_done = (event.epoch - 1 - start_epoch) * event.batches + event.batch
        self.progress.setRange(0, total)
        self.progress.setValue(self._batches_done)
        self.progress.setFormat(f"epoch {event.epoch}/{epochs}, batch {event.batch}/"
                                f"{event.batches}")
        self.curves.add_batch(event.epoch - 1 + event.batch / event.batches, event.loss)
        if now - self._last_eta_update >= 0.5 or self._batches_done == total:
            self._last_eta_update = now
            elapsed = now - self._batch_started_at
            left = elapsed / max(1, self._batches_done) * (total - self._batches_done)
            eta = format_duration(left)
            self.eta_label.setText(f"{event.images_per_second:,.0f} images/s" +
                                   (f", about {eta} left" if eta and self._batches_done > 2
                                    else ""))

    def on_epoch_end(self, event: EpochEnd) -> None:
        m = event.metrics
        self.best_epoch, self.best_auroc = m.get("best_epoch"), m.get("best_val_auroc")
        self.curves.add_epoch(event.epoch, m["train_loss"], m["val_loss"], m["val_auroc"],
                              self.best_epoch)
        best = f" (best: epoch {self.best_epoch}, {self.best_auroc:.3f})" \
            if self.best_auroc is not None else ""
        self.epoch_label.setText(
            f"Epoch {event.epoch}/{event.epochs}: train loss {m['train_loss']:.3f}, "
            f"validation loss {m['val_loss']:.3f}, accuracy {m['val_accuracy']:.3f}, "
            f"AUROC {m['val_auroc']:.3f}{best}.")

    def _on_finished(self, result: Any) -> None:
        self.result, self.outcome = result, "finished"
        auroc = "" if result.best_val_auroc is None else \
            f" (validation AUROC {result.best_val_auroc:.3f})"
        self.headline.setText(f"Finished {result.epochs_run} epochs: the best was epoch "
                              f"{result.best_epoch}{auroc}.")
        self.eta_label.setText("")
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
        self.progress.setValue(self.progress.maximum())
        self._update_navigation()

    def _on_cancelled(self) -> None:
        self.outcome = "cancelled"
        self.eta_label.setText("")
        if self.best_checkpoint is not None:
            auroc = f", validation AUROC {self.best_auroc:.3f}" \
                if self.best_auroc is not None else ""
            self.headline.setText(f"Stopped. The best checkpoint (epoch {self.best_epoch}"
                                  f"{auroc}) is kept: evaluate and export it, or go Back to "
                                  f"change the settings and train again.")
        else:
            self.headline.setText("Stopped before the first epoch ended, so there is no "
                                  "checkpoint. Go Back to change the settings and train again.")
        self._update_navigation()

    def _on_failed(self, sentence: str) -> None:
        self.outcome = "failed"
        self.headline.setText("Training failed.")
        set_error(self.details, sentence)
        self.eta_label.setText("")
        self._update_navigation()

    def _update_navigation(self) -> None:
        self.stop_button.setEnabled(self.running)
        # Back is disabled while a page's previous page is a commit page.
        self.owner.settings_page.setCommitPage(self.running)
        self.completeChanged.emit()

    def isComplete(self) -> bool:  # noqa: N802 - Qt naming
        return not self.running and self.best_checkpoint is not None

