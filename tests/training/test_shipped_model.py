"""The shipped demo model: its card's test figures are what `medviewer predict` reproduces.

Runs the inference package's own predict pipeline (decode, preprocess, onnxruntime) over the
official Kermany test split and recomputes AUROC and sensitivity/specificity at the card's
operating point. Also runnable as a script: ``python -m tests.training.test_shipped_model``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medviewer.paths import BUILTIN_MODELS_DIR
from medviewer.training import metrics

MODEL_NAME = "pneumonia-demo"


def _shipped_entry():
    from medviewer.inference import registry

    entries = [e for e in registry.scan_models(include_user=False)[0] if e.name == MODEL_NAME]
    assert entries, f"no {MODEL_NAME} model with a card in {BUILTIN_MODELS_DIR}"
    return max(entries, key=lambda e: e.version)


def reproduce(shared_data: Path) -> tuple[dict, dict]:
    """(the card's test metrics, the same metrics recomputed through predict)."""
    from medviewer.inference.predict import predict_paths

    entry = _shipped_entry()
    card = entry.card
    test_dir = shared_data / "xray/kermany224/test"
    files = sorted(p for c in card.classes for p in (test_dir / c).iterdir())
    labels = np.array([card.classes.index(p.parent.name) for p in files])
    predictions = predict_paths([str(p) for p in files], entry, audit=False)
    by_path = {str(p.path): p for p in predictions}
    assert all(by_path[str(f)].ok for f in files)
    probabilities = np.array([[by_path[str(f)].score(c).probability for c in card.classes]
                              for f in files])
    points = {name: metrics.OperatingPoint(op.threshold, 0.0, 0.0, op.method)
              for name, op in card.operating_points.items()}
    recomputed = metrics.classification_metrics(probabilities, labels, card.classes, points,
                                                intervals=True)
    return card.metrics, recomputed


@pytest.mark.slow
def test_card_metrics_are_reproduced_by_predict(shared_data):
    card_metrics, recomputed = reproduce(shared_data)
    assert card_metrics["n"] == recomputed["n"] == 624
    assert recomputed["accuracy"] == pytest.approx(card_metrics["accuracy"], abs=1e-9)
    for name, value in card_metrics["auroc"].items():
        assert recomputed["auroc"][name] == pytest.approx(value, abs=1e-6)
    # Only the finding has a threshold (fixed on validation): a normal image is never flagged.
    assert list(_shipped_entry().card.operating_points) == ["PNEUMONIA"]
    for name in _shipped_entry().card.operating_points:
        shipped = card_metrics["operating_points"][name]
        again = recomputed["operating_points"][name]
        assert again["sensitivity"] == pytest.approx(shipped["sensitivity"], abs=1e-9)
        assert again["specificity"] == pytest.approx(shipped["specificity"], abs=1e-9)
    # The intervals are seeded; only last-bit differences in the scores could move them.
    intervals, again = card_metrics["intervals"], recomputed["intervals"]
    for name, bounds in intervals["auroc"].items():
        assert again["auroc"][name] == pytest.approx(bounds, abs=1e-3)
    for name in _shipped_entry().card.operating_points:
        for figure in ("sensitivity", "specificity"):
            assert again[figure][name] == pytest.approx(intervals[figure][name], abs=1e-3)


if __name__ == "__main__":
    from tests.conftest import SHARED_DATA

    card_metrics, recomputed = reproduce(SHARED_DATA)
    print(json.dumps({"card": card_metrics, "predict": recomputed}, indent=1))
