"""The trainer's handlers, each on its own with a small run state, and the driver calling
them: history, weight averaging, checkpoints, early stopping, test evaluation."""

from __future__ import annotations

import json
import math

import torch

from medviewer.jobs import run_to_end
from medviewer.training import checkpoints, handlers, trainer
from medviewer.training.config import TrainConfig
from medviewer.training.events import CheckpointSaved, EarlyStopped, EpochEnd, TestEvaluated
from medviewer.training.handlers import (BestEpoch, Checkpointing, EarlyStopping, Handler,
                                         History, TestEvaluation, TrainingRun,
                                         WeightAveraging)
from medviewer.training.models import build_model

CLASSES = ["NORMAL", "PNEUMONIA"]


def small_run(tmp_path, **values) -> TrainingRun:
    """A run state around a real smallcnn at 32 px and random images (no training)."""
    torch.manual_seed(0)
    model = build_model("smallcnn", 2)
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    images = {split: torch.rand(6, 1, 32, 32) for split in ("train", "val", "test")}
    (tmp_path / "checkpoints").mkdir(parents=True, exist_ok=True)
    config = TrainConfig(data="unused", epochs=5, patience=2, input_size=32)
    run = TrainingRun(config, tmp_path, list(CLASSES), {"by": "image"}, images,
                      {split: labels.clone() for split in images}, model,
                      torch.device("cpu"), torch.optim.AdamW(model.parameters()))
    for name, value in values.items():
        setattr(run, name, value)
    return run


def end_epoch(run: TrainingRun, epoch: int, summary_auroc: float) -> None:
    """What the driver does after validating an epoch, with a chosen validation AUROC."""
    val = {"summary_auroc": summary_auroc, "operating_points": {"PNEUMONIA": {"epoch": epoch}}}
    run.epoch = epoch
    run.improved = run.best.update(epoch, val)
    run.val_metrics = val
    run.epoch_metrics = {"epoch": epoch, "val_auroc": summary_auroc}


def test_best_epoch_is_the_highest_validation_auroc_and_ignores_nan():
    best = BestEpoch()
    assert best.update(1, {"summary_auroc": 0.6, "operating_points": {"a": 1}})
    assert not best.update(2, {"summary_auroc": float("nan"), "operating_points": {}})
    assert not best.update(3, {"summary_auroc": 0.6, "operating_points": {}})  # not better
    assert best.update(4, {"summary_auroc": 0.7, "operating_points": {"a": 4}})
    assert (best.epoch, best.auroc, best.operating_points) == (4, 0.7, {"a": 4})


def test_history_writes_a_line_per_epoch_on_rank_0_and_travels_in_checkpoints(tmp_path):
    run = small_run(tmp_path)
    history = History()
    for epoch, auroc in ((1, 0.5), (2, 0.6)):
        end_epoch(run, epoch, auroc)
        assert history.on_epoch_end(run) is None
    lines = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert lines == [{"epoch": 1, "val_auroc": 0.5}, {"epoch": 2, "val_auroc": 0.6}]
    payload: dict = {}
    history.on_save_checkpoint(run, payload)
    assert payload["history"] == lines

    restored = History()
    restored.on_load_checkpoint(run, payload)
    assert restored.epochs == lines
    other_rank = small_run(tmp_path / "rank1", rank=1, world=2)
    end_epoch(other_rank, 1, 0.5)
    restored.on_epoch_end(other_rank)
    assert len(restored.epochs) == 3 and not (tmp_path / "rank1" / "history.jsonl").exists()


def test_weight_averaging_validates_the_average_and_saves_both_sets(tmp_path):
    run = small_run(tmp_path)
    averaging = WeightAveraging(0.9)
    averaging.on_run_start(run)
    assert run.validated_model is averaging.average.model is not run.model
    conv = "features.0.0.weight"
    start = run.model.state_dict()[conv].clone()
    with torch.no_grad():
        run.model.state_dict()[conv].add_(1.0)
    averaging.on_batch_end(run)  # warm-up decay (1 + 1) / (10 + 1)
    averaged = run.validated_model.state_dict()[conv]
    assert torch.allclose(averaged, start + 9 / 11, atol=1e-6)
    run.handlers = [averaging]
    payload = Checkpointing().payload(run)
    assert torch.equal(payload["model"][conv], averaged)
    assert torch.equal(payload["train_model"][conv], start + 1.0)
    assert payload["ema_updates"] == 1

    resumed_run = small_run(tmp_path / "resumed")
    resumed = WeightAveraging(0.9)
    resumed.on_load_checkpoint(resumed_run, payload)
    resumed.on_run_start(resumed_run)
    assert resumed.average.updates == 1
    assert torch.equal(resumed_run.validated_model.state_dict()[conv], averaged)


def test_checkpointing_writes_last_every_epoch_and_best_when_improved(tmp_path):
    run = small_run(tmp_path)
    saver, history = Checkpointing(), History()
    run.handlers = [history, saver]
    seen = []
    for epoch, auroc in ((1, 0.6), (2, 0.5)):
        end_epoch(run, epoch, auroc)
        history.on_epoch_end(run)
        seen += saver.on_epoch_end(run)
    last, best = tmp_path / "checkpoints" / "last.pt", tmp_path / "checkpoints" / "best.pt"
    assert seen == [CheckpointSaved(str(last), 1, False), CheckpointSaved(str(best), 1, True),
                    CheckpointSaved(str(last), 2, False)]
    last_payload = checkpoints.load_checkpoint(last)  # weights_only loading
    assert last_payload["epoch"] == 2 and last_payload["best_epoch"] == 1
    assert last_payload["optimizer"] and [h["epoch"] for h in last_payload["history"]] == [1, 2]
    best_payload = checkpoints.load_checkpoint(best)
    assert best_payload["epoch"] == 1 and best_payload["best_val_auroc"] == 0.6
    assert best_payload["optimizer"] == {} and best_payload["train_model"] == {}
    model = checkpoints.model_from_checkpoint(best_payload)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in run.model.state_dict().items())
    # Other ranks never write.
    other = small_run(tmp_path / "rank1", rank=1, world=2)
    end_epoch(other, 1, 0.9)
    assert saver.on_epoch_end(other) is None
    assert not list((tmp_path / "rank1" / "checkpoints").iterdir())


def test_early_stopping_after_patience_epochs_without_improvement(tmp_path):
    run = small_run(tmp_path)
    stopping = EarlyStopping(patience=2)
    stopping.on_run_start(run)
    outcomes = []
    for epoch, auroc in ((1, 0.6), (2, 0.7), (3, 0.65), (4, 0.7)):
        end_epoch(run, epoch, auroc)
        outcomes.append(stopping.on_epoch_end(run))
    assert outcomes == [None, None, None, [EarlyStopped(4, 2)]] and run.stop
    # Not after the last epoch: the run ends there anyway.
    last = small_run(tmp_path / "last")
    last.config.epochs = 2
    stopping = EarlyStopping(patience=1)
    stopping.on_run_start(last)
    end_epoch(last, 1, 0.6)
    end_epoch(last, 2, 0.5)
    assert stopping.on_epoch_end(last) is None and not last.stop
    # Resuming counts the epochs since the best one: one more without progress stops.
    resumed = small_run(tmp_path / "resumed", start_epoch=3)
    resumed.best = BestEpoch(0.8, 2, {})
    stopping = EarlyStopping(patience=2)
    stopping.on_run_start(resumed)
    end_epoch(resumed, 4, 0.7)
    assert stopping.on_epoch_end(resumed) == [EarlyStopped(4, 2)]


def test_test_evaluation_scores_the_best_checkpoint_at_its_validation_points(tmp_path):
    run = small_run(tmp_path)
    evaluation = TestEvaluation()
    assert evaluation.on_run_end(run) is None  # no best.pt yet
    end_epoch(run, 1, 0.6)
    run.best.operating_points = None
    Checkpointing().on_epoch_end(run)
    with torch.no_grad():  # the live weights move on; the test uses the saved best ones
        for parameter in run.model.parameters():
            parameter.add_(0.5)
    (event,) = evaluation.on_run_end(run)
    saved = checkpoints.model_from_checkpoint(
        checkpoints.load_checkpoint(tmp_path / "checkpoints" / "best.pt"))
    expected = run.evaluate(saved, "test", None)
    assert isinstance(event, TestEvaluated) and event.metrics["n"] == 6
    assert event.metrics == run.test_metrics
    assert event.metrics["auroc"] == expected["auroc"]
    empty = small_run(tmp_path / "no-test")
    empty.images["test"] = torch.zeros(0, 1, 32, 32)
    empty.labels["test"] = torch.zeros(0, dtype=torch.long)
    end_epoch(empty, 1, 0.6)
    Checkpointing().on_epoch_end(empty)
    assert evaluation.on_run_end(empty) is None and empty.test_metrics is None


class Recorder(Handler):
    """Notes every hook the driver calls and adds an event of its own after each epoch."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_load_checkpoint(self, run, payload):
        self.calls.append("load")

    def on_run_start(self, run):
        self.calls.append("start")

    def on_batch_end(self, run):
        self.calls.append("batch")

    def on_epoch_end(self, run):
        self.calls.append(f"epoch {run.epoch}")
        return [f"after epoch {run.epoch}"]

    def on_save_checkpoint(self, run, payload):
        self.calls.append("save")
        payload["recorded"] = len(self.calls)

    def on_run_end(self, run):
        self.calls.append("end")
        return iter(["the end"])


def test_the_driver_calls_each_hook_in_order_and_yields_what_handlers_return(tiny_config,
                                                                           tmp_path):
    recorder = Recorder()
    tiny_config.epochs = 2
    job = trainer.train(tiny_config, tmp_path,
                        handlers=handlers.default_handlers(tiny_config) + [recorder])
    events = []
    result = run_to_end(job, events.append)
    # One checkpoint payload per epoch (best.pt is last.pt without the resuming state).
    assert recorder.calls == ["start"] + ["batch"] * 4 + ["save", "epoch 1"] \
        + ["batch"] * 4 + ["save", "epoch 2", "end"]
    kinds = [e if isinstance(e, str) else type(e).__name__ for e in events
             if type(e).__name__ not in ("Progress", "BatchProgress")]
    assert kinds[:5] == ["RunStarted", "EpochEnd", "CheckpointSaved", "CheckpointSaved",
                         "after epoch 1"]  # the first epoch is always the best so far
    assert kinds[-2:] == ["TestEvaluated", "the end"]
    assert result.epochs_run == 2 and not math.isnan(result.best_val_auroc)
    last = checkpoints.load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert last["recorded"] > 0  # handlers add to the checkpoint

    # Resuming restores every handler from the checkpoint before the run starts.
    again = Recorder()
    run_to_end(trainer.train(None, tmp_path, resume=tmp_path / "checkpoints" / "last.pt",
                             epochs=3, handlers=handlers.default_handlers(tiny_config)
                             + [again]))
    assert again.calls[:2] == ["load", "start"] and again.calls[-1] == "end"
    assert [e.epoch for e in events if isinstance(e, EpochEnd)] == [1, 2]
