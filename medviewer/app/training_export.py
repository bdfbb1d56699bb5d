"""Exporting a trained run as a model: the one workflow the wizard and ``medviewer export``
share, so the same run gives the same model card and registration from both.

The steps: the training package exports the best checkpoint (or several runs' as one
ensemble) to ONNX with its card, scored on the test split by the exported file; thresholds
the user moved on the wizard's Evaluate page replace the trained ones and the test split is
scored again at them; registering copies the model into the user's models folder and keeps
the run's checkpoint beside it, so the model can be fine-tuned later. A model the export
warns about (``training.gates.export_warnings``: test AUROC no better than chance, or far
below validation) is registered only when the caller passes the user's explicit
confirmation. torch is imported inside the function.
"""

from __future__ import annotations

import shutil
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medviewer.jobs import CancelFlag, Progress

# Saved beside a registered model, so that model can be fine-tuned later (the registry
# ignores it; the wizard lists it as a fine-tuning source).
FINE_TUNE_CHECKPOINT_NAME = "training-checkpoint.pt"


def model_origin(entry: Any) -> str:
    """Where a listed model (``registry.ModelEntry``) came from, in the user's words:
    'built-in', 'trained here' (a user model whose card the exporter above wrote: it
    records the training configuration and the ONNX parity check) or 'imported'."""
    if entry.source == "built-in":
        return "built-in"
    training = getattr(entry.card, "training", None) or {}
    config = training.get("config") if isinstance(training, dict) else None
    if isinstance(config, dict) and "arch" in config and "parity" in training:
        return "trained here"
    return "imported"


@dataclass
class ExportOutcome:
    result: Any  # medviewer.training.export.ExportResult
    entry: Any  # medviewer.inference.registry.ModelEntry, or None when not registered
    chosen_points: dict[str, dict] = field(default_factory=dict)
    # Registering was asked for but not done: the export warned and nobody confirmed.
    registration_withheld: bool = False

    @property
    def warnings(self) -> list[str]:
        return list(self.result.warnings)


def export_model(runs: str | Path | Sequence[str | Path], name: str, version: str, *,
                 description: str = "", chosen_points: dict[str, dict] | None = None,
                 register: bool = False, out_dir: str | Path | None = None,
                 weights: str = "float32", cancel: CancelFlag | None = None,
                 operating_point: str | None = None, register_despite_warnings: bool = False,
                 ) -> Generator[Progress, None, ExportOutcome]:
    """Export a run (a run folder or a checkpoint file; several runs: one ensemble), apply
    the operating points chosen by the user, and register it.

    ``chosen_points`` maps a class to ``{threshold, val_sensitivity, val_specificity}`` for
    the classes whose threshold the user moved (one run only); the card's test figures are
    then recomputed with onnxruntime on the exported file, as the exporter does for the
    trained points. Files go to ``out_dir/NAME-VERSION/`` (default: the run folder's
    ``export/``); ``weights`` is how the file stores them (export.WEIGHT_STORAGE).
    ``register`` adds the model to the user's model list, with the run's checkpoint beside
    it (not for an ensemble: no one checkpoint holds it). ``operating_point`` (youden,
    sensitivity:X, specificity:X) is how the exporter chooses thresholds on calibrated
    validation scores before any chosen by hand replace them. When the export warns
    (``result.warnings``), ``register`` is honoured only with ``register_despite_warnings``
    (the user's explicit confirmation); otherwise the files are written, nothing is
    registered and ``registration_withheld`` says so.
    """
    from medviewer.inference import registry
    from medviewer.training import export

    run_list = [Path(runs)] if isinstance(runs, (str, Path)) else [Path(r) for r in runs]
    chosen_points = dict(chosen_points or {})
    if chosen_points and len(run_list) > 1:
        raise export.ExportError("Operating points can be chosen for one run, not for an "
                                 "ensemble of runs; export it with the points chosen on "
                                 "validation.")
    result = yield from export.export_run(run_list[0] if len(run_list) == 1 else run_list,
                                          name, version, out_dir=out_dir or None,
                                          description=description, weights=weights,
                                          cancel=cancel, operating_point=operating_point)
    checkpoint = export.best_checkpoint_path(run_list[0]) if len(run_list) == 1 else None
    if chosen_points:
        yield Progress(4, 5, "applying the chosen operating point")
        _apply_chosen_points(result, checkpoint, chosen_points, cancel)
    entry = None
    withheld = register and bool(result.warnings) and not register_despite_warnings
    if register and not withheld:
        yield Progress(5, 5, "adding it to the model list")
        entry = registry.import_model(result.onnx_path, result.card_path)
        result.registered_path = str(entry.onnx_path)
        if checkpoint is not None:
            shutil.copyfile(checkpoint, entry.onnx_path.parent / FINE_TUNE_CHECKPOINT_NAME)
    return ExportOutcome(result, entry, chosen_points, withheld)


def _apply_chosen_points(result: Any, checkpoint: Path, chosen_points: dict[str, dict],
                         cancel: CancelFlag | None) -> None:
    """Rewrite the exported card with the chosen thresholds and the test figures at them."""
    from medviewer.inference import registry
    from medviewer.training import checkpoints, export, gates, metrics
    from medviewer.training.config import TrainConfig

    payload = checkpoints.load_checkpoint(checkpoint)
    config = TrainConfig.from_dict(payload["config"])
    class_names = list(payload["class_names"])
    card = registry.ModelCard.load(result.card_path)
    # The card's probabilities are calibrated; the wizard chose its thresholds on the
    # trainer's raw scores, so each is carried into the calibrated scale (exact for two
    # classes: the calibrated probability is a monotone function of the raw one).
    temperature = card.calibration.temperature if card.calibration is not None else 1.0
    points = {name: metrics.OperatingPoint(
                  op.threshold, float(op.metrics.get("val_sensitivity", float("nan"))),
                  float(op.metrics.get("val_specificity", float("nan"))), op.method)
              for name, op in card.operating_points.items()}
    calibrated: dict[str, float] = {}
    for class_name, chosen in chosen_points.items():
        calibrated[class_name] = gates.calibrated_threshold(
            float(chosen["threshold"]), class_names.index(class_name), len(class_names),
            temperature)
        points[class_name] = metrics.OperatingPoint(
            calibrated[class_name], float(chosen["val_sensitivity"]),
            float(chosen["val_specificity"]), "chosen in the training wizard")
    test_metrics = export.score_test_split(
        Path(result.onnx_path), payload["split"]["test"], config.input_size, class_names,
        points, config.operating_point, card.metrics.get("source"), cancel,
        temperature=temperature) or dict(card.metrics)
    for class_name, chosen in chosen_points.items():
        figures = {"val_sensitivity": float(chosen["val_sensitivity"]),
                   "val_specificity": float(chosen["val_specificity"])}
        tested = test_metrics.get("operating_points", {}).get(class_name)
        if tested:
            figures.update(test_sensitivity=tested["sensitivity"],
                           test_specificity=tested["specificity"])
        card.operating_points[class_name] = registry.OperatingPoint(
            calibrated[class_name], "chosen on validation in the training wizard", figures)
    card.metrics = test_metrics
    card.save(result.card_path)
    result.test_metrics = test_metrics
