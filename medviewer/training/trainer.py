"""The training loop as a generator of small events, cancellable within one batch.

``train(config, run_dir)`` yields :class:`medviewer.jobs.Progress` while decoding images,
then ``RunStarted``, ``BatchProgress`` per batch, ``EpochEnd`` (with JSON-able metrics),
``CheckpointSaved``, maybe ``EarlyStopped`` and ``TestEvaluated``, and returns a
``TrainResult``. The GUI drives it from a worker thread; the CLI with ``run_to_end``.

A run folder holds ``config.json``, ``split.json``, ``history.jsonl``,
``checkpoints/{best,last}.pt`` and ``result.json``. Checkpoints hold only tensors and plain
JSON-able data, so they load with ``torch.load(weights_only=True)``. A checkpoint's
``model`` is always the weights that were validated: with ``ema_decay`` > 0 that is the
running average of the weights, and the raw training weights travel as ``train_model``
for resuming.

Under ``torchrun`` (``WORLD_SIZE`` > 1) the same code trains with DistributedDataParallel:
each rank takes a shard of every epoch's batches, validation is gathered, rank 0 writes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medviewer.errors import UserError
from medviewer.jobs import CancelFlag, JobCancelled, Progress
from medviewer.training import data as data_mod
from medviewer.training import metrics as metrics_mod
from medviewer.training.models import Classifier, build_model, count_parameters

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "medviewer-training-checkpoint"
CHECKPOINT_VERSION = 1


class TrainingError(UserError):
    pass


@dataclass
class TrainConfig:
    """Everything that defines a run; stored as JSON in the run folder and each checkpoint."""

    data: str
    arch: str = "smallcnn"
    epochs: int = 20
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    input_size: int = 128
    seed: int = 0
    # The split's own seed (None: ``seed``): runs that differ only in ``seed`` then share
    # one split, so they compare fairly and can be averaged into an ensemble.
    split_seed: int | None = None
    device: str = "auto"
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    test_data: str | None = None  # a separate test source; then test_fraction is ignored
    schedule: str = "onecycle"  # "onecycle" or "cosine"
    warmup_fraction: float = 0.2
    balance: str = "weights"  # "weights" (loss), "sampler" (balanced batches) or "none"
    label_smoothing: float = 0.05
    dropout: float = 0.2
    patience: int = 6  # epochs without a better validation AUROC before stopping
    operating_point: str = "youden"  # or "sensitivity:0.95"
    augment: dict = field(default_factory=lambda: asdict(data_mod.AugmentConfig()))
    amp: bool = True  # mixed precision, CUDA only
    num_threads: int | None = None
    init_checkpoint: str | None = None  # fine-tune from one of our checkpoints
    eval_batch_size: int = 256
    use_cache: bool = True
    # Exponential moving average of the weights (0 = off), validated and exported instead
    # of the last step's weights: it smooths the epoch-to-epoch swings of a from-scratch run.
    ema_decay: float = 0.0
    channels_last: bool = True  # NHWC convolutions: ~25 % faster on CPU, faster on CUDA AMP

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class RunStarted:
    run_dir: str
    class_names: list[str]
    counts: dict[str, int]  # images per split
    split_by: str
    device: str
    parameters: int
    start_epoch: int
    epochs: int
    world_size: int = 1


@dataclass(frozen=True)
class BatchProgress:
    epoch: int  # 1-based
    batch: int  # 1-based
    batches: int
    loss: float
    images_per_second: float


@dataclass(frozen=True)
class EpochEnd:
    epoch: int  # 1-based
    epochs: int
    metrics: dict  # JSON-able: train_loss, val_loss, val (classification_metrics), lr...


@dataclass(frozen=True)
class CheckpointSaved:
    path: str
    epoch: int
    best: bool


@dataclass(frozen=True)
class EarlyStopped:
    epoch: int
    best_epoch: int


@dataclass(frozen=True)
class TestEvaluated:
    metrics: dict


@dataclass
class TrainResult:
    run_dir: str
    best_checkpoint: str | None
    best_epoch: int | None
    best_val_auroc: float | None
    epochs_run: int
    cancelled: bool
    test_metrics: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- helpers


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError("Training on cuda was asked for but no CUDA GPU is available.")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise TrainingError(f"The device {name} is not known (use auto, cpu or cuda).")
    return torch.device(name)


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


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint written by this trainer, loaded with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"The checkpoint {path} does not exist.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle and zip errors of every kind
        raise TrainingError(f"The checkpoint {path} cannot be loaded "
                            f"({str(exc).splitlines()[0][:200]}).") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"The checkpoint {path} is not a MedViewer training checkpoint.")
    return payload


def model_from_checkpoint(payload: dict) -> Classifier:
    config = TrainConfig.from_dict(payload["config"])
    model = build_model(config.arch, len(payload["class_names"]), config.dropout)
    model.load_state_dict(payload["model"])
    model.eval()
    return model


def _distributed() -> tuple[int, int, bool]:
    """(rank, world size, whether this call started the process group) under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, False
    import torch.distributed as dist

    started = not dist.is_initialized()
    if started:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size(), started


def _gather(obj: Any, world: int) -> list[Any]:
    if world == 1:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def _atomic_save(payload: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def _write_json(path: Path, payload: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=float))
    tmp.replace(path)


@torch.no_grad()
def predict_probabilities(model: nn.Module, images: torch.Tensor, device: torch.device,
                          batch_size: int = 256,
                          cancel: CancelFlag | None = None) -> np.ndarray:
    """Softmax probabilities [N, C] for a float image tensor [N, 1, S, S] in [0, 1]."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, images.shape[0], batch_size):
        if cancel is not None:
            cancel.raise_if_cancelled()
        batch = images[start:start + batch_size].to(device)
        out.append(torch.softmax(model(batch).float(), dim=1).cpu())
    model.train(was_training)
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(out).numpy()


def evaluate(probabilities: np.ndarray, labels: np.ndarray, class_names: list[str],
             operating_points: dict | None, method: str) -> dict:
    points = None
    if operating_points:
        points = {name: metrics_mod.OperatingPoint(**p) for name, p in operating_points.items()}
    result = metrics_mod.classification_metrics(probabilities, labels, class_names, points,
                                                method)
    eps = 1e-7
    picked = probabilities[np.arange(labels.size), labels] if labels.size else np.zeros(0)
    result["loss"] = float(-np.log(np.clip(picked, eps, 1.0)).mean()) if labels.size else \
        float("nan")
    result["summary_auroc"] = metrics_mod.summary_auroc(result, class_names) \
        if result["auroc"] else float("nan")
    return result


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
          ) -> Generator[Any, None, TrainResult]:
    """Train (or resume) a classifier; see the module docstring for events and files.

    ``resume`` continues from a checkpoint (its config and split win; ``epochs`` may raise
    the epoch count). Cancelling stops within one batch: the partial epoch is dropped and
    the best checkpoint so far stays on disk.
    """
    rank, world, started_group = _distributed()
    try:
        return (yield from _train_in_group(config, run_dir, cancel or CancelFlag(), resume,
                                           epochs, rank, world))
    finally:
        if started_group:
            import torch.distributed as dist

            # Left to interpreter exit, the group's C++ threads can outlive Python's clean-up.
            dist.destroy_process_group()


def _train_in_group(config: TrainConfig | None, run_dir: str | Path, cancel: CancelFlag,
                    resume: str | Path | None, epochs: int | None, rank: int,
                    world: int) -> Generator[Any, None, TrainResult]:
    is_main = rank == 0
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

    checkpoints_dir = run_dir / "checkpoints"
    if is_main:
        checkpoints_dir.mkdir(parents=True, exist_ok=True)
        _write_json(run_dir / "config.json", config.to_dict())
        data_mod.save_split(run_dir / "split.json", split_payload)

    # Preprocess every split once into RAM (a float32 tensor per split).
    images: dict[str, torch.Tensor] = {}
    labels: dict[str, torch.Tensor] = {}
    try:
        for name in data_mod.SPLIT_NAMES:
            job = data_mod.preload_images(records[name], config.input_size, cancel,
                                          config.use_cache)
            images[name] = yield from _relabel(job, name)
            labels[name] = torch.tensor([r.label for r in records[name]], dtype=torch.long)
    except JobCancelled:
        return TrainResult(str(run_dir), None, None, None, 0, True)
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
    averaged = WeightAverage(model, config.ema_decay) if config.ema_decay > 0 else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    use_amp = config.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    history: list[dict] = []
    best_auroc: float | None = None
    best_epoch: int | None = None
    best_points: dict | None = None
    start_epoch = 0
    if checkpoint is not None:
        model.load_state_dict(checkpoint.get("train_model") or checkpoint["model"])
        if averaged is not None:
            averaged.load(checkpoint["model"], checkpoint.get("ema_updates", 0))
        optimizer.load_state_dict(checkpoint["optimizer"])
        if use_amp and checkpoint.get("scaler"):
            scaler.load_state_dict(checkpoint["scaler"])
        history = list(checkpoint["history"])
        best_auroc = checkpoint.get("best_val_auroc")
        best_epoch = checkpoint.get("best_epoch")
        best_points = checkpoint.get("best_operating_points")
        start_epoch = int(checkpoint["epoch"])
    net: nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index]
                                      if device.type == "cuda" else None)

    for name in data_mod.SPLIT_NAMES:
        images[name] = images[name].to(device)
    train_labels = labels["train"].to(device)
    counts = torch.bincount(labels["train"], minlength=len(class_names)).float()
    class_weights = None
    if config.balance == "weights":
        class_weights = (counts.sum() / (len(class_names) * counts.clamp(min=1))).to(device)
    augment = data_mod.AugmentConfig(**config.augment)

    n_train = len(records["train"])
    per_rank = n_train // world
    batches_per_epoch = max(1, math.ceil(per_rank / config.batch_size))
    if per_rank % config.batch_size == 1 and batches_per_epoch > 1:
        batches_per_epoch -= 1  # a batch of one breaks BatchNorm
    total_steps = batches_per_epoch * config.epochs

    yield RunStarted(str(run_dir), list(class_names),
                     {name: len(records[name]) for name in data_mod.SPLIT_NAMES},
                     split_payload["by"], str(device), count_parameters(model), start_epoch,
                     config.epochs, world)

    cancelled = False
    stale_epochs = 0 if best_epoch is None else start_epoch - best_epoch
    for epoch in range(start_epoch + 1, config.epochs + 1):
        # Every epoch's randomness derives from (seed, epoch): resuming repeats it exactly.
        torch.manual_seed(config.seed * 100_003 + epoch)
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        if config.balance == "sampler":
            sample_weights = (1.0 / counts.clamp(min=1))[labels["train"]]
            order = torch.multinomial(sample_weights, n_train, replacement=True,
                                      generator=generator)
        else:
            order = torch.randperm(n_train, generator=generator)
        shard = order[rank::world][:per_rank]
        net.train()
        started = time.perf_counter()
        seen = 0
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        for batch in range(batches_per_epoch):
            if cancel.cancelled:
                cancelled = True
                break
            index = shard[batch * config.batch_size:(batch + 1) * config.batch_size]
            if batch == batches_per_epoch - 1:
                index = shard[batch * config.batch_size:]
            index_device = index.to(device)
            x = images["train"][index_device]
            x = data_mod.augment_batch(x, augment, generator)
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
            if averaged is not None:
                averaged.update(model)
            loss_sum += loss.detach() * y.shape[0]
            correct += (logits.detach().argmax(1) == y).sum()
            seen += y.shape[0]
            elapsed = time.perf_counter() - started
            yield BatchProgress(epoch, batch + 1, batches_per_epoch, float(loss.detach()),
                                seen * world / elapsed if elapsed > 0 else 0.0)
        if cancelled:
            break
        train_seconds = time.perf_counter() - started
        try:
            val = _evaluate_split(averaged.model if averaged else model, images["val"],
                                  labels["val"], class_names, device, config, None, rank,
                                  world, cancel)
        except JobCancelled:
            cancelled = True
            break
        totals = _gather((float(loss_sum), float(correct), seen), world)
        seen_all = sum(t[2] for t in totals)
        summary = val["summary_auroc"]
        improved = best_auroc is None or (not math.isnan(summary) and summary > best_auroc)
        if improved:
            best_auroc, best_epoch, best_points = summary, epoch, val["operating_points"]
            stale_epochs = 0
        else:
            stale_epochs += 1
        epoch_metrics = {
            "epoch": epoch, "lr": lr, "train_loss": sum(t[0] for t in totals) / seen_all,
            "train_accuracy": sum(t[1] for t in totals) / seen_all,
            "val_loss": val["loss"], "val_accuracy": val["accuracy"], "val": val,
            "val_auroc": summary, "best_epoch": best_epoch, "best_val_auroc": best_auroc,
            "train_seconds": train_seconds,
            "epoch_seconds": time.perf_counter() - started,
            "train_images_per_second": seen_all / train_seconds,
        }
        history.append(epoch_metrics)
        yield EpochEnd(epoch, config.epochs, epoch_metrics)
        if is_main:
            with open(run_dir / "history.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps(epoch_metrics, default=float) + "\n")
            payload = {
                "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                "config": config.to_dict(), "class_names": list(class_names),
                "split": split_payload, "epoch": epoch,
                "model": _plain(averaged.model if averaged else model),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if use_amp else {},
                "history": history, "best_val_auroc": best_auroc, "best_epoch": best_epoch,
                "best_operating_points": best_points, "val_metrics": val,
                "torch_version": str(torch.__version__),
            }
            if averaged is not None:
                payload["train_model"] = _plain(model)
                payload["ema_updates"] = averaged.updates
            last = checkpoints_dir / "last.pt"
            _atomic_save(payload, last)
            yield CheckpointSaved(str(last), epoch, False)
            if improved:
                best = checkpoints_dir / "best.pt"
                _atomic_save({**payload, "optimizer": {}, "scaler": {}, "train_model": {}},
                             best)
                yield CheckpointSaved(str(best), epoch, True)
        if stale_epochs >= config.patience and epoch < config.epochs:
            yield EarlyStopped(epoch, best_epoch or epoch)
            break

    if world > 1:
        import torch.distributed as dist

        dist.barrier()  # rank 0 has written its checkpoints before anyone reads best.pt
    best_path = checkpoints_dir / "best.pt"
    completed = sum(1 for h in history if h["epoch"] > start_epoch)
    result = TrainResult(str(run_dir), str(best_path) if best_path.is_file() else None,
                         best_epoch, best_auroc, completed, cancelled)
    if not cancelled and best_path.is_file() and len(records["test"]) > 0:
        best_model = model_from_checkpoint(load_checkpoint(best_path)).to(device)
        try:
            test = _evaluate_split(best_model, images["test"], labels["test"], class_names,
                                   device, config, best_points, rank, world, cancel)
        except JobCancelled:
            result.cancelled = True
        else:
            result.test_metrics = test
            yield TestEvaluated(test)
    if is_main:
        _write_json(run_dir / "result.json", result.to_dict())
    return result


def _plain(model: nn.Module) -> dict[str, torch.Tensor]:
    """A state dict in the default (NCHW-contiguous) layout, whatever the training layout."""
    return {k: v.contiguous() for k, v in model.state_dict().items()}


class WeightAverage:
    """An exponential moving average of a model's parameters and float buffers.

    BatchNorm running statistics are averaged like the weights, so the averaged model is
    usable as is. The decay warms up ((1 + n) / (10 + n)) so early, random weights fade fast.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        import copy

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


def _relabel(job: Generator[Progress, None, torch.Tensor],
             split: str) -> Generator[Progress, None, torch.Tensor]:
    """Pass preload progress through with the split's name in the message."""
    while True:
        try:
            event = next(job)
        except StopIteration as stop:
            return stop.value
        yield Progress(event.done, event.total, f"{split}: {event.message}")


def _evaluate_split(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                    class_names: list[str], device: torch.device, config: TrainConfig,
                    operating_points: dict | None, rank: int, world: int,
                    cancel: CancelFlag) -> dict:
    """Metrics of one split; under DDP each rank scores a shard and all gather the scores."""
    shard = torch.arange(rank, images.shape[0], world)
    probabilities = predict_probabilities(model, images[shard.to(images.device)], device,
                                          config.eval_batch_size, cancel)
    parts = _gather((probabilities, labels[shard].numpy()), world)
    all_probs = np.concatenate([p for p, _ in parts if p.size]) if any(
        p.size for p, _ in parts) else np.zeros((0, len(class_names)))
    all_labels = np.concatenate([y for _, y in parts])
    return evaluate(all_probs, all_labels, class_names, operating_points,
                    config.operating_point)


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
