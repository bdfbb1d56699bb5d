"""Scoring a model on a split: probabilities, the metrics of an epoch or a test, the
gathering of scores across processes under torchrun, and a checkpoint's scores on its
run's splits."""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medviewer.jobs import CancelFlag, Progress
from medviewer.training import data as data_mod
from medviewer.training import metrics as metrics_mod
from medviewer.training.checkpoints import load_checkpoint, model_from_checkpoint
from medviewer.training.config import TrainConfig, resolve_device

SPLIT_WORDS = {"train": "training", "val": "validation", "test": "test"}


def distributed() -> tuple[int, int, bool]:
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


def gather(obj: Any, world: int) -> list[Any]:
    """Every rank's ``obj``, in rank order (just ``[obj]`` without torchrun)."""
    if world == 1:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


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


def evaluate_split(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                   class_names: list[str], device: torch.device, batch_size: int,
                   operating_points: dict | None, method: str, rank: int, world: int,
                   cancel: CancelFlag | None) -> dict:
    """Metrics of one split; under DDP each rank scores a shard and all gather the scores."""
    shard = torch.arange(rank, images.shape[0], world)
    probabilities = predict_probabilities(model, images[shard.to(images.device)], device,
                                          batch_size, cancel)
    parts = gather((probabilities, labels[shard].numpy()), world)
    all_probs = np.concatenate([p for p, _ in parts if p.size]) if any(
        p.size for p, _ in parts) else np.zeros((0, len(class_names)))
    all_labels = np.concatenate([y for _, y in parts])
    return evaluate(all_probs, all_labels, class_names, operating_points, method)


def score_checkpoint_splits(checkpoint: str | Path, device: str, threads: int | None,
                            splits: tuple[str, ...] = ("val", "test"),
                            cancel: CancelFlag | None = None,
                            ) -> Generator[Progress, None,
                                           tuple[dict, dict[str, tuple[np.ndarray, np.ndarray]]]]:
    """A checkpoint's probabilities [N, C] and labels [N] on its run's splits (those with
    images), with the checkpoint itself."""
    if threads:
        torch.set_num_threads(threads)
    payload = load_checkpoint(checkpoint)
    config = TrainConfig.from_dict(payload["config"])
    torch_device = resolve_device(device)
    model = model_from_checkpoint(payload).to(torch_device)
    scores = {}
    for split in splits:
        records = [data_mod.ImageRecord(**row) for row in payload["split"][split]]
        if not records:
            continue
        images = yield from data_mod.preload_images(records, config.input_size, cancel,
                                                    config.use_cache)
        probabilities = predict_probabilities(model, images, torch_device,
                                              config.eval_batch_size, cancel)
        scores[split] = (probabilities, np.array([r.label for r in records]))
        yield Progress(len(scores), len(splits), f"scored the {SPLIT_WORDS[split]} images")
    return payload, scores
