"""Export a trained run to ONNX with a CAM output, check parity, write its model card.

The exported graph takes ``image`` [N, 1, S, S] float32 (``pixel / 255`` of the 8-bit grey
display image; normalisation is inside the graph) and returns ``probabilities`` [N, C]
(after softmax), ``cam`` [N, C, h, w]: the last convolutional features weighted by the
linear head (no bias, before any upsampling), whose spatial mean plus the bias is the logit,
and ``features`` [N, K]: the pooled features the head reads (the OOD check's input).

The card is the inference package's :class:`~medviewer.inference.registry.ModelCard`; its
calibration, operating points, test metrics and OOD check are computed with onnxruntime on
the exported file itself (``training.gates.complete_card``), so they are what ``medviewer
predict`` reproduces on the same images. The card names no path of this machine.

Several runs trained on one split (same ``split_seed``) export together as one ensemble
graph; its operating points are then chosen on validation with the ensemble's own scores.
"""

from __future__ import annotations

import datetime as _dt
import logging
import platform
import shutil
from collections.abc import Generator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medviewer.errors import UserError
from medviewer.jobs import CancelFlag, Progress, run_to_end
from medviewer.training import data as data_mod
from medviewer.training import gates
from medviewer.training import metrics as metrics_mod
from medviewer.training.checkpoints import load_checkpoint, model_from_checkpoint
from medviewer.training.config import TrainConfig
from medviewer.training.evaluation import evaluate
from medviewer.training.models import Classifier, Ensemble

log = logging.getLogger(__name__)

OPSET = 17
INPUT_NAME = "image"
PROBABILITIES_NAME = "probabilities"
CAM_NAME = "cam"
FEATURES_NAME = "features"
PARITY_TOLERANCE = 1e-4
INTENDED_USE = ("Demonstration model trained on a public pediatric chest X-ray set "
                "(Kermany et al. 2018, Guangzhou); not for clinical use.")
LIMITATIONS = ("Trained on pediatric anterior-posterior chest X-rays from one centre; it has "
               "not been validated on adults, other sites or other devices, and its outputs "
               "must never be used for diagnosis.")


class ExportError(UserError):
    pass


class ExportedGraph(nn.Module):
    """What goes into the ONNX file: probabilities and class activation maps."""

    def __init__(self, model: Classifier | Ensemble) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, cam, features = self.model.logits_cam_and_features(image)
        return torch.softmax(logits, dim=1), cam, features


@dataclass
class ExportResult:
    onnx_path: str
    card_path: str
    registered_path: str | None  # set by the export workflow when it registers the model
    parity_max_abs_probabilities: float
    parity_max_abs_cam: float
    parity_images: int
    test_metrics: dict
    size_bytes: int
    # gates.export_warnings on the exported file's calibrated scores: registering a model
    # with any needs the user's explicit confirmation (app.training_export).
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def best_checkpoint_path(run_dir: Path) -> Path:
    """The checkpoint a run exports: its ``checkpoints/best.pt`` (or the file itself)."""
    if run_dir.is_file():
        return run_dir
    path = run_dir / "checkpoints" / "best.pt"
    if not path.is_file():
        raise ExportError(f"The run {run_dir} has no best checkpoint (checkpoints/best.pt); "
                          f"train it for at least one epoch first.")
    return path


def export_onnx(model: Classifier | Ensemble, size: int, path: Path) -> None:
    graph = ExportedGraph(model).eval()
    example = torch.rand(2, 1, size, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    import warnings

    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the dynamo one, which needs
        # onnxscript; the TorchScript path is exact for these plain CNNs.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            graph, (example,), str(path), dynamo=False, opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[PROBABILITIES_NAME, CAM_NAME, FEATURES_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, PROBABILITIES_NAME: {0: "batch"},
                          CAM_NAME: {0: "batch"}, FEATURES_NAME: {0: "batch"}},
            do_constant_folding=True)


def _rewrite_weights(path: Path, encode, min_elements: int) -> None:
    """Replace each large float32 initializer W by ``encode(name, values)``'s smaller
    initializers plus the nodes that rebuild W in float32 before the graph runs.

    Those nodes take only initializers, so onnxruntime folds them once when it loads the
    file: the running graph is the float32 one.
    """
    import onnx
    from onnx import TensorProto

    model = onnx.load(str(path))
    graph = model.graph
    decoders, kept = [], []
    for initializer in graph.initializer:
        values = onnx.numpy_helper.to_array(initializer)
        encoded = None
        if initializer.data_type == TensorProto.FLOAT and values.size >= min_elements:
            encoded = encode(initializer.name, values)
        if encoded is None:
            kept.append(initializer)
            continue
        stored, nodes = encoded
        kept.extend(stored)
        decoders.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = decoders + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def store_weights_as_fp16(path: Path, min_elements: int = 64) -> None:
    """Rewrite an ONNX file with its float32 weights stored as float16 (half the size).

    Each such weight becomes a float16 initializer plus a Cast back to float32. Rounding
    moves the outputs slightly; the parity check measures by how much.
    """
    from onnx import TensorProto, helper, numpy_helper

    def encode(name: str, values: np.ndarray):
        if np.abs(values).max() > np.finfo(np.float16).max:
            return None  # out of float16's range: keep it exact
        stored = numpy_helper.from_array(values.astype(np.float16), f"{name}__fp16")
        return [stored], [helper.make_node("Cast", [stored.name], [name],
                                           to=TensorProto.FLOAT, name=f"{name}__to_fp32")]

    _rewrite_weights(path, encode, min_elements)


def store_weights_as_int8(path: Path, min_elements: int = 64) -> None:
    """Rewrite an ONNX file with its convolution and linear weights stored in 8 bits.

    Each output channel gets its own scale (its largest magnitude / 127); a Cast to float32
    and a Mul by the scales rebuild the weight. Not DequantizeLinear: onnxruntime keeps
    that node unfolded for its quantized kernels, and it ran on every inference (+70 %
    latency, tests/bench/bench_weight_storage.py). A quarter of the float32 size; biases
    stay float32.
    """
    from onnx import TensorProto, helper, numpy_helper

    def encode(name: str, values: np.ndarray):
        if values.ndim < 2:
            return None  # biases and norms: few values, and the most sensitive
        peak = np.abs(values.reshape(values.shape[0], -1)).max(axis=1)
        scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        scale = scale.reshape((-1,) + (1,) * (values.ndim - 1))
        quantized = np.clip(np.round(values / scale), -127, 127).astype(np.int8)
        stored = [numpy_helper.from_array(quantized, f"{name}__int8"),
                  numpy_helper.from_array(scale, f"{name}__scale")]
        return stored, [
            helper.make_node("Cast", [stored[0].name], [f"{name}__unscaled"],
                             to=TensorProto.FLOAT, name=f"{name}__to_fp32"),
            helper.make_node("Mul", [f"{name}__unscaled", stored[1].name], [name],
                             name=f"{name}__scaled")]

    _rewrite_weights(path, encode, min_elements)


# How an exported file may store its weights: the card's wording, the writer, the parity
# bound that writer's rounding allows (the computation is float32 in every case).
WEIGHT_STORAGE = {
    "float32": ("float32", None, PARITY_TOLERANCE),
    "float16": ("float16 (computed in float32)", store_weights_as_fp16, 5e-3),
    "int8": ("int8 per output channel (computed in float32)", store_weights_as_int8, 3e-2),
}


def run_onnx(path: Path, images: torch.Tensor, batch_size: int = 128,
             cancel: CancelFlag | None = None,
             names: tuple[str, ...] = (PROBABILITIES_NAME, CAM_NAME)) -> tuple[np.ndarray, ...]:
    """The named outputs (probabilities and CAMs by default) from onnxruntime (CPU) for a
    float tensor [N, 1, S, S]."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    parts: list[list[np.ndarray]] = []
    for start in range(0, images.shape[0], batch_size):
        if cancel is not None:
            cancel.raise_if_cancelled()
        batch = images[start:start + batch_size].numpy()
        parts.append(session.run(list(names), {INPUT_NAME: batch}))
    if not parts:
        return tuple(np.zeros((0,)) for _ in names)
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(len(names)))


@torch.no_grad()
def run_torch(model: Classifier | Ensemble,
              images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    graph = ExportedGraph(model).eval()
    probs, cam, _ = graph(images)
    return probs.numpy(), cam.numpy()


def parity(model: Classifier | Ensemble, onnx_path: Path,
           images: torch.Tensor) -> tuple[float, float]:
    """Max abs difference torch vs onnxruntime, for probabilities and for CAMs."""
    torch_probs, torch_cam = run_torch(model, images)
    onnx_probs, onnx_cam = run_onnx(onnx_path, images)
    return (float(np.abs(torch_probs - onnx_probs).max()),
            float(np.abs(torch_cam - onnx_cam).max()))


def _data_summary(split: dict) -> dict:
    summary = {}
    for name in data_mod.SPLIT_NAMES:
        rows = split[name]
        counts = {c: 0 for c in split["class_names"]}
        for row in rows:
            counts[split["class_names"][row["label"]]] += 1
        patients = {row["patient"] for row in rows if row["patient"]}
        summary[name] = {"images": len(rows), "patients": len(patients) or None,
                         "per_class": counts}
    return summary


def _ensemble(paths: list[Path], payloads: list[dict]) -> Ensemble:
    """The runs' best checkpoints as one model; refused unless they share task and split."""
    first, first_path = payloads[0], paths[0]
    config = TrainConfig.from_dict(first["config"])
    for path, payload in zip(paths[1:], payloads[1:]):
        other = TrainConfig.from_dict(payload["config"])
        if payload["class_names"] != first["class_names"] or other.input_size != \
                config.input_size:
            raise ExportError(f"The run {path} predicts {payload['class_names']} at "
                              f"{other.input_size} px, the run {first_path} "
                              f"{first['class_names']} at {config.input_size} px; an ensemble "
                              f"needs one task and one input size.")
        if other.arch != config.arch:  # other trunks give activation maps of other sizes
            raise ExportError(f"The run {path} is a {other.arch}, the run {first_path} a "
                              f"{config.arch}; an ensemble needs one architecture.")
        if payload["split"] != first["split"]:
            raise ExportError(f"The run {path} was trained on another split than "
                              f"{first_path}; train an ensemble's runs with one --split-seed.")
    return Ensemble([model_from_checkpoint(payload) for payload in payloads]).eval()


def _ensemble_validation(onnx_path: Path, payloads: list[dict], paths: list[Path],
                         config: TrainConfig, cancel: CancelFlag | None) -> dict:
    """The ensemble's own validation figures and thresholds, scored on the exported file."""
    first = payloads[0]
    records = [data_mod.ImageRecord(**row) for row in first["split"]["val"]]
    images = run_to_end(data_mod.preload_images(records, config.input_size, cancel))
    probabilities, _ = run_onnx(onnx_path, images, cancel=cancel)
    val = evaluate(probabilities, np.array([r.label for r in records]),
                   list(first["class_names"]), None, config.operating_point)
    members = [{"run": path.parent.parent.name, "seed": payload["config"]["seed"],
                "epochs_run": _epochs_run(path, payload),
                "best_epoch": payload.get("best_epoch"),
                "best_val_auroc": payload.get("best_val_auroc")}
               for path, payload in zip(paths, payloads)]
    return {**first, "best_operating_points": val["operating_points"], "val_metrics": val,
            "best_val_auroc": val["summary_auroc"],
            "best_epoch": [m["best_epoch"] for m in members],
            "epochs_run": [m["epochs_run"] for m in members], "members": members}


def _epochs_run(checkpoint_path: Path, payload: dict) -> int:
    """Epochs the run trained: best.pt only knows those up to the best one, last.pt all."""
    last = checkpoint_path.parent / "last.pt"
    if checkpoint_path.name != last.name and last.is_file():
        return int(load_checkpoint(last).get("epoch", 0))
    return int(payload.get("epoch", len(payload.get("history", []))))


def score_split(onnx_path: Path, rows: list[dict], size: int,
                cancel: CancelFlag | None = None) -> gates.ScoredSplit:
    """A split scored by the exported file: uncalibrated probabilities, features, labels."""
    records = [data_mod.ImageRecord(**row) for row in rows]
    images = run_to_end(data_mod.preload_images(records, size, cancel))
    probabilities, features = run_onnx(onnx_path, images, cancel=cancel,
                                       names=(PROBABILITIES_NAME, FEATURES_NAME))
    return gates.ScoredSplit(probabilities, np.array([r.label for r in records], np.int64),
                             features)


def portable(path: str | None) -> str | None:
    """A data or run path as the card may record it: its last two parts
    ("/data/xray/kermany224/train" -> "kermany224/train"), never this machine's layout."""
    return "/".join(Path(path).parts[-2:]) if path else path


def score_test_split(onnx_path: Path, test_rows: list[dict], size: int,
                     class_names: list[str], points: dict[str, metrics_mod.OperatingPoint],
                     method: str, source: str | None, cancel: CancelFlag | None = None,
                     temperature: float = 1.0) -> dict:
    """Test metrics: the exported file itself scored on the test split, at the given
    operating points (in the calibrated scale when ``temperature`` is the card's), with 95 %
    intervals. Empty without a test split. (The wizard re-scores with its chosen points;
    the export itself goes through ``gates.complete_card``.)"""
    if not test_rows:
        return {}
    records = [data_mod.ImageRecord(**row) for row in test_rows]
    images = run_to_end(data_mod.preload_images(records, size, cancel))
    probabilities, _ = run_onnx(onnx_path, images, cancel=cancel)
    if temperature != 1.0:
        from medviewer.inference.calibration import apply_temperature

        probabilities = apply_temperature(probabilities, temperature)
    labels = np.array([r.label for r in records])
    scored = metrics_mod.classification_metrics(probabilities, labels, class_names,
                                                points or None, method, intervals=True)
    return {**scored, "split": "test", "source": source}


def export_run(run_dir: str | Path | Sequence[str | Path], name: str, version: str,
               out_dir: str | Path | None = None, description: str = "",
               parity_images: int = 64, weights: str = "float32",
               cancel: CancelFlag | None = None, operating_point: str | None = None,
               ) -> Generator[Progress, None, ExportResult]:
    """Export a run's best checkpoint, or several runs' as one ensemble; see the module
    docstring. ``operating_point`` (youden, sensitivity:X, specificity:X; default: the
    run's) is how the finding thresholds are chosen on the calibrated validation scores.

    Files go to ``out_dir/NAME-VERSION/NAME.onnx`` (+ ``.json``), by default under the (first)
    run folder. Registering the result (and the thresholds a user chose) is the application's
    export workflow, ``medviewer.app.training_export.export_model``, which the wizard and
    ``medviewer export`` share.
    """
    from medviewer.inference import registry

    if weights not in WEIGHT_STORAGE:
        raise ExportError(f"Weights can be stored as {', '.join(WEIGHT_STORAGE)}, "
                          f"not {weights}.")
    weights_wording, store_weights, tolerance = WEIGHT_STORAGE[weights]
    run_dirs = [Path(run_dir)] if isinstance(run_dir, (str, Path)) else \
        [Path(r) for r in run_dir]
    run_dir = run_dirs[0]
    checkpoint_paths = [best_checkpoint_path(r) for r in run_dirs]
    checkpoint_path = checkpoint_paths[0]
    payloads = [load_checkpoint(path) for path in checkpoint_paths]
    payload = payloads[0]
    model: Classifier | Ensemble = model_from_checkpoint(payload) if len(payloads) == 1 \
        else _ensemble(checkpoint_paths, payloads)
    config = TrainConfig.from_dict(payload["config"])
    class_names = list(payload["class_names"])
    split = payload["split"]
    size = config.input_size
    folder_root = Path(out_dir) if out_dir else (
        checkpoint_path.parent.parent / "export" if run_dir.is_dir() else run_dir.parent)
    folder = folder_root / registry.file_name_slug(f"{name}-{version}")
    onnx_path = folder / f"{registry.file_name_slug(name)}.onnx"
    yield Progress(0, 4, "exporting to ONNX")
    export_onnx(model, size, onnx_path)
    if store_weights is not None:
        store_weights(onnx_path)

    yield Progress(1, 4, "checking torch / onnxruntime parity")
    val_records = [data_mod.ImageRecord(**row) for row in split["val"]][:parity_images]
    val_images = run_to_end(data_mod.preload_images(val_records, size, cancel))
    if val_images.shape[0] == 0:
        val_images = torch.rand(8, 1, size, size)
    max_probs, max_cam = parity(model, onnx_path, val_images)
    cam_scale = max(1.0, float(np.abs(run_torch(model, val_images[:8])[1]).max()))
    if not (max_probs <= tolerance and max_cam <= tolerance * cam_scale):
        raise ExportError(f"The exported model {onnx_path.name} disagrees with the trained one "
                          f"(max difference {max_probs:.2e} in probabilities, {max_cam:.2e} "
                          f"in activation maps).")
    if len(payloads) > 1:
        yield Progress(2, 4, "choosing the ensemble's operating point on validation")
        payload = _ensemble_validation(onnx_path, payloads, checkpoint_paths, config, cancel)

    yield Progress(2, 4, "scoring the exported model on the training, validation and test "
                         "splits")
    scored = {name: score_split(onnx_path, split[name], size, cancel)
              for name in ("train", "val", "test")}

    yield Progress(3, 4, "writing the model card")
    best_epoch = payload.get("best_epoch")
    val_metrics = payload.get("val_metrics", {})
    card = registry.ModelCard(
        name=name, version=version, classes=class_names,
        input=registry.InputSpec(channels=1, height=size, width=size, name=INPUT_NAME),
        sha256=registry.file_sha256(onnx_path), task="multiclass",
        preprocessing=data_mod.card_preprocessing(),
        outputs=registry.OutputSpec(probabilities=PROBABILITIES_NAME, cam=CAM_NAME,
                                    activation="none", features=FEATURES_NAME),
        description=description or (
            f"{config.arch} classifier ({', '.join(class_names)}) trained from "
            f"{'a checkpoint' if config.init_checkpoint else 'scratch'} with MedViewer."),
        intended_use=INTENDED_USE, limitations=LIMITATIONS,
        training={
            "architecture": config.arch if len(payloads) == 1 else
            f"ensemble of {len(payloads)} {config.arch}", "input_size": size,
            "epochs_run": payload.get("epochs_run") or _epochs_run(checkpoint_path, payload),
            "best_epoch": best_epoch,
            "best_val_auroc": payload.get("best_val_auroc"),
            "val_metrics": val_metrics,
            **({"ensemble_members": payload["members"]} if "members" in payload else {}),
            "data": {"source": portable(split.get("source")),
                     "test_source": portable(split.get("test_source")),
                     "split_by": split.get("by"), "seed": split.get("seed"),
                     "summary": _data_summary(split)},
            "config": {**config.to_dict(), "data": portable(config.data),
                       "test_data": portable(config.test_data),
                       "init_checkpoint": portable(config.init_checkpoint)},
            "preprocessing_detail": data_mod.preprocessing_spec(size),
            "weights": weights_wording,
            "parity": {"images": int(val_images.shape[0]),
                       "max_abs_probabilities": max_probs, "max_abs_cam": max_cam,
                       "onnx_opset": OPSET},
            "cam": "last conv features x linear head weights (no bias), before upsampling",
            "torch": str(torch.__version__), "machine": platform.machine(),
        },
        created=_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    )
    test_metrics = gates.complete_card(
        card, onnx_path, scored["val"], scored["test"], scored["train"],
        method=metrics_mod.check_operating_point_method(operating_point or
                                                        config.operating_point),
        test_source=portable(split.get("test_source", split.get("source"))))
    card_path = registry.card_path_for(onnx_path)
    card.save(card_path)
    warnings = gates.split_warnings(class_names, *_calibrated_splits(card, scored))
    # A copy of the split beside the model documents exactly which images were used.
    if run_dir.is_dir() and (run_dir / "split.json").is_file():
        shutil.copyfile(run_dir / "split.json", folder / "split.json")

    yield Progress(4, 4, "done")
    return ExportResult(str(onnx_path), str(card_path), None, max_probs, max_cam,
                        int(val_images.shape[0]), test_metrics, onnx_path.stat().st_size,
                        warnings)


def _calibrated_splits(card, scored: dict[str, gates.ScoredSplit]) -> tuple[tuple, tuple]:
    """(probabilities, labels) of validation and test as the card's reader sees them."""
    from medviewer.inference.calibration import apply_temperature

    temperature = card.calibration.temperature if card.calibration is not None else 1.0

    def calibrated(split: gates.ScoredSplit) -> tuple:
        if not len(split):
            return split.probabilities, split.labels
        return apply_temperature(split.probabilities, temperature, card.task), split.labels

    return calibrated(scored["val"]), calibrated(scored["test"])

