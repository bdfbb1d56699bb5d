"""The training wizard's work, without Qt: loading PyTorch, reading the data and its split,
reading a checkpoint, training, scoring the best checkpoint, naming the exported model.

Every long step is a plain job generator (:mod:`medviewer.jobs`) that the wizard runs on a
``JobWorker``; tests and scripts can run the same functions. The training package (which
imports torch; this module never does) is imported inside the functions, so the GUI can
import this module before PyTorch is loaded (and in the Viewer edition, which has none).
Exporting and registering a trained model is :mod:`medviewer.app.training_export`.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import json
import logging
import math
import os
import re
import time
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medviewer.app.training_export import FINE_TUNE_CHECKPOINT_NAME
from medviewer.errors import UserError
from medviewer.jobs import CancelFlag, Progress

log = logging.getLogger(__name__)

# The wizard's weight average spans ~200 batches; its warm-up keeps short runs current.
WEIGHT_AVERAGE_DECAY = 0.995


def studio_available() -> bool:
    """True where PyTorch and torchvision are installed (checked without importing them)."""
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "torchvision"))


def runs_dir() -> Path:
    from medviewer.paths import user_data_dir

    folder = user_data_dir() / "training" / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def default_cpu_threads() -> int:
    """Leave one core to the GUI thread (and the rest of the machine)."""
    return max(1, (os.cpu_count() or 1) - 1)


@dataclass
class FineTuneSource:
    label: str
    checkpoint: str


@dataclass
class ToolsInfo:
    """What the wizard needs from PyTorch and the app, gathered on a worker when it opens."""

    architectures: list[str]
    cuda_name: str | None
    cuda_memory_gb: float | None
    torch_version: str
    label_sets: list[tuple[str, list[str]]] = field(default_factory=list)
    fine_tune_sources: list[FineTuneSource] = field(default_factory=list)


@contextlib.contextmanager
def without_gc_pauses() -> Iterator[None]:
    """Import heavy packages without full garbage collections, then freeze what they made.

    A worker that allocates triggers the cyclic GC, which holds the GIL for the whole pass:
    after torch (and its lazily imported compiler stack) is loaded a full pass walks a
    million objects and froze the GUI for 0.2-0.7 s at a time (docs/performance.md).
    Freezing moves the objects that exist now (modules, classes: they live for the whole
    process anyway) out of the collector's way; later passes only walk new objects.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        if was_enabled:
            gc.enable()


def load_training_tools(cancel: CancelFlag | None = None) -> Generator[Progress, None, ToolsInfo]:
    """Import PyTorch and the training package, detect the GPU, list data and checkpoints."""
    yield Progress(0, 4, "loading PyTorch")
    with without_gc_pauses():
        from medviewer.training import environment

        yield Progress(1, 4, "preparing the optimiser")
        environment.warm_up_optimiser()
        yield Progress(2, 4, "loading the image readers")
        _warm_image_pipeline()
    yield Progress(3, 4, "looking for a GPU")
    found = environment.describe()
    info = ToolsInfo(found.architectures, found.cuda_name, found.cuda_memory_gb,
                     found.torch_version)
    info.label_sets = _label_sets()
    info.fine_tune_sources = _fine_tune_sources()
    yield Progress(4, 4, "ready")
    return info


def _warm_image_pipeline() -> None:
    """Decode one bundled image, so the first training image does not load the codecs.

    The first decode imports pydicom and its codec plugins (GDCM, libjpeg, OpenJPEG...);
    loading their shared libraries holds the GIL, which froze the GUI for 0.1-0.3 s at the
    start of training. Here it happens while the wizard says it is loading.
    """
    import PIL.JpegImagePlugin  # noqa: F401 - Kermany-style JPEG X-rays
    import PIL.PngImagePlugin  # noqa: F401

    from medviewer.paths import SAMPLE_STUDY_DIR
    from medviewer.training import data as data_mod

    sample = next(iter(sorted(SAMPLE_STUDY_DIR.glob("*.dcm"))), None)
    if sample is None:
        return
    try:
        data_mod.preprocess_image(sample, 32)
    except UserError as exc:
        log.warning("The image pipeline was not warmed up: %s", exc)


def _label_sets() -> list[tuple[str, list[str]]]:
    from medviewer.labels.store import LabelStore, default_store_path

    path = default_store_path()
    if not path.is_file():
        return []  # never create a store just to list it
    try:
        with LabelStore(path, check=False) as store:
            return [(s.name, list(s.classes)) for s in store.label_sets() if not s.multi_label]
    except (UserError, OSError) as exc:
        log.warning("The label store could not be listed: %s", exc)
        return []


def _fine_tune_sources() -> list[FineTuneSource]:
    """Registered models saved with their training checkpoint, then recent wizard runs."""
    from medviewer.inference import registry

    sources = []
    for entry in registry.list_models():
        checkpoint = entry.onnx_path.parent / FINE_TUNE_CHECKPOINT_NAME
        if checkpoint.is_file():
            sources.append(FineTuneSource(f"Model {entry.key} ({entry.source})", str(checkpoint)))
    for run in list_finished_runs()[:20]:
        sources.append(FineTuneSource(f"Run {Path(run.run_dir).name}", run.checkpoint))
    return sources


@dataclass
class FinishedRun:
    """A run folder with a best checkpoint, as the wizard and ``medviewer runs`` list it."""

    run_dir: str
    started: str  # local time the run started, "YYYY-MM-DD HH:MM"
    data: str  # the data source given to the trainer
    arch: str
    input_size: int | None
    epochs_run: int | None
    best_val_auroc: float | None
    ended: str  # "finished", "stopped" (cancelled) or "unfinished" (no result yet)

    @property
    def checkpoint(self) -> str:
        return str(Path(self.run_dir) / "checkpoints" / "best.pt")

    def to_dict(self) -> dict:
        return {**asdict(self), "checkpoint": self.checkpoint}


def list_finished_runs(folder: Path | None = None) -> list[FinishedRun]:
    """Runs in the runs folder (or ``folder``) that can be evaluated and exported: those
    with a best checkpoint, newest first. Reads only their small JSON files."""
    folder = runs_dir() if folder is None else Path(folder)
    runs = []
    for run in (p for p in folder.iterdir() if (p / "checkpoints" / "best.pt").is_file()):
        config, result = _json_object(run / "config.json"), _json_object(run / "result.json")
        started_at = (run / "config.json").stat().st_mtime if (run / "config.json").is_file() \
            else (run / "checkpoints" / "best.pt").stat().st_mtime
        auroc = result.get("best_val_auroc")
        if auroc is None:
            auroc = _best_auroc_in_history(run / "history.jsonl")
        ended = "unfinished" if not result else ("stopped" if result.get("cancelled")
                                                 else "finished")
        runs.append(FinishedRun(
            str(run), time.strftime("%Y-%m-%d %H:%M", time.localtime(started_at)),
            str(config.get("data") or ""), str(config.get("arch") or "?"),
            config.get("input_size"), result.get("epochs_run"),
            float(auroc) if isinstance(auroc, (int, float)) else None, ended))
    return sorted(runs, key=lambda r: (r.started, r.run_dir), reverse=True)


def _json_object(path: Path) -> dict:
    """A run's small JSON file as a dict ({} when missing or unreadable)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def finished_runs_job(cancel: CancelFlag | None = None,
                      ) -> Generator[Progress, None, list[FinishedRun]]:
    """:func:`list_finished_runs` as a job (the wizard reads the folder on a worker)."""
    yield Progress(0, None, "listing the finished runs")
    return list_finished_runs()


def _best_auroc_in_history(path: Path) -> float | None:
    """The best validation AUROC so far, from the last epoch line of a run's history."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            value = json.loads(line).get("best_val_auroc")
        except (ValueError, AttributeError):
            continue
        return value if isinstance(value, (int, float)) else None
    return None


@dataclass
class DataSummary:
    """A source's classes and the train/validation/test split the trainer will make."""

    spec: str
    source: str
    class_names: list[str]
    counts: dict[str, dict[str, int]]  # split -> class -> images
    patients: dict[str, int]  # split -> distinct patients (0 when split by image)
    split_by: str
    seed: int
    val_fraction: float
    test_fraction: float
    labelled: Any = None  # the training package's LabelledSet, kept for re-splitting

    def total(self, split: str) -> int:
        return sum(self.counts[split].values())


def read_training_data(spec: str, val_fraction: float, test_fraction: float, seed: int,
                       labelled: Any = None, cancel: CancelFlag | None = None,
                       ) -> Generator[Progress, None, DataSummary]:
    """Resolve a data source and split it exactly as the trainer will (same function, seed)."""
    from medviewer.training import data as data_mod

    if labelled is None:
        yield Progress(0, None, "reading the images and their patients")
        labelled = data_mod.resolve_source(spec)
    yield Progress(1, 2, "splitting by patient")
    split = data_mod.split_records(labelled.records, val_fraction, test_fraction, seed)
    data_mod.check_no_leakage(labelled.records, split)
    counts: dict[str, dict[str, int]] = {}
    patients: dict[str, int] = {}
    for name in data_mod.SPLIT_NAMES:
        records = [labelled.records[i] for i in split.indices(name)]
        counts[name] = {c: 0 for c in labelled.class_names}
        for record in records:
            counts[name][labelled.class_names[record.label]] += 1
        patients[name] = len({r.patient for r in records if r.patient})
    yield Progress(2, 2, "done")
    return DataSummary(spec, labelled.source, list(labelled.class_names), counts, patients,
                       split.by, seed, val_fraction, test_fraction, labelled)


@dataclass
class CheckpointSummary:
    path: str
    arch: str
    input_size: int
    class_names: list[str]
    epoch: int
    best_val_auroc: float | None


def read_checkpoint(path: str) -> Generator[Progress, None, CheckpointSummary]:
    from medviewer.training import trainer

    yield Progress(0, None, "reading the checkpoint")
    payload = trainer.load_checkpoint(path)
    config = trainer.TrainConfig.from_dict(payload["config"])
    return CheckpointSummary(path, config.arch, config.input_size, list(payload["class_names"]),
                             int(payload.get("epoch", 0)), payload.get("best_val_auroc"))


def make_train_config(choices: dict) -> Any:
    """The trainer's TrainConfig from the wizard's plain choices (see TrainingWizard.choices)."""
    from medviewer.training import data as data_mod
    from medviewer.training import trainer

    augment = data_mod.AugmentConfig()
    strength = float(choices.get("augment_strength", 1.0))
    augment.rotation_deg *= strength
    augment.scale *= strength
    augment.translate *= strength
    augment.brightness *= strength
    augment.contrast *= strength
    augment.enabled = bool(choices.get("augment", True)) and strength > 0
    known = {k: v for k, v in choices.items() if k not in ("augment", "augment_strength")}
    config = trainer.TrainConfig.from_dict(known)
    config.augment = asdict(augment)
    return config


def train_job(choices: dict, run_dir: str, cancel: CancelFlag) -> Generator[Any, None, Any]:
    from medviewer.training import trainer

    return (yield from trainer.train(make_train_config(choices), run_dir, cancel))


@dataclass
class Reliability:
    """One class's calibration on one split, on the trainer's raw scores."""

    bins: list[dict]  # metrics.reliability_bins: low, high, count, mean_predicted, observed
    ece: float  # expected calibration error of this class's probability
    brier: float  # the split's multiclass Brier score (0 perfect, 2 worst)


@dataclass
class Evaluation:
    """Scores of the best checkpoint on the validation and test images, with what the
    wizard shows of them that is too slow for the GUI thread."""

    checkpoint: str
    class_names: list[str]
    scores: dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (probabilities [N, C], labels)
    trained_points: dict[str, dict]  # class -> operating point chosen on validation
    best_epoch: int | None
    best_val_auroc: float | None
    arch: str
    installed_keys: set[str] = field(default_factory=set)
    # (split, class) -> 95 % bootstrap interval of the AUROC.
    auroc_intervals: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    data: str = ""  # the run's data source as given to the trainer
    reliability: dict[tuple[str, str], Reliability] = field(default_factory=dict)
    # The temperature the export will fit on validation (here on the checkpoint's scores,
    # which the exported file reproduces), to show a threshold in the card's scale.
    temperature: float = 1.0
    # gates.export_warnings of these scores: what the export will warn about.
    warnings: list[str] = field(default_factory=list)

    def calibrated_threshold(self, class_name: str, threshold: float) -> float:
        """A threshold on the trainer's raw scores in the card's calibrated scale."""
        from medviewer.training.gates import calibrated_threshold

        return calibrated_threshold(threshold, self.class_names.index(class_name),
                                    len(self.class_names), self.temperature)


def score_checkpoint(checkpoint: str, device: str, threads: int | None,
                     cancel: CancelFlag | None = None) -> Generator[Progress, None, Evaluation]:
    """Probabilities of the best checkpoint on its run's validation and test images, their
    AUROC intervals, reliability bins, the export's temperature and warnings."""
    from medviewer.inference import registry
    from medviewer.training import calibration, gates, metrics
    from medviewer.training.evaluation import score_checkpoint_splits

    payload, scores = yield from score_checkpoint_splits(checkpoint, device, threads,
                                                         ("val", "test"), cancel)
    class_names = list(payload["class_names"])
    intervals, reliability = {}, {}
    figures: dict[str, dict[str, gates.AurocFigure]] = {"val": {}, "test": {}}
    for split, (probabilities, labels) in scores.items():
        brier = metrics.brier_score(probabilities, labels)
        for index, name in enumerate(class_names):
            if cancel is not None:
                cancel.raise_if_cancelled()
            positive = labels == index
            if positive.any() and not positive.all():
                intervals[split, name] = metrics.auroc_interval(positive,
                                                                probabilities[:, index])
                figures[split][name] = gates.AurocFigure(
                    metrics.auroc(positive, probabilities[:, index]), *intervals[split, name])
            reliability[split, name] = Reliability(
                metrics.reliability_bins(probabilities, labels, index),
                metrics.expected_calibration_error(probabilities, labels, index), brier)
    temperature = 1.0
    if "val" in scores:
        temperature = calibration.fit_temperature(*scores["val"])
    warnings = gates.export_warnings(class_names, figures["val"], figures["test"])
    installed = {entry.key for entry in registry.list_models()}
    return Evaluation(checkpoint, class_names, scores,
                      dict(payload.get("best_operating_points") or {}),
                      payload.get("best_epoch"), payload.get("best_val_auroc"),
                      payload["config"]["arch"], installed, intervals,
                      str(payload["config"].get("data") or ""), reliability, temperature,
                      warnings)


def suggest_model_name(spec: str, arch: str) -> str:
    stem = spec.split(":", 1)[1] if spec.startswith("labelset:") else Path(spec).stem
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{stem}-{arch}").strip("-._") or arch
    return name[:48]


def next_free_version(name: str, installed_keys: set[str]) -> str:
    lowered = {key.lower() for key in installed_keys}
    version = 1
    while f"{name}@{version}".lower() in lowered:
        version += 1
    return str(version)


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return ""
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


