"""Fixtures for the inference tests: tiny ONNX models installed as user models, test images."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medviewer import paths
from medviewer.inference import runtime
from medviewer.inference.registry import ModelEntry, import_model
from tests.inference import onnx_models


@pytest.fixture(autouse=True)
def fresh_sessions():
    """Sessions are cached per model file; each test starts and ends with an empty cache."""
    runtime.clear_session_cache()
    yield
    runtime.clear_session_cache()


@pytest.fixture(autouse=True)
def no_builtin_models(tmp_path_factory, monkeypatch) -> Path:
    """Tests see only the models they install (the shipped ones are checked on their own)."""
    folder = tmp_path_factory.mktemp("builtin-models")
    monkeypatch.setattr(paths, "BUILTIN_MODELS_DIR", folder)
    return folder


@pytest.fixture
def install(tmp_path) -> Callable[..., ModelEntry]:
    """install(builder_name, card overrides..., **builder kwargs) -> the imported ModelEntry."""

    def _install(builder: str, name: str | None = None, builder_args: dict | None = None,
                 **card_overrides) -> ModelEntry:
        source = tmp_path / "sources" / (name or builder)
        onnx_path = getattr(onnx_models, f"{builder}_model")(source / f"{name or builder}.onnx",
                                                             **(builder_args or {}))
        onnx_models.write_card(onnx_path, **card_overrides)
        return import_model(onnx_path)

    return _install


@pytest.fixture
def kermany_images(shared_data) -> list[Path]:
    folder = shared_data / "xray" / "kermany224" / "test"
    images = sorted((folder / "NORMAL").glob("*.jpeg"))[:3] + sorted(
        (folder / "PNEUMONIA").glob("*.jpeg"))[:3]
    assert len(images) == 6, f"kermany224 test images missing under {folder}"
    return images


def write_grey_png(path: Path, values: np.ndarray) -> Path:
    """An 8-bit grey PNG; include 0 and 255 so the full-range display window is the identity."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values, np.uint8)).save(path)
    return path


@pytest.fixture
def broken_dicom(tmp_path, shared_data) -> Path:
    """A real DICOM file cut short inside its pixel data."""
    source = shared_data / "dicom" / "wg04" / "REF" / "CT1_UNC"
    data = source.read_bytes()
    target = tmp_path / "broken" / "CT1_truncated.dcm"
    target.parent.mkdir(parents=True)
    target.write_bytes(data[: len(data) // 2])
    return target


def copy_into(folder: Path, files: list[Path]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for f in files:
        out.append(Path(shutil.copy(f, folder / f.name)))
    return out
