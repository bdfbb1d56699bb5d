"""Preprocessing against hand-computed tensors, for each option the model card offers."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.dicom.reader import open_instance
from medviewer.inference.preprocess import (
    letterbox_geometry, prepare_instance, resize_plane, source_intensity)
from medviewer.inference.registry import ModelCard
from tests.dicom import write_dicom as write_test_dicom
from tests.inference.conftest import write_grey_png

FAKE_SHA = "0" * 64


def make_card(**overrides) -> ModelCard:
    data = {
        "name": "prep-test", "version": "1", "classes": ["a", "b"], "sha256": FAKE_SHA,
        "input": {"channels": 1, "height": 4, "width": 4},
        "preprocessing": {"source": "display", "resize": "stretch", "mean": [0.0], "std": [1.0]},
    }
    for key, value in overrides.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and key in data else value
    return ModelCard.from_dict(data)


def write_dicom(path, stored: np.ndarray, photometric: str = "MONOCHROME2",
                slope: float = 1.0, intercept: float = 0.0):
    """16-bit grey stored values with a rescale, through the DICOM tests' writer."""
    return write_test_dicom(path, np.asarray(stored).astype(np.uint16),
                            PhotometricInterpretation=photometric,
                            RescaleSlope=slope, RescaleIntercept=intercept)


def test_display_letterbox_replicated_into_three_normalised_channels(tmp_path):
    # 4 rows x 2 cols holding 0 and 255, so the default (full-range) display window is exact.
    png = write_grey_png(tmp_path / "tall.png", [[0, 255], [51, 102], [153, 204], [255, 0]])
    card = make_card(input={"channels": 3, "height": 4, "width": 4},
                     preprocessing={"resize": "letterbox", "pad_value": 0.5,
                                    "mean": [0.5, 0.4, 0.3], "std": [0.5, 0.25, 1.0]})
    prepared = prepare_instance(open_instance(png), card)
    # Scale min(4/4, 4/2) = 1: no resampling; the two columns land at input columns 1 and 2.
    expected = np.array([
        [[0, -1, 1, 0], [0, -0.6, -0.2, 0], [0, 0.2, 0.6, 0], [0, 1, -1, 0]],
        [[0.4, -1.6, 2.4, 0.4], [0.4, -0.8, 0.0, 0.4], [0.4, 0.8, 1.6, 0.4],
         [0.4, 2.4, -1.6, 0.4]],
        [[0.2, -0.3, 0.7, 0.2], [0.2, -0.1, 0.1, 0.2], [0.2, 0.3, 0.5, 0.2],
         [0.2, 0.7, -0.3, 0.2]],
    ], np.float32)
    assert prepared.tensor.dtype == np.float32
    np.testing.assert_allclose(prepared.tensor, expected, atol=1e-6)
    g = prepared.geometry
    assert (g.rows, g.cols, g.top, g.left, g.content_height, g.content_width) == (4, 2, 0, 1, 4, 2)


def test_stretch_upscale_is_bilinear_with_half_pixel_centres(tmp_path):
    png = write_grey_png(tmp_path / "checker.png", [[0, 255], [255, 0]])
    prepared = prepare_instance(open_instance(png), make_card())
    # Along each axis 2 -> 4 samples weigh the two pixels (1, 0), (.75, .25), (.25, .75), (0, 1).
    expected = np.array([[0.0, 0.25, 0.75, 1.0],
                         [0.25, 0.375, 0.625, 0.75],
                         [0.75, 0.625, 0.375, 0.25],
                         [1.0, 0.75, 0.25, 0.0]], np.float32)
    np.testing.assert_allclose(prepared.tensor[0], expected, atol=1e-6)


def test_modality_source_applies_the_card_window_and_no_inversion(tmp_path):
    # Stored 0/100/200/300, slope 2, intercept -100 -> modality -100, 100, 300, 500.
    path = write_dicom(tmp_path / "mono1.dcm", np.array([[0, 100], [200, 300]]), "MONOCHROME1",
                       slope=2.0, intercept=-100.0)
    card = make_card(input={"height": 2, "width": 2},
                     preprocessing={"source": "modality", "window": {"center": 200, "width": 401}})
    prepared = prepare_instance(open_instance(path), card)
    # DICOM LINEAR: (x - 199.5) / 400 + 0.5, clipped to [0, 1].
    np.testing.assert_allclose(prepared.tensor[0], [[0.0, 0.25125], [0.75125, 1.0]], atol=1e-6)


def test_display_source_follows_monochrome1_inversion(tmp_path):
    path = write_dicom(tmp_path / "mono1.dcm", np.array([[0, 100], [200, 300]]), "MONOCHROME1",
                       slope=2.0, intercept=-100.0)
    card = make_card(input={"height": 2, "width": 2})
    prepared = prepare_instance(open_instance(path), card)
    # Full range -100..500 -> 0, 1/3, 2/3, 1, inverted, rounded to 8 bits, divided by 255.
    np.testing.assert_allclose(prepared.tensor[0], [[1.0, 170 / 255], [85 / 255, 0.0]], atol=1e-6)


def test_colour_images_become_luma_or_stay_rgb(tmp_path):
    from PIL import Image

    rgb = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]], np.uint8)
    path = tmp_path / "colour.png"
    Image.fromarray(rgb).save(path)
    grey = prepare_instance(open_instance(path), make_card(input={"height": 2, "width": 2}))
    np.testing.assert_allclose(grey.tensor[0], [[0.299, 0.587], [0.114, 1.0]], atol=1e-6)
    card = make_card(input={"channels": 3, "height": 2, "width": 2},
                     preprocessing={"channel_mode": "rgb"})
    kept = prepare_instance(open_instance(path), card)
    np.testing.assert_allclose(kept.tensor, rgb.transpose(2, 0, 1) / 255.0, atol=1e-6)


def test_letterbox_geometry_and_the_way_back_to_the_image(tmp_path):
    g = letterbox_geometry(240, 160, 64, 64)
    # scale 64/240; 160 columns -> 42.67 -> 43, centred: (64 - 43) // 2 = 10.
    assert (g.top, g.left, g.content_height, g.content_width) == (0, 10, 64, 43)
    plane = np.zeros((64, 64), np.float32)
    plane[:, 10:53] = 1.0  # the content region only
    back = g.input_to_image(plane)
    assert back.shape == (240, 160)
    np.testing.assert_allclose(back, 1.0, atol=1e-6)  # no padding leaks onto the image


def test_real_dicom_chest_is_the_displayed_image_resized(shared_data):
    instance = open_instance(shared_data / "dicom" / "fo-dicom" / "CR-MONO1-10-chest")
    card = make_card(input={"height": 64, "width": 64})
    prepared = prepare_instance(instance, card)
    display = instance.display_frame().astype(np.float32) / 255.0
    np.testing.assert_allclose(prepared.tensor[0], resize_plane(display, 64, 64), atol=1e-6)
    assert source_intensity(instance, card.preprocessing).shape == (instance.rows, instance.columns)
    # A plain average of the display shrinks to the same mean brightness (antialiased resize).
    assert abs(float(prepared.tensor.mean()) - float(display.mean())) < 0.01


@pytest.mark.parametrize("shape, size", [((3, 5), (7, 11)), ((7, 7), (224, 224)),
                                         ((64, 43), (240, 160)), ((5, 9), (5, 20))])
def test_fast_upsampling_matches_pillow_bilinear(shape, size):
    from PIL import Image

    plane = np.random.default_rng(1).random(shape, dtype=np.float32)
    pillow = np.asarray(Image.fromarray(plane).resize(size[::-1], Image.Resampling.BILINEAR))
    np.testing.assert_allclose(resize_plane(plane, *size), pillow, atol=1e-6)
