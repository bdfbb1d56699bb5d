"""Temperature scaling, calibration figures, reliability bins and the new operating point
method, on data whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.inference.calibration import apply_temperature
from medviewer.training import calibration, gates, metrics


def _overconfident(n: int = 4000, seed: int = 0):
    """Labels drawn from p = sigmoid(z), scores reported as sigmoid(3 z): T = 3 undoes it."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    p = 1 / (1 + np.exp(-3 * z))
    return np.stack([1 - p, p], axis=1), labels


def test_fitted_temperature_recovers_the_overconfidence_and_keeps_the_ranking():
    probabilities, labels = _overconfident()
    temperature = calibration.fit_temperature(probabilities, labels)
    assert temperature == pytest.approx(3.0, rel=0.1)
    calibrated = apply_temperature(probabilities, temperature)
    assert metrics.auroc(labels == 1, calibrated[:, 1]) == pytest.approx(
        metrics.auroc(labels == 1, probabilities[:, 1]), abs=1e-12)
    before = metrics.expected_calibration_error(probabilities, labels)
    after = metrics.expected_calibration_error(calibrated, labels)
    assert after < before / 3 and after < 0.03
    assert metrics.brier_score(calibrated, labels) < metrics.brier_score(probabilities, labels)


def test_reliability_bins_count_every_image_once():
    probabilities = np.array([[0.95, 0.05], [0.4, 0.6], [0.0, 1.0], [0.5, 0.5]])
    labels = np.array([0, 0, 1, 1])
    bins = metrics.reliability_bins(probabilities, labels, class_index=1, bins=4)
    assert [b["count"] for b in bins] == [1, 1, 1, 1]  # 0.05 | 0.5 | 0.6 | 1.0
    assert bins[3]["observed"] == 1.0 and bins[1]["mean_predicted"] == 0.5
    top = metrics.reliability_bins(probabilities, labels, bins=10)
    assert sum(b["count"] for b in top) == 4 and top[0]["observed"] is None


def test_specificity_target_keeps_the_specificity_with_the_best_sensitivity():
    labels = np.array([0] * 10 + [1] * 10)
    scores = np.r_[np.linspace(0.0, 0.9, 10), np.linspace(0.35, 1.0, 10)]
    point = metrics.choose_operating_point(labels, scores, "specificity:0.9")
    assert point.specificity >= 0.9
    sensitivity, specificity = metrics.sensitivity_specificity(labels, scores, point.threshold)
    assert (sensitivity, specificity) == (point.sensitivity, point.specificity)
    looser = metrics.choose_operating_point(labels, scores, "specificity:0.7")
    assert looser.sensitivity >= point.sensitivity
    with pytest.raises(ValueError, match="youden"):
        metrics.check_operating_point_method("specificity:2")


def test_a_raw_two_class_threshold_maps_exactly_into_the_calibrated_scale():
    probabilities, _ = _overconfident(200)
    threshold = 0.3
    mapped = gates.calibrated_threshold(threshold, 1, 2, 2.5)
    calibrated = apply_temperature(probabilities, 2.5)
    assert list(probabilities[:, 1] >= threshold) == list(calibrated[:, 1] >= mapped - 1e-7)
