"""The out-of-distribution score of a read: how far its features lie from the training data.

A card's ``ood`` section names a small ``.npz`` sidecar (its SHA-256 is in the card) holding
the class means of the training split's pooled features and the inverse of their shared
covariance (Lee et al. 2018's Mahalanobis detector). The score of an image is its smallest
Mahalanobis distance to a class mean, from the ``features`` output of the same forward pass
that gave the probabilities (no second run). Above the card's threshold (chosen on the
validation split so that about 95 % of in-distribution images stay below) the image is
"unusual for this model". The fitting is ``medviewer.training.ood``.

numpy only; files are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medviewer.inference.model_card import ModelEntry, ModelError, file_sha256

FORMAT = "medviewer-ood-mahalanobis-1"


@dataclass(frozen=True)
class OodStatistics:
    means: np.ndarray  # [classes, D] float64: the training features' class means
    precision: np.ndarray  # [D, D] float64: inverse of the shared (shrunk) covariance

    def __post_init__(self) -> None:
        # precision = L L^T, so a squared distance is |x L - mean L|^2: one projection per
        # image instead of one quadratic form per class.
        whitening = np.linalg.cholesky(self.precision)
        object.__setattr__(self, "_whitening", whitening.astype(np.float32))
        object.__setattr__(self, "_centres", (self.means @ whitening).astype(np.float32))

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Smallest Mahalanobis distance to a class mean, per row of ``features`` [N, D]."""
        x = np.asarray(features, np.float32)
        if x.ndim != 2 or x.shape[1] != self.means.shape[1]:
            raise ModelError(f"The model gave features of shape {x.shape}, but its "
                             f"out-of-distribution statistics expect {self.means.shape[1]} "
                             "per image.")
        # einsum without BLAS: a BLAS call here starts threads that keep spinning after it
        # and slowed the next onnxruntime batch by a third (tests/bench/bench_ai_gates.py).
        projected = np.einsum("nd,de->ne", x, self._whitening)
        squared = ((projected[:, None, :] - self._centres[None, :, :]) ** 2).sum(axis=2)
        return np.sqrt(squared.min(axis=1)).astype(np.float64)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            np.savez_compressed(handle, format=np.array(FORMAT), means=self.means,
                                precision=self.precision)


def load_statistics(path: Path) -> OodStatistics:
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["format"]) != FORMAT:
                raise ModelError(f"The out-of-distribution file {path.name} has an unknown "
                                 "format.")
            means = np.asarray(data["means"], np.float64)
            precision = np.asarray(data["precision"], np.float64)
    except (OSError, KeyError, ValueError) as exc:
        raise ModelError(f"The out-of-distribution file {path.name} cannot be read "
                         f"({exc}).") from None
    if means.ndim != 2 or precision.shape != (means.shape[1], means.shape[1]):
        raise ModelError(f"The out-of-distribution file {path.name} is inconsistent "
                         f"(means {means.shape}, precision {precision.shape}).")
    return OodStatistics(means, precision)


_cache: dict[tuple[str, str], OodStatistics] = {}
_lock = threading.Lock()


def statistics_for(entry: ModelEntry) -> OodStatistics | None:
    """The model's OOD statistics (checked against the card's SHA-256 once), or None."""
    ood = entry.card.ood
    if ood is None:
        return None
    path = entry.card_path.parent / ood.file
    key = (str(path), ood.sha256)
    with _lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    if not path.is_file():
        raise ModelError(f"The model {entry.onnx_path.name} cannot check for unusual images: "
                         f"its file '{ood.file}' is missing.")
    if file_sha256(path) != ood.sha256:
        raise ModelError(f"The model {entry.onnx_path.name} is refused: its out-of-distribution "
                         f"file '{ood.file}' does not match the SHA-256 in the card.")
    statistics = load_statistics(path)
    with _lock:
        _cache[key] = statistics
    return statistics
