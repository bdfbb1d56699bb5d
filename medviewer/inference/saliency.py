"""Saliency maps on the image's own pixel grid: CAM from the model, or occlusion for any model.

* CAM: models exported by MedViewer's trainer have a ``cam`` output [N, C, h, w] (last conv
  features times the linear head's weights, before upsampling). One forward pass gives the
  probabilities and the maps; here the map is only upsampled (bilinear to the input size),
  taken back through the resize / letterbox to the image's rows x cols, and min-max
  normalised to [0, 1].
* Occlusion sensitivity: slide a patch of neutral grey over the input (in batches) and record
  how much the class probability drops. Works for any classifier; its cost (forward passes,
  seconds) is reported with the map.

Every map is float32 [rows, cols] of the frame, so an overlay only follows the view transform.
:func:`jet_colormap` and :func:`blend_overlay` turn a map into a picture.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medviewer.dicom.reader import Instance
from medviewer.inference.predict import Prediction, input_uid, make_prediction, ood_scores
from medviewer.inference.prediction import publish
from medviewer.inference.scope import check_scope
from medviewer.inference.preprocess import InputGeometry, prepare_instance, resize_plane
from medviewer.inference.model_card import ModelError
from medviewer.inference.runtime import ModelSession
from medviewer.jobs import CancelFlag, Progress, run_to_end

METHODS = ("cam", "occlusion")


@dataclass
class SaliencyMap:
    values: np.ndarray  # float32 [rows, cols] in [0, 1], on the image's pixel grid
    method: str  # 'cam' or 'occlusion'
    class_name: str
    class_index: int
    probability: float  # the class probability on the unaltered image
    forward_passes: int
    seconds: float  # time spent making the map, forward passes included
    raw_range: tuple[float, float]  # the map's range before normalisation
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "class": self.class_name,
                "probability": self.probability, "forward_passes": self.forward_passes,
                "seconds": round(self.seconds, 4), "raw_range": list(self.raw_range),
                "shape": list(self.values.shape), "params": self.params}


def _normalise_min_max(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Scale to [0, 1] in place (callers pass a float32 map of their own)."""
    if not high > low:
        return np.zeros_like(values, dtype=np.float32)
    values -= np.float32(low)
    values *= np.float32(1.0 / (high - low))
    return values


def cam_to_image(cam: np.ndarray, geometry: InputGeometry) -> tuple[np.ndarray, tuple[float, float]]:
    """One class's CAM [h, w] -> map [rows, cols] in [0, 1] and the raw range on the image."""
    upsampled = resize_plane(cam, geometry.height, geometry.width)
    on_image = geometry.input_to_image(upsampled)
    if not on_image.flags.writeable or np.shares_memory(on_image, cam):
        on_image = on_image.copy()  # Pillow's buffer, or the model output itself
    raw_range = (float(on_image.min()), float(on_image.max()))
    return _normalise_min_max(on_image, *raw_range), raw_range


def _class_index(model: ModelSession, probabilities: np.ndarray, class_name: str | int | None) -> int:
    if class_name is None or class_name == "":
        return int(np.argmax(probabilities))
    return model.card.class_index(class_name)


def flagged_first_index(prediction: Prediction) -> int:
    """The class most worth explaining: the decision's (the most probable flagged finding),
    else the most probable class."""
    names = [s.name for s in prediction.scores]
    decision = prediction.decision
    if decision is not None and decision.explain_class in names:
        return names.index(decision.explain_class)
    return max(range(len(names)), key=lambda i: prediction.scores[i].probability)


def explain_instance(model: ModelSession, instance: Instance, class_name: str | int | None = None,
                     frame: int = 0, audit: bool = True, read_out_of_scope: bool = False,
                     ) -> tuple[Prediction, SaliencyMap]:
    """Prediction and CAM from one forward pass.

    The map is of the class named, else of the decision's class to explain (the most
    probable flagged finding), else of the most probable class.
    """
    if not model.has_cam:
        raise ModelError(f"Model '{model.card.name}' has no class activation map output; "
                         "use occlusion saliency instead.")
    started = time.perf_counter()
    prepared = prepare_instance(instance, model.card, frame)
    output = model.run(prepared.tensor[np.newaxis], with_cam=True)
    prediction = make_prediction(model, instance.path, frame, input_uid(instance),
                                 output.probabilities[0], output.seconds * 1000.0,
                                 scope=check_scope(instance, model.card),
                                 read_out_of_scope=read_out_of_scope,
                                 ood_score=ood_scores(model, output)[0])
    if class_name is None and prediction.decision and prediction.decision.explain_class:
        class_name = prediction.decision.explain_class
    index = _class_index(model, output.probabilities[0], class_name)
    assert output.cam is not None
    values, raw_range = cam_to_image(output.cam[0, index], prepared.geometry)
    saliency = SaliencyMap(values, "cam", model.card.classes[index], index,
                           float(output.probabilities[0, index]), 1,
                           time.perf_counter() - started, raw_range,
                           {"cam_shape": list(output.cam.shape[2:])})
    if audit:
        publish([prediction])
    return prediction, saliency


def _patch_starts(start: int, length: int, patch: int, stride: int) -> list[int]:
    """Patch origins covering [start, start + length) with the last patch flush to the end."""
    if length <= patch:
        return [start]
    starts = list(range(start, start + length - patch + 1, stride))
    if starts[-1] != start + length - patch:
        starts.append(start + length - patch)
    return starts


def occlusion_job(model: ModelSession, instance: Instance, class_name: str | int | None = None,
                  frame: int = 0, patch: int = 32, stride: int = 16, batch_size: int = 16,
                  fill: float | None = None, cancel: CancelFlag | None = None,
                  ) -> Generator[Progress, None, SaliencyMap]:
    """Occlusion sensitivity as a job: yields Progress per batch, returns the SaliencyMap.

    ``patch`` and ``stride`` are in model-input pixels. The patch is filled with ``fill`` (an
    intensity in [0, 1], normalised like the image) or, by default, the image's mean, so the
    occluder carries no information. The map is the mean drop of the class probability over
    the patches covering each pixel, negative drops clipped to 0, scaled to [0, 1].
    """
    if patch < 1 or stride < 1:
        raise ModelError(f"Occlusion needs a positive patch size and stride "
                         f"(got {patch} and {stride}).")
    started = time.perf_counter()
    card = model.card
    prepared = prepare_instance(instance, card, frame)
    geometry = prepared.geometry
    base = prepared.tensor
    top, left = geometry.top, geometry.left
    content = base[:, top:top + geometry.content_height, left:left + geometry.content_width]
    if fill is None:
        fill_values = content.reshape(content.shape[0], -1).mean(axis=1)
    else:
        mean = np.broadcast_to(np.asarray(card.preprocessing.mean, np.float32), (base.shape[0],))
        std = np.broadcast_to(np.asarray(card.preprocessing.std, np.float32), (base.shape[0],))
        fill_values = (np.float32(fill) - mean) / std
    fill_values = fill_values.astype(np.float32)[:, None, None]

    base_output = model.run(base[np.newaxis])
    index = _class_index(model, base_output.probabilities[0], class_name)
    base_probability = float(base_output.probabilities[0, index])
    ys = _patch_starts(top, geometry.content_height, patch, stride)
    xs = _patch_starts(left, geometry.content_width, patch, stride)
    origins = [(y, x) for y in ys for x in xs]
    drop_sum = np.zeros((geometry.height, geometry.width), np.float64)
    coverage = np.zeros((geometry.height, geometry.width), np.int32)
    batch_size = max(1, int(batch_size))
    cancel = cancel or CancelFlag()
    passes = 1
    for first in range(0, len(origins), batch_size):
        cancel.raise_if_cancelled()
        chunk = origins[first:first + batch_size]
        batch = np.repeat(base[np.newaxis], len(chunk), axis=0)
        for k, (y, x) in enumerate(chunk):
            batch[k, :, y:y + patch, x:x + patch] = fill_values
        probabilities = model.run(batch).probabilities[:, index]
        passes += len(chunk)
        for (y, x), probability in zip(chunk, probabilities.tolist()):
            drop_sum[y:y + patch, x:x + patch] += base_probability - probability
            coverage[y:y + patch, x:x + patch] += 1
        done = min(first + batch_size, len(origins))
        yield Progress(done, len(origins), f"Occlusion {done}/{len(origins)} patches")
    mean_drop = np.divide(drop_sum, np.maximum(coverage, 1)).astype(np.float32)
    on_image = geometry.input_to_image(mean_drop)
    raw_range = (float(on_image.min()), float(on_image.max()))
    positive = np.clip(on_image, 0.0, None)
    peak = float(positive.max())
    values = (positive / peak).astype(np.float32) if peak > 0 else np.zeros_like(positive)
    return SaliencyMap(values, "occlusion", card.classes[index], index, base_probability, passes,
                       time.perf_counter() - started, raw_range,
                       {"patch": patch, "stride": stride, "batch_size": batch_size,
                        "patches": len(origins)})


def occlusion_saliency(model: ModelSession, instance: Instance, **options: Any) -> SaliencyMap:
    """:func:`occlusion_job` run to the end on the calling thread."""
    return run_to_end(occlusion_job(model, instance, **options))


# ---------------------------------------------------------------- pictures


def jet_colormap(values: np.ndarray) -> np.ndarray:
    """Map [0, 1] to a jet-like blue-cyan-yellow-red ramp: uint8 [..., 3]."""
    x = np.clip(np.asarray(values, np.float32), 0.0, 1.0)[..., np.newaxis]
    centres = np.array([0.75, 0.5, 0.25], np.float32)  # red, green, blue peaks
    rgb = np.clip(1.5 - np.abs(4.0 * (x - centres)), 0.0, 1.0)
    return np.rint(rgb * 255.0).astype(np.uint8)


def blend_overlay(image: np.ndarray, saliency: np.ndarray, opacity: float = 0.45) -> np.ndarray:
    """The 8-bit image (grey or RGB) with the colour-mapped map blended on, uint8 RGB.

    Each pixel's heat weight is ``opacity * saliency``, so cold regions keep the image.
    """
    if image.shape[:2] != saliency.shape:
        raise ValueError(f"image {image.shape[:2]} and map {saliency.shape} differ in size")
    base = image if image.ndim == 3 else np.repeat(image[..., np.newaxis], 3, axis=2)
    heat = jet_colormap(saliency).astype(np.float32)
    alpha = (np.clip(saliency, 0.0, 1.0) * np.float32(opacity))[..., np.newaxis]
    out = base.astype(np.float32) * (1.0 - alpha) + heat * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def saliency_for(model: ModelSession, instance: Instance, method: str | None = None,
                 class_name: str | int | None = None, frame: int = 0,
                 **occlusion_options: Any) -> tuple[Prediction | None, SaliencyMap]:
    """CAM when the model has it (or was asked for), else occlusion; for the CLI and scripts."""
    method = method or ("cam" if model.has_cam else "occlusion")
    if method not in METHODS:
        raise ModelError(f"Unknown saliency method '{method}' (choose cam or occlusion).")
    if method == "cam":
        return explain_instance(model, instance, class_name, frame)
    return None, occlusion_saliency(model, instance, class_name=class_name, frame=frame,
                                    **occlusion_options)
