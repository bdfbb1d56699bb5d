"""ROC, AUROC and operating points in plain numpy (no torch, no scikit-learn).

Scores are "higher means more likely positive". Ties are handled exactly: tied scores form
one ROC step, and the AUROC equals the Mann-Whitney probability P(pos > neg) + 0.5 P(tie).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


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
    predicted = np.asarray(scores) >= threshold
    positives, negatives = labels.sum(), (~labels).sum()
    sensitivity = float((predicted & labels).sum() / positives) if positives else float("nan")
    specificity = float((~predicted & ~labels).sum() / negatives) if negatives else float("nan")
    return sensitivity, specificity


def choose_operating_point(labels: np.ndarray, scores: np.ndarray,
                           method: str = "youden") -> OperatingPoint:
    """``youden`` (max sensitivity + specificity - 1) or ``sensitivity:0.95`` (the highest
    threshold that reaches that sensitivity, i.e. the best specificity that keeps it)."""
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
    else:
        raise ValueError(f"unknown operating point method {method!r}")
    return OperatingPoint(float(thresholds[best]), float(tpr[best]), float(1.0 - fpr[best]),
                          method)


def classification_metrics(probabilities: np.ndarray, labels: np.ndarray,
                           class_names: list[str],
                           operating_points: dict[str, OperatingPoint] | None = None,
                           method: str = "youden") -> dict:
    """Accuracy, per-class one-vs-rest AUROC and sensitivity/specificity at a threshold.

    With ``operating_points`` (chosen on validation) they are applied as given; without,
    they are chosen on these data by ``method``. The result is JSON-able.
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
    values = list(result["auroc"].values())
    result["auroc_mean"] = float(np.mean(values)) if values else float("nan")
    return result


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
