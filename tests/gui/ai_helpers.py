"""Shared set-up for the AI GUI tests: tiny real ONNX models installed as user models.

The models come from ``tests/inference/onnx_models.py`` (built with onnx.helper, known
outputs) and are installed with the registry's own ``import_model`` into the test's
MEDVIEWER_HOME; the shipped models/ folder is hidden so results do not depend on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medviewer import paths
from medviewer.inference import runtime
from medviewer.inference.registry import ModelEntry, import_model
from tests.inference import onnx_models


@pytest.fixture
def no_builtin_models(tmp_path_factory, monkeypatch) -> Path:
    folder = tmp_path_factory.mktemp("builtin-models")
    monkeypatch.setattr(paths, "BUILTIN_MODELS_DIR", folder)
    runtime.clear_session_cache()
    yield folder
    runtime.clear_session_cache()


def build_model(folder: Path, builder: str, name: str, builder_args: dict | None = None,
                **card_overrides) -> Path:
    """Write a test model and its card into ``folder``; returns the .onnx path.

    ``operating_points`` replaces the default ones (other card sections are merged).
    """
    onnx_path = getattr(onnx_models, f"{builder}_model")(folder / name / f"{name}.onnx",
                                                         **(builder_args or {}))
    operating_points = card_overrides.pop("operating_points", None)
    card_path = onnx_models.write_card(onnx_path, **card_overrides)
    if operating_points is not None:
        card = json.loads(card_path.read_text(encoding="utf-8"))
        card["operating_points"] = operating_points
        card_path.write_text(json.dumps(card, indent=2), encoding="utf-8")
    return onnx_path


def install_mean_model(folder: Path, name: str = "mean-test", threshold: float = 0.5,
                       **card_overrides) -> ModelEntry:
    """probabilities = [1 - mean, mean] of the 16x16 input; 'finding' flagged at threshold."""
    card_overrides.setdefault("operating_points",
                              {"finding": {"threshold": threshold, "method": "fixed for tests"}})
    return import_model(build_model(folder, "mean", name, **card_overrides))


def install_cam_model(folder: Path, name: str = "cam-test", size: int = 64,
                      pool: int = 8, **card_overrides) -> ModelEntry:
    """Class 1's activation map is the input averaged over pool x pool blocks."""
    path = build_model(folder, "cam", name, {"height": size, "width": size, "pool": pool},
                       input={"channels": 1, "height": size, "width": size},
                       outputs={"cam": "cam"}, **card_overrides)
    return import_model(path)


def install_region_model(folder: Path, name: str = "region-test", size: int = 32,
                         region: tuple[int, int, int, int] = (0, 8, 16, 32)) -> ModelEntry:
    """No CAM output: only the input region (y0, y1, x0, x1) drives 'finding'."""
    path = build_model(folder, "region", name, {"height": size, "width": size,
                                                "region": region},
                       input={"channels": 1, "height": size, "width": size})
    return import_model(path)


def grey_png(path: Path, values: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values, np.uint8)).save(path)
    return path


def uniform_png(path: Path, value: int, rows: int = 40, cols: int = 64) -> Path:
    return grey_png(path, np.full((rows, cols), value, np.uint8))
