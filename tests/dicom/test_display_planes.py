"""Display shutters and overlay planes read from headers, on real files and on files built
here with known shapes and bits; checked pixel by pixel against rules written out below."""

from __future__ import annotations

import math

import numpy as np
import pydicom
import pytest
from pydicom.filewriter import dcmwrite
from pydicom.uid import ExplicitVRBigEndian

from medviewer.dicom import overlay_planes, shutters
from medviewer.dicom.reader import open_instance
from tests.dicom import PYDICOM_DATA, PYDICOM_TEST_FILES, SHARED_DICOM, write_dicom

FO_DICOM = SHARED_DICOM / "fo-dicom"


def image(tmp_path, name="img.dcm", rows=8, columns=10, **attributes):
    return open_instance(write_dicom(tmp_path / name, np.zeros((rows, columns), np.uint16),
                                     **attributes))


def centres_inside(rows, columns, inside) -> np.ndarray:
    """The rule written out: a pixel is open when its centre (c + 0.5, r + 0.5) is inside."""
    return np.array([[inside(c + 0.5, r + 0.5) for c in range(columns)] for r in range(rows)])


# ---------------------------------------------------------------- shutters


def test_rectangular_shutter_edges_include_their_edge_pixels(tmp_path):
    instance = image(tmp_path, ShutterShape="RECTANGULAR", ShutterLeftVerticalEdge=3,
                     ShutterRightVerticalEdge=6, ShutterUpperHorizontalEdge=2,
                     ShutterLowerHorizontalEdge=5, ShutterPresentationValue=0xFFFF)
    shutter = instance.display_shutter()
    assert shutter.shapes == (shutters.RectangularShutter(3, 6, 2, 5),)
    hidden = shutter.hidden_mask(8, 10)
    expected_open = np.zeros((8, 10), dtype=bool)
    expected_open[1:5, 2:6] = True  # 1-based rows 2..5 and columns 3..6
    assert np.array_equal(~hidden, expected_open)
    assert shutter.grey() == 255 and shutter.rgb() == (255, 255, 255)


def test_circular_shutter_about_a_pixel_centre(tmp_path):
    instance = image(tmp_path, rows=20, columns=20, ShutterShape="CIRCULAR",
                     CenterOfCircularShutter=[10, 8], RadiusOfCircularShutter=5)
    shutter = instance.display_shutter()
    assert shutter.presentation_value is None and shutter.rgb() == (0, 0, 0)  # black
    # 1-based pixel (row 10, column 8) has its centre at x 7.5, y 9.5.
    expected_open = centres_inside(20, 20, lambda x, y: math.hypot(x - 7.5, y - 9.5) <= 5)
    assert np.array_equal(~shutter.hidden_mask(20, 20), expected_open)
    assert expected_open.sum() == 81  # the lattice points of a radius-5 disc


def test_polygonal_shutter_by_the_even_odd_rule(tmp_path):
    # A triangle through the centres of 1-based pixels (2, 2), (2, 14) and (12, 8).
    instance = image(tmp_path, rows=16, columns=16, ShutterShape="POLYGONAL",
                     VerticesOfThePolygonalShutter=[2, 2, 2, 14, 12, 8])
    shutter = instance.display_shutter()
    a, b, c = (1.5, 1.5), (13.5, 1.5), (7.5, 11.5)

    def inside(x, y):  # the closed triangle: same side of (or on) every edge
        def side(p, q):
            return (q[0] - p[0]) * (y - p[1]) - (q[1] - p[1]) * (x - p[0])
        signs = side(a, b), side(b, c), side(c, a)
        return all(s >= 0 for s in signs) or all(s <= 0 for s in signs)

    expected_open = centres_inside(16, 16, inside)
    assert expected_open.sum() > 40
    assert np.array_equal(~shutter.hidden_mask(16, 16), expected_open)


def test_several_shapes_open_only_where_all_are_open(tmp_path):
    instance = image(tmp_path, rows=20, columns=20, ShutterShape="RECTANGULAR\\CIRCULAR",
                     ShutterLeftVerticalEdge=1, ShutterRightVerticalEdge=10,
                     ShutterUpperHorizontalEdge=1, ShutterLowerHorizontalEdge=20,
                     CenterOfCircularShutter=[10, 10], RadiusOfCircularShutter=6)
    shutter = instance.display_shutter()
    expected_open = centres_inside(20, 20, lambda x, y: x < 10 and math.hypot(x - 9.5, y - 9.5) <= 6)
    assert np.array_equal(~shutter.hidden_mask(20, 20), expected_open)


def test_shutter_colour_from_cielab():
    white = shutters.cielab_to_rgb((0xFFFF, 0x8080, 0x8080))
    assert white == (255, 255, 255)
    # sRGB red is L* 53.24, a* 80.09, b* 67.20 under D65.
    red = shutters.cielab_to_rgb((round(53.24 / 100 * 0xFFFF), round((80.09 + 128) / 255 * 0xFFFF),
                                  round((67.20 + 128) / 255 * 0xFFFF)))
    assert red[0] >= 254 and red[1] <= 2 and red[2] <= 2


def test_a_badly_described_shape_is_left_out_and_said(tmp_path):
    instance = image(tmp_path, ShutterShape="RECTANGULAR\\CIRCULAR\\OVAL",
                     CenterOfCircularShutter=[4, 4], RadiusOfCircularShutter=3)
    shutter = instance.display_shutter()
    assert shutter.shapes == (shutters.CircularShutter(4, 4, 3),)
    assert shutter.problems == ("its rectangular shutter lacks an edge",
                                "its shutter shape 'OVAL' is not one DICOM defines")
    assert image(tmp_path, "none.dcm").display_shutter() is None


def test_real_mammogram_shutter_and_its_overlays():
    instance = open_instance(FO_DICOM / "OutOfBoundsOverlay.dcm")
    shutter = instance.display_shutter()
    assert shutter.shapes == (shutters.RectangularShutter(0, 1318, 0, 788),)
    assert not shutter.hidden_mask(instance.rows, instance.columns).any()


def test_bitmap_shutter_hides_an_overlay_planes_pixels(tmp_path):
    bits = np.zeros((8, 10), dtype=bool)
    bits[:, :3] = True
    path = write_dicom(tmp_path / "bitmap.dcm", np.zeros((8, 10), np.uint16),
                       ShutterShape="BITMAP", ShutterOverlayGroup=0x6000)
    instance = open_instance(add_overlay(path, bits))
    shutter = instance.display_shutter()
    assert shutter.bitmap_groups == (0x6000,)
    plane = instance.overlay_planes().by_group(0x6000)
    hidden = shutter.hidden_mask(8, 10, [plane.image_mask(0, 8, 10)])
    assert np.array_equal(hidden, bits)


# ---------------------------------------------------------------- overlay planes


def add_overlay(path, frames_bits: np.ndarray, group: int = 0x6000, origin=(1, 1),
                frames_in_overlay: int | None = None, frame_origin: int | None = None):
    """Add an overlay plane holding ``frames_bits`` to the file at ``path``; returns path."""
    bits = np.asarray(frames_bits, dtype=bool)
    rows, columns = bits.shape[-2:]
    packed = np.packbits(bits.reshape(-1).astype(np.uint8), bitorder="little").tobytes()
    packed += b"\x00" * (len(packed) % 2)
    ds = pydicom.dcmread(path)
    ds.add_new((group, 0x0010), "US", rows)
    ds.add_new((group, 0x0011), "US", columns)
    ds.add_new((group, 0x0040), "CS", "G")
    ds.add_new((group, 0x0050), "SS", list(origin))
    ds.add_new((group, 0x0100), "US", 1)
    ds.add_new((group, 0x0102), "US", 0)
    if frames_in_overlay is not None:
        ds.add_new((group, 0x0015), "IS", frames_in_overlay)
    if frame_origin is not None:
        ds.add_new((group, 0x0051), "US", frame_origin)
    ds.add_new((group, 0x1500), "LO", "test plane")
    ds.add_new((group, 0x3000), "OW", packed)
    ds.save_as(path)
    return path


def with_overlay(tmp_path, bits, name="ov.dcm", rows=8, columns=10, **overlay):
    path = write_dicom(tmp_path / name, np.zeros((rows, columns), np.uint16))
    return open_instance(add_overlay(path, bits, **overlay))


@pytest.mark.parametrize("path", [
    PYDICOM_DATA / "MR-SIEMENS-DICOM-WithOverlays.dcm" if PYDICOM_DATA else None,
    PYDICOM_TEST_FILES / "examples_overlay.dcm",
    FO_DICOM / "OutOfBoundsOverlay.dcm",
], ids=["siemens-mr", "pydicom-example", "fo-dicom-out-of-bounds"])
def test_real_overlays_unpack_as_pydicom_unpacks_them(path):
    if path is None:
        pytest.skip("pydicom-data is not installed")
    ds = pydicom.dcmread(path)
    planes = open_instance(path).overlay_planes()
    assert planes.planes and not planes.problems
    for plane in planes.planes:
        bitmap = plane.bitmap(0)
        assert bitmap.shape == (plane.rows, plane.columns)
        assert np.array_equal(bitmap, ds.overlay_array(plane.group).astype(bool))
        assert bitmap.any()


def test_overlay_outside_the_image_is_cut_to_it():
    instance = open_instance(FO_DICOM / "OutOfBoundsOverlay.dcm")
    plane = instance.overlay_planes().by_group(0x6002)
    assert (plane.origin_row, plane.origin_column) == (-25, -25)
    assert plane.name == "Overlay 2 (6002): First target mark"
    bitmap, row0, col0 = plane.placed(0, instance.rows, instance.columns)
    assert (row0, col0) == (0, 0)
    assert np.array_equal(bitmap, plane.bitmap(0)[26:, 26:])  # rows/columns -25..0 fall off
    mask = plane.image_mask(0, instance.rows, instance.columns)
    assert mask.sum() == bitmap.sum() and np.array_equal(mask[:75, :75], bitmap)


def test_origin_places_the_overlay(tmp_path):
    bits = np.zeros((3, 4), dtype=bool)
    bits[0, 0] = bits[2, 3] = True
    instance = with_overlay(tmp_path, bits, origin=(4, 5))
    mask = instance.overlay_planes().planes[0].image_mask(0, 8, 10)
    assert np.argwhere(mask).tolist() == [[3, 4], [5, 7]]
    beyond = with_overlay(tmp_path, bits, "beyond.dcm", origin=(20, 20))
    assert beyond.overlay_planes().planes[0].placed(0, 8, 10) is None


def test_multi_frame_overlay_follows_image_frame_origin(tmp_path):
    rng = np.random.default_rng(3)
    frames = rng.random((3, 5, 3)) > 0.5  # 15 bits a frame: frames are not byte-aligned
    pixels = np.zeros((5, 5, 3), dtype=np.uint16)
    path = add_overlay(write_dicom(tmp_path / "mf.dcm", pixels, NumberOfFrames=5), frames,
                       frames_in_overlay=3, frame_origin=2)
    plane = open_instance(path).overlay_planes().planes[0]
    assert (plane.frames, plane.image_frame_origin, plane.every_frame) == (3, 2, False)
    assert plane.bitmap(0) is None and plane.bitmap(4) is None
    for image_frame, overlay_frame in ((1, 0), (2, 1), (3, 2)):
        assert np.array_equal(plane.bitmap(image_frame), frames[overlay_frame])


def test_single_frame_overlay_applies_to_every_frame(tmp_path):
    bits = np.eye(3, dtype=bool)
    path = add_overlay(write_dicom(tmp_path / "mf.dcm", np.zeros((4, 3, 3), np.uint16),
                                   NumberOfFrames=4), bits)
    plane = open_instance(path).overlay_planes().planes[0]
    assert plane.every_frame
    assert all(np.array_equal(plane.bitmap(f), bits) for f in range(4))


def test_big_endian_ow_words_are_swapped_back(tmp_path):
    bits = np.zeros((4, 8), dtype=bool)
    bits[0, :3] = bits[1, 9 - 8] = bits[3, 7] = True
    path = add_overlay(write_dicom(tmp_path / "le.dcm", np.zeros((4, 8), np.uint16)), bits)
    ds = pydicom.dcmread(path)
    packed = ds[0x60003000].value
    swapped = np.frombuffer(packed, "<u2").astype(">u2").tobytes()  # OW words as a BE file has them
    ds[0x60003000].value = swapped
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    ds.PixelData = np.zeros((4, 8), ">u2").tobytes()
    big = tmp_path / "be.dcm"
    dcmwrite(big, ds, little_endian=False, implicit_vr=False, force_encoding=True)
    assert pydicom.dcmread(big).original_encoding == (False, False)
    plane = open_instance(big).overlay_planes().planes[0]
    assert np.array_equal(plane.bitmap(0), bits)


def test_planes_that_cannot_be_shown_are_said_and_left_out(tmp_path):
    short = with_overlay(tmp_path, np.ones((8, 10), bool), "short.dcm")
    ds = pydicom.dcmread(short.path)
    ds[0x60003000].value = ds[0x60003000].value[:4]
    ds.save_as(short.path)
    planes = open_instance(short.path).overlay_planes()
    assert planes.planes == ()
    assert planes.problems == ("overlay plane 6000 has 4 bytes of Overlay Data where its "
                               "10 x 8 size needs 10",)
    in_pixels = open_instance(FO_DICOM / "IM-0001-0001-0001.dcm").overlay_planes()
    assert in_pixels.problems == ("overlay plane 6000 has no Overlay Data",)
    assert not overlay_planes.has_overlay_planes(pydicom.dcmread(PYDICOM_TEST_FILES / "CT_small.dcm"))
