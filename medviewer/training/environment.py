"""What this machine offers for training, and getting PyTorch ready before a first run.

Importing this module imports torch and the whole training package: the wizard does it on a
worker (with garbage collection paused) while it says it is loading, so the first run and
the first scoring start without those costs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from medviewer.training import data as _data  # noqa: F401 - loaded here, off the GUI thread
from medviewer.training import export as _export  # noqa: F401
from medviewer.training import trainer as _trainer  # noqa: F401
from medviewer.training.models import ARCHITECTURES


@dataclass
class TrainingEnvironment:
    architectures: list[str]
    torch_version: str
    cuda_name: str | None
    cuda_memory_gb: float | None


def warm_up_optimiser() -> None:
    """The first optimiser imports torch's compiler stack (a few seconds): do it now."""
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])


def describe() -> TrainingEnvironment:
    """The architectures, the PyTorch version and the CUDA GPU (if any)."""
    cuda_name = cuda_memory = None
    if torch.cuda.is_available():
        cuda_name = torch.cuda.get_device_name(0)
        cuda_memory = torch.cuda.get_device_properties(0).total_memory / 2 ** 30
    return TrainingEnvironment(list(ARCHITECTURES), str(torch.__version__), cuda_name,
                               cuda_memory)
