"""What defines a training run (:class:`TrainConfig`), the training package's error, and
the device a run asks for.

The config is stored as JSON in the run folder and in every checkpoint, so a resumed run,
an export and the model card all read the same values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch

from medviewer.training.errors import TrainingError
from medviewer.training import data as data_mod




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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError("Training on cuda was asked for but no CUDA GPU is available.")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise TrainingError(f"The device {name} is not known (use auto, cpu or cuda).")
    return torch.device(name)
