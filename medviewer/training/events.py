"""What a training run tells its consumer (the wizard's Train page, ``medviewer train``).

Plain frozen dataclasses without torch, so a consumer can name them before PyTorch loads.
``train()`` yields :class:`medviewer.jobs.Progress` while decoding images, then
``RunStarted``, a ``BatchProgress`` per batch, an ``EpochEnd`` per epoch followed by its
``CheckpointSaved`` events, maybe ``EarlyStopped``, and ``TestEvaluated`` at the end.
A consumer handles them through :class:`medviewer.jobs.EventConsumer`
(``on_run_started``, ``on_batch_progress``, ...); :data:`TRAINER_EVENTS` lists every type a
run may yield, and a test checks that each consumer handles or deliberately ignores each.
"""

from __future__ import annotations

from dataclasses import dataclass

from medviewer.jobs import Progress


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
    __test__ = False  # an event, not a pytest test class

    metrics: dict


# Every event type a training run yields, in the order they first appear.
TRAINER_EVENTS: tuple[type, ...] = (Progress, RunStarted, BatchProgress, EpochEnd,
                                    CheckpointSaved, EarlyStopped, TestEvaluated)
