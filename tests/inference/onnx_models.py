"""Tiny real ONNX models with known outputs, built with onnx.helper, and their model cards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from medviewer.inference.registry import file_sha256

OPSET = 17
IR_VERSION = 8  # onnx writes a newer IR than onnxruntime may read; pin what both accept


def _save(nodes: list, inputs: list, outputs: list, path: Path,
          initializers: list | None = None) -> Path:
    graph = helper.make_graph(nodes, path.stem.replace("-", "_"), inputs, outputs,
                              initializer=initializers or [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="medviewer-tests")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _image_input(channels: int, height: int | str, width: int | str, name: str = "image",
                 batch: int | str = "N"):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch, channels, height, width])


def _two_class_from_mean(mean_name: str) -> tuple[list, Any]:
    """Nodes turning m [N, 1] into probabilities [N, 2] = [1 - m, m]."""
    nodes = [
        helper.make_node("Constant", [], ["one"], value=numpy_helper.from_array(
            np.array(1.0, np.float32), "one")),
        helper.make_node("Sub", ["one", mean_name], ["not_mean"]),
        helper.make_node("Concat", ["not_mean", mean_name], ["probabilities"], axis=1),
    ]
    out = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])
    return nodes, out


def mean_model(path: Path, channels: int = 1, height: int = 16, width: int = 16,
               batch: int | str = "N") -> Path:
    """probabilities = [1 - mean(x), mean(x)] over all channels and pixels."""
    nodes = [helper.make_node("ReduceMean", ["image"], ["mean4"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Flatten", ["mean4"], ["mean"], axis=1)]
    head, out = _two_class_from_mean("mean")
    return _save(nodes + head, [_image_input(channels, height, width, batch=batch)], [out], path)


def cam_model(path: Path, height: int = 64, width: int = 64, pool: int = 8) -> Path:
    """cam = [-f, f] with f = AveragePool(x, pool) [N, 1, h, w]; probabilities from mean(f).

    So class 1's activation map is the input downsampled by ``pool``: its peak sits where the
    input is brightest.
    """
    nodes = [
        helper.make_node("AveragePool", ["image"], ["features"], kernel_shape=[pool, pool],
                         strides=[pool, pool]),
        helper.make_node("Neg", ["features"], ["neg_features"]),
        helper.make_node("Concat", ["neg_features", "features"], ["cam"], axis=1),
        helper.make_node("GlobalAveragePool", ["features"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["mean"], axis=1),
    ]
    head, out = _two_class_from_mean("mean")
    cam_out = helper.make_tensor_value_info("cam", TensorProto.FLOAT,
                                            ["N", 2, height // pool, width // pool])
    return _save(nodes + head, [_image_input(1, height, width)], [out, cam_out], path)


def features_model(path: Path, height: int = 16, width: int = 16) -> Path:
    """The mean model plus ``features`` [N, 2] = [mean(x), max(x)]: an OOD check's input."""
    nodes = [helper.make_node("ReduceMean", ["image"], ["mean4"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Flatten", ["mean4"], ["mean"], axis=1),
             helper.make_node("ReduceMax", ["image"], ["max4"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Flatten", ["max4"], ["max"], axis=1),
             helper.make_node("Concat", ["mean", "max"], ["features"], axis=1)]
    head, out = _two_class_from_mean("mean")
    features = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 2])
    return _save(nodes + head, [_image_input(1, height, width)], [out, features], path)


def region_model(path: Path, height: int, width: int, region: tuple[int, int, int, int]) -> Path:
    """probabilities = [1 - m, m], m = mean of x[:, :, y0:y1, x0:x1]: only that region counts."""
    y0, y1, x0, x1 = region
    consts = {"starts": [y0, x0], "ends": [y1, x1], "axes": [2, 3]}
    nodes = [helper.make_node("Constant", [], [k], value=numpy_helper.from_array(
        np.array(v, np.int64), k)) for k, v in consts.items()]
    nodes += [helper.make_node("Slice", ["image", "starts", "ends", "axes"], ["region"]),
              helper.make_node("ReduceMean", ["region"], ["mean4"], axes=[1, 2, 3], keepdims=1),
              helper.make_node("Flatten", ["mean4"], ["mean"], axis=1)]
    head, out = _two_class_from_mean("mean")
    return _save(nodes + head, [_image_input(1, height, width)], [out], path)


def logits_model(path: Path, classes: int = 3, height: int = 8, width: int = 8) -> Path:
    """A third-party style classifier: one output 'logits' [N, classes] = mean(x) * [0, 1, 2...]."""
    weights = numpy_helper.from_array(np.arange(classes, dtype=np.float32)[None, :], "weights")
    nodes = [helper.make_node("ReduceMean", ["input"], ["mean4"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Flatten", ["mean4"], ["mean"], axis=1),
             helper.make_node("MatMul", ["mean", "weights"], ["logits"])]
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])
    return _save(nodes, [_image_input(1, height, width, "input")], [out], path,
                 initializers=[weights])


def external_data_model(path: Path, location: str) -> Path:
    """mean model scaled by a weight stored as external data at ``location`` (not checked)."""
    scale = numpy_helper.from_array(np.ones((1, 1), np.float32), "scale")
    nodes = [helper.make_node("ReduceMean", ["image"], ["mean4"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Flatten", ["mean4"], ["raw_mean"], axis=1),
             helper.make_node("Mul", ["raw_mean", "scale"], ["mean"])]
    head, out = _two_class_from_mean("mean")
    graph = helper.make_graph(nodes + head, "external", [_image_input(1, 16, 16)], [out],
                              initializer=[scale])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.external_data_helper.set_external_data(model.graph.initializer[0], location=location)
    model.graph.initializer[0].data_location = TensorProto.EXTERNAL
    model.graph.initializer[0].ClearField("raw_data")
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))  # the tensor is marked external: nothing is written for it
    return path


def card_dict(onnx_path: Path, **overrides: Any) -> dict[str, Any]:
    """A valid card for the two-class test models; nested keys overridden by dict merge."""
    card: dict[str, Any] = {
        "format_version": 1,
        "name": onnx_path.stem,
        "version": "1.0",
        "task": "multiclass",
        "description": "test model",
        "classes": ["normal", "finding"],
        "input": {"channels": 1, "height": 16, "width": 16},
        "preprocessing": {"source": "display", "resize": "stretch", "mean": [0.0],
                          "std": [1.0], "channel_mode": "replicate"},
        "outputs": {"probabilities": "probabilities", "cam": None, "activation": "none"},
        "operating_points": {"finding": {"threshold": 0.5, "method": "fixed for tests"}},
        "intended_use": "tests only",
        "training": {"data": "none"},
        "metrics": {},
        "sha256": file_sha256(onnx_path),
    }
    for key, value in overrides.items():
        if value and isinstance(value, dict) and isinstance(card.get(key), dict):
            card[key] = {**card[key], **value}
        else:
            card[key] = value
    return card


def write_card(onnx_path: Path, **overrides: Any) -> Path:
    card_path = onnx_path.with_suffix(".json")
    card_path.write_text(json.dumps(card_dict(onnx_path, **overrides), indent=2), encoding="utf-8")
    return card_path
