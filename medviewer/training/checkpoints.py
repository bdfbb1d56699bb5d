"""Checkpoint files: their format, writing them atomically, loading them safely.

A checkpoint holds only tensors and plain JSON-able data, so it loads with
``torch.load(weights_only=True)``. Its ``model`` is always the weights that were validated
(with weight averaging, the average; the raw training weights travel as ``train_model``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medviewer.paths import write_atomically
from medviewer.training.checkpoint_file import check_checkpoint_file
from medviewer.training.config import TrainConfig, TrainingError
from medviewer.training.models import Classifier, build_model

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "medviewer-training-checkpoint"
CHECKPOINT_VERSION = 1


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint written by this trainer, loaded with ``weights_only=True``."""
    path = check_checkpoint_file(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - pickle and zip errors of every kind: to the log
        log.warning("torch could not load %s", path, exc_info=True)
        raise TrainingError(f"The checkpoint {path} cannot be loaded: it is damaged or "
                            f"was not written by MedViewer.") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"The checkpoint {path} is not a MedViewer training checkpoint.")
    return payload


def model_from_checkpoint(payload: dict) -> Classifier:
    config = TrainConfig.from_dict(payload["config"])
    model = build_model(config.arch, len(payload["class_names"]), config.dropout)
    model.load_state_dict(payload["model"])
    model.eval()
    return model


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """A state dict in the default (NCHW-contiguous) layout, whatever the training layout."""
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def save_checkpoint(payload: dict, path: Path) -> None:
    """Write through a temporary file, so a crash never leaves half a checkpoint."""
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def write_json(path: Path, payload: Any) -> None:
    write_atomically(path, json.dumps(payload, indent=1, default=float), private=False)
