"""ROC, AUROC and operating points in plain numpy (no torch, no scikit-learn).

Scores are "higher means more likely positive". Ties are handled exactly: tied scores form
one ROC step, and the AUROC equals the Mann-Whitney probability P(pos > neg) + 0.5 P(tie).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np

from medviewer.inference.decision import at_or_above


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                               np.ndarray]:
    """False-positive rates, true-positive rates and the thresholds giving them.

    Predicting positive means ``score >= threshold``. The first point is (0, 0) at +inf.
    """
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError("labels and scores differ in length")
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        raise ValueError("ROC needs at least one positive and one negative")
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    # The last index of each run of tied scores closes one ROC step.
    distinct = np.r_[np.nonzero(np.diff(sorted_scores))[0], sorted_labels.size - 1]
    tp = np.cumsum(sorted_labels)[distinct]
    fp = (distinct + 1) - tp
    tpr = np.r_[0.0, tp / positives]
    fpr = np.r_[0.0, fp / negatives]
    thresholds = np.r_[np.inf, sorted_scores[distinct]]
    return fpr, tpr, thresholds


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(np.trapezoid(tpr, fpr))


# The coverage of every interval the model card reports.
INTERVAL_LEVEL = 0.95


def auroc_interval(labels: np.ndarray, scores: np.ndarray, level: float = INTERVAL_LEVEL,
                   resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUROC.

    Positives and negatives are resampled separately, so every resample keeps the test
    set's class counts. A resample is a count per original image; each positive's share of
    negatives below it (ties half) is then a lookup in the cumulative counts of the sorted
    negatives, so all resamples cost O(resamples x images). Seeded: same data, same interval.
    """
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positive_scores, negatives_sorted = scores[labels], np.sort(scores[~labels])
    n_pos, n_neg = positive_scores.size, negatives_sorted.size
    if n_pos == 0 or n_neg == 0:
        raise ValueError("an AUROC interval needs at least one positive and one negative")
    below = np.searchsorted(negatives_sorted, positive_scores, side="left")
    below_or_tied = np.searchsorted(negatives_sorted, positive_scores, side="right")
    rng = np.random.default_rng(seed)
    values = np.empty(resamples)
    chunk = max(1, 2_000_000 // (n_pos + n_neg))  # bounds memory on large test sets
    for first in range(0, resamples, chunk):
        count = min(chunk, resamples - first)
        positive_counts = rng.multinomial(n_pos, np.full(n_pos, 1.0 / n_pos), size=count)
        negative_counts = rng.multinomial(n_neg, np.full(n_neg, 1.0 / n_neg), size=count)
        cumulative = np.zeros((count, n_neg + 1))
        np.cumsum(negative_counts, axis=1, out=cumulative[:, 1:])
        wins = (cumulative[:, below] + cumulative[:, below_or_tied]) / 2.0
        values[first:first + count] = (positive_counts * wins).sum(axis=1) / (n_pos * n_neg)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def proportion_interval(successes: int, total: int,
                        level: float = INTERVAL_LEVEL) -> tuple[float, float]:
    """Wilson score interval of a proportion such as a sensitivity: unlike the textbook
    p +- z*se it stays inside [0, 1] and keeps its coverage near 0 and 1."""
    if total <= 0:
        return float("nan"), float("nan")
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z / (1 + z * z / total) * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float
    sensitivity: float
    specificity: float
    method: str

    def to_dict(self) -> dict:
        return asdict(self)


def sensitivity_specificity(labels: np.ndarray, scores: np.ndarray,
                            threshold: float) -> tuple[float, float]:
    labels = np.asarray(labels).astype(bool)
    predicted = at_or_above(np.asarray(scores), threshold)  # the reading rule, exactly
    positives, negatives = labels.sum(), (~labels).sum()
    sensitivity = float((predicted & labels).sum() / positives) if positives else float("nan")
    specificity = float((~predicted & ~labels).sum() / negatives) if negatives else float("nan")
    return sensitivity, specificity


def choose_operating_point(labels: np.ndarray, scores: np.ndarray,
                           method: str = "youden") -> OperatingPoint:
    """``youden`` (max sensitivity + specificity - 1), ``sensitivity:0.95`` (the highest
    threshold that reaches that sensitivity, i.e. the best specificity that keeps it) or
    ``specificity:0.9`` (the lowest threshold that keeps that specificity, i.e. the best
    sensitivity at it)."""
    fpr, tpr, thresholds = roc_curve(labels, scores)
    finite = np.isfinite(thresholds)
    if method == "youden":
        # Rounded so that float noise cannot break a tie: the highest threshold wins ties.
        j = np.where(finite, np.round(tpr - fpr, 12), -np.inf)
        best = int(np.argmax(j))
    elif method.startswith("sensitivity:"):
        target = float(method.split(":", 1)[1])
        reaching = np.nonzero(finite & (tpr >= target - 1e-12))[0]
        best = int(reaching[0]) if reaching.size else int(np.nonzero(finite)[0][-1])
    elif method.startswith("specificity:"):
        target = float(method.split(":", 1)[1])
        keeping = np.nonzero(finite & (1.0 - fpr >= target - 1e-12))[0]
        best = int(keeping[-1]) if keeping.size else int(np.nonzero(finite)[0][0])
    else:
        raise ValueError(f"unknown operating point method {method!r}")
    return OperatingPoint(float(thresholds[best]), float(tpr[best]), float(1.0 - fpr[best]),
                          method)


def classification_metrics(probabilities: np.ndarray, labels: np.ndarray,
                           class_names: list[str],
                           operating_points: dict[str, OperatingPoint] | None = None,
                           method: str = "youden", intervals: bool = False) -> dict:
    """Accuracy, per-class one-vs-rest AUROC and sensitivity/specificity at a threshold.

    With ``operating_points`` (chosen on validation) they are applied as given; without,
    they are chosen on these data by ``method``. ``intervals`` adds 95 % intervals under
    "intervals" (bootstrap for AUROC, Wilson for sensitivity and specificity): a test
    figure's uncertainty, too slow to add to every epoch's validation. JSON-able.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    result: dict = {
        "n": int(labels.size),
        "accuracy": float((probabilities.argmax(axis=1) == labels).mean()) if labels.size else
        float("nan"),
        "auroc": {}, "operating_points": {},
    }
    for index, name in enumerate(class_names):
        positive = labels == index
        if positive.all() or not positive.any():
            continue
        scores = probabilities[:, index]
        result["auroc"][name] = auroc(positive, scores)
        if operating_points and name in operating_points:
            chosen = operating_points[name]
            sens, spec = sensitivity_specificity(positive, scores, chosen.threshold)
            point = OperatingPoint(chosen.threshold, sens, spec, chosen.method)
        else:
            point = choose_operating_point(positive, scores, method)
        result["operating_points"][name] = point.to_dict()
        if intervals:
            spread = result.setdefault("intervals", {"level": INTERVAL_LEVEL, "auroc": {},
                                                     "sensitivity": {}, "specificity": {}})
            spread["auroc"][name] = list(auroc_interval(positive, scores))
            predicted = at_or_above(scores, point.threshold)
            spread["sensitivity"][name] = list(proportion_interval(
                int((predicted & positive).sum()), int(positive.sum())))
            spread["specificity"][name] = list(proportion_interval(
                int((~predicted & ~positive).sum()), int((~positive).sum())))
    values = list(result["auroc"].values())
    result["auroc_mean"] = float(np.mean(values)) if values else float("nan")
    return result


OPERATING_POINT_METHODS = ("youden", "sensitivity:X", "specificity:X")


def check_operating_point_method(method: str) -> str:
    """The method as given when it is one :func:`choose_operating_point` knows; else a
    ValueError with a sentence (for the command-line options)."""
    if method == "youden":
        return method
    kind, _, target = method.partition(":")
    try:
        value = float(target)
    except ValueError:
        value = -1.0
    if kind not in ("sensitivity", "specificity") or not 0.0 < value < 1.0:
        raise ValueError(f"An operating point is chosen by 'youden', 'sensitivity:X' or "
                         f"'specificity:X' with X between 0 and 1, not '{method}'.")
    return method


def method_in_words(method: str) -> str:
    """'sensitivity:0.95' -> 'target sensitivity 0.95'; 'youden' -> 'youden'."""
    kind, _, target = method.partition(":")
    return f"target {kind} {target}" if target else method


# ---------------------------------------------------------------- calibration


def brier_score(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean over images of the squared distance between the probability vector and the
    one-hot truth (multiclass Brier score; 0 is perfect, 2 the worst)."""
    probabilities = np.asarray(probabilities, np.float64)
    onehot = np.zeros_like(probabilities)
    onehot[np.arange(len(labels)), np.asarray(labels, np.int64)] = 1.0
    return float(((probabilities - onehot) ** 2).sum(axis=1).mean()) if len(labels) else \
        float("nan")


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, class_index: int | None
                     = None, bins: int = 10) -> list[dict]:
    """The reliability diagram's data: equal-width bins of predicted probability.

    ``class_index`` None: the top class's confidence against whether it was right (the
    usual multiclass diagram); a number: that class's probability against whether the image
    is of that class (one finding). Each bin: ``low``, ``high``, ``count``, ``mean_predicted``
    and ``observed`` (None for an empty bin). JSON-able; the wizard and the evaluation
    report plot it.
    """
    probabilities = np.asarray(probabilities, np.float64)
    labels = np.asarray(labels, np.int64)
    if class_index is None:
        predicted = probabilities.max(axis=1) if probabilities.size else np.zeros(0)
        outcome = (probabilities.argmax(axis=1) == labels) if probabilities.size else \
            np.zeros(0, bool)
    else:
        predicted = probabilities[:, class_index] if probabilities.size else np.zeros(0)
        outcome = labels == class_index
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin i holds low < p <= high; p == 0 goes into the first bin.
    which = np.clip(np.searchsorted(edges, predicted, side="left") - 1, 0, bins - 1)
    out = []
    for i in range(bins):
        inside = which == i
        count = int(inside.sum())
        out.append({"low": float(edges[i]), "high": float(edges[i + 1]), "count": count,
                    "mean_predicted": float(predicted[inside].mean()) if count else None,
                    "observed": float(outcome[inside].mean()) if count else None})
    return out


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray,
                               class_index: int | None = None, bins: int = 10) -> float:
    """ECE: the count-weighted mean |observed - mean predicted| over the reliability bins."""
    table = reliability_bins(probabilities, labels, class_index, bins)
    total = sum(b["count"] for b in table)
    if not total:
        return float("nan")
    return float(sum(b["count"] * abs(b["observed"] - b["mean_predicted"])
                     for b in table if b["count"]) / total)


def calibration_figures(probabilities: np.ndarray, labels: np.ndarray,
                        bins: int = 10) -> dict:
    """ECE (top-class confidence, 10 bins) and Brier score of one split; JSON-able."""
    return {"n": int(len(labels)), "ece": expected_calibration_error(probabilities, labels,
                                                                     None, bins),
            "brier": brier_score(probabilities, labels)}


# Class names that mean "nothing found": such a class is the reference, never a finding.
NEGATIVE_CLASS_NAMES = frozenset({"normal", "negative", "healthy", "no finding", "no_finding",
                                  "nofinding", "none", "0"})


def finding_classes(class_names: list[str]) -> list[str]:
    """The classes a reader is alerted to: those not named like "normal" / "negative".

    With two classes and neither so named, the second one (the usual "positive" label) is
    the finding. A model card gives operating points only for these classes, so a normal
    image is never "flagged" for being normal.
    """
    findings = [name for name in class_names
                if name.strip().lower() not in NEGATIVE_CLASS_NAMES]
    if len(class_names) == 2 and len(findings) != 1:
        return [class_names[1]]
    return findings or list(class_names)


def summary_auroc(metrics: dict, class_names: list[str]) -> float:
    """The figure early stopping watches: the finding for two classes, else the mean."""
    if len(class_names) == 2:
        finding = finding_classes(class_names)[0]
        if finding in metrics["auroc"]:
            return float(metrics["auroc"][finding])
    return float(metrics["auroc_mean"])
