"""The trainer generator on 64 real chest X-rays at 64 px: events, files, cancel, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from medviewer.jobs import CancelFlag, JobCancelled, Progress, run_to_end
from medviewer.training import data, handlers, trainer
from medviewer.training.events import TRAINER_EVENTS
from medviewer.training.trainer import (BatchProgress, CheckpointSaved, EpochEnd, RunStarted,
                                        TrainConfig)


def _collect(job):
    events = []
    while True:
        try:
            events.append(next(job))
        except StopIteration as stop:
            return events, stop.value


def _weights(path: Path) -> dict:
    return trainer.load_checkpoint(path)["model"]


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def full_run(kermany_subset_csv, tmp_path_factory):
    """Two uninterrupted epochs: the reference for the reproducibility checks."""
    config = TrainConfig(data=str(kermany_subset_csv), arch="smallcnn", epochs=2, batch_size=8,
                         lr=2e-3, input_size=64, val_fraction=0.25, test_fraction=0.25,
                         seed=11, device="cpu", num_threads=1, patience=5)
    run_dir = tmp_path_factory.mktemp("full-run")
    events, result = _collect(trainer.train(config, run_dir))
    return run_dir, events, result


def test_a_run_yields_events_in_order_and_writes_its_folder(full_run):
    run_dir, events, result = full_run
    kinds = [type(e) for e in events]
    assert kinds[0] is Progress
    assert set(kinds) == set(TRAINER_EVENTS) - {trainer.EarlyStopped}  # consumers know them
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.counts == {"train": 32, "val": 16, "test": 16}
    assert started.split_by == "patient"
    batches = [e for e in events if isinstance(e, BatchProgress)]
    assert [(b.epoch, b.batch) for b in batches] == [(1, 1), (1, 2), (1, 3), (1, 4),
                                                    (2, 1), (2, 2), (2, 3), (2, 4)]
    epochs = [e for e in events if isinstance(e, EpochEnd)]
    assert [e.epoch for e in epochs] == [1, 2]
    for epoch in epochs:
        m = epoch.metrics
        assert m["train_loss"] > 0 and 0 <= m["val_accuracy"] <= 1
        assert set(m["val"]["auroc"]) == {"NORMAL", "PNEUMONIA"}
        point = m["val"]["operating_points"]["PNEUMONIA"]
        assert 0 <= point["sensitivity"] <= 1 and 0 <= point["specificity"] <= 1
        json.dumps(m)  # JSON-able for the GUI and history.jsonl
    assert isinstance(events[-1], trainer.TestEvaluated)
    assert result.test_metrics["n"] == 16
    assert any(isinstance(e, CheckpointSaved) and e.best for e in events)
    assert (run_dir / "split.json").is_file() and (run_dir / "config.json").is_file()
    assert len((run_dir / "history.jsonl").read_text().splitlines()) == 2
    recorded = json.loads((run_dir / "result.json").read_text())
    assert recorded["best_epoch"] == result.best_epoch and recorded["cancelled"] is False


def test_saved_split_has_no_leakage(full_run):
    run_dir, _, _ = full_run
    class_names, splits, payload = data.load_split(run_dir / "split.json")
    assert class_names == ["NORMAL", "PNEUMONIA"] and payload["seed"] == 11
    records = splits["train"] + splits["val"] + splits["test"]
    index = {name: list(range(sum(len(splits[n]) for n in data.SPLIT_NAMES[:i]),
                              sum(len(splits[n]) for n in data.SPLIT_NAMES[:i + 1])))
             for i, name in enumerate(data.SPLIT_NAMES)}
    data.check_no_leakage(records, data.Split(index["train"], index["val"], index["test"],
                                              "patient", 11))
    assert len({r.path for r in records}) == 64


def test_checkpoints_load_weights_only_and_hold_plain_data(full_run):
    run_dir, _, result = full_run
    for name in ("best.pt", "last.pt"):
        payload = torch.load(run_dir / "checkpoints" / name, map_location="cpu",
                             weights_only=True)
        json.dumps(payload["config"])
        json.dumps(payload["split"])
        json.dumps(payload["history"])
    last = trainer.load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert last["epoch"] == 2 and last["best_epoch"] == result.best_epoch


def test_same_seed_same_weights_and_cancel_then_resume_matches(full_run, tiny_config,
                                                               tmp_path):
    """Cancel in epoch 2 keeps epoch 1's checkpoint; resuming reproduces the full run."""
    reference_dir, _, reference = full_run
    cancel = CancelFlag()
    job = trainer.train(tiny_config, tmp_path, cancel)
    events = []
    with pytest.raises(JobCancelled):  # the one way a job says it stopped
        for event in job:
            events.append(event)
            if isinstance(event, BatchProgress) and (event.epoch, event.batch) == (2, 1):
                best_before = _weights(tmp_path / "checkpoints" / "best.pt")
                cancel.cancel()
    # Nothing more was trained after the cancel: the next batch never started.
    after_cancel = events[events.index(next(e for e in events if isinstance(e, BatchProgress)
                                             and (e.epoch, e.batch) == (2, 1))) + 1:]
    assert not any(isinstance(e, (BatchProgress, EpochEnd)) for e in after_cancel)
    # The run folder records how it ended and what it kept.
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["cancelled"] and result["best_epoch"] == 1 and result["epochs_run"] == 1
    assert result["best_checkpoint"] == str(tmp_path / "checkpoints" / "best.pt")
    assert _same_weights(best_before, _weights(tmp_path / "checkpoints" / "best.pt"))
    assert trainer.load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch"] == 1

    resumed_events, resumed = _collect(trainer.train(
        None, tmp_path, resume=tmp_path / "checkpoints" / "last.pt"))
    assert [e.epoch for e in resumed_events if isinstance(e, EpochEnd)] == [2]
    assert resumed.epochs_run == 1
    assert json.loads((tmp_path / "result.json").read_text())["cancelled"] is False
    assert _same_weights(_weights(tmp_path / "checkpoints" / "last.pt"),
                         _weights(reference_dir / "checkpoints" / "last.pt"))
    assert resumed.best_val_auroc == pytest.approx(reference.best_val_auroc)


def test_cancel_before_training_returns_without_checkpoint(tiny_config, tmp_path):
    cancel = CancelFlag()
    cancel.cancel()
    with pytest.raises(JobCancelled):
        run_to_end(trainer.train(tiny_config, tmp_path, cancel))
    assert not (tmp_path / "checkpoints" / "best.pt").exists()


def test_fine_tuning_starts_from_a_checkpoint(full_run, tiny_config, tmp_path):
    run_dir, _, _ = full_run
    tiny_config.init_checkpoint = str(run_dir / "checkpoints" / "best.pt")
    tiny_config.epochs = 1
    tiny_config.lr = 1e-9  # so the weights stay (almost) those of the checkpoint
    tiny_config.augment = {**tiny_config.augment, "enabled": False}
    run_to_end(trainer.train(tiny_config, tmp_path))
    start = _weights(run_dir / "checkpoints" / "best.pt")
    tuned = _weights(tmp_path / "checkpoints" / "last.pt")
    conv = "features.0.0.weight"
    assert torch.allclose(start[conv], tuned[conv], atol=1e-5)


def test_user_errors_are_one_sentence(tmp_path, tiny_config):
    with pytest.raises(trainer.TrainingError, match="does not exist"):
        trainer.load_checkpoint(tmp_path / "nope.pt")
    bogus = tmp_path / "bogus.pt"
    torch.save({"hello": 1}, bogus)
    with pytest.raises(trainer.TrainingError, match="not a MedViewer"):
        trainer.load_checkpoint(bogus)
    tiny_config.arch = "vgg99"
    with pytest.raises(Exception, match="vgg99 is not supported"):
        run_to_end(trainer.train(tiny_config, tmp_path))


def test_learning_rate_schedules():
    config = TrainConfig(data="x", lr=1.0, schedule="onecycle", warmup_fraction=0.2)
    lrs = [trainer.learning_rate(s, 100, config) for s in range(100)]
    assert lrs[0] == pytest.approx(1 / 25) and max(lrs) == pytest.approx(1.0, abs=0.02)
    assert lrs.index(max(lrs)) in (19, 20) and lrs[-1] < 0.01
    config.schedule = "cosine"
    lrs = [trainer.learning_rate(s, 100, config) for s in range(100)]
    assert lrs[5] == pytest.approx(1.0) and lrs[-1] < 0.01


@pytest.mark.parametrize("arch", ["resnet14", "resnet18", "densenet121", "efficientnet_b0",
                                  "mobilenet_v3_small", "mobilenet_v3_large", "resnet34",
                                  "resnet50"])
def test_torchvision_architectures_take_one_channel(arch):
    from medviewer.training.models import build_model

    model = build_model(arch, 3).eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 1, 64, 64))
        features = model.feature_maps(torch.rand(1, 1, 64, 64))
    assert logits.shape == (2, 3)
    assert features.shape[1] == model.head.in_features


def test_resnet14_is_resnet18_without_its_last_stage():
    from medviewer.training.models import build_model, count_parameters

    small, full = build_model("resnet14", 2), build_model("resnet18", 2)
    assert small.feature_maps(torch.rand(1, 1, 128, 128)).shape == (1, 256, 8, 8)
    assert full.feature_maps(torch.rand(1, 1, 128, 128)).shape == (1, 512, 4, 4)
    assert count_parameters(small) < count_parameters(full) / 3


def test_fine_tuning_refuses_another_architecture(full_run, tiny_config, tmp_path):
    run_dir, _, _ = full_run
    tiny_config.arch = "mobilenet_v3_small"
    tiny_config.init_checkpoint = str(run_dir / "checkpoints" / "best.pt")
    with pytest.raises(trainer.TrainingError, match="smallcnn architecture"):
        run_to_end(trainer.train(tiny_config, tmp_path))


def test_weight_average_is_validated_exported_and_resumes_exactly(tiny_config, tmp_path):
    """With ema_decay the checkpoints' model is the average; resume restores both sets."""
    config = TrainConfig.from_dict({**tiny_config.to_dict(), "ema_decay": 0.9})
    reference_dir = tmp_path / "reference"
    _, reference = _collect(trainer.train(config, reference_dir))
    last = trainer.load_checkpoint(reference_dir / "checkpoints" / "last.pt")
    assert last["ema_updates"] == 8  # 4 batches x 2 epochs
    assert not _same_weights(last["model"], last["train_model"])
    # The averaged weights are what was validated: they reproduce the logged AUROC.
    model = trainer.model_from_checkpoint(last)
    split = last["split"]["val"]
    images = run_to_end(data.preload_images([data.ImageRecord(**r) for r in split], 64))
    labels = torch.tensor([r["label"] for r in split])
    probabilities = trainer.predict_probabilities(model, images, torch.device("cpu"))
    scored = trainer.evaluate(probabilities, labels.numpy(), last["class_names"], None, "youden")
    assert scored["summary_auroc"] == pytest.approx(last["history"][-1]["val_auroc"])
    assert trainer.load_checkpoint(reference_dir / "checkpoints" / "best.pt")[
        "train_model"] == {}

    cancel = CancelFlag()
    resumed_dir = tmp_path / "resumed"
    job = trainer.train(config, resumed_dir, cancel)
    with pytest.raises(JobCancelled):
        for event in job:
            if isinstance(event, BatchProgress) and (event.epoch, event.batch) == (2, 1):
                cancel.cancel()
    _collect(trainer.train(None, resumed_dir, resume=resumed_dir / "checkpoints" / "last.pt"))
    resumed_last = trainer.load_checkpoint(resumed_dir / "checkpoints" / "last.pt")
    assert _same_weights(resumed_last["model"], last["model"])
    assert _same_weights(resumed_last["train_model"], last["train_model"])


def test_weight_average_warms_up_then_follows_its_decay():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    average = handlers.WeightAverage(model, decay=0.99)
    with torch.no_grad():
        model.weight.fill_(1.0)
    average.update(model)  # warm-up decay (1 + 1) / (10 + 1)
    assert average.model.weight.item() == pytest.approx(1 - 2 / 11)
    for _ in range(5000):
        average.update(model)
    assert average.model.weight.item() == pytest.approx(1.0)
    assert average.updates == 5001 and not average.model.weight.requires_grad


def test_split_seed_keeps_the_split_while_the_seed_changes_the_weights(tiny_config, tmp_path):
    def one_epoch(seed: int, split_seed: int | None, folder: str):
        config = TrainConfig.from_dict({**tiny_config.to_dict(), "epochs": 1, "seed": seed,
                                        "split_seed": split_seed})
        run_to_end(trainer.train(config, tmp_path / folder))
        return trainer.load_checkpoint(tmp_path / folder / "checkpoints" / "last.pt")

    a, b, c = one_epoch(1, 7, "a"), one_epoch(2, 7, "b"), one_epoch(7, None, "c")
    assert a["split"] == b["split"] == c["split"] and a["split"]["seed"] == 7
    assert not _same_weights(a["model"], b["model"])
