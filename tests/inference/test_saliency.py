"""Saliency maps land on the right image pixels: CAM (stretch and letterbox) and occlusion."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.dicom.reader import open_instance
from medviewer.inference.audit import AuditLog
from medviewer.inference.predict import predict_instance
from medviewer.inference.registry import ModelError
from medviewer.inference.runtime import get_session
from medviewer.inference.saliency import (
    blend_overlay, explain_instance, jet_colormap, occlusion_saliency)
from medviewer.jobs import CancelFlag, JobCancelled
from tests.inference.conftest import write_grey_png

ROWS, COLS = 240, 160  # deliberately not square


def _cam_session(install, resize: str):
    entry = install("cam", name=f"cam-{resize}", builder_args={"height": 64, "width": 64, "pool": 8},
                    input={"height": 64, "width": 64}, outputs={"cam": "cam"},
                    preprocessing={"resize": resize})
    return get_session(entry, device="cpu")


def _image_with_block(tmp_path, rows: slice, cols: slice):
    pixels = np.zeros((ROWS, COLS), np.uint8)
    pixels[rows, cols] = 255
    return open_instance(write_grey_png(tmp_path / "block.png", pixels))


def _hot_centroid(values: np.ndarray, level: float = 0.9) -> tuple[float, float]:
    rows, cols = np.nonzero(values >= level)
    return float(rows.mean()), float(cols.mean())


@pytest.mark.parametrize("resize, block, centre", [
    # stretch: input cell (2, 5) of the 8x8 CAM covers image rows 60-89, cols 100-119.
    ("stretch", (slice(60, 90), slice(100, 120)), (74.5, 109.5)),
    # letterbox: content 64x43 at input column 10; cell (1, 5) covers image rows 30-59 and
    # columns (40-10)*160/43 .. (48-10)*160/43 = 112-141. Ignoring the letterbox would put
    # the peak near column 110 instead of 126.5.
    ("letterbox", (slice(30, 60), slice(112, 142)), (44.5, 126.5)),
])
def test_cam_peak_lands_on_the_bright_block(install, tmp_path, resize, block, centre):
    session = _cam_session(install, resize)
    instance = _image_with_block(tmp_path, *block)
    prediction, saliency = explain_instance(session, instance, class_name="finding")
    assert saliency.values.shape == (ROWS, COLS) and saliency.values.dtype == np.float32
    assert saliency.values.min() == 0.0 and saliency.values.max() == pytest.approx(1.0)
    peak = np.unravel_index(np.argmax(saliency.values), saliency.values.shape)
    assert block[0].start <= peak[0] < block[0].stop and block[1].start <= peak[1] < block[1].stop
    row, col = _hot_centroid(saliency.values)
    assert abs(row - centre[0]) <= 4 and abs(col - centre[1]) <= 4, (row, col)
    far = saliency.values.copy()
    far[max(0, block[0].start - 40):block[0].stop + 40,
        max(0, block[1].start - 40):block[1].stop + 40] = 0
    assert far.max() < 0.05  # nothing hot away from the block
    assert saliency.forward_passes == 1 and saliency.method == "cam"
    assert saliency.class_name == "finding" and saliency.probability == prediction.score(
        "finding").probability


def test_cam_and_prediction_come_from_one_pass_and_are_audited(install, tmp_path):
    session = _cam_session(install, "stretch")
    instance = _image_with_block(tmp_path, slice(0, 30), slice(0, 20))
    prediction, saliency = explain_instance(session, instance)
    plain = predict_instance(session, instance, audit=False)
    assert [s.probability for s in prediction.scores] == pytest.approx(
        [s.probability for s in plain.scores], abs=1e-6)
    assert saliency.class_name == plain.top.name == "normal"  # the top class by default
    assert len(AuditLog().rows()) == 1


def test_cam_on_a_model_without_it_is_one_sentence(install, tmp_path):
    session = get_session(install("mean"), device="cpu")
    with pytest.raises(ModelError, match="has no class activation map output; use occlusion"):
        explain_instance(session, _image_with_block(tmp_path, slice(0, 5), slice(0, 5)))


def test_occlusion_finds_the_only_region_the_model_looks_at(install, tmp_path):
    # The model's score is the mean of input rows 8-15, cols 40-55 (of 64x64).
    entry = install("region", builder_args={"height": 64, "width": 64, "region": (8, 16, 40, 56)},
                    input={"height": 64, "width": 64})
    session = get_session(entry, device="cpu")
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 40, (128, 192)).astype(np.uint8)
    pixels[16:32, 120:168] = 255  # that region, on the image (stretch: rows x2, cols x3)
    instance = open_instance(write_grey_png(tmp_path / "region.png", pixels))
    saliency = occlusion_saliency(session, instance, class_name="finding", patch=8, stride=4,
                                  batch_size=32)
    assert saliency.forward_passes == 15 * 15 + 1 and saliency.seconds > 0
    assert saliency.params == {"patch": 8, "stride": 4, "batch_size": 32, "patches": 225}
    values = saliency.values
    assert values.shape == (128, 192)
    # Patches change the score only when they overlap the region: input rows 1-22, cols 33-62.
    assert values[50:, :].max() == 0.0 and values[:, :96].max() == 0.0
    assert values[16:32, 120:168].mean() > 0.6
    peak = np.unravel_index(np.argmax(values), values.shape)
    assert 16 <= peak[0] < 32 and 120 <= peak[1] < 168


def test_occlusion_skips_letterbox_padding_and_can_be_cancelled(install, tmp_path):
    entry = install("region", builder_args={"height": 64, "width": 64, "region": (20, 40, 20, 40)},
                    input={"height": 64, "width": 64}, preprocessing={"resize": "letterbox"})
    session = get_session(entry, device="cpu")
    instance = open_instance(write_grey_png(tmp_path / "wide.png",
                                            np.tile(np.arange(192, dtype=np.uint8), (128, 1))))
    # Content is 43 rows from input row 10: patch rows 10, 26, 37; columns 0, 16, 32, 48.
    saliency = occlusion_saliency(session, instance, patch=16, stride=16)
    assert saliency.forward_passes == 3 * 4 + 1
    assert saliency.values.shape == (128, 192)
    cancel = CancelFlag()
    cancel.cancel()
    with pytest.raises(JobCancelled):
        occlusion_saliency(session, instance, patch=16, stride=16, cancel=cancel)


def test_jet_colour_map_and_blending():
    np.testing.assert_array_equal(jet_colormap(np.array([0.0, 0.5, 1.0])),
                                  [[0, 0, 128], [128, 255, 128], [128, 0, 0]])
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    unchanged = blend_overlay(grey, np.zeros((3, 4), np.float32), opacity=0.8)
    np.testing.assert_array_equal(unchanged, np.repeat(grey[..., None], 3, axis=2))
    full = blend_overlay(grey, np.ones((3, 4), np.float32), opacity=1.0)
    np.testing.assert_array_equal(full, np.broadcast_to([128, 0, 0], (3, 4, 3)))
    half = blend_overlay(np.zeros((1, 1), np.uint8), np.ones((1, 1), np.float32), opacity=0.5)
    np.testing.assert_array_equal(half, [[[64, 0, 0]]])
    with pytest.raises(ValueError):
        blend_overlay(grey, np.zeros((4, 3), np.float32))
