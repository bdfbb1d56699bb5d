"""Fitting a model's temperature on the validation split (numpy only, no torch).

Temperature scaling (Guo et al. 2017) has one parameter, so it cannot overfit a validation
split of a few hundred images and cannot change any ranking (AUROC, argmax): it only makes
the probabilities mean what they say. It is applied at reading time by
``medviewer.inference.calibration``; this module chooses T and reports ECE and Brier score
before and after.
"""

from __future__ import annotations

import math

import numpy as np

from medviewer.inference.calibration import logits_from_probabilities, scale_logits
from medviewer.training import metrics

# T is searched on a log scale between these bounds (1/20 .. 20 covers any sane model).
_LOG_T_RANGE = (math.log(0.05), math.log(20.0))


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float,
                            task: str = "multiclass") -> float:
    probabilities = scale_logits(logits, temperature, task)
    labels = np.asarray(labels, np.int64)
    if task == "multilabel":  # labels are then [N, C] of 0/1
        p = np.clip(probabilities, 1e-12, 1 - 1e-12)
        return float(-(labels * np.log(p) + (1 - labels) * np.log(1 - p)).mean())
    picked = probabilities[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(picked, 1e-12, 1.0)).mean())


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray,
                    task: str = "multiclass", iterations: int = 80) -> float:
    """The T minimising the validation negative log-likelihood (golden-section search on
    log T; the likelihood is unimodal in T)."""
    logits = logits_from_probabilities(probabilities, task)
    low, high = _LOG_T_RANGE
    ratio = (math.sqrt(5) - 1) / 2

    def loss(log_t: float) -> float:
        return negative_log_likelihood(logits, labels, math.exp(log_t), task)

    a, b = low + (1 - ratio) * (high - low), low + ratio * (high - low)
    fa, fb = loss(a), loss(b)
    for _ in range(iterations):
        if fa <= fb:
            high, b, fb = b, a, fa
            a = low + (1 - ratio) * (high - low)
            fa = loss(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = loss(b)
    return float(math.exp((low + high) / 2))


def calibration_figures(splits: dict[str, tuple[np.ndarray, np.ndarray]], temperature: float,
                        task: str = "multiclass") -> dict:
    """ECE and Brier score of each split before and after scaling: the card's record.

    ``splits`` maps a split name ("validation", "test") to (uncalibrated probabilities,
    labels).
    """
    out: dict = {"before": {}, "after": {}}
    for name, (probabilities, labels) in splits.items():
        if len(labels) == 0:
            continue
        calibrated = scale_logits(logits_from_probabilities(probabilities, task), temperature,
                                  task)
        out["before"][name] = metrics.calibration_figures(probabilities, labels)
        out["after"][name] = metrics.calibration_figures(calibrated, labels)
    return out
