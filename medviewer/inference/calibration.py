"""Temperature scaling: the calibration a model card can carry, applied to every read.

A card's ``calibration.temperature`` T divides the model's logits before the activation, so
``p = softmax(z / T)`` (multiclass) or ``sigmoid(z / T)`` (multilabel). Only the scale of
the probabilities changes: the order of the classes, the argmax and every AUROC stay as
they were. For models whose output is already a probability, the logits are recovered as
``log p`` (softmax is unchanged by a per-row constant) or ``log(p / (1 - p))``.
Operating points on the card are in the calibrated scale.

numpy only; the fitting lives in ``medviewer.training.calibration``.
"""

from __future__ import annotations

import numpy as np

# Probabilities are clipped to this before taking logs: float32 rounds p to 0 or 1 only
# beyond logits of about +-100, where the calibrated answer is the same either way.
_TINY = 1e-38


def logits_from_probabilities(probabilities: np.ndarray, task: str) -> np.ndarray:
    """Logits (up to a per-row constant for softmax) that give these probabilities."""
    p = np.clip(np.asarray(probabilities, np.float64), _TINY, 1.0)
    if task == "multilabel":
        q = np.clip(1.0 - np.asarray(probabilities, np.float64), _TINY, 1.0)
        return np.log(p) - np.log(q)
    return np.log(p)


def scale_logits(logits: np.ndarray, temperature: float, task: str) -> np.ndarray:
    """Probabilities (float64) from logits divided by the temperature."""
    z = np.asarray(logits, np.float64) / float(temperature)
    if task == "multilabel":
        return 0.5 * (1.0 + np.tanh(0.5 * z))
    z = z - z.max(axis=1, keepdims=True)
    exp = np.exp(z)
    return exp / exp.sum(axis=1, keepdims=True)


def apply_temperature(probabilities: np.ndarray, temperature: float,
                      task: str = "multiclass") -> np.ndarray:
    """Calibrated probabilities [N, C] (float32) from the model's [N, C] probabilities."""
    probabilities = np.asarray(probabilities, np.float32)
    if temperature == 1.0:
        return probabilities
    return scale_logits(logits_from_probabilities(probabilities, task), temperature,
                        task).astype(np.float32)
