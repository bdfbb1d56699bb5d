"""The training loop: a generator that drives a run, cancellable within one batch.

``train(config, run_dir)`` yields :class:`medviewer.jobs.Progress` while decoding images,
then the run's events (:mod:`medviewer.training.events`: ``RunStarted``, ``BatchProgress``
per batch, ``EpochEnd``, ``CheckpointSaved``, maybe ``EarlyStopped``, ``TestEvaluated``) and
returns a ``TrainResult``. Cancelling raises :class:`medviewer.jobs.JobCancelled`, like
every job; the best checkpoint so far stays on disk. The GUI drives it from a worker
thread; the CLI with its own loop.

This module is the driver: data, model, optimiser, the batches and the validation of each
epoch. History, weight averaging, checkpoints, early stopping and the test evaluation are
handlers attached to it (:mod:`medviewer.training.handlers`).

A run folder holds ``config.json``, ``split.json``, ``history.jsonl``,
``checkpoints/{best,last}.pt`` (:mod:`medviewer.training.checkpoints`) and ``result.json``
(the result, with ``cancelled`` saying how the run ended).

Under ``torchrun`` (``WORLD_SIZE`` > 1) the same code trains with DistributedDataParallel:
each rank takes a shard of every epoch's batches, validation is gathered, rank 0 writes.

The names the rest of the app uses from the training package's lower modules (the config,
checkpoints, events, evaluation) are re-exported here, so ``trainer`` stays its front door.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medviewer.jobs import CancelFlag, JobCancelled, Progress
from medviewer.training import data as data_mod
from medviewer.training.checkpoints import (CHECKPOINT_FORMAT, CHECKPOINT_VERSION,
                                            load_checkpoint, model_from_checkpoint,
                                            write_json)
from medviewer.training.config import TrainConfig, TrainingError, resolve_device
from medviewer.training.evaluation import distributed, evaluate, gather, predict_probabilities
from medviewer.training.events import (BatchProgress, CheckpointSaved, EarlyStopped, EpochEnd,
                                       RunStarted, TestEvaluated)
from medviewer.training.handlers import Handler, TrainingRun, default_handlers
from medviewer.training.models import Classifier, build_model, count_parameters

log = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "BatchProgress", "CheckpointSaved",
    "EarlyStopped", "EpochEnd", "RunStarted", "TestEvaluated", "TrainConfig", "TrainResult",
    "TrainingError", "evaluate", "learning_rate", "load_checkpoint",
    "model_from_checkpoint", "predict_probabilities", "resolve_device", "train",
]


@dataclass
class TrainResult:
    run_dir: str
    best_checkpoint: str | None
    best_epoch: int | None
    best_val_auroc: float | None
    epochs_run: int
    test_metrics: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def learning_rate(step: int, total_steps: int, config: TrainConfig) -> float:
    """One-cycle (warm-up then cosine to ~0) or plain cosine with a short warm-up."""
    warmup_fraction = config.warmup_fraction if config.schedule == "onecycle" else 0.05
    warmup = max(1, int(total_steps * warmup_fraction))
    peak = config.lr
    if step < warmup:
        start = peak / 25.0 if config.schedule == "onecycle" else peak / 10.0
        return start + (peak - start) * step / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    floor = peak / 1e4 if config.schedule == "onecycle" else 0.0
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


# ---------------------------------------------------------------- the run


@dataclass
class _Prepared:
    config: TrainConfig
    class_names: list[str]
    records: dict[str, list[data_mod.ImageRecord]]
    split_payload: dict


def _prepare_split(config: TrainConfig, run_dir: Path) -> _Prepared:
    source = data_mod.resolve_source(config.data)
    extra_test = None
    test_fraction = config.test_fraction
    if config.test_data:
        extra_test = data_mod.resolve_source(config.test_data)
        if extra_test.class_names != source.class_names:
            raise TrainingError(f"The test data {config.test_data} has classes "
                                f"{extra_test.class_names}, the training data "
                                f"{source.class_names}.")
        test_fraction = config.test_fraction = 0.0
    split = data_mod.split_records(source.records, config.val_fraction, test_fraction,
                                   config.seed if config.split_seed is None
                                   else config.split_seed)
    data_mod.check_no_leakage(source.records, split)
    payload = data_mod.split_to_json(source, split, extra_test)
    records = {name: [data_mod.ImageRecord(**row) for row in payload[name]]
               for name in data_mod.SPLIT_NAMES}
    return _Prepared(config, source.class_names, records, payload)


def train(config: TrainConfig | None, run_dir: str | Path, cancel: CancelFlag | None = None,
          resume: str | Path | None = None, epochs: int | None = None,
          handlers: list[Handler] | None = None) -> Generator[Any, None, TrainResult]:
    """Train (or resume) a classifier; see the module docstring for events and files.

    ``resume`` continues from a checkpoint (its config and split win; ``epochs`` may raise
    the epoch count). Cancelling stops within one batch and raises ``JobCancelled``: the
    partial epoch is dropped and the best checkpoint so far stays on disk. ``handlers``
    replaces :func:`~medviewer.training.handlers.default_handlers` (tests, tools).
    """
    rank, world, started_group = distributed()
    try:
        return (yield from _train_in_group(config, run_dir, cancel or CancelFlag(), resume,
                                           epochs, rank, world, handlers))
    finally:
        if started_group:
            import torch.distributed as dist

            # Left to interpreter exit, the group's C++ threads can outlive Python's clean-up.
            dist.destroy_process_group()


def _train_in_group(config: TrainConfig | None, run_dir: str | Path, cancel: CancelFlag,
                    resume: str | Path | None, epochs: int | None, rank: int, world: int,
                    handlers: list[Handler] | None) -> Generator[Any, None, TrainResult]:
    run_dir = Path(run_dir)
    checkpoint = load_checkpoint(resume) if resume else None
    if checkpoint is not None:
        config = TrainConfig.from_dict(checkpoint["config"])
        split_payload = checkpoint["split"]
        class_names = list(checkpoint["class_names"])
        records = {name: [data_mod.ImageRecord(**row) for row in split_payload[name]]
                   for name in data_mod.SPLIT_NAMES}
    else:
        if config is None:
            raise TrainingError("A training run needs a configuration or a checkpoint.")
        prepared = _prepare_split(config, run_dir)
        class_names, records, split_payload = (prepared.class_names, prepared.records,
                                               prepared.split_payload)
    if epochs is not None:
        config.epochs = epochs
    device = resolve_device(config.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(device)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)

    if rank == 0:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        write_json(run_dir / "config.json", config.to_dict())
        data_mod.save_split(run_dir / "split.json", split_payload)

    # Preprocess every split once into RAM (a float32 tensor per split).
    images: dict[str, torch.Tensor] = {}
    labels: dict[str, torch.Tensor] = {}
    for name in data_mod.SPLIT_NAMES:
        job = data_mod.preload_images(records[name], config.input_size, cancel,
                                      config.use_cache)
        images[name] = yield from _relabel(job, name)
        labels[name] = torch.tensor([r.label for r in records[name]], dtype=torch.long)
    if len(records["train"]) == 0 or len(records["val"]) == 0:
        raise TrainingError(f"The training data {config.data} is too small to make training "
                            f"and validation splits.")

    torch.manual_seed(config.seed)
    model = build_model(config.arch, len(class_names), config.dropout)
    if config.init_checkpoint and checkpoint is None:
        _load_initial_weights(model, config.init_checkpoint, config.arch)
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    use_amp = config.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    run = TrainingRun(config, run_dir, list(class_names), split_payload, images, labels, model,
                      device, optimizer, scaler, use_amp, rank, world, cancel,
                      default_handlers(config) if handlers is None else list(handlers))
    if checkpoint is not None:
        model.load_state_dict(checkpoint.get("train_model") or checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if use_amp and checkpoint.get("scaler"):
            scaler.load_state_dict(checkpoint["scaler"])
        run.best.auroc = checkpoint.get("best_val_auroc")
        run.best.epoch = checkpoint.get("best_epoch")
        run.best.operating_points = checkpoint.get("best_operating_points")
        run.start_epoch = int(checkpoint["epoch"])
        for handler in run.handlers:
            handler.on_load_checkpoint(run, checkpoint)
    yield from _fire(run, "on_run_start")
    net: nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index]
                                      if device.type == "cuda" else None)

    for name in data_mod.SPLIT_NAMES:
        images[name] = images[name].to(device)

    yield RunStarted(str(run_dir), list(class_names),
                     {name: len(records[name]) for name in data_mod.SPLIT_NAMES},
                     split_payload["by"], str(device), count_parameters(model),
                     run.start_epoch, config.epochs, world)
    try:
        yield from _run_epochs(run, net)
        if world > 1:
            import torch.distributed as dist

            dist.barrier()  # rank 0 has written its checkpoints before anyone reads best.pt
        best_path = run.checkpoints_dir / "best.pt"
        result = TrainResult(str(run_dir), str(best_path) if best_path.is_file() else None,
                             run.best.epoch, run.best.auroc, run.epochs_run)
        yield from _fire(run, "on_run_end")
    except JobCancelled:
        _record_result(run, cancelled=True)
        raise
    result.test_metrics = run.test_metrics
    if run.is_main:
        write_json(run_dir / "result.json", {**result.to_dict(), "cancelled": False})
    return result


def _run_epochs(run: TrainingRun, net: nn.Module) -> Generator[Any, None, None]:
    """The epochs from ``run.start_epoch + 1`` until the last, or until a handler sets
    ``run.stop``; ``run.epochs_run`` counts those that ended."""
    config, device = run.config, run.device
    optimizer, scaler, use_amp = run.optimizer, run.scaler, run.use_amp
    train_images, train_labels = run.images["train"], run.labels["train"].to(device)
    counts = torch.bincount(run.labels["train"], minlength=len(run.class_names)).float()
    class_weights = None
    if config.balance == "weights":
        class_weights = (counts.sum() / (len(run.class_names) * counts.clamp(min=1))).to(
            device)
    augment = data_mod.AugmentConfig(**config.augment)

    n_train = train_images.shape[0]
    per_rank = n_train // run.world
    batches_per_epoch = max(1, math.ceil(per_rank / config.batch_size))
    if per_rank % config.batch_size == 1 and batches_per_epoch > 1:
        batches_per_epoch -= 1  # a batch of one breaks BatchNorm
    total_steps = batches_per_epoch * config.epochs

    for epoch in range(run.start_epoch + 1, config.epochs + 1):
        run.epoch = epoch
        # Every epoch's randomness derives from (seed, epoch): resuming repeats it exactly.
        torch.manual_seed(config.seed * 100_003 + epoch)
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        if config.balance == "sampler":
            sample_weights = (1.0 / counts.clamp(min=1))[run.labels["train"]]
            order = torch.multinomial(sample_weights, n_train, replacement=True,
                                      generator=generator)
        else:
            order = torch.randperm(n_train, generator=generator)
        shard = order[run.rank::run.world][:per_rank]
        net.train()
        started = time.perf_counter()
        seen = 0
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        for batch in range(batches_per_epoch):
            run.cancel.raise_if_cancelled()
            index = shard[batch * config.batch_size:(batch + 1) * config.batch_size]
            if batch == batches_per_epoch - 1:
                index = shard[batch * config.batch_size:]
            index_device = index.to(device)
            x = data_mod.augment_batch(train_images[index_device], augment, generator)
            y = train_labels[index_device]
            step = (epoch - 1) * batches_per_epoch + batch
            lr = learning_rate(step, total_steps, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                logits = net(x)
                loss = F.cross_entropy(logits.float(), y, weight=class_weights,
                                       label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            yield from _fire(run, "on_batch_end")
            loss_sum += loss.detach() * y.shape[0]
            correct += (logits.detach().argmax(1) == y).sum()
            seen += y.shape[0]
            elapsed = time.perf_counter() - started
            yield BatchProgress(epoch, batch + 1, batches_per_epoch, float(loss.detach()),
                                seen * run.world / elapsed if elapsed > 0 else 0.0)
        train_seconds = time.perf_counter() - started
        val = run.evaluate(run.validated_model, "val", None)
        totals = gather((float(loss_sum), float(correct), seen), run.world)
        seen_all = sum(t[2] for t in totals)
        run.improved = run.best.update(epoch, val)
        run.val_metrics = val
        run.epoch_metrics = {
            "epoch": epoch, "lr": lr, "train_loss": sum(t[0] for t in totals) / seen_all,
            "train_accuracy": sum(t[1] for t in totals) / seen_all,
            "val_loss": val["loss"], "val_accuracy": val["accuracy"], "val": val,
            "val_auroc": val["summary_auroc"], "best_epoch": run.best.epoch,
            "best_val_auroc": run.best.auroc, "train_seconds": train_seconds,
            "epoch_seconds": time.perf_counter() - started,
            "train_images_per_second": seen_all / train_seconds,
        }
        yield EpochEnd(epoch, config.epochs, run.epoch_metrics)
        yield from _fire(run, "on_epoch_end")
        run.epochs_run += 1
        if run.stop:
            break


def _fire(run: TrainingRun, hook: str) -> Generator[Any, None, None]:
    """Call one hook of every handler, in order, and yield the events they return."""
    for handler in run.handlers:
        events = getattr(handler, hook)(run)
        if events is not None:
            yield from events


def _record_result(run: TrainingRun, cancelled: bool) -> None:
    """result.json of a run cancelled after it started: what it kept, for the record."""
    if not run.is_main:
        return
    best_path = run.checkpoints_dir / "best.pt"
    result = TrainResult(str(run.run_dir), str(best_path) if best_path.is_file() else None,
                         run.best.epoch, run.best.auroc, run.epochs_run)
    write_json(run.run_dir / "result.json", {**result.to_dict(), "cancelled": cancelled})


def _relabel(job: Generator[Progress, None, torch.Tensor],
             split: str) -> Generator[Progress, None, torch.Tensor]:
    """Pass preload progress through with the split's name in the message."""
    while True:
        try:
            event = next(job)
        except StopIteration as stop:
            return stop.value
        yield Progress(event.done, event.total, f"{split}: {event.message}")


def _load_initial_weights(model: Classifier, path: str, arch: str) -> None:
    """Fine-tuning: copy every matching tensor; a head for other classes starts anew."""
    payload = load_checkpoint(path)
    theirs = TrainConfig.from_dict(payload["config"]).arch
    if theirs != arch:
        raise TrainingError(f"The checkpoint {path} is for the {theirs} architecture, not "
                            f"{arch}.")
    own = model.state_dict()
    compatible = {k: v for k, v in payload["model"].items()
                  if k in own and own[k].shape == v.shape}
    model.load_state_dict(compatible, strict=False)
    log.info("fine-tuning from a checkpoint: %d of %d tensors copied", len(compatible),
             len(own))
