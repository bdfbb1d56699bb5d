"""Reading images with the AI: the jobs the GUI runs on workers (and tests run directly).

Session creation and warm-up, one read per shown image (prediction and, for CAM models, the
activation maps from the same forward pass), another class's map, occlusion maps and model
import. They import onnxruntime and the inference modules only when they run. Colouring a
map into a picture is the caller's (``paint``: the GUI passes its colour-map function), so
the picture is still made on the worker while this module stays free of Qt and pyqtgraph.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medviewer.events import EventGroup
from medviewer.jobs import CancelFlag, Progress

if TYPE_CHECKING:
    import numpy as np

    from medviewer.inference.predict import Prediction
    from medviewer.inference.registry import ModelEntry
    from medviewer.inference.runtime import ModelSession

PROVIDER_NAMES = {"CUDAExecutionProvider": "CUDA", "TensorrtExecutionProvider": "TensorRT",
                  "CPUExecutionProvider": "CPU"}
OCCLUSION_PATCH = 32
OCCLUSION_STRIDE = 16

# A [rows, cols] map in [0, 1] -> its RGBA picture (uint8 [rows, cols, 4]).
Painter = Callable[["np.ndarray"], "np.ndarray"]


def provider_name(provider: str) -> str:
    """'CUDAExecutionProvider' -> 'CUDA'."""
    return PROVIDER_NAMES.get(provider, provider.replace("ExecutionProvider", ""))


@dataclass
class LoadedModel:
    session: ModelSession
    load_seconds: float
    warm_up_seconds: float


def load_model_job(entry: ModelEntry, use_tensorrt: bool, cancel: CancelFlag
                   ) -> Generator[Progress, None, LoadedModel]:
    """Create (or fetch) the model's session and warm it up; for a worker thread."""
    from medviewer.inference import runtime

    yield Progress(0, 2, f"Loading model {entry.key}")
    started = time.perf_counter()
    session = runtime.get_session(entry, use_tensorrt=use_tensorrt)
    load_seconds = time.perf_counter() - started
    cancel.raise_if_cancelled()
    yield Progress(1, 2, "Warming up")
    warm_up_seconds = 0.0 if session.warmed_up else session.warm_up()
    return LoadedModel(session, load_seconds, warm_up_seconds)


@dataclass
class ImageRead:
    """One AI read of the shown frame: the prediction and, for CAM models, the raw maps."""

    instance: Any  # medviewer.dicom.reader.Instance
    frame: int
    prediction: Prediction
    cam: np.ndarray | None  # [classes, h, w] from the same forward pass, or None
    geometry: Any  # preprocess.InputGeometry: where the image sits in the model input
    maps: dict[int, np.ndarray] = field(default_factory=dict)  # class -> [rows, cols] map
    pictures: dict[int, tuple[str, np.ndarray]] = field(default_factory=dict)  # (painter, RGBA)
    seconds: float = 0.0  # the whole read: preprocessing, inference, first map


def cam_map(read: ImageRead, class_index: int) -> np.ndarray:
    """One class's activation map on the image's pixel grid (cached on the read)."""
    if class_index not in read.maps:
        from medviewer.inference.saliency import cam_to_image

        assert read.cam is not None
        read.maps[class_index] = cam_to_image(read.cam[class_index], read.geometry)[0]
    return read.maps[class_index]


def overlay_class_index(prediction: Prediction, chosen_class: str | None) -> int:
    """The class whose map is shown: the one the reader chose (any case), else the
    decision's class to explain (the most probable flagged finding), else -1: an image with
    nothing flagged gets no map unless the reader asks for one."""
    names = [s.name for s in prediction.scores]
    if chosen_class:
        folded = [n.casefold() for n in names]
        if chosen_class.casefold() in folded:
            return folded.index(chosen_class.casefold())
    explain = prediction.decision.explain_class if prediction.decision else None
    return names.index(explain) if explain in names else -1


def read_image_job(model: ModelSession, instance: Any, frame: int, class_name: str | None,
                   painter: tuple[str, Painter], cancel: CancelFlag,
                   read_out_of_scope: bool = False) -> Generator[Progress, None, ImageRead]:
    """Predict one frame (with CAM from the same pass when the model has it) and publish it
    (the audit log records it). ``read_out_of_scope``: the reader pressed "Read anyway" for
    an image outside the model's intended use (recorded with the read).

    A read cancelled before its result is delivered is not published: nobody saw it.
    """
    from medviewer.inference.predict import input_uid, make_prediction, ood_scores
    from medviewer.inference.prediction import publish
    from medviewer.inference.preprocess import prepare_instance
    from medviewer.inference.scope import check_scope

    started = time.perf_counter()
    yield Progress(0, 2, "Preparing the image")
    prepared = prepare_instance(instance, model.card, frame)
    cancel.raise_if_cancelled()
    yield Progress(1, 2, "Running the model")
    output = model.run(prepared.tensor[None], with_cam=model.has_cam)
    prediction = make_prediction(model, instance.path, frame, input_uid(instance),
                                 output.probabilities[0], output.seconds * 1000.0,
                                 scope=check_scope(instance, model.card),
                                 read_out_of_scope=read_out_of_scope,
                                 ood_score=ood_scores(model, output)[0])
    cam = output.cam[0] if output.cam is not None else None
    read = ImageRead(instance, frame, prediction, cam, prepared.geometry)
    index = overlay_class_index(prediction, class_name)
    if cam is not None and index >= 0:
        name, paint = painter
        read.pictures[index] = (name, paint(cam_map(read, index)))
    cancel.raise_if_cancelled()
    publish([prediction])
    read.seconds = time.perf_counter() - started
    return read


def cam_map_job(read: ImageRead, class_index: int, painter: tuple[str, Painter],
                cancel: CancelFlag) -> Generator[Progress, None, int]:
    """Another class's map of a read (and its picture), cached on the read."""
    yield Progress(0, 1, "Mapping the class activation map onto the image")
    values = cam_map(read, class_index)
    cancel.raise_if_cancelled()
    name, paint = painter
    read.pictures[class_index] = (name, paint(values))
    return class_index


def occlusion_passes(rows: int, cols: int, card: Any, patch: int = OCCLUSION_PATCH,
                     stride: int = OCCLUSION_STRIDE) -> int:
    """Forward passes an occlusion map of this image costs (patches + the unaltered image)."""
    from medviewer.inference.preprocess import input_geometry

    geometry = input_geometry(rows, cols, card)

    def starts(length: int) -> int:
        if length <= patch:
            return 1
        count = (length - patch) // stride + 1
        return count + (1 if (length - patch) % stride else 0)

    return starts(geometry.content_height) * starts(geometry.content_width) + 1


def occlusion_map_job(model: ModelSession, instance: Any, frame: int, class_index: int,
                      painter: tuple[str, Painter], cancel: CancelFlag
                      ) -> Generator[Progress, None, tuple[Any, np.ndarray, str]]:
    """The occlusion SaliencyMap, its picture and the name of the painter that made it."""
    from medviewer.inference.saliency import occlusion_job

    result = yield from occlusion_job(model, instance, class_name=class_index, frame=frame,
                                      patch=OCCLUSION_PATCH, stride=OCCLUSION_STRIDE,
                                      cancel=cancel)
    name, paint = painter
    return result, paint(result.values), name


def import_model_job(onnx_path: Path, card_path: Path | None, cancel: CancelFlag
                     ) -> Generator[Progress, None, ModelEntry]:
    from medviewer.inference.registry import import_model

    yield Progress(0, 1, f"Checking {onnx_path.name}")
    return import_model(onnx_path, card_path)


# ---------------------------------------------------------------- the session's AI state


class AiEvents(EventGroup):
    names = ("model_chosen", "model_ready", "model_failed", "read_finished", "read_cleared")


class AiState:
    """The active model and the AI's read of the image on screen (``session.ai``).

    Events: ``model_chosen(ModelEntry)`` (loading starts), ``model_ready(LoadedModel)``,
    ``model_failed(str)``, ``read_finished(ImageRead)`` (the read of the shown image, which
    the label suggestions follow), ``read_cleared(None)``.
    """

    def __init__(self) -> None:
        self.events = AiEvents()
        self.entry: ModelEntry | None = None
        self.loaded: LoadedModel | None = None
        self.error = ""  # why no model is usable, as one sentence ("" when one is)
        self.read: ImageRead | None = None
        self.chosen_class: str | None = None  # the reader's class for the overlay

    @property
    def model(self) -> ModelSession | None:
        return self.loaded.session if self.loaded is not None else None

    def choose(self, entry: ModelEntry) -> None:
        """A model was chosen: what belonged to the previous one is dropped."""
        self.entry = entry
        self.loaded = None
        self.error = ""
        self.chosen_class = None
        self.clear_read()
        self.events.model_chosen.emit(entry)

    def model_loaded(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.error = ""
        self.events.model_ready.emit(loaded)

    def model_unusable(self, sentence: str) -> None:
        self.loaded = None
        self.error = sentence
        self.clear_read()
        self.events.model_failed.emit(sentence)

    def read_done(self, read: ImageRead) -> bool:
        """The read of the shown image; False (and dropped) when it belongs to another model."""
        if self.model is None or read.prediction.model_sha256 != self.model.card.sha256:
            return False
        self.read = read
        self.events.read_finished.emit(read)
        return True

    def clear_read(self) -> None:
        if self.read is not None:
            self.read = None
            self.events.read_cleared.emit(None)
