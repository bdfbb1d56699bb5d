"""Model cards and the model registry: built-in models plus the user's imported models.

A model is an ``.onnx`` file with a model card (JSON, same stem, ``.json``) beside it. The
card says what the model expects (input size, channels, how pixels become the tensor), what
it returns (class probabilities or logits, optionally class activation maps), the per-class
operating points and where the model came from. ``docs/model-card.md`` documents the format.

Everything here reads ONNX files with ``onnx`` only (no weights are loaded to check a model's
inputs and outputs) and never imports torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medviewer import paths
from medviewer.errors import UserError

log = logging.getLogger(__name__)

CARD_FORMAT_VERSION = 1
TASKS = ("multiclass", "multilabel")
SOURCES = ("display", "modality")
RESIZE_MODES = ("stretch", "letterbox")
INTERPOLATIONS = ("bilinear",)
CHANNEL_MODES = ("replicate", "rgb")
ACTIVATIONS = ("none", "softmax", "sigmoid")
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
# ONNX TensorProto element types MedViewer can feed: FLOAT and FLOAT16.
_FLOAT_TYPES = {1: "float32", 10: "float16"}


class ModelError(UserError):
    """A model that cannot be imported, found or run; ``str()`` is one sentence."""


class ModelCardError(ModelError):
    """A model card that is missing, unreadable or inconsistent."""


class NoModelError(ModelError):
    """No model is installed at all, or none matches the name asked for."""


# ---------------------------------------------------------------- the card


@dataclass
class InputSpec:
    """The image tensor the model takes: float [N, channels, height, width]."""

    channels: int
    height: int
    width: int
    name: str = ""  # the ONNX input name; filled in from the file when empty


@dataclass
class Window:
    """A linear VOI window in modality units (centre/width as in DICOM)."""

    center: float
    width: float


@dataclass
class Preprocessing:
    """How an image's pixels become the model's input tensor (see docs/model-card.md)."""

    source: str = "display"  # 'display': 8-bit after default VOI; 'modality': windowed values
    window: Window | None = None  # required for 'modality'
    resize: str = "stretch"  # 'stretch' (aspect not kept) or 'letterbox' (kept, centred, padded)
    interpolation: str = "bilinear"  # antialiased when shrinking (Pillow / torchvision antialias)
    pad_value: float = 0.0  # letterbox padding, in [0, 1] intensity units before normalisation
    mean: list[float] = field(default_factory=lambda: [0.0])
    std: list[float] = field(default_factory=lambda: [1.0])
    channel_mode: str = "replicate"  # 'replicate': grey into every channel; 'rgb': keep colour


@dataclass
class OutputSpec:
    probabilities: str = "probabilities"  # ONNX output [N, C]
    cam: str | None = None  # optional ONNX output [N, C, h, w]: class activation maps
    activation: str = "none"  # what turns the output into probabilities: none/softmax/sigmoid


@dataclass
class OperatingPoint:
    threshold: float
    method: str = ""  # how it was chosen, e.g. "youden on validation"
    metrics: dict[str, float] = field(default_factory=dict)  # e.g. sensitivity at threshold


@dataclass
class ModelCard:
    name: str
    version: str
    classes: list[str]
    input: InputSpec
    sha256: str
    task: str = "multiclass"
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    outputs: OutputSpec = field(default_factory=OutputSpec)
    operating_points: dict[str, OperatingPoint] = field(default_factory=dict)
    description: str = ""
    intended_use: str = ""
    limitations: str = ""
    training: dict[str, Any] = field(default_factory=dict)  # data summary, split, epochs...
    metrics: dict[str, Any] = field(default_factory=dict)  # test-set metrics
    external_data: dict[str, str] = field(default_factory=dict)  # relative path -> SHA-256
    created: str = ""
    format_version: int = CARD_FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # unknown keys, kept on save

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def has_cam(self) -> bool:
        return bool(self.outputs.cam)

    def operating_point(self, class_name: str) -> OperatingPoint | None:
        return self.operating_points.get(class_name)

    def class_index(self, class_name: str | int) -> int:
        """Index of a class given by name (case-insensitive) or by number."""
        if isinstance(class_name, int) or str(class_name).isdigit():
            index = int(class_name)
            if 0 <= index < len(self.classes):
                return index
        else:
            lowered = [c.lower() for c in self.classes]
            if str(class_name).lower() in lowered:
                return lowered.index(str(class_name).lower())
        raise ModelError(f"Model '{self.name}' has no class '{class_name}' "
                         f"(its classes are {', '.join(self.classes)}).")

    # -- (de)serialisation
    @classmethod
    def from_dict(cls, data: Any, origin: str = "the model card") -> ModelCard:
        """Build and validate a card; any problem is a ModelCardError naming ``origin``."""
        reader = _CardReader(data, origin)
        card = reader.card()
        card.validate(origin)
        return card

    @classmethod
    def load(cls, path: str | os.PathLike) -> ModelCard:
        from medviewer.files import open_regular, os_error_reason

        path = Path(path)
        try:
            with open_regular(path, "r", encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            raise ModelCardError(f"The model card {path} does not exist.") from None
        except OSError as exc:
            raise ModelCardError(f"The model card {path} cannot be read: "
                                 f"{os_error_reason(exc)}.") from None
        except UnicodeError:
            raise ModelCardError(f"The model card {path} is not UTF-8 text.") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            where = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
            raise ModelCardError(f"The model card {path} is not valid JSON{where}.") from None
        return cls.from_dict(data, origin=f"the model card {path}")

    def to_dict(self) -> dict[str, Any]:
        prep = self.preprocessing
        data: dict[str, Any] = {
            "format_version": self.format_version,
            "name": self.name,
            "version": self.version,
            "task": self.task,
            "description": self.description,
            "classes": list(self.classes),
            "input": {"name": self.input.name, "channels": self.input.channels,
                      "height": self.input.height, "width": self.input.width},
            "preprocessing": {
                "source": prep.source,
                "window": ({"center": prep.window.center, "width": prep.window.width}
                           if prep.window else None),
                "resize": prep.resize,
                "interpolation": prep.interpolation,
                "pad_value": prep.pad_value,
                "mean": list(prep.mean),
                "std": list(prep.std),
                "channel_mode": prep.channel_mode,
            },
            "outputs": {"probabilities": self.outputs.probabilities, "cam": self.outputs.cam,
                        "activation": self.outputs.activation},
            "operating_points": {
                name: {"threshold": op.threshold, "method": op.method, "metrics": dict(op.metrics)}
                for name, op in self.operating_points.items()
            },
            "intended_use": self.intended_use,
            "limitations": self.limitations,
            "training": self.training,
            "metrics": self.metrics,
            "external_data": dict(self.external_data),
            "created": self.created,
            "sha256": self.sha256,
        }
        for key, value in self.extra.items():
            data.setdefault(key, value)
        return data

    def save(self, path: str | os.PathLike) -> None:
        """Validate, then write the card atomically (UTF-8 JSON, indented)."""
        path = Path(path)
        self.validate(f"the model card {path}")
        _write_atomically(path, json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")

    def validate(self, origin: str = "the model card") -> None:
        """Raise ModelCardError with one sentence for the first inconsistency found."""

        def fail(reason: str) -> None:
            raise ModelCardError(f"{origin[0].upper()}{origin[1:]} is invalid: {reason}.")

        if self.format_version > CARD_FORMAT_VERSION:
            fail(f"it uses card format {self.format_version}, newer than this MedViewer "
                 f"understands ({CARD_FORMAT_VERSION})")
        if not _NAME_PATTERN.match(self.name):
            fail(f"the name '{self.name}' must be 1-64 letters, digits, '.', '_' or '-'")
        if not _NAME_PATTERN.match(self.version):
            fail(f"the version '{self.version}' must be 1-64 letters, digits, '.', '_' or '-'")
        if self.task not in TASKS:
            fail(f"task '{self.task}' is not one of {', '.join(TASKS)}")
        if not self.classes or any(not isinstance(c, str) or not c.strip() for c in self.classes):
            fail("'classes' must be a non-empty list of class names")
        if len(set(c.lower() for c in self.classes)) != len(self.classes):
            fail("class names must be unique")
        if self.input.channels not in (1, 3):
            fail(f"input channels must be 1 or 3, not {self.input.channels}")
        if not (0 < self.input.height <= 8192 and 0 < self.input.width <= 8192):
            fail(f"input size {self.input.height}x{self.input.width} is out of range")
        prep = self.preprocessing
        if prep.source not in SOURCES:
            fail(f"preprocessing source '{prep.source}' is not one of {', '.join(SOURCES)}")
        if prep.source == "modality" and prep.window is None:
            fail("preprocessing source 'modality' needs a window (center and width)")
        if prep.window is not None and not (prep.window.width > 0 and math.isfinite(prep.window.center)):
            fail("the preprocessing window needs a finite center and a positive width")
        if prep.resize not in RESIZE_MODES:
            fail(f"resize '{prep.resize}' is not one of {', '.join(RESIZE_MODES)}")
        if prep.interpolation not in INTERPOLATIONS:
            fail(f"interpolation '{prep.interpolation}' is not one of {', '.join(INTERPOLATIONS)}")
        if prep.channel_mode not in CHANNEL_MODES:
            fail(f"channel_mode '{prep.channel_mode}' is not one of {', '.join(CHANNEL_MODES)}")
        if prep.channel_mode == "rgb" and self.input.channels != 3:
            fail("channel_mode 'rgb' needs a 3-channel input")
        for label, values in (("mean", prep.mean), ("std", prep.std)):
            if len(values) not in (1, self.input.channels):
                fail(f"preprocessing {label} needs 1 or {self.input.channels} values, "
                     f"not {len(values)}")
            if not all(math.isfinite(v) for v in values):
                fail(f"preprocessing {label} values must be finite numbers")
        if any(v <= 0 for v in prep.std):
            fail("preprocessing std values must be positive")
        if self.outputs.activation not in ACTIVATIONS:
            fail(f"output activation '{self.outputs.activation}' is not one of "
                 f"{', '.join(ACTIVATIONS)}")
        if not self.outputs.probabilities:
            fail("outputs.probabilities must name the ONNX output with the class scores")
        if self.outputs.cam is not None and self.outputs.cam == self.outputs.probabilities:
            fail("outputs.cam and outputs.probabilities must be different outputs")
        for class_name, op in self.operating_points.items():
            if class_name not in self.classes:
                fail(f"operating point for unknown class '{class_name}'")
            if not (0.0 <= op.threshold <= 1.0):
                fail(f"the threshold for '{class_name}' must be a probability in [0, 1]")
        if not _SHA256_PATTERN.match(self.sha256):
            fail("'sha256' must be the 64 lowercase hex digits of the .onnx file's SHA-256")
        for relative, digest in self.external_data.items():
            if not _SHA256_PATTERN.match(str(digest)):
                fail(f"external_data '{relative}' needs a 64-hex-digit SHA-256")


class _CardReader:
    """Reads a card dict with type checks that name the offending field."""

    def __init__(self, data: Any, origin: str) -> None:
        if not isinstance(data, dict):
            self._fail("it is not a JSON object", origin)
        self.data = data
        self.origin = origin

    @staticmethod
    def _fail(reason: str, origin: str) -> None:
        raise ModelCardError(f"{origin[0].upper()}{origin[1:]} is invalid: {reason}.")

    def fail(self, reason: str) -> None:
        self._fail(reason, self.origin)

    def get(self, mapping: dict, key: str, kind: type | tuple, where: str, default: Any = ...) -> Any:
        if key not in mapping or mapping[key] is None:
            if default is ...:
                self.fail(f"the required field '{where}{key}' is missing")
            return default
        value = mapping[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # JSON has no int/float distinction worth failing on; bools are not numbers here.
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = "/".join(k.__name__ for k in kinds)
            self.fail(f"the field '{where}{key}' must be {names}")
        return value

    def section(self, key: str, required: bool = False) -> dict:
        value = self.get(self.data, key, dict, "", default=... if required else {})
        return value

    def floats(self, mapping: dict, key: str, where: str, default: list[float]) -> list[float]:
        values = self.get(mapping, key, list, where, default=default)
        out = []
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                self.fail(f"the field '{where}{key}' must be a list of numbers")
            out.append(float(v))
        return out

    def card(self) -> ModelCard:
        d = self.data
        known = {"format_version", "name", "version", "task", "description", "classes", "input",
                 "preprocessing", "outputs", "operating_points", "intended_use", "limitations",
                 "training", "metrics", "external_data", "created", "sha256"}
        classes = self.get(d, "classes", list, "")
        inp = self.section("input", required=True)
        input_spec = InputSpec(
            channels=self.get(inp, "channels", int, "input."),
            height=self.get(inp, "height", int, "input."),
            width=self.get(inp, "width", int, "input."),
            name=self.get(inp, "name", str, "input.", default=""),
        )
        prep_raw = self.section("preprocessing")
        window_raw = self.get(prep_raw, "window", dict, "preprocessing.", default=None)
        window = None
        if window_raw is not None:
            window = Window(center=self.get(window_raw, "center", float, "preprocessing.window."),
                            width=self.get(window_raw, "width", float, "preprocessing.window."))
        prep = Preprocessing(
            source=self.get(prep_raw, "source", str, "preprocessing.", default="display"),
            window=window,
            resize=self.get(prep_raw, "resize", str, "preprocessing.", default="stretch"),
            interpolation=self.get(prep_raw, "interpolation", str, "preprocessing.",
                                   default="bilinear"),
            pad_value=self.get(prep_raw, "pad_value", float, "preprocessing.", default=0.0),
            mean=self.floats(prep_raw, "mean", "preprocessing.", [0.0]),
            std=self.floats(prep_raw, "std", "preprocessing.", [1.0]),
            channel_mode=self.get(prep_raw, "channel_mode", str, "preprocessing.",
                                  default="replicate"),
        )
        out_raw = self.section("outputs")
        outputs = OutputSpec(
            probabilities=self.get(out_raw, "probabilities", str, "outputs.",
                                   default="probabilities"),
            cam=self.get(out_raw, "cam", str, "outputs.", default=None) or None,
            activation=self.get(out_raw, "activation", str, "outputs.", default="none"),
        )
        ops: dict[str, OperatingPoint] = {}
        for class_name, raw in self.section("operating_points").items():
            if not isinstance(raw, dict):
                self.fail(f"operating_points.{class_name} must be an object")
            where = f"operating_points.{class_name}."
            metrics = self.get(raw, "metrics", dict, where, default={})
            ops[class_name] = OperatingPoint(
                threshold=self.get(raw, "threshold", float, where),
                method=self.get(raw, "method", str, where, default=""),
                metrics={k: v for k, v in metrics.items()},
            )
        external = self.section("external_data")
        return ModelCard(
            format_version=self.get(d, "format_version", int, "", default=CARD_FORMAT_VERSION),
            name=self.get(d, "name", str, ""),
            version=self.get(d, "version", str, ""),
            task=self.get(d, "task", str, "", default="multiclass"),
            description=self.get(d, "description", str, "", default=""),
            classes=classes,
            input=input_spec,
            preprocessing=prep,
            outputs=outputs,
            operating_points=ops,
            intended_use=self.get(d, "intended_use", str, "", default=""),
            limitations=self.get(d, "limitations", str, "", default=""),
            training=self.section("training"),
            metrics=self.section("metrics"),
            external_data={str(k): str(v) for k, v in external.items()},
            created=self.get(d, "created", str, "", default=""),
            sha256=self.get(d, "sha256", str, "").lower(),
            extra={k: v for k, v in d.items() if k not in known},
        )


# ---------------------------------------------------------------- files and hashes


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, paths.new_file_mode())  # mkstemp's 0600 would hide a shared card
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def card_path_for(onnx_path: str | os.PathLike) -> Path:
    """The card that belongs to a model file: same folder, same stem, ``.json``."""
    return Path(onnx_path).with_suffix(".json")


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
    return summary


# ---------------------------------------------------------------- the registry


@dataclass
class ModelEntry:
    """An installed model: its card and where its files are."""

    card: ModelCard
    onnx_path: Path
    card_path: Path
    source: str  # 'built-in' or 'user'

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def version(self) -> str:
        return self.card.version

    @property
    def key(self) -> str:
        return self.card.key

    def to_dict(self) -> dict[str, Any]:
        card = self.card
        return {
            "name": card.name, "version": card.version, "source": self.source,
            "task": card.task, "classes": list(card.classes),
            "input": f"{card.input.channels}x{card.input.height}x{card.input.width}",
            "cam": card.has_cam, "sha256": card.sha256,
            "operating_points": {k: v.threshold for k, v in card.operating_points.items()},
            "path": str(self.onnx_path),
        }


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
