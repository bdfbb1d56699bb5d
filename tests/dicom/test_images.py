"""Plain PNG/JPEG X-rays: grey and RGB, 8 and 16 bits, generated and real (Kermany)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from medviewer.dicom import images
from medviewer.dicom.reader import LoadError, open_instance, pixel_cache
from tests.dicom import SHARED_DICOM

KERMANY = SHARED_DICOM.parent / "xray" / "kermany224"


@pytest.fixture(autouse=True)
def empty_cache():
    pixel_cache.clear()
    yield
    pixel_cache.clear()


def _ramp(dtype=np.uint8, shape=(30, 40)) -> np.ndarray:
    top = np.iinfo(dtype).max
    return (np.linspace(0, top, shape[0] * shape[1]).reshape(shape)).astype(dtype)


def test_grey_8_bit_png_is_shown_as_stored(tmp_path):
    grey = _ramp()
    grey[0, 0], grey[0, 1] = 10, 240  # no stretching: 10 stays 10
    Image.fromarray(grey).save(tmp_path / "grey.png")
    instance = open_instance(tmp_path / "grey.png")
    assert not instance.is_colour and instance.header.BitsStored == 8
    assert np.array_equal(instance.stored_frame(0), grey)
    assert np.array_equal(instance.display_frame(0), grey)
    assert instance.default_voi().label == "As stored"


def test_grey_16_bit_png_keeps_its_values(tmp_path):
    grey = (_ramp(np.uint16) // 16).astype(np.uint16)  # 12 bits used of 16
    Image.fromarray(grey).save(tmp_path / "grey16.png")
    instance = open_instance(tmp_path / "grey16.png")
    assert instance.header.BitsStored == 16 and not instance.is_colour
    stored = instance.stored_frame(0)
    assert stored.dtype == np.uint16 and np.array_equal(stored, grey)
    shown = instance.display_frame(0)  # full range of the data: 0 -> 0, max -> 255
    assert shown.dtype == np.uint8 and shown.min() == 0 and shown.max() == 255


def test_rgb_png_stays_colour(tmp_path):
    rgb = np.zeros((20, 30, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    rgb[5:10, :, 2] = 90
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    instance = open_instance(tmp_path / "rgb.png")
    assert instance.is_colour
    assert np.array_equal(instance.display_frame(0), rgb)


def test_rgba_and_palette_pngs(tmp_path):
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 1], rgba[..., 3] = 180, 255
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    assert open_instance(tmp_path / "rgba.png").display_frame(0)[0, 0].tolist() == [0, 180, 0]
    Image.fromarray(_ramp()).convert("P").save(tmp_path / "palette.png")
    shown = open_instance(tmp_path / "palette.png").display_frame(0)
    assert shown.shape == (30, 40)  # a grey palette is grey


def test_grey_stored_as_rgb_jpeg_becomes_grey(tmp_path):
    grey = _ramp()
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "x.jpg", quality=100)
    instance = open_instance(tmp_path / "x.jpg")
    shown = instance.display_frame(0)
    assert shown.shape == (30, 40) and not instance.is_colour
    assert np.abs(shown.astype(int) - grey).max() <= 3  # JPEG at quality 100


def _fragment(dicom: Path) -> bytes:
    ds = pydicom.dcmread(dicom)
    return next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))


@pytest.mark.parametrize("name, bits", [("JPEGExtended/JPEGExtended_1s_1f_u_16_12.dcm", 12),
                                        ("JPEGLosslessSV1/JPEG-LL.dcm", 16)])
def test_deep_jpegs_pillow_cannot_read_fall_back_to_libjpeg(tmp_path, name, bits):
    """12-bit and lossless 16-bit JPEG streams (taken out of DICOM files) as .jpg files."""
    dicom = SHARED_DICOM / "pylibjpeg" / "ljdata" / "ds" / name
    path = tmp_path / "deep.jpg"
    path.write_bytes(_fragment(dicom))
    with pytest.raises(Exception):
        Image.open(path).load()  # the premise: Pillow cannot
    instance = open_instance(path)
    assert instance.header.BitsStored == 16
    stored = instance.stored_frame(0)
    assert np.array_equal(stored, pydicom.dcmread(dicom).pixel_array)
    assert stored.max() < 2**bits
    assert instance.display_frame(0).dtype == np.uint8


def test_kermany_radiographs():
    paths = sorted((KERMANY / "test" / "NORMAL").glob("*.jpeg"))[:3] + \
        sorted((KERMANY / "test" / "PNEUMONIA").glob("*.jpeg"))[:3]
    assert len(paths) == 6, f"Kermany images not found under {KERMANY}"
    for path in paths:
        instance = open_instance(path)
        shown = instance.display_frame(0)
        assert shown.shape == (224, 224), path  # stored as RGB, grey in fact
        with Image.open(path) as image:
            assert np.array_equal(shown, np.asarray(image.convert("L")))
        assert instance.header.PatientID == f"IMG-{instance.content_hash[:12]}"


def test_identity_comes_from_content(tmp_path):
    source = sorted((KERMANY / "test" / "NORMAL").glob("*.jpeg"))[0]
    copy = tmp_path / "renamed.jpeg"
    shutil.copy(source, copy)
    a, b = open_instance(source), open_instance(copy)
    assert a.sop_instance_uid == b.sop_instance_uid and a.content_hash == b.content_hash
    assert "person" not in str(a.header.PatientName).lower()  # nothing from the file name


def test_broken_images_give_clear_errors(tmp_path):
    Image.fromarray(_ramp(shape=(300, 300))).save(tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(LoadError, match=r"cut\.png: the image cannot be decoded"):
        open_instance(tmp_path / "cut.png").display_frame(0)

    Image.fromarray(_ramp(shape=(300, 300))).save(tmp_path / "whole.jpg")
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(LoadError, match="the image cannot be decoded"):
        open_instance(tmp_path / "cut.jpg").display_frame(0)

    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(LoadError, match="named like a PNG/JPEG image but is not one"):
        open_instance(tmp_path / "text.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(LoadError, match="the file is empty"):
        open_instance(tmp_path / "empty.jpg")
    (tmp_path / "header-only.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 20)
    with pytest.raises(LoadError) as caught:
        open_instance(tmp_path / "header-only.jpg").display_frame(0)
    assert str(tmp_path / "header-only.jpg") in str(caught.value)
    assert str(caught.value).count(str(tmp_path)) == 1  # the path once, not echoed again


def test_plain_image_suffixes():
    assert images.is_plain_image(Path("a.PNG")) and images.is_plain_image(Path("b.jpeg"))
    assert not images.is_plain_image(Path("c.dcm"))


def test_a_second_instance_of_a_decoded_grey_jpeg_knows_it_is_grey():
    """Thumbnails and prefetch open the same file again; the cached frame is grey."""
    path = sorted((KERMANY / "test" / "NORMAL").glob("*.jpeg"))[0]
    first = open_instance(path)
    assert first.is_colour  # stored as RGB: only decoding tells it is grey
    first.display_frame(0)
    assert not first.is_colour
    second = open_instance(path)
    assert not second.is_colour and second.display_frame(0).shape == (224, 224)


def test_an_instance_opened_before_another_decoded_the_file_learns_from_the_cached_frame():
    """Its own load() never runs when the frame comes from the shared cache."""
    path = sorted((KERMANY / "test" / "NORMAL").glob("*.jpeg"))[0]
    opened_early = open_instance(path)
    decoding = open_instance(path)
    decoding.display_frame(0)  # fills the shared pixel cache
    assert opened_early.is_colour  # nothing told it yet
    assert opened_early.display_frame(0).shape == (224, 224)
    assert not opened_early.is_colour
