"""Image pixels -> the model's input tensor, exactly as the model card says.

The steps, in order (docs/model-card.md describes them for people writing exporters):

1. intensity in [0, 1]: ``source='display'`` takes the 8-bit image as displayed with the
   default VOI (MONOCHROME1 already inverted) divided by 255; ``source='modality'`` takes the
   modality values (rescale / Modality LUT applied) through the card's window with DICOM's
   LINEAR function.
2. channels: a 1-channel model gets grey (colour images become grey by ITU-R BT.601 luma);
   a 3-channel model gets grey replicated ('replicate', colour also becomes grey) or RGB as
   it is ('rgb', grey replicated).
3. size: 'stretch' resizes to height x width; 'letterbox' keeps the aspect ratio, centres the
   image and pads with ``pad_value``. Interpolation is bilinear, antialiased when shrinking
   (Pillow's BILINEAR; torchvision's resize with antialias=True matches it).
4. normalisation: ``(x - mean[c]) / std[c]`` per channel; layout float32 [C, H, W].

The training pipeline can call :func:`to_tensor` on the same intensities so training and
inference cannot drift apart. :class:`InputGeometry` records where the image landed in the
input so maps over the input (CAM, occlusion) can be put back onto the image's own pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medviewer.dicom import pixels
from medviewer.dicom.reader import Instance
from medviewer.inference.model_card import ModelCard, Preprocessing

LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class InputGeometry:
    """Where an image of rows x cols lies inside the model input of height x width."""

    rows: int
    cols: int
    height: int
    width: int
    top: int  # first input row holding image content
    left: int  # first input column holding image content
    content_height: int
    content_width: int

    def input_to_image(self, plane: np.ndarray) -> np.ndarray:
        """A map over the model input [height, width] -> the image's pixel grid [rows, cols]."""
        if plane.shape != (self.height, self.width):
            raise ValueError(f"expected a {self.height}x{self.width} map, got {plane.shape}")
        content = plane[self.top:self.top + self.content_height,
                        self.left:self.left + self.content_width]
        return resize_plane(content, self.rows, self.cols)


@dataclass(frozen=True)
class PreparedInput:
    tensor: np.ndarray  # float32 [C, H, W]
    geometry: InputGeometry


def _linear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half-pixel-centre sample positions of an upsampling: lower/upper index and weight."""
    x = np.clip((np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    lower = np.floor(x).astype(np.intp)
    upper = np.minimum(lower + 1, n_in - 1)
    return lower, upper, (x - lower).astype(np.float32)


def _upsample_bilinear(plane: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Separable bilinear enlargement; the same values as Pillow's, ~3x faster on float32."""
    lower, upper, weight = _linear_taps(plane.shape[1], cols)
    wide = plane[:, lower] * (1.0 - weight) + plane[:, upper] * weight
    lower, upper, weight = _linear_taps(plane.shape[0], rows)
    out = wide[lower]
    out *= (1.0 - weight)[:, np.newaxis]
    out += wide[upper] * weight[:, np.newaxis]
    return out


def resize_plane(plane: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Bilinear resize of a 2-D float plane (half-pixel centres; antialiased when shrinking)."""
    plane = np.ascontiguousarray(plane, dtype=np.float32)
    if plane.shape == (rows, cols):
        return plane
    if rows >= plane.shape[0] and cols >= plane.shape[1]:
        return _upsample_bilinear(plane, rows, cols)  # maps onto a large image: the hot path
    from PIL import Image

    image = Image.fromarray(plane)  # float32 2-D -> mode 'F', no 8-bit rounding
    resized = image.resize((cols, rows), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32)


def source_intensity(instance: Instance, prep: Preprocessing, frame: int = 0) -> np.ndarray:
    """Step 1: the image as float32 intensities in [0, 1], grey [rows, cols] or RGB [.., 3]."""
    if prep.source == "display":
        return instance.display_frame(frame).astype(np.float32) * np.float32(1.0 / 255.0)
    assert prep.window is not None  # the card's validation guarantees it for 'modality'
    window = pixels.Window(prep.window.center, prep.window.width, "LINEAR")
    return pixels.apply_window(instance.modality_frame(frame), window).astype(np.float32,
                                                                              copy=False)


def letterbox_geometry(rows: int, cols: int, height: int, width: int) -> InputGeometry:
    scale = min(height / rows, width / cols)
    content_height = min(height, max(1, round(rows * scale)))
    content_width = min(width, max(1, round(cols * scale)))
    return InputGeometry(rows, cols, height, width, (height - content_height) // 2,
                         (width - content_width) // 2, content_height, content_width)


def input_geometry(rows: int, cols: int, card: ModelCard) -> InputGeometry:
    height, width = card.input.height, card.input.width
    if card.preprocessing.resize == "letterbox":
        return letterbox_geometry(rows, cols, height, width)
    return InputGeometry(rows, cols, height, width, 0, 0, height, width)


def to_tensor(intensity: np.ndarray, card: ModelCard) -> PreparedInput:
    """Steps 2-4 on intensities in [0, 1] (grey [rows, cols] or RGB [rows, cols, 3])."""
    if intensity.ndim not in (2, 3) or (intensity.ndim == 3 and intensity.shape[2] != 3):
        raise ValueError(f"expected a grey or RGB image, got shape {intensity.shape}")
    prep = card.preprocessing
    channels = card.input.channels
    keep_rgb = intensity.ndim == 3 and channels == 3 and prep.channel_mode == "rgb"
    if intensity.ndim == 3 and not keep_rgb:
        intensity = intensity.astype(np.float32, copy=False) @ LUMA_WEIGHTS
    planes = [intensity[..., c] for c in range(3)] if keep_rgb else [intensity]
    rows, cols = intensity.shape[:2]
    geometry = input_geometry(rows, cols, card)

    tensor = np.empty((channels, geometry.height, geometry.width), np.float32)
    resized = []
    for plane in planes:
        resized.append(resize_plane(plane, geometry.content_height, geometry.content_width))
    if len(resized) == 1:
        resized = resized * channels  # grey replicated into every channel
    mean = np.broadcast_to(np.asarray(prep.mean, np.float32), (channels,))
    std = np.broadcast_to(np.asarray(prep.std, np.float32), (channels,))
    top, left = geometry.top, geometry.left
    bottom, right = top + geometry.content_height, left + geometry.content_width
    for c in range(channels):
        if (geometry.content_height, geometry.content_width) != (geometry.height, geometry.width):
            tensor[c].fill(prep.pad_value)
        tensor[c, top:bottom, left:right] = resized[c]
        tensor[c] -= mean[c]
        tensor[c] /= std[c]
    return PreparedInput(tensor, geometry)


def prepare_instance(instance: Instance, card: ModelCard, frame: int = 0) -> PreparedInput:
    """An image file's frame as the model's input tensor (float32 [C, H, W]) and geometry."""
    return to_tensor(source_intensity(instance, card.preprocessing, frame), card)
