"""The out-of-distribution check: fitted statistics in a sidecar, scored in the same pass."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medviewer.inference import registry
from medviewer.inference.model_card import ModelCard, ModelError
from medviewer.inference.ood import load_statistics
from medviewer.inference.predict import predict_paths
from medviewer.training import ood
from tests.inference import onnx_models
from tests.inference.conftest import write_grey_png


def _gated_model(folder):
    """features = [mean, max]; training images were mid-grey with a bright spot."""
    path = onnx_models.features_model(folder / "gated.onnx")
    rng = np.random.default_rng(0)
    train = np.c_[rng.normal(0.5, 0.02, 400), rng.normal(1.0, 0.002, 400)]
    labels = (train[:, 0] > 0.5).astype(int)
    val = np.c_[rng.normal(0.5, 0.02, 200), rng.normal(1.0, 0.002, 200)]
    check = ood.fit_ood_check(path, (train, labels), val, 2)
    onnx_models.write_card(path, name="gated", outputs={"features": "features"},
                           ood=check.to_dict())
    return path, check


def test_a_read_gets_its_score_and_an_unusual_image_is_flagged(tmp_path):
    path, check = _gated_model(tmp_path / "src")
    assert 0.04 <= check.detail["flagged_unusual"]["validation"] <= 0.06
    entry = registry.import_model(path)
    assert (entry.onnx_path.parent / "gated.ood.npz").is_file()  # copied with the model
    usual = np.full((16, 16), 128, np.uint8)
    usual[0, 0], usual[1, 1] = 255, 0  # display range 0..255: intensities stay as stored
    dark = np.zeros((16, 16), np.uint8)
    dark[0, 0] = 255
    inputs = [write_grey_png(tmp_path / "usual.png", usual),
              write_grey_png(tmp_path / "dark.png", dark)]
    normal, unusual = predict_paths(inputs, entry, device="cpu")
    assert normal.ood is False and normal.ood_score < check.threshold
    assert unusual.ood is True and unusual.ood_score > 10 * check.threshold
    assert unusual.to_dict()["ood"] is True and unusual.to_dict()["ood_score"] > 0


def test_a_model_without_the_check_still_reads_and_says_so(install, kermany_images):
    entry = install("mean")
    [prediction] = predict_paths(kermany_images[:1], entry, device="cpu")
    assert prediction.ok and prediction.ood is None and prediction.ood_score is None


def test_a_changed_or_missing_sidecar_is_refused(tmp_path):
    path, _ = _gated_model(tmp_path / "src")
    sidecar = path.with_suffix(".ood.npz")
    data = sidecar.read_bytes()
    sidecar.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ModelError, match="does not match the SHA-256 in the card"):
        registry.import_model(path)
    sidecar.unlink()
    with pytest.raises(ModelError, match="out-of-distribution file 'gated.ood.npz' is "
                                         "missing"):
        registry.import_model(path)


def test_sidecar_round_trip_and_card_round_trip(tmp_path):
    path, check = _gated_model(tmp_path / "src")
    statistics = load_statistics(path.with_suffix(".ood.npz"))
    assert statistics.means.shape == (2, 2) and statistics.precision.shape == (2, 2)
    card = ModelCard.load(path.with_suffix(".json"))
    again = ModelCard.from_dict(json.loads(json.dumps(card.to_dict())))
    assert again.ood == card.ood and again.outputs.features == "features"
    bad = card.to_dict()
    bad["ood"]["file"] = "../elsewhere.npz"
    with pytest.raises(ModelError, match="inside the model's folder"):
        ModelCard.from_dict(bad)
    bad = card.to_dict()
    del bad["outputs"]["features"]
    with pytest.raises(ModelError, match="needs outputs.features"):
        ModelCard.from_dict(bad)


@pytest.mark.parametrize("change, message", [
    ({"no_finding_class": "cat"}, "no_finding_class 'cat' is not one of the classes"),
    ({"no_finding_class": "finding"}, "cannot have an operating point"),
    ({"calibration": {"temperature": 0}}, "temperature must be a number between"),
    ({"intended_scope": {"patient_age_years": [9, 2]}}, "patient_age_years must be"),
    ({"intended_scope": {"modalities": "CR"}}, "intended_scope.modalities' must be list"),
])
def test_new_card_fields_are_checked_in_one_sentence(tmp_path, change, message):
    path = onnx_models.mean_model(tmp_path / "m.onnx")
    card = onnx_models.card_dict(path)
    card.update(change)
    with pytest.raises(ModelError, match=message):
        ModelCard.from_dict(card)
