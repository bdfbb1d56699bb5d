"""The shipped demo model: its card's test figures are what `medviewer predict` reproduces.

Runs the inference package's own predict pipeline (decode, preprocess, onnxruntime,
calibration) over the official Kermany test split and recomputes AUROC and
sensitivity/specificity at the card's operating point. Also runnable as a script:
``python -m tests.training.test_shipped_model``.

Since tools/add_model_gates.py calibrated the model (temperature fitted on validation), the
card's threshold and probabilities are in the calibrated scale: the threshold moved from
0.2425 to 0.1121, while AUROC (0.96698), accuracy and sensitivity/specificity at the point
(0.992 / 0.611) and their intervals are unchanged, as a monotone rescaling must leave them.
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


# Before calibration and graph surgery; a monotone rescaling must not move it.
AUROC_BEFORE_CALIBRATION = 0.9669844400613631
REFERENCE = Path(__file__).parent / "data" / "pneumonia-demo-1.3-original-outputs.npz"


def test_card_auroc_is_unchanged_by_calibration():
    card = _shipped_entry().card
    assert card.metrics["auroc"]["PNEUMONIA"] == pytest.approx(AUROC_BEFORE_CALIBRATION,
                                                               abs=1e-12)
    assert card.calibration is not None and card.metrics["calibrated"] is True
    assert card.no_finding_class == "NORMAL"
    assert card.ood is not None and card.outputs.features == "features"
    assert card.intended_scope is not None and card.intended_scope.patient_age_years == (1, 5)


def test_graph_surgery_left_every_existing_output_bit_for_bit(shared_data):
    """The original file's probabilities and CAM for eight test images (recorded before the
    features output was added) come out of the shipped file unchanged, weights too."""
    import onnxruntime as ort

    from medviewer.dicom.reader import open_instance
    from medviewer.inference.preprocess import prepare_instance

    entry = _shipped_entry()
    reference = np.load(REFERENCE, allow_pickle=False)
    files = [shared_data / "xray/kermany224" / name for name in reference["files"]]
    tensors = np.stack([prepare_instance(open_instance(f), entry.card).tensor for f in files])
    session = ort.InferenceSession(str(entry.onnx_path), providers=["CPUExecutionProvider"])
    probabilities, cam, features = session.run(["probabilities", "cam", "features"],
                                               {"image": tensors})
    assert np.array_equal(probabilities, reference["probabilities"])
    assert np.array_equal(cam, reference["cam"])
    assert features.shape == (8, 512)


def test_the_shipped_card_names_no_path_of_the_machine_it_was_built_on():
    text = _shipped_entry().card_path.read_text(encoding="utf-8")
    assert "/work/" not in text and "/tmp/" not in text and "/home/" not in text


if __name__ == "__main__":
    from tests.conftest import SHARED_DATA

    card_metrics, recomputed = reproduce(SHARED_DATA)
    print(json.dumps({"card": card_metrics, "predict": recomputed}, indent=1))
