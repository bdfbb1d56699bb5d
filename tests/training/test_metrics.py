"""ROC / AUROC / operating points against values computed by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from medviewer.training import metrics


def test_roc_curve_points_by_hand():
    labels = np.array([0, 0, 1, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    fpr, tpr, thresholds = metrics.roc_curve(labels, scores)
    # Thresholds descending: inf, 0.8, 0.4, 0.35, 0.1
    assert thresholds[0] == np.inf
    np.testing.assert_allclose(thresholds[1:], [0.8, 0.4, 0.35, 0.1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(fpr, [0, 0.0, 0.5, 0.5, 1.0])
    # 3 of the 4 (positive, negative) pairs are ordered correctly.
    assert metrics.auroc(labels, scores) == pytest.approx(0.75)


def test_auroc_with_ties_counts_half():
    labels = np.array([1, 0, 1, 0, 1])
    scores = np.array([0.5, 0.5, 0.9, 0.2, 0.5])
    # Pairs (pos, neg): 3 positives x 2 negatives = 6. Positive 0.9 beats both (2).
    # Each 0.5 positive beats 0.2 (1 each = 2) and ties 0.5 (0.5 each = 1). Total 5 / 6.
    assert metrics.auroc(labels, scores) == pytest.approx(5 / 6)


def test_auroc_matches_the_pairwise_definition_on_random_data():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 60)
    scores = np.round(rng.random(60), 1)  # many ties
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairwise = np.mean([1.0 if p > n else 0.5 if p == n else 0.0
                        for p, n in itertools.product(pos, neg)])
    assert metrics.auroc(labels, scores) == pytest.approx(pairwise)


def test_perfect_and_inverted_scores():
    labels = np.array([0, 0, 1, 1])
    assert metrics.auroc(labels, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert metrics.auroc(labels, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0


def test_roc_needs_both_classes():
    with pytest.raises(ValueError):
        metrics.roc_curve(np.array([1, 1]), np.array([0.2, 0.3]))


def test_youden_operating_point_by_hand():
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.3, 0.6, 0.4, 0.7, 0.9])
    point = metrics.choose_operating_point(labels, scores, "youden")
    # threshold 0.4: sens 1.0, spec 2/3 -> J = 0.667; threshold 0.7: sens 2/3, spec 1 -> 0.667
    # The first maximum (higher threshold) wins.
    assert point.threshold == pytest.approx(0.7)
    assert point.sensitivity == pytest.approx(2 / 3)
    assert point.specificity == pytest.approx(1.0)


def test_target_sensitivity_operating_point():
    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.1, 0.5, 0.6, 0.3, 0.7, 0.8, 0.9])
    point = metrics.choose_operating_point(labels, scores, "sensitivity:0.75")
    assert point.threshold == pytest.approx(0.7)
    assert point.sensitivity == pytest.approx(0.75)
    assert point.specificity == pytest.approx(1.0)
    full = metrics.choose_operating_point(labels, scores, "sensitivity:1.0")
    assert full.threshold == pytest.approx(0.3)
    assert full.specificity == pytest.approx(1 / 3)


def test_sensitivity_specificity_at_threshold():
    labels = np.array([0, 1, 1, 0])
    scores = np.array([0.2, 0.6, 0.4, 0.7])
    assert metrics.sensitivity_specificity(labels, scores, 0.5) == (0.5, 0.5)


def test_classification_metrics_multiclass_and_given_operating_points():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6],
                              [0.5, 0.4, 0.1], [0.3, 0.3, 0.4], [0.1, 0.6, 0.3]])
    labels = np.array([0, 1, 2, 1, 2, 1])
    names = ["a", "b", "c"]
    result = metrics.classification_metrics(probabilities, labels, names)
    assert result["accuracy"] == pytest.approx(5 / 6)
    assert result["auroc"]["c"] == pytest.approx(1.0)
    # class a: positive 0.7 vs negatives 0.1 0.2 0.5 0.3 0.1 -> all below: 1.0
    assert result["auroc"]["a"] == pytest.approx(1.0)
    # class b: positives 0.8 0.4 0.6 vs negatives 0.2 0.2 0.3: all above
    assert result["auroc"]["b"] == pytest.approx(1.0)
    fixed = {"b": metrics.OperatingPoint(0.5, 0.0, 0.0, "youden")}
    applied = metrics.classification_metrics(probabilities, labels, names, fixed)
    assert applied["operating_points"]["b"]["threshold"] == 0.5
    assert applied["operating_points"]["b"]["sensitivity"] == pytest.approx(2 / 3)
    assert applied["operating_points"]["b"]["specificity"] == pytest.approx(1.0)
    assert metrics.summary_auroc(result, names) == pytest.approx(result["auroc_mean"])


def test_classification_metrics_intervals_hold_their_figures():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 200)
    positive = rng.normal(size=200) + 1.5 * labels
    probabilities = np.c_[1 - 1 / (1 + np.exp(-positive)), 1 / (1 + np.exp(-positive))]
    plain = metrics.classification_metrics(probabilities, labels, ["NORMAL", "PNEUMONIA"])
    assert "intervals" not in plain  # only asked for on the test split
    result = metrics.classification_metrics(probabilities, labels, ["NORMAL", "PNEUMONIA"],
                                             intervals=True)
    for name in ("NORMAL", "PNEUMONIA"):
        low, high = result["intervals"]["auroc"][name]
        assert low < result["auroc"][name] < high
        point = result["operating_points"][name]
        for figure in ("sensitivity", "specificity"):
            low, high = result["intervals"][figure][name]
            assert low <= point[figure] <= high


def _binormal(rng, n_pos, n_neg, separation):
    labels = np.r_[np.ones(n_pos, bool), np.zeros(n_neg, bool)]
    return labels, rng.normal(size=n_pos + n_neg) + separation * labels


def test_auroc_interval_agrees_with_a_plain_bootstrap_loop():
    rng = np.random.default_rng(0)
    labels, scores = _binormal(rng, 120, 80, 1.5)
    scores = np.round(scores, 1)  # ties too
    positives, negatives = scores[labels], scores[~labels]
    resampled_labels = np.r_[np.ones(120, bool), np.zeros(80, bool)]
    plain = [metrics.auroc(resampled_labels, np.r_[rng.choice(positives, 120),
                                                   rng.choice(negatives, 80)])
             for _ in range(1000)]
    expected = np.percentile(plain, [2.5, 97.5])
    # Different random draws: the two agree to Monte Carlo error, not to the last digit.
    np.testing.assert_allclose(metrics.auroc_interval(labels, scores), expected, atol=0.012)


def test_auroc_interval_covers_the_true_value_about_95_in_100_times():
    from math import erf

    separation = 1.2
    true_auroc = 0.5 * (1 + erf(separation / 2))  # binormal, unit variances: Phi(d / sqrt 2)
    rng = np.random.default_rng(1)
    covered = 0
    for trial in range(100):
        labels, scores = _binormal(rng, 60, 40, separation)
        low, high = metrics.auroc_interval(labels, scores, resamples=500, seed=trial)
        covered += low <= true_auroc <= high
    assert 88 <= covered <= 99  # seeded, so this count is the same on every run


def test_auroc_interval_edge_cases():
    labels = np.array([1, 1, 0, 0], bool)
    assert metrics.auroc_interval(labels, np.array([0.9, 0.8, 0.2, 0.1])) == (1.0, 1.0)
    assert metrics.auroc_interval(labels, np.full(4, 0.5)) == (0.5, 0.5)
    scores = np.random.default_rng(2).random(4)
    assert metrics.auroc_interval(labels, scores) == metrics.auroc_interval(labels, scores)
    with pytest.raises(ValueError, match="positive and one negative"):
        metrics.auroc_interval(np.ones(3, bool), np.random.default_rng(0).random(3))


def test_wilson_interval_by_hand():
    # 8 of 10: the textbook Wilson 95 % interval is 0.490-0.943.
    low, high = metrics.proportion_interval(8, 10)
    assert (low, high) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))
    low, high = metrics.proportion_interval(0, 10)
    assert low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(0.2775, abs=1e-4)
    assert metrics.proportion_interval(10, 10)[1] == pytest.approx(1.0)
    assert np.isnan(metrics.proportion_interval(0, 0)).all()


@pytest.mark.parametrize("names, findings", [
    (["NORMAL", "PNEUMONIA"], ["PNEUMONIA"]),
    (["pneumonia", "normal"], ["pneumonia"]),  # the finding wherever it sorts
    (["Negative", "Positive"], ["Positive"]),
    (["cat", "dog"], ["dog"]),  # no reference class: the second, as labels 0/1 suggest
    (["normal", "negative"], ["negative"]),
    (["No Finding", "effusion", "nodule"], ["effusion", "nodule"]),
    (["a", "b", "c"], ["a", "b", "c"]),
])
def test_finding_classes_leave_out_the_normal_class(names, findings):
    assert metrics.finding_classes(names) == findings


def test_summary_auroc_follows_the_finding_for_two_classes():
    scored = {"auroc": {"pneumonia": 0.9, "normal": 0.9}, "auroc_mean": 0.5}
    assert metrics.summary_auroc(scored, ["pneumonia", "normal"]) == 0.9
    assert metrics.summary_auroc(scored, ["a", "b", "c"]) == 0.5
