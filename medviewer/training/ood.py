"""Fitting the out-of-distribution check on a model's training features (numpy only).

The class means of the training split's pooled features and the inverse of their shared
covariance, shrunk towards a multiple of the identity so it stays well conditioned with a
few thousand images of a few hundred features (Lee et al. 2018's Mahalanobis detector).
The threshold is the validation split's ``keep`` quantile of scores, so about that share of
in-distribution images pass. Scoring is ``medviewer.inference.ood``, the same code a read
uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medviewer.inference.model_card import OodCheck, file_sha256
from medviewer.inference.ood import OodStatistics

SHRINKAGE = 0.1  # share of the mean variance added on the diagonal
KEEP = 0.95  # share of validation images below the threshold


def fit_statistics(features: np.ndarray, labels: np.ndarray, n_classes: int,
                   shrinkage: float = SHRINKAGE) -> OodStatistics:
    x = np.asarray(features, np.float64)
    labels = np.asarray(labels, np.int64)
    present = [c for c in range(n_classes) if (labels == c).any()]
    means = np.stack([x[labels == c].mean(axis=0) for c in present])
    centred = x - means[np.searchsorted(present, labels)]
    covariance = centred.T @ centred / max(1, len(x) - len(present))
    # Features that never vary (a training split of one image copied) have no scale: use
    # 1, i.e. Euclidean distance, rather than a singular matrix.
    scale = float(np.trace(covariance)) / covariance.shape[0] or 1.0
    covariance += shrinkage * scale * np.eye(covariance.shape[0])
    return OodStatistics(means, np.linalg.inv(covariance))


def choose_threshold(validation_scores: np.ndarray, keep: float = KEEP) -> float:
    return float(np.quantile(np.asarray(validation_scores, np.float64), keep))


def fit_ood_check(onnx_path: Path, train: tuple[np.ndarray, np.ndarray],
                  validation_features: np.ndarray, n_classes: int,
                  test_features: np.ndarray | None = None, keep: float = KEEP) -> OodCheck:
    """Fit on the training split, choose the threshold on validation, write the sidecar
    (``<model>.ood.npz`` beside the ONNX file) and return the card's ``ood`` section."""
    statistics = fit_statistics(train[0], train[1], n_classes)
    validation_scores = statistics.scores(validation_features)
    threshold = choose_threshold(validation_scores, keep)
    sidecar = onnx_path.with_suffix(".ood.npz")
    statistics.save(sidecar)
    detail = {
        "fitted_on": f"training split, {len(train[1])} images: class means of the pooled "
                     f"features and their shared covariance (shrinkage {SHRINKAGE})",
        "threshold_rule": f"the {keep:.0%} quantile of the validation split's scores "
                          f"({len(validation_scores)} images)",
        "score": "smallest Mahalanobis distance of the image's pooled features to a class "
                 "mean of the training features",
        "features": int(statistics.means.shape[1]),
        "flagged_unusual": {"validation": float((validation_scores > threshold).mean())},
    }
    if test_features is not None and len(test_features):
        detail["flagged_unusual"]["test"] = float(
            (statistics.scores(test_features) > threshold).mean())
    return OodCheck(file=sidecar.name, sha256=file_sha256(sidecar), threshold=threshold,
                    detail=detail)
