"""The model registry: built-in models plus the user's imported models, and the checks a
model file passes before it is listed, imported or run.

The card and entry types live in ``model_card`` (a leaf both this module and ``runtime``
import); they are re-exported here, so ``registry.ModelCard`` keeps working. Everything here
reads ONNX files with ``onnx`` only (no weights are loaded to check a model's inputs and
outputs) and never imports torch. ``docs/model-card.md`` documents the format.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medviewer import paths
from medviewer.inference.model_card import (  # noqa: F401 - re-exported for callers
    ACTIVATIONS, CARD_FORMAT_VERSION, CHANNEL_MODES, INTERPOLATIONS, RESIZE_MODES, SOURCES,
    TASKS, Calibration, InputSpec, IntendedScope, ModelCard, ModelCardError, ModelEntry,
    ModelError, NoModelError, OodCheck, OperatingPoint, OutputSpec, Preprocessing, Window,
    _write_atomically, card_path_for, file_sha256,
)

log = logging.getLogger(__name__)

# ONNX TensorProto element types MedViewer can feed: FLOAT and FLOAT16.
_FLOAT_TYPES = {1: "float32", 10: "float16"}


# ---------------------------------------------------------------- checking an ONNX file


@dataclass(frozen=True)
class TensorInfo:
    name: str
    element_type: str  # 'float32', 'float16' or the ONNX type number as text
    shape: tuple[int | str | None, ...]  # ints for fixed dims, names/None for dynamic ones


@dataclass(frozen=True)
class OnnxSummary:
    """What a model file declares, read without loading any weights."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    external_files: tuple[str, ...]  # relative locations of external weight files
    opset: int


def _tensor_info(value_info: Any) -> TensorInfo:
    tensor_type = value_info.type.tensor_type
    dims: list[int | str | None] = []
    if tensor_type.HasField("shape"):
        for dim in tensor_type.shape.dim:
            if dim.HasField("dim_value"):
                dims.append(int(dim.dim_value))
            else:
                dims.append(dim.dim_param or None)
    elem = tensor_type.elem_type
    return TensorInfo(value_info.name, _FLOAT_TYPES.get(elem, str(elem)), tuple(dims))


def _all_tensors(graph: Any):
    """Every TensorProto of a graph: initializers, sparse ones, attributes, subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _all_tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _all_tensors(subgraph)


def read_onnx_summary(onnx_path: str | os.PathLike) -> OnnxSummary:
    """Parse a model file (weights stay on disk) and check it is a well-formed ONNX model.

    External-data locations must stay inside the model's folder; they are checked here
    without reading them.
    """
    import onnx  # local: only model handling needs it

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ModelError(f"The model file {onnx_path} does not exist.")
    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError, RuntimeWarning...
        raise ModelError(f"The model file {onnx_path} is not a valid ONNX file "
                         f"({_first_line(exc)}).") from None
    if not model.HasField("graph") or not model.graph.node or not model.graph.output:
        raise ModelError(f"The model file {onnx_path} is not a valid ONNX file "
                         "(it has no graph with nodes and outputs).")
    folder = onnx_path.parent.resolve()
    external: list[str] = []
    for tensor in _all_tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (folder / location).resolve()
        if (not location or Path(location).is_absolute() or Path(location).drive
                or not target.is_relative_to(folder)):
            raise ModelError(f"The model file {onnx_path} is refused: its weights refer to "
                             f"'{location}', outside the model's folder.")
        if not target.is_file():
            raise ModelError(f"The model file {onnx_path} is refused: its weights file "
                             f"'{location}' is missing.")
        if location not in external:
            external.append(location)

    # After the external-data check, which says more than the checker's own message. By
    # path, so the checker finds external files beside the model (it does not load them).
    try:
        onnx.checker.check_model(str(onnx_path))
    except Exception as exc:  # noqa: BLE001 - ValidationError and friends
        raise ModelError(f"The model file {onnx_path} is not a valid ONNX model "
                         f"({_first_line(exc)}).") from None

    initializers = {t.name for t in model.graph.initializer}
    inputs = tuple(_tensor_info(v) for v in model.graph.input if v.name not in initializers)
    outputs = tuple(_tensor_info(v) for v in model.graph.output)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return OnnxSummary(inputs, outputs, tuple(external), opset)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def check_model_matches_card(onnx_path: Path, card: ModelCard, summary: OnnxSummary) -> None:
    """Refuse a model whose inputs/outputs disagree with its card (rank, channels, size, classes)."""

    def refuse(reason: str) -> None:
        raise ModelError(f"The model {onnx_path.name} does not match its card: {reason}.")

    if len(summary.inputs) != 1:
        refuse(f"it takes {len(summary.inputs)} inputs, but MedViewer feeds exactly one image")
    tensor = summary.inputs[0]
    if card.input.name and card.input.name != tensor.name:
        refuse(f"the card names input '{card.input.name}' but the model's input is "
               f"'{tensor.name}'")
    if tensor.element_type not in ("float32", "float16"):
        refuse(f"input '{tensor.name}' is not a float tensor")
    if len(tensor.shape) != 4:
        refuse(f"input '{tensor.name}' has rank {len(tensor.shape)}, not 4 "
               "(batch, channels, height, width)")
    for axis, label, expected in ((1, "channels", card.input.channels),
                                  (2, "height", card.input.height),
                                  (3, "width", card.input.width)):
        actual = tensor.shape[axis]
        if isinstance(actual, int) and actual != expected:
            refuse(f"input {label} is {actual} in the model but {expected} in the card")

    by_name = {t.name: t for t in summary.outputs}
    n_classes = len(card.classes)
    prob = by_name.get(card.outputs.probabilities)
    if prob is None:
        refuse(f"it has no output named '{card.outputs.probabilities}' "
               f"(its outputs are {', '.join(by_name)})")
    assert prob is not None
    if len(prob.shape) != 2:
        refuse(f"output '{prob.name}' has rank {len(prob.shape)}, not 2 (batch, classes)")
    if isinstance(prob.shape[1], int) and prob.shape[1] != n_classes:
        refuse(f"output '{prob.name}' gives {prob.shape[1]} classes but the card lists "
               f"{n_classes}")
    if card.outputs.cam:
        cam = by_name.get(card.outputs.cam)
        if cam is None:
            refuse(f"it has no output named '{card.outputs.cam}' for the class activation maps")
        assert cam is not None
        if len(cam.shape) != 4:
            refuse(f"output '{cam.name}' has rank {len(cam.shape)}, not 4 "
                   "(batch, classes, height, width)")
        if isinstance(cam.shape[1], int) and cam.shape[1] != n_classes:
            refuse(f"output '{cam.name}' has {cam.shape[1]} maps but the card lists "
                   f"{n_classes} classes")
    if card.outputs.features:
        features = by_name.get(card.outputs.features)
        if features is None:
            refuse(f"it has no output named '{card.outputs.features}' for the pooled features")
        assert features is not None
        if len(features.shape) != 2:
            refuse(f"output '{features.name}' has rank {len(features.shape)}, not 2 "
                   "(batch, features)")
    batch_dims = [tensor.shape[0], prob.shape[0]]
    if any(isinstance(d, int) and d < 1 for d in batch_dims):
        refuse("its batch dimension is not positive")


def verify_model_files(onnx_path: Path, card: ModelCard) -> OnnxSummary:
    """Hash, ONNX validity, external data and input/output checks; raise ModelError."""
    if not onnx_path.is_file():
        raise ModelError(f"The model file {onnx_path} does not exist.")
    actual = file_sha256(onnx_path)
    if actual != card.sha256:
        raise ModelError(f"The model file {onnx_path.name} is refused: its SHA-256 "
                         f"({actual[:12]}…) does not match the card's ({card.sha256[:12]}…).")
    summary = read_onnx_summary(onnx_path)
    for location in summary.external_files:
        expected = card.external_data.get(location)
        target = onnx_path.parent / location
        if expected is None:
            raise ModelError(f"The model file {onnx_path.name} is refused: its weights file "
                             f"'{location}' is not listed with a SHA-256 in the card's "
                             "external_data.")
        if file_sha256(target) != expected.lower():
            raise ModelError(f"The model file {onnx_path.name} is refused: its weights file "
                             f"'{location}' does not match the SHA-256 in the card.")
    check_model_matches_card(onnx_path, card, summary)
    verify_ood_file(onnx_path, card)
    return summary


def verify_ood_file(onnx_path: Path, card: ModelCard) -> None:
    """The card's OOD statistics file exists beside the model and matches its SHA-256."""
    if card.ood is None:
        return
    target = onnx_path.parent / card.ood.file
    if not target.is_file():
        raise ModelError(f"The model {onnx_path.name} is refused: its out-of-distribution "
                         f"file '{card.ood.file}' is missing.")
    if file_sha256(target) != card.ood.sha256:
        raise ModelError(f"The model {onnx_path.name} is refused: its out-of-distribution "
                         f"file '{card.ood.file}' does not match the SHA-256 in the card.")


@dataclass
class ScanProblem:
    path: Path
    reason: str


def _candidate_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = list(folder.glob("*.onnx")) + list(folder.glob("*/*.onnx"))
    return sorted(p for p in found if not any(part.startswith(".") for part in p.parts[-2:]))


def scan_models(include_user: bool = True) -> tuple[list[ModelEntry], list[ScanProblem]]:
    """Every installed model (built-in first) and the files that could not be listed.

    Cards are read, not the weights: hashes are checked when a session is created.
    """
    entries: list[ModelEntry] = []
    problems: list[ScanProblem] = []
    folders = [("built-in", paths.BUILTIN_MODELS_DIR)]
    if include_user:
        folders.append(("user", paths.user_models_dir()))
    for source, folder in folders:
        for onnx_path in _candidate_files(folder):
            card_path = card_path_for(onnx_path)
            try:
                if not card_path.is_file():
                    raise ModelCardError(f"The model {onnx_path.name} has no model card "
                                         f"({card_path.name}) beside it.")
                card = ModelCard.load(card_path)
            except ModelError as exc:
                log.warning("Skipping a model without a usable card: %s", exc)
                problems.append(ScanProblem(onnx_path, str(exc)))
                continue
            entries.append(ModelEntry(card, onnx_path, card_path, source))
    return entries, problems


def list_models() -> list[ModelEntry]:
    return scan_models()[0]


def _version_key(version: str) -> tuple:
    parts = re.split(r"[._-]", version)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def resolve_model(name: str | None = None, default_model: str | None = None) -> ModelEntry:
    """Find a model by card name or ``name@version``.

    Without a name: ``default_model`` (from settings) if given, else the first built-in model,
    else the first user model. A bare name picks its highest version (a user model wins a tie).
    """
    entries = list_models()
    if not entries:
        raise NoModelError("No AI model is installed: import one with "
                           "'medviewer models import MODEL.onnx'.")
    if not name:
        name = default_model or None
    if not name:
        builtin = [e for e in entries if e.source == "built-in"]
        return (builtin or entries)[0]
    wanted_name, _, wanted_version = name.partition("@")
    matches = [e for e in entries if e.name.lower() == wanted_name.lower()]
    if wanted_version:
        matches = [e for e in matches if e.version == wanted_version]
    if not matches:
        known = ", ".join(sorted({e.key for e in entries}))
        raise NoModelError(f"No installed model is called '{name}' (installed: {known}).")
    return max(matches, key=lambda e: (_version_key(e.version), e.source == "user"))


def file_name_slug(text: str) -> str:
    """``text`` with everything but ASCII letters, digits, ``.``, ``_`` and ``-`` made ``_``:
    a file or folder name that is safe on every OS."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def import_model(onnx_path: str | os.PathLike, card_path: str | os.PathLike | None = None,
                 *, check_runtime: bool = True) -> ModelEntry:
    """Check a model against its card and copy both (and any weights files) into the user dir.

    The copy lands in ``user_models_dir()/<name>-<version>/``. Importing the same file again
    is a no-op; a different file under an installed name and version is refused.
    ``check_runtime`` also loads the model in onnxruntime (CPU) to prove it can run.
    """
    from medviewer.files import os_error_reason, require_regular

    onnx_path = Path(onnx_path)
    card_path = Path(card_path) if card_path else card_path_for(onnx_path)
    try:  # only regular files are read: a FIFO would block the import for ever
        require_regular(onnx_path)
    except FileNotFoundError:
        raise ModelError(f"The model file {onnx_path} does not exist.") from None
    except OSError as exc:
        raise ModelError(f"Cannot import {onnx_path}: {os_error_reason(exc)}.") from None
    try:
        require_regular(card_path)
    except FileNotFoundError:
        raise ModelCardError(f"The model {onnx_path.name} has no model card: expected "
                             f"{card_path} (or give one with --card).") from None
    except OSError as exc:
        raise ModelCardError(f"Cannot read the model card {card_path}: "
                             f"{os_error_reason(exc)}.") from None
    card = ModelCard.load(card_path)
    summary = verify_model_files(onnx_path, card)
    if not card.input.name:
        card.input.name = summary.inputs[0].name
    if check_runtime:
        _check_loads_in_onnxruntime(onnx_path)

    for existing in list_models():
        if existing.name.lower() == card.name.lower() and existing.version == card.version:
            if existing.card.sha256 == card.sha256:
                log.info("Model %s is already installed", card.key)
                return existing
            raise ModelError(f"A different model '{card.name}' version {card.version} is "
                             f"already installed ({existing.source}); give the new one another "
                             "version in its card.")

    destination = paths.user_models_dir() / file_name_slug(f"{card.name}-{card.version}")
    staging = Path(tempfile.mkdtemp(dir=paths.user_models_dir(), prefix=".import-"))
    try:
        target_onnx = staging / (file_name_slug(onnx_path.stem) + ".onnx")
        shutil.copyfile(onnx_path, target_onnx)
        for location in summary.external_files:
            target = staging / location
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(onnx_path.parent / location, target)
        if card.ood is not None:
            target = staging / card.ood.file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(onnx_path.parent / card.ood.file, target)
        card.save(card_path_for(target_onnx))
        if file_sha256(target_onnx) != card.sha256:  # a file changed while copying
            raise ModelError(f"The model file {onnx_path.name} changed while it was imported.")
        # A folder of that name without a usable card (a leftover): keep it, pick another name.
        suffix = 2
        while destination.exists():
            destination = destination.with_name(
                file_name_slug(f"{card.name}-{card.version}-{suffix}"))
            suffix += 1
        os.replace(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    final_onnx = destination / target_onnx.name
    log.info("Imported model %s", card.key)
    return ModelEntry(card, final_onnx, card_path_for(final_onnx), "user")


def _check_loads_in_onnxruntime(onnx_path: Path) -> None:
    from medviewer.inference import runtime

    runtime.check_loadable(onnx_path)
