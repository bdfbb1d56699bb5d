"""Model cards, the registry and every reason an import is refused."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from medviewer import paths
from medviewer.errors import UserError
from medviewer.inference.registry import (
    ModelCard, ModelCardError, ModelError, NoModelError, file_sha256, import_model, list_models,
    resolve_model, scan_models, verify_model_files)
from tests.inference import onnx_models


def _model(tmp_path, builder="mean", stem="m", **card):
    onnx_path = getattr(onnx_models, f"{builder}_model")(tmp_path / stem / f"{stem}.onnx")
    onnx_models.write_card(onnx_path, **card)
    return onnx_path


def _sentence(exc: BaseException) -> str:
    text = str(exc)
    assert isinstance(exc, UserError)
    assert "\n" not in text and text.endswith("."), text
    return text


# ---------------------------------------------------------------- the card


def test_card_round_trips_through_save_and_load(tmp_path):
    onnx_path = _model(tmp_path, extra_field={"kept": True},
                       operating_points={"finding": {"threshold": 0.31,
                                                     "method": "youden on validation",
                                                     "metrics": {"sensitivity": 0.9}}})
    card = ModelCard.load(onnx_path.with_suffix(".json"))
    assert card.operating_point("finding").method == "youden on validation"
    assert card.extra == {"extra_field": {"kept": True}}
    copy = tmp_path / "copy.json"
    card.save(copy)
    again = ModelCard.load(copy)
    assert again == card
    assert json.loads(copy.read_text())["extra_field"] == {"kept": True}


@pytest.mark.parametrize("change, words", [
    ({"classes": []}, "'classes' must be a non-empty list"),
    ({"classes": ["a", "A"]}, "class names must be unique"),
    ({"input": {"channels": 2}}, "input channels must be 1 or 3"),
    ({"preprocessing": {"source": "modality"}}, "needs a window"),
    ({"preprocessing": {"resize": "crop"}}, "resize 'crop'"),
    ({"preprocessing": {"std": [0.0]}}, "std values must be positive"),
    ({"preprocessing": {"mean": [0.1, 0.2]}}, "mean needs 1 or 1 values"),
    ({"outputs": {"activation": "relu"}}, "activation 'relu'"),
    ({"operating_points": {"other": {"threshold": 0.5}}}, "unknown class 'other'"),
    ({"operating_points": {"finding": {"threshold": 1.5}}}, "must be a probability"),
    ({"sha256": "abc"}, "'sha256' must be"),
    ({"name": "has space"}, "the name 'has space'"),
    ({"format_version": 99}, "newer than this MedViewer"),
    ({"input": {"height": "224"}}, "'input.height' must be int"),
])
def test_invalid_cards_are_refused_with_the_field_named(tmp_path, change, words):
    onnx_path = _model(tmp_path, **change)
    with pytest.raises(ModelCardError) as info:
        ModelCard.load(onnx_path.with_suffix(".json"))
    assert words in _sentence(info.value)
    assert "m.json" in str(info.value)


def test_card_that_is_not_json_names_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ModelCardError, match=r"bad\.json is not valid JSON"):
        ModelCard.load(bad)


# ---------------------------------------------------------------- import and refusals


def test_import_copies_model_and_card_into_the_user_dir(tmp_path):
    onnx_path = _model(tmp_path, stem="chest")
    entry = import_model(onnx_path)
    assert entry.source == "user"
    assert entry.onnx_path.parent.parent == paths.user_models_dir()
    assert file_sha256(entry.onnx_path) == file_sha256(onnx_path)
    assert ModelCard.load(entry.card_path).input.name == "image"  # filled in from the file
    assert [e.key for e in list_models()] == ["chest@1.0"]
    assert import_model(onnx_path).onnx_path == entry.onnx_path  # same file again: no-op


def test_hash_mismatch_is_refused(tmp_path):
    onnx_path = _model(tmp_path, sha256="1" * 64)
    with pytest.raises(ModelError) as info:
        import_model(onnx_path)
    assert "does not match the card" in _sentence(info.value)
    assert not any(paths.user_models_dir().iterdir())


@pytest.mark.parametrize("builder, card, words", [
    ("mean", {"input": {"channels": 3}}, "input channels is 1 in the model but 3 in the card"),
    ("mean", {"input": {"height": 32}}, "input height is 16 in the model but 32 in the card"),
    ("mean", {"classes": ["a", "b", "c"],
              "operating_points": {}}, "gives 2 classes but the card lists 3"),
    ("mean", {"outputs": {"probabilities": "scores"}}, "no output named 'scores'"),
    ("mean", {"outputs": {"cam": "cam"}}, "no output named 'cam'"),
    ("mean", {"input": {"name": "pixels"}}, "the card names input 'pixels'"),
    ("cam", {"classes": ["a", "b", "c"], "operating_points": {}, "input": {"height": 64, "width": 64},
             "outputs": {"probabilities": "cam"}}, "has rank 4, not 2"),
])
def test_inputs_and_outputs_that_disagree_with_the_card_are_refused(tmp_path, builder, card, words):
    onnx_path = _model(tmp_path, builder=builder, **card)
    with pytest.raises(ModelError) as info:
        import_model(onnx_path)
    assert words in _sentence(info.value)


def test_wrong_input_rank_is_refused(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["probabilities"], axes=[2], keepdims=0)], "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 2, 16])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "rank3.onnx"
    onnx.save(model, str(path))
    onnx_models.write_card(path)
    with pytest.raises(ModelError, match="has rank 3, not 4"):
        import_model(path)


@pytest.mark.parametrize("content", [b"this is a text file, not a model\n",
                                     bytes(range(256)) * 8, b""])
def test_files_that_are_not_onnx_are_refused(tmp_path, content):
    path = tmp_path / "fake.onnx"
    path.write_bytes(content)
    onnx_models.write_card(path)  # the hash matches: the content itself is the problem
    with pytest.raises(ModelError) as info:
        import_model(path)
    assert "is not a valid ONNX" in _sentence(info.value)


@pytest.mark.parametrize("location", ["../escape.bin", "sub/../../escape.bin",
                                      "/etc/passwd"])
def test_external_data_leaving_the_model_folder_is_refused(tmp_path, location):
    (tmp_path / "escape.bin").write_bytes(np.ones(1, np.float32).tobytes())
    path = onnx_models.external_data_model(tmp_path / "model" / "ext.onnx", location)
    onnx_models.write_card(path)
    with pytest.raises(ModelError) as info:
        import_model(path)
    assert f"refer to '{location}', outside the model's folder" in _sentence(info.value)


def test_external_data_inside_the_folder_is_hashed_and_copied(tmp_path):
    folder = tmp_path / "model"
    path = onnx_models.external_data_model(folder / "ext.onnx", "weights/scale.bin")
    (folder / "weights").mkdir()
    (folder / "weights" / "scale.bin").write_bytes(np.full(1, 2.0, np.float32).tobytes())
    onnx_models.write_card(path)
    with pytest.raises(ModelError, match="'weights/scale.bin' is not listed with a SHA-256"):
        import_model(path)
    digest = file_sha256(folder / "weights" / "scale.bin")
    onnx_models.write_card(path, external_data={"weights/scale.bin": "f" * 64})
    with pytest.raises(ModelError, match="does not match the SHA-256 in the card"):
        import_model(path)
    onnx_models.write_card(path, external_data={"weights/scale.bin": digest})
    entry = import_model(path)
    copied = entry.onnx_path.parent / "weights" / "scale.bin"
    assert copied.read_bytes() == (folder / "weights" / "scale.bin").read_bytes()
    # The installed copy really runs with its weights (mean x 2).
    from medviewer.inference.runtime import get_session

    out = get_session(entry, "cpu").run(np.full((1, 1, 16, 16), 0.25, np.float32))
    np.testing.assert_allclose(out.probabilities, [[0.5, 0.5]], atol=1e-6)


def test_a_model_onnxruntime_cannot_load_is_refused(tmp_path):
    from onnx import TensorProto, helper

    # Valid ONNX (custom domains are not checked) that no onnxruntime can run.
    graph = helper.make_graph(
        [helper.make_node("Frobnicate", ["image"], ["probabilities"], domain="com.example")],
        "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 16, 16])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.example", 1)])
    model.ir_version = 8
    path = tmp_path / "custom.onnx"
    onnx.save(model, str(path))
    onnx_models.write_card(path)
    with pytest.raises(ModelError) as info:
        import_model(path)
    text = _sentence(info.value)
    assert text.startswith("The model custom.onnx cannot be loaded by onnxruntime (")
    assert "Frobnicate" in text and "onnxruntime_src" not in text


def test_same_name_and_version_with_other_weights_is_refused(tmp_path):
    first = _model(tmp_path / "a", stem="chest", name="chest")
    import_model(first)
    second = onnx_models.logits_model(tmp_path / "b" / "chest.onnx", classes=2, height=16,
                                      width=16)
    onnx_models.write_card(second, input={"name": "input"}, outputs={"probabilities": "logits"})
    with pytest.raises(ModelError, match="already installed"):
        import_model(second)
    onnx_models.write_card(second, version="2.0", outputs={"probabilities": "logits"})
    assert import_model(second).key == "chest@2.0"


def test_missing_card_is_one_sentence(tmp_path):
    path = onnx_models.mean_model(tmp_path / "nocard.onnx")
    with pytest.raises(ModelCardError) as info:
        import_model(path)
    assert "has no model card" in _sentence(info.value)


# ---------------------------------------------------------------- listing and resolving


def test_resolve_by_name_version_default_and_first_builtin(tmp_path, monkeypatch):
    with pytest.raises(NoModelError) as info:
        resolve_model(None)
    assert "No AI model is installed" in _sentence(info.value)

    builtin = tmp_path / "builtin"
    monkeypatch.setattr(paths, "BUILTIN_MODELS_DIR", builtin)
    demo = onnx_models.mean_model(builtin / "demo.onnx")
    onnx_models.write_card(demo, name="demo")
    for version in ("1.2", "1.10"):
        path = _model(tmp_path / version, stem="chest", name="chest", version=version)
        import_model(path)
    assert resolve_model(None).key == "demo@1.0"  # first built-in without a default
    assert resolve_model("chest").key == "chest@1.10"  # versions compare as numbers
    assert resolve_model("CHEST@1.2").key == "chest@1.2"
    assert resolve_model(None, default_model="chest@1.2").key == "chest@1.2"
    with pytest.raises(NoModelError) as info:
        resolve_model("lungs")
    assert "No installed model is called 'lungs' (installed: chest@1.10, chest@1.2, demo@1.0)" \
        in _sentence(info.value)
    assert [e.source for e in list_models()] == ["built-in", "user", "user"]


def test_scan_reports_models_without_usable_cards(tmp_path):
    folder = paths.user_models_dir() / "orphan"
    onnx_models.mean_model(folder / "orphan.onnx")
    broken = onnx_models.mean_model(folder / "broken.onnx")
    broken.with_suffix(".json").write_text("[]")
    entries, problems = scan_models()
    assert entries == []
    reasons = sorted(p.reason for p in problems)
    assert "is invalid: it is not a JSON object" in reasons[0]
    assert "has no model card (orphan.json) beside it" in reasons[1]


def test_every_shipped_model_matches_its_card():
    from tests.conftest import PROJECT_ROOT

    shipped = sorted((PROJECT_ROOT / "models").glob("*.onnx")) + sorted(
        (PROJECT_ROOT / "models").glob("*/*.onnx"))
    if not shipped:
        pytest.skip("no model is shipped in models/ yet")
    for onnx_path in shipped:
        card = ModelCard.load(onnx_path.with_suffix(".json"))
        verify_model_files(onnx_path, card)
