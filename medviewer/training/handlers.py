"""The parts of a training run attached to the loop: history, weight averaging,
checkpoints, early stopping and the final test evaluation.

``trainer.train`` is the driver: it prepares the data and the model, runs the batches,
validates each epoch and yields the run's events. Everything else a run does is a
:class:`Handler` attached to it (the MONAI engine/handler or Lightning callback idea): a
small object whose ``on_<moment>`` hooks the driver calls, in the order the handlers were
given, with the run's state (:class:`TrainingRun`). A hook may return events for the driver
to yield (``CheckpointSaved``, ``EarlyStopped``, ``TestEvaluated``). The moments:

- ``on_load_checkpoint(run, payload)``: resuming, after the driver restored the weights,
  optimiser and best epoch; a handler restores what it saved;
- ``on_run_start(run)``: before the first batch;
- ``on_batch_end(run)``: after each optimiser step;
- ``on_epoch_end(run)``: after validation (``run.epoch_metrics``, ``run.improved``) and
  after the driver yielded ``EpochEnd``;
- ``on_save_checkpoint(run, payload)``: a checkpoint is being written; add what resuming
  needs;
- ``on_run_end(run)``: the epochs are over (finished or stopped early; not when cancelled).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medviewer.jobs import CancelFlag
from medviewer.training.checkpoints import (CHECKPOINT_FORMAT, CHECKPOINT_VERSION,
                                            load_checkpoint, model_from_checkpoint,
                                            plain_state_dict, save_checkpoint)
from medviewer.training.config import TrainConfig
from medviewer.training.evaluation import evaluate_split
from medviewer.training.events import CheckpointSaved, EarlyStopped, TestEvaluated

Events = Iterable[Any] | None


@dataclass
class BestEpoch:
    """The epoch with the best validation summary AUROC so far: the one ``best.pt`` holds."""

    auroc: float | None = None
    epoch: int | None = None
    operating_points: dict | None = None

    def update(self, epoch: int, val: dict) -> bool:
        """Take this epoch's validation metrics; True when it is the new best."""
        summary = val["summary_auroc"]
        improved = self.auroc is None or (not math.isnan(summary) and summary > self.auroc)
        if improved:
            self.auroc, self.epoch, self.operating_points = (summary, epoch,
                                                             val["operating_points"])
        return improved


@dataclass
class TrainingRun:
    """The driver's state, as its handlers see it (one per call of ``train``)."""

    config: TrainConfig
    run_dir: Path
    class_names: list[str]
    split_payload: dict
    images: dict[str, torch.Tensor]  # split -> [N, 1, S, S] on the device
    labels: dict[str, torch.Tensor]  # split -> [N] on the CPU
    model: nn.Module  # the training weights (not the DDP wrapper)
    device: torch.device
    optimizer: torch.optim.Optimizer | None = None
    scaler: Any = None  # torch.amp.GradScaler
    use_amp: bool = False
    rank: int = 0
    world: int = 1
    cancel: CancelFlag = field(default_factory=CancelFlag)
    handlers: list[Handler] = field(default_factory=list)
    start_epoch: int = 0  # epochs done before this call (resuming)
    epoch: int = 0  # the current (1-based) epoch
    epochs_run: int = 0  # epochs this call completed
    best: BestEpoch = field(default_factory=BestEpoch)
    improved: bool = False  # whether the current epoch is the new best
    val_metrics: dict | None = None  # the current epoch's validation metrics
    epoch_metrics: dict | None = None  # what EpochEnd carries (and history.jsonl holds)
    averaged_model: nn.Module | None = None  # set by WeightAveraging: validated instead
    stop: bool = False  # a handler asks the driver to end after this epoch
    test_metrics: dict | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0 under torchrun, always otherwise: the process that writes files."""
        return self.rank == 0

    @property
    def checkpoints_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def validated_model(self) -> nn.Module:
        """The weights validated, saved as the checkpoint's ``model`` and exported."""
        return self.averaged_model if self.averaged_model is not None else self.model

    def evaluate(self, model: nn.Module, split: str, operating_points: dict | None) -> dict:
        """Metrics of ``model`` on one split (gathered across ranks under torchrun)."""
        return evaluate_split(model, self.images[split], self.labels[split], self.class_names,
                              self.device, self.config.eval_batch_size, operating_points,
                              self.config.operating_point, self.rank, self.world, self.cancel)


class Handler:
    """A part of the training run; override the hooks it needs (see the module docstring)."""

    def on_load_checkpoint(self, run: TrainingRun, payload: dict) -> None:
        pass

    def on_run_start(self, run: TrainingRun) -> Events:
        return None

    def on_batch_end(self, run: TrainingRun) -> Events:
        return None

    def on_epoch_end(self, run: TrainingRun) -> Events:
        return None

    def on_save_checkpoint(self, run: TrainingRun, payload: dict) -> None:
        pass

    def on_run_end(self, run: TrainingRun) -> Events:
        return None


def default_handlers(config: TrainConfig) -> list[Handler]:
    """What every run does, in hook order: history before checkpoints (a checkpoint holds
    the history up to its epoch), checkpoints before early stopping (the last epoch is saved
    before the run stops)."""
    handlers: list[Handler] = [History()]
    if config.ema_decay > 0:
        handlers.append(WeightAveraging(config.ema_decay))
    handlers += [Checkpointing(), EarlyStopping(config.patience), TestEvaluation()]
    return handlers


class History(Handler):
    """Every epoch's metrics: in memory and checkpoints, and as a line of history.jsonl."""

    def __init__(self) -> None:
        self.epochs: list[dict] = []

    def on_load_checkpoint(self, run: TrainingRun, payload: dict) -> None:
        self.epochs = list(payload["history"])

    def on_epoch_end(self, run: TrainingRun) -> Events:
        self.epochs.append(run.epoch_metrics)
        if run.is_main:
            with open(run.run_dir / "history.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps(run.epoch_metrics, default=float) + "\n")
        return None

    def on_save_checkpoint(self, run: TrainingRun, payload: dict) -> None:
        payload["history"] = self.epochs


class WeightAverage:
    """An exponential moving average of a model's parameters and float buffers.

    BatchNorm running statistics are averaged like the weights, so the averaged model is
    usable as is. The decay warms up ((1 + n) / (10 + n)) so early, random weights fade fast.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        current = model.state_dict()
        for name, average in self.model.state_dict().items():
            value = current[name].detach()
            if average.dtype.is_floating_point:
                average.lerp_(value.to(average.dtype), 1.0 - decay)
            else:
                average.copy_(value)

    def load(self, state: dict[str, torch.Tensor], updates: int) -> None:
        self.model.load_state_dict(state)
        self.updates = int(updates)


class WeightAveraging(Handler):
    """Validate, save and export a running average of the weights instead of the last step's.

    The checkpoint's ``model`` is then the average; the training weights travel as
    ``train_model`` (with ``ema_updates``) so that resuming continues both exactly.
    """

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.average: WeightAverage | None = None

    def _attach(self, run: TrainingRun) -> WeightAverage:
        if self.average is None:
            self.average = WeightAverage(run.model, self.decay)
            run.averaged_model = self.average.model
        return self.average

    def on_load_checkpoint(self, run: TrainingRun, payload: dict) -> None:
        self._attach(run).load(payload["model"], payload.get("ema_updates", 0))

    def on_run_start(self, run: TrainingRun) -> Events:
        self._attach(run)
        return None

    def on_batch_end(self, run: TrainingRun) -> Events:
        self._attach(run).update(run.model)
        return None

    def on_save_checkpoint(self, run: TrainingRun, payload: dict) -> None:
        payload["train_model"] = plain_state_dict(run.model)
        payload["ema_updates"] = self._attach(run).updates


class Checkpointing(Handler):
    """After every epoch, ``checkpoints/last.pt`` (everything resuming needs) and, when the
    epoch is the best so far, ``checkpoints/best.pt`` (the same without the optimiser state
    and training weights). Rank 0 writes; every file is replaced atomically."""

    def payload(self, run: TrainingRun) -> dict:
        """The checkpoint of the current epoch, with every handler's part."""
        payload = {
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "config": run.config.to_dict(), "class_names": list(run.class_names),
            "split": run.split_payload, "epoch": run.epoch,
            "model": plain_state_dict(run.validated_model),
            "optimizer": run.optimizer.state_dict() if run.optimizer is not None else {},
            "scaler": run.scaler.state_dict() if run.use_amp else {},
            "best_val_auroc": run.best.auroc, "best_epoch": run.best.epoch,
            "best_operating_points": run.best.operating_points, "val_metrics": run.val_metrics,
            "torch_version": str(torch.__version__),
        }
        for handler in run.handlers:
            handler.on_save_checkpoint(run, payload)
        return payload

    def on_epoch_end(self, run: TrainingRun) -> Events:
        if not run.is_main:
            return None
        payload = self.payload(run)
        last = run.checkpoints_dir / "last.pt"
        save_checkpoint(payload, last)
        events: list[Any] = [CheckpointSaved(str(last), run.epoch, False)]
        if run.improved:
            best = run.checkpoints_dir / "best.pt"
            save_checkpoint({**payload, "optimizer": {}, "scaler": {}, "train_model": {}},
                            best)
            events.append(CheckpointSaved(str(best), run.epoch, True))
        return events


class EarlyStopping(Handler):
    """Stop when ``patience`` epochs in a row brought no better validation AUROC."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.stale_epochs = 0

    def on_run_start(self, run: TrainingRun) -> Events:
        # Resuming counts the epochs since the best one as already stale.
        self.stale_epochs = 0 if run.best.epoch is None else run.start_epoch - run.best.epoch
        return None

    def on_epoch_end(self, run: TrainingRun) -> Events:
        self.stale_epochs = 0 if run.improved else self.stale_epochs + 1
        if self.stale_epochs >= self.patience and run.epoch < run.config.epochs:
            run.stop = True
            return [EarlyStopped(run.epoch, run.best.epoch or run.epoch)]
        return None


class TestEvaluation(Handler):
    """The best checkpoint scored on the test split, at the operating points chosen on
    validation, once the epochs are over."""

    __test__ = False  # a handler, not a pytest test class

    def on_run_end(self, run: TrainingRun) -> Events:
        best_path = run.checkpoints_dir / "best.pt"
        if not best_path.is_file() or run.images["test"].shape[0] == 0:
            return None
        best_model = model_from_checkpoint(load_checkpoint(best_path)).to(run.device)
        run.test_metrics = run.evaluate(best_model, "test", run.best.operating_points)
        return [TestEvaluated(run.test_metrics)]
