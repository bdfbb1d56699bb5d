"""What an exported model's card says about its answers: calibration, operating points,
test figures and the out-of-distribution check, all from the exported file's own scores.

Both ``export.export_run`` and ``tools/add_model_gates.py`` (which brings the shipped
model up to date) call :func:`complete_card`, so a newly trained model and the shipped one
are described by the same rules:

1. temperature scaling fitted on the validation split (``calibration``);
2. operating points for the finding classes chosen on the *calibrated* validation scores
   by ``youden``, ``sensitivity:X`` or ``specificity:X`` (the card records which);
3. test metrics with 95 % intervals at those points, on calibrated scores;
4. the OOD statistics fitted on the training split's features (``ood``).

:func:`export_warnings` is the one rule for when an export warns before a model is
registered (test AUROC no better than chance, or far below validation); the training
wizard's Export page and ``medviewer export`` both show its sentences.

numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medviewer.inference.calibration import apply_temperature
from medviewer.inference.model_card import Calibration, ModelCard, OperatingPoint
from medviewer.training import calibration, metrics, ood


@dataclass
class ScoredSplit:
    """One split scored by the exported file: uncalibrated probabilities, features, labels."""

    probabilities: np.ndarray  # [N, C]
    labels: np.ndarray  # [N]
    features: np.ndarray | None = None  # [N, D] when the file has a features output

    def __len__(self) -> int:
        return int(len(self.labels))


def no_finding_class(class_names: list[str]) -> str | None:
    """The class offered when nothing is flagged: the one not among the findings, when
    exactly one class is left out (e.g. NORMAL)."""
    findings = set(metrics.finding_classes(class_names))
    rest = [name for name in class_names if name not in findings]
    return rest[0] if len(rest) == 1 else None


def complete_card(card: ModelCard, onnx_path: Path, validation: ScoredSplit,
                  test: ScoredSplit | None, train: ScoredSplit | None = None,
                  method: str = "youden", test_source: str | None = None) -> dict:
    """Fill the card's calibration, operating points, test metrics, no-finding class and
    OOD check in place; returns the test metrics (also ``card.metrics``)."""
    classes = list(card.classes)
    temperature = calibration.fit_temperature(validation.probabilities, validation.labels,
                                              card.task)
    splits = {"validation": (validation.probabilities, validation.labels)}
    if test is not None and len(test):
        splits["test"] = (test.probabilities, test.labels)
    card.calibration = Calibration(
        temperature=temperature,
        fitted_on=f"validation split, {len(validation)} images (negative log-likelihood)",
        figures={**calibration.calibration_figures(splits, temperature, card.task),
                 "bins": 10, "ece": "top-class confidence vs accuracy"})
    val_probabilities = apply_temperature(validation.probabilities, temperature, card.task)
    findings = set(metrics.finding_classes(classes))
    chosen = {}
    for index, name in enumerate(classes):
        positive = validation.labels == index
        if name not in findings or positive.all() or not positive.any():
            continue
        chosen[name] = metrics.choose_operating_point(positive, val_probabilities[:, index],
                                                      method)
    test_metrics: dict = {}
    if test is not None and len(test):
        test_probabilities = apply_temperature(test.probabilities, temperature, card.task)
        test_metrics = {**metrics.classification_metrics(test_probabilities, test.labels,
                                                         classes, chosen or None, method,
                                                         intervals=True),
                        "split": "test", "calibrated": True, "source": test_source}
    words = metrics.method_in_words(method)
    card.operating_points = {}
    for name, point in chosen.items():
        figures = {"val_sensitivity": point.sensitivity, "val_specificity": point.specificity}
        tested = test_metrics.get("operating_points", {}).get(name)
        if tested:
            figures.update(test_sensitivity=tested["sensitivity"],
                           test_specificity=tested["specificity"])
        card.operating_points[name] = OperatingPoint(point.threshold,
                                                     f"{words} on validation", figures)
    card.no_finding_class = no_finding_class(classes)
    card.metrics = test_metrics
    if train is not None and train.features is not None and validation.features is not None:
        card.ood = ood.fit_ood_check(onnx_path, (train.features, train.labels),
                                     validation.features, len(classes),
                                     test.features if test is not None else None)
        card.outputs.features = card.outputs.features or "features"
    return test_metrics


def calibrated_threshold(threshold: float, class_index: int, n_classes: int,
                         temperature: float) -> float:
    """A two-class threshold chosen on uncalibrated scores, in the calibrated scale (exact:
    with two classes the calibrated probability is a monotone function of the raw one).
    For the training wizard, whose thresholds are picked on the trainer's raw scores."""
    if n_classes != 2 or temperature == 1.0:
        return float(threshold)
    raw = np.array([[1.0 - threshold, threshold]] if class_index == 1
                   else [[threshold, 1.0 - threshold]], np.float64)
    return float(apply_temperature(raw, temperature)[0, class_index])


# ---------------------------------------------------------------- export warnings


@dataclass(frozen=True)
class AurocFigure:
    """A finding's AUROC on one split with its 95 % bootstrap interval."""

    value: float
    low: float
    high: float


def auroc_figures(probabilities: np.ndarray, labels: np.ndarray,
                  class_names: list[str]) -> dict[str, AurocFigure]:
    """Each finding class's one-vs-rest AUROC and interval (the card's bootstrap); a class
    missing from the result has no positive or no negative image in the split."""
    probabilities = np.asarray(probabilities, np.float64)
    labels = np.asarray(labels, np.int64)
    out = {}
    for index, name in enumerate(class_names):
        positive = labels == index
        if name not in metrics.finding_classes(class_names) or positive.all() \
                or not positive.any():
            continue
        scores = probabilities[:, index]
        out[name] = AurocFigure(metrics.auroc(positive, scores),
                                *metrics.auroc_interval(positive, scores))
    return out


def export_warnings(class_names: list[str], validation: Mapping[str, AurocFigure],
                    test: Mapping[str, AurocFigure]) -> list[str]:
    """Sentences saying why a model should not be registered without a second thought; empty
    when there is nothing to say. Per finding class:

    - no test AUROC (no test split, or it lacks that class or every other): unmeasured;
    - the test interval reaches 0.5 or lies below it: not shown to beat chance;
    - the whole test interval lies below the whole validation interval: the model does
      worse on images it was not chosen on, by more than chance explains.
    """
    lines = []
    for name in metrics.finding_classes(class_names):
        tested, validated = test.get(name), validation.get(name)
        if tested is None:
            lines.append(f"{name}: there is no test AUROC (the test split is empty or lacks "
                         f"{name} or other images), so how the model does on images it "
                         f"never saw is unknown.")
            continue
        spread = f"{tested.value:.3f} (95 % interval {tested.low:.2f}–{tested.high:.2f})"
        if tested.high < 0.5:
            lines.append(f"{name}: the test AUROC is {spread}, below 0.5: the model ranks "
                         f"the test images worse than chance; check that the classes are not "
                         f"swapped.")
        elif tested.low <= 0.5:
            lines.append(f"{name}: the test AUROC is {spread}; the interval includes 0.5, so "
                         f"on its test images the model is not shown to do better than "
                         f"chance.")
        if validated is not None and tested.high < validated.low:
            lines.append(f"{name}: the test AUROC, {spread}, is below the validation AUROC, "
                         f"{validated.value:.3f} ({validated.low:.2f}–"
                         f"{validated.high:.2f}), by more than their intervals allow: expect "
                         f"figures nearer the test ones on new images.")
    return lines


def split_warnings(class_names: list[str], validation: tuple[np.ndarray, np.ndarray],
                   test: tuple[np.ndarray, np.ndarray] | None) -> list[str]:
    """:func:`export_warnings` from (probabilities, labels) of the validation and test
    splits (the test may be None or empty)."""
    tested = auroc_figures(*test, class_names) if test is not None and len(test[1]) else {}
    return export_warnings(class_names, auroc_figures(*validation, class_names), tested)
