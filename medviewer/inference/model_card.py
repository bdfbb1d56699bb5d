"""The model card and the installed-model entry: plain data, no onnxruntime, no registry.

A model is an ``.onnx`` file with a model card (JSON, same stem, ``.json``) beside it. The
card says what the model expects (input size, channels, how pixels become the tensor), what
it returns (class probabilities or logits, optionally class activation maps and pooled
features), the per-class operating points, its intended use in machine-readable form, its
calibration and out-of-distribution check, and where the model came from.
``docs/model-card.md`` documents the format.

A leaf of the inference package: ``registry`` (finding and importing models) and ``runtime``
(onnxruntime sessions) both import it and neither imports the other at module level.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
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
    features: str | None = None  # optional ONNX output [N, D]: pooled features (OOD check)


@dataclass
class IntendedScope:
    """What the model was made to read, checked against each image's header (``scope``).

    An empty list or None means "not restricted". Ages are in years, inclusive.
    """

    modalities: list[str] = field(default_factory=list)  # DICOM Modality, e.g. CR, DX
    body_parts: list[str] = field(default_factory=list)  # Body Part Examined, e.g. CHEST
    views: list[str] = field(default_factory=list)  # View Position, e.g. AP, PA
    patient_age_years: tuple[float, float] | None = None  # (youngest, oldest)
    age_source: str = ""  # where the age range comes from
    minimum_size: int = 0  # the smaller of rows / columns, in pixels
    photometric: list[str] = field(default_factory=list)  # e.g. MONOCHROME1, MONOCHROME2
    summary: str = ""  # in words, for sentences: "chest CR/DX"

    def to_dict(self) -> dict[str, Any]:
        return {"modalities": list(self.modalities), "body_parts": list(self.body_parts),
                "views": list(self.views),
                "patient_age_years": (list(self.patient_age_years)
                                      if self.patient_age_years else None),
                "age_source": self.age_source, "minimum_size": self.minimum_size,
                "photometric": list(self.photometric), "summary": self.summary}


@dataclass
class Calibration:
    """Temperature scaling applied to every probability the model gives (see calibration.py)."""

    temperature: float = 1.0
    method: str = "temperature"
    fitted_on: str = ""  # e.g. "validation split, 1042 images"
    figures: dict[str, Any] = field(default_factory=dict)  # ECE / Brier before and after

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "temperature": self.temperature,
                "fitted_on": self.fitted_on, "figures": self.figures}


@dataclass
class OodCheck:
    """The out-of-distribution check: statistics of the training features in a sidecar file."""

    file: str  # relative to the card's folder, e.g. "model.ood.npz"
    sha256: str
    threshold: float  # a score above it is "unusual for this model"
    method: str = "mahalanobis"
    detail: dict[str, Any] = field(default_factory=dict)  # how it was fitted, measured rates

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "file": self.file, "sha256": self.sha256,
                "threshold": self.threshold, **self.detail}


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
    no_finding_class: str | None = None  # offered to a reader when no finding is flagged
    intended_scope: IntendedScope | None = None
    calibration: Calibration | None = None
    ood: OodCheck | None = None
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
        if self.outputs.features:
            data["outputs"]["features"] = self.outputs.features
        # Optional sections are written only when present, so older cards stay as they were.
        if self.no_finding_class:
            data["no_finding_class"] = self.no_finding_class
        if self.intended_scope is not None:
            data["intended_scope"] = self.intended_scope.to_dict()
        if self.calibration is not None:
            data["calibration"] = self.calibration.to_dict()
        if self.ood is not None:
            data["ood"] = self.ood.to_dict()
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
        if self.no_finding_class is not None and self.no_finding_class not in self.classes:
            fail(f"no_finding_class '{self.no_finding_class}' is not one of the classes")
        if self.no_finding_class is not None and self.no_finding_class in self.operating_points:
            fail(f"no_finding_class '{self.no_finding_class}' cannot have an operating point: "
                 "it is what a reader is offered when no finding is flagged")
        scope = self.intended_scope
        if scope is not None:
            ages = scope.patient_age_years
            if ages is not None and not (0 <= ages[0] <= ages[1] <= 150):
                fail("intended_scope.patient_age_years must be [youngest, oldest] in years")
            if scope.minimum_size < 0:
                fail("intended_scope.minimum_size must not be negative")
        if self.calibration is not None:
            if self.calibration.method != "temperature":
                fail(f"calibration method '{self.calibration.method}' is not 'temperature'")
            if not (math.isfinite(self.calibration.temperature)
                    and 0.01 <= self.calibration.temperature <= 100):
                fail("the calibration temperature must be a number between 0.01 and 100")
        if self.ood is not None:
            if self.ood.method != "mahalanobis":
                fail(f"ood method '{self.ood.method}' is not 'mahalanobis'")
            if not self.outputs.features:
                fail("an ood check needs outputs.features (the pooled features it scores)")
            if not _safe_relative(self.ood.file):
                fail(f"ood file '{self.ood.file}' must be a file name inside the model's folder")
            if not _SHA256_PATTERN.match(self.ood.sha256):
                fail("ood.sha256 must be the 64 lowercase hex digits of the ood file's SHA-256")
            if not math.isfinite(self.ood.threshold):
                fail("ood.threshold must be a finite number")
        if self.outputs.features and self.outputs.features in (self.outputs.probabilities,
                                                               self.outputs.cam):
            fail("outputs.features must be an output of its own")
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
                 "training", "metrics", "external_data", "created", "sha256",
                 "no_finding_class", "intended_scope", "calibration", "ood"}
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
            features=self.get(out_raw, "features", str, "outputs.", default=None) or None,
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
            no_finding_class=self.get(d, "no_finding_class", str, "", default=None),
            intended_scope=self.scope(),
            calibration=self.calibration(),
            ood=self.ood(),
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


    def strings(self, mapping: dict, key: str, where: str) -> list[str]:
        values = self.get(mapping, key, list, where, default=[])
        if not all(isinstance(v, str) for v in values):
            self.fail(f"the field '{where}{key}' must be a list of text values")
        return list(values)

    def scope(self) -> IntendedScope | None:
        raw = self.get(self.data, "intended_scope", dict, "", default=None)
        if raw is None:
            return None
        where = "intended_scope."
        ages = self.floats(raw, "patient_age_years", where, []) if raw.get(
            "patient_age_years") is not None else []
        if ages and len(ages) != 2:
            self.fail("the field 'intended_scope.patient_age_years' must be [youngest, oldest]")
        return IntendedScope(
            modalities=[m.upper() for m in self.strings(raw, "modalities", where)],
            body_parts=[b.upper() for b in self.strings(raw, "body_parts", where)],
            views=[v.upper() for v in self.strings(raw, "views", where)],
            patient_age_years=(ages[0], ages[1]) if ages else None,
            age_source=self.get(raw, "age_source", str, where, default=""),
            minimum_size=self.get(raw, "minimum_size", int, where, default=0),
            photometric=[p.upper() for p in self.strings(raw, "photometric", where)],
            summary=self.get(raw, "summary", str, where, default=""))

    def calibration(self) -> Calibration | None:
        raw = self.get(self.data, "calibration", dict, "", default=None)
        if raw is None:
            return None
        where = "calibration."
        return Calibration(temperature=self.get(raw, "temperature", float, where),
                           method=self.get(raw, "method", str, where, default="temperature"),
                           fitted_on=self.get(raw, "fitted_on", str, where, default=""),
                           figures=self.get(raw, "figures", dict, where, default={}))

    def ood(self) -> OodCheck | None:
        raw = self.get(self.data, "ood", dict, "", default=None)
        if raw is None:
            return None
        where = "ood."
        own = {"method", "file", "sha256", "threshold"}
        return OodCheck(file=self.get(raw, "file", str, where),
                        sha256=self.get(raw, "sha256", str, where).lower(),
                        threshold=self.get(raw, "threshold", float, where),
                        method=self.get(raw, "method", str, where, default="mahalanobis"),
                        detail={k: v for k, v in raw.items() if k not in own})


# ---------------------------------------------------------------- files and hashes


def _safe_relative(location: str) -> bool:
    """A plain relative path that stays inside the model's folder (no '..', not absolute)."""
    path = Path(location)
    return bool(location) and not path.is_absolute() and not path.drive and ".." not in path.parts


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_atomically(path: Path, text: str) -> None:
    """A card is handed on with its model: the mode of any new file of the user's."""
    paths.write_atomically(path, text, private=False)


def card_path_for(onnx_path: str | os.PathLike) -> Path:
    """The card that belongs to a model file: same folder, same stem, ``.json``."""
    return Path(onnx_path).with_suffix(".json")


# ---------------------------------------------------------------- an installed model


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
            "no_finding_class": card.no_finding_class,
            "intended_scope": card.intended_scope.to_dict() if card.intended_scope else None,
            "calibrated": card.calibration is not None, "ood_check": card.ood is not None,
            "path": str(self.onnx_path),
        }
