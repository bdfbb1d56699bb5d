"""Each step of the display pipeline against values computed by hand (PS3.3 C.11, C.7.6.3).

Synthetic datasets pin the formulas at their edge points; real files (fo-dicom, pydicom,
pydicom-data) check that the same steps are taken on what scanners write.
"""

from __future__ import annotations

import math

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medviewer.dicom import pixels
from medviewer.dicom.reader import LoadError, open_instance
from tests.dicom import PYDICOM_DATA, PYDICOM_TEST_FILES, SHARED_DICOM, write_dicom

FO_DICOM = SHARED_DICOM / "fo-dicom"


def _dataset(**attributes) -> Dataset:
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.SamplesPerPixel = 1
    ds.PixelRepresentation = 0
    ds.BitsStored = 16
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def _lut_item(descriptor: list[int], data: list[int] | bytes, **attributes) -> Dataset:
    item = Dataset()
    item.LUTDescriptor = descriptor
    item.LUTData = data
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return item


# ---------------------------------------------------------------- Modality LUT


def test_rescale_slope_and_intercept():
    ds = _dataset(RescaleSlope="2", RescaleIntercept="-1024")
    stored = np.array([0, 1, 512, 1000], dtype=np.uint16)
    assert pixels.modality_lut(stored, ds).tolist() == [-1024, -1022, 0, 976]


def test_identity_rescale_returns_the_stored_array_itself():
    ds = _dataset(RescaleSlope="1", RescaleIntercept="0")
    stored = np.array([3, 4], dtype=np.uint16)
    assert pixels.modality_lut(stored, ds) is stored


def test_unusable_rescale_values_fall_back_to_identity():
    assert pixels.rescale(_dataset(RescaleSlope="0", RescaleIntercept="5")) == (1.0, 5.0)
    assert pixels.rescale(_dataset()) == (1.0, 0.0)


def test_enhanced_rescale_is_per_frame_with_shared_fallback():
    def transformation(slope: str, intercept: str) -> Dataset:
        group = Dataset()
        macro = Dataset()
        macro.RescaleSlope, macro.RescaleIntercept = slope, intercept
        group.PixelValueTransformationSequence = Sequence([macro])
        return group

    ds = _dataset()
    ds.PerFrameFunctionalGroupsSequence = Sequence([transformation("1", "0"),
                                                    transformation("3", "-10"),
                                                    Dataset()])
    ds.SharedFunctionalGroupsSequence = Sequence([transformation("0.5", "100")])
    stored = np.array([10], dtype=np.uint16)
    assert pixels.modality_lut(stored, ds, frame=0) is stored
    assert pixels.modality_lut(stored, ds, frame=1).tolist() == [20]  # 3 * 10 - 10
    assert pixels.modality_lut(stored, ds, frame=2).tolist() == [105]  # shared: 0.5 * 10 + 100


def test_modality_lut_sequence_synthetic_with_clamping():
    # 4 entries starting at stored value 10: below the first entry -> first, above -> last.
    ds = _dataset(ModalityLUTSequence=Sequence([_lut_item([4, 10, 16], [100, 200, 300, 400])]))
    stored = np.array([0, 9, 10, 11, 12, 13, 14, 60000], dtype=np.uint16)
    assert pixels.modality_lut(stored, ds).tolist() == [100, 100, 100, 200, 300, 400, 400, 400]


def test_modality_lut_sequence_ow_bytes_and_signed_first_value():
    # OW table (little endian) and a first value of 65526 meaning -10 for signed data.
    table = np.array([5, 6, 7], dtype="<u2").tobytes()
    ds = _dataset(PixelRepresentation=1,
                  ModalityLUTSequence=Sequence([_lut_item([3, 65526, 16], table)]))
    stored = np.array([-11, -10, -9, -8, 0], dtype=np.int16)
    assert pixels.modality_lut(stored, ds).tolist() == [5, 5, 6, 7, 7]


def test_modality_lut_sequence_of_a_real_cr():
    """fo-dicom CR-ModalitySequenceLUT: 1024-entry OW table, first mapped value 0."""
    instance = open_instance(FO_DICOM / "CR-ModalitySequenceLUT.dcm")
    item = instance.header.ModalityLUTSequence[0]
    assert list(item.LUTDescriptor) == [1024, 0, 16]
    table = np.frombuffer(item.LUTData, dtype="<u2")
    stored = instance.stored_frame(0)
    expected = table[np.clip(stored, 0, 1023)]
    assert np.array_equal(instance.modality_frame(0), expected)
    # The tail of the table (bytes ...fe 03 ff 03) maps the brightest inputs to 1022, 1023.
    assert table[-2:].tolist() == [1022, 1023]


def test_modality_lut_sequence_agrees_with_pydicom_on_mlut_18():
    instance = open_instance(PYDICOM_DATA / "mlut_18.dcm")
    stored = instance.stored_frame(0)
    expected = pydicom.pixels.apply_modality_lut(stored, instance.header)
    assert np.array_equal(instance.modality_frame(0), expected)


# ---------------------------------------------------------------- VOI: window functions


def _unit(values, center, width, function) -> list[float]:
    window = pixels.Window(center, width, function)
    return pixels.apply_window(np.array(values, dtype=np.float64), window).tolist()


def test_linear_window_edges():
    # c = 100, w = 21: 0 at or below c - 0.5 - (w-1)/2 = 89.5, 1 above c - 0.5 + (w-1)/2 = 109.5
    values = _unit([80, 89.5, 94.5, 99.5, 104.5, 109.5, 109.6, 200], 100, 21, "LINEAR")
    assert values == pytest.approx([0, 0, 0.25, 0.5, 0.75, 1, 1, 1])


def test_linear_window_of_width_one_is_a_threshold_at_c_minus_half():
    assert _unit([98, 99.5, 99.6, 101], 100, 1, "LINEAR") == [0, 0, 1, 1]


def test_linear_exact_window_edges():
    # c = 100, w = 20: 0 at or below c - w/2 = 90, 1 above c + w/2 = 110, linear between.
    values = _unit([80, 90, 95, 100, 105, 110, 111], 100, 20, "LINEAR_EXACT")
    assert values == pytest.approx([0, 0, 0.25, 0.5, 0.75, 1, 1])


def test_sigmoid_window_points():
    # y = 1 / (1 + exp(-4 (x - c) / w)) with c = 100, w = 20
    values = _unit([90, 100, 105, 1e6, -1e6], 100, 20, "SIGMOID")
    assert values == pytest.approx([1 / (1 + math.e**2), 0.5, 1 / (1 + math.e**-1), 1, 0],
                                   abs=1e-6)


def test_linear_and_linear_exact_differ_by_the_half_pixel_model():
    linear = _unit([95], 100, 11, "LINEAR")[0]  # (95 - 99.5) / 10 + 0.5 = 0.05
    exact = _unit([95], 100, 11, "LINEAR_EXACT")[0]  # (95 - 100) / 11 + 0.5 = 0.04545...
    assert linear == pytest.approx(0.05) and exact == pytest.approx(0.5 - 5 / 11)


def test_to_display_rounds_to_8_bit_and_inverts():
    window = pixels.Window(100, 20, "LINEAR_EXACT")
    values = np.array([90, 95, 100, 110], dtype=np.int16)
    assert pixels.to_display(values, window, invert=False).tolist() == [0, 64, 128, 255]
    assert pixels.to_display(values, window, invert=True).tolist() == [255, 191, 127, 0]


def test_several_window_values_with_explanations_and_function():
    ds = _dataset(WindowCenter=["40", "300"], WindowWidth=["400", "1500"],
                  WindowCenterWidthExplanation=["SOFT TISSUE", "BONE"],
                  VOILUTFunction="LINEAR_EXACT")
    windows = pixels.file_windows(ds)
    assert windows == [pixels.Window(40, 400, "LINEAR_EXACT", "SOFT TISSUE"),
                       pixels.Window(300, 1500, "LINEAR_EXACT", "BONE")]
    assert pixels.default_voi(ds, np.zeros(1)) == windows[0]


def test_window_width_below_one_is_ignored_for_linear_only():
    assert pixels.file_windows(_dataset(WindowCenter="10", WindowWidth="0.5")) == []
    kept = pixels.file_windows(_dataset(WindowCenter="10", WindowWidth="0.5",
                                        VOILUTFunction="SIGMOID"))
    assert kept == [pixels.Window(10, 0.5, "SIGMOID", "File window 1")]


def test_real_file_with_three_windows_sigmoid_and_voi_lut():
    """fo-dicom GH133: three windows, VOI LUT Function SIGMOID, and a VOI LUT Sequence."""
    instance = open_instance(FO_DICOM / "GH133.dcm")
    windows = instance.file_windows()
    assert len(windows) == 3 and {w.function for w in windows} == {"SIGMOID"}
    assert instance.voi_luts(), "the VOI LUT Sequence is offered too"
    assert instance.default_voi() == windows[0]
    centre = windows[0].center
    values = np.array([centre], dtype=np.float32)
    assert pixels.apply_window(values, windows[0]).tolist() == [0.5]


# ---------------------------------------------------------------- VOI LUT Sequence


def test_voi_lut_sequence_synthetic():
    ds = _dataset(VOILUTSequence=Sequence([_lut_item([3, 0, 8], [0, 128, 255],
                                                     LUTExplanation="Soft")]))
    (lut,) = pixels.file_voi_luts(ds)
    assert (lut.first_mapped, lut.output_max, lut.label) == (0, 255.0, "Soft")
    unit = pixels.apply_voi(np.array([-3, 0, 1, 2, 9]), lut)
    assert unit.tolist() == pytest.approx([0, 0, 128 / 255, 1, 1])
    assert pixels.default_voi(ds, np.zeros(1)) == lut  # no window: the LUT is the default


def test_voi_lut_sequence_agrees_with_pydicom_on_vlut_04():
    instance = open_instance(PYDICOM_DATA / "vlut_04.dcm")
    (lut,) = instance.voi_luts()
    stored = instance.stored_frame(0)
    expected = pydicom.pixels.apply_voi(stored, instance.header)  # the LUT's own output values
    ours = pixels.apply_voi(instance.modality_frame(0), lut) * lut.output_max
    assert np.allclose(ours, expected)
    assert lut.output_max == 2**16 - 1  # descriptor [256, 0, 16]


# ---------------------------------------------------------------- inversion


def test_monochrome1_is_shown_inverted():
    """fo-dicom CR-MONO1-10-chest (ACR-NEMA, no meta): low values are bright."""
    instance = open_instance(FO_DICOM / "CR-MONO1-10-chest")
    assert instance.header.PhotometricInterpretation == "MONOCHROME1" and instance.inverted
    window = pixels.Window(550, 1024, "LINEAR")
    shown = instance.display_frame(0, window)
    plain = pixels.to_display(instance.modality_frame(0), window, invert=False)
    assert np.array_equal(shown, 255 - plain)
    stored = instance.stored_frame(0)
    assert shown[stored == stored.min()].min() == 255  # the lowest value is white
    # The user's own inversion undoes the file's.
    assert np.array_equal(instance.display_frame(0, window, invert=True), plain)


@pytest.mark.parametrize("photometric, shape, inverted", [
    ("MONOCHROME2", "IDENTITY", False),
    ("MONOCHROME2", "INVERSE", True),
    ("MONOCHROME1", "", True),
    ("MONOCHROME1", "INVERSE", True),  # DX: both describe one and the same inversion
])
def test_presentation_lut_shape(tmp_path, photometric, shape, inverted):
    attributes = {"PhotometricInterpretation": photometric, "WindowCenter": "100",
                  "WindowWidth": "100", "VOILUTFunction": "LINEAR_EXACT"}
    if shape:
        attributes["PresentationLUTShape"] = shape
    path = write_dicom(tmp_path / "p.dcm", np.array([[50, 100, 150]], dtype=np.uint16),
                       **attributes)
    instance = open_instance(path)
    assert instance.inverted is inverted
    expected = [255, 127, 0] if inverted else [0, 128, 255]
    assert instance.display_frame(0).tolist() == [expected]


# ---------------------------------------------------------------- colour


@pytest.mark.parametrize("name, bits", [("TestPattern_Palette.dcm", 8),
                                        ("TestPattern_Palette_16.dcm", 16)])
def test_palette_colour_lookup(name, bits):
    instance = open_instance(FO_DICOM / name)
    header = instance.header
    assert instance.is_colour
    raw = pydicom.dcmread(FO_DICOM / name).pixel_array  # palette indices
    tables = []
    for colour in ("Red", "Green", "Blue"):
        data = header[f"{colour}PaletteColorLookupTableData"].value
        tables.append(np.frombuffer(data, dtype=np.uint8 if bits == 8 else "<u2"))
    rgb = instance.stored_frame(0)
    for row, col in ((0, 0), (300, 300), (200, 320), (399, 639)):
        index = raw[row, col]
        assert rgb[row, col].tolist() == [int(t[index]) for t in tables]
    # 16-bit entries are scaled to 8 bits for display: 65535 -> 255, 29041 -> 113
    shown = instance.display_frame(0)
    assert shown.dtype == np.uint8
    scale = 255 / (2**bits - 1)
    assert shown[300, 300].tolist() == [round(v * scale) for v in rgb[300, 300].tolist()]


@pytest.mark.parametrize("name", ["SC_ybr_full_422_uncompressed.dcm"])
def test_ybr_is_converted_to_rgb(name):
    """pydicom's colour bars stored as YBR_FULL_422: decoded to the RGB of SC_rgb.dcm."""
    ybr = open_instance(PYDICOM_TEST_FILES / name)
    rgb = open_instance(PYDICOM_DATA / "SC_rgb.dcm")
    assert ybr.header.PhotometricInterpretation == "YBR_FULL_422"
    decoded, reference = ybr.stored_frame(0), rgb.stored_frame(0)
    assert decoded.shape == reference.shape == (100, 100, 3)
    # Bars (rows 0-9 red, 20-29 green, 40-49 blue...): YCbCr rounding costs a few levels.
    assert decoded[5, 50].tolist() == pytest.approx([255, 0, 0], abs=2)
    assert decoded[25, 50].tolist() == pytest.approx([0, 255, 0], abs=6)
    assert decoded[45, 50].tolist() == pytest.approx([0, 0, 255], abs=2)
    assert np.abs(decoded.astype(int) - reference).max() <= 6


def test_jpeg_ybr_is_converted_to_rgb():
    instance = open_instance(PYDICOM_TEST_FILES / "SC_rgb_jpeg_dcmtk.dcm")
    assert instance.header.PhotometricInterpretation == "YBR_FULL"
    red = instance.stored_frame(0)[5, 50].tolist()
    assert red[0] > 240 and red[1] < 15 and red[2] < 15


def test_16_bit_rgb_is_scaled_by_its_bit_depth(tmp_path):
    rgb = np.zeros((2, 2, 3), dtype=np.uint16)
    rgb[0, 0] = (65535, 0, 32768)
    rgb[1, 1] = (200, 200, 200)  # dark in 16 bits: must not be mistaken for 8-bit values
    instance = open_instance(write_dicom(tmp_path / "rgb16.dcm", rgb))
    shown = instance.display_frame(0)
    assert shown[0, 0].tolist() == [255, 0, 128]
    assert shown[1, 1].tolist() == [1, 1, 1]


# ---------------------------------------------------------------- multi-frame


def test_multi_frame_frames_match_pydicom():
    for path in (PYDICOM_DATA / "emri_small.dcm", PYDICOM_DATA / "emri_small_RLE.dcm",
                 PYDICOM_DATA / "emri_small_jpeg_2k_lossless.dcm"):
        instance = open_instance(path)
        reference = pydicom.dcmread(path).pixel_array
        assert instance.n_frames == 10 == reference.shape[0]
        for frame in (0, 4, 9):
            assert np.array_equal(instance.stored_frame(frame), reference[frame]), (path, frame)


def test_multi_frame_synthetic_each_frame_its_own_values(tmp_path):
    frames = np.stack([np.full((4, 5), value, dtype=np.uint16) for value in (10, 20, 30)])
    instance = open_instance(write_dicom(tmp_path / "mf.dcm", frames))
    assert [int(instance.stored_frame(i)[0, 0]) for i in range(3)] == [10, 20, 30]
    with pytest.raises(Exception, match="frame 4 does not exist"):
        instance.stored_frame(3)


# ---------------------------------------------------------------- pixel spacing


def test_pixel_spacing_sources_in_order_of_preference():
    both = _dataset(PixelSpacing=["0.2", "0.3"], ImagerPixelSpacing=["0.1", "0.1"])
    assert pixels.pixel_spacing(both) == pixels.Spacing(0.2, 0.3, "Pixel Spacing (in the patient)")
    imager = _dataset(ImagerPixelSpacing=["0.15", "0.15"])
    assert pixels.pixel_spacing(imager).source == "Imager Pixel Spacing (at the detector)"
    magnified = _dataset(ImagerPixelSpacing=["0.11", "0.22"],
                         EstimatedRadiographicMagnificationFactor="1.1")
    spacing = pixels.pixel_spacing(magnified)
    assert (spacing.row_mm, spacing.col_mm) == pytest.approx((0.1, 0.2))
    assert "magnification 1.1" in spacing.source
    scanned = _dataset(NominalScannedPixelSpacing=["0.5", "0.5"])
    assert pixels.pixel_spacing(scanned).source == "Nominal Scanned Pixel Spacing (film scan)"
    assert pixels.pixel_spacing(_dataset()) is None
    assert pixels.pixel_spacing(_dataset(PixelSpacing=["0", "0.1"])) is None


def test_pixel_spacing_from_enhanced_functional_groups():
    measures = Dataset()
    measures.PixelSpacing = ["0.7", "0.8"]
    group = Dataset()
    group.PixelMeasuresSequence = Sequence([measures])
    ds = _dataset(SharedFunctionalGroupsSequence=Sequence([group]))
    assert pixels.pixel_spacing(ds, frame=3) == pixels.Spacing(0.7, 0.8,
                                                               "Pixel Spacing (in the patient)")


def test_pixel_spacing_of_real_radiographs():
    gh133 = open_instance(FO_DICOM / "GH133.dcm").pixel_spacing()
    assert gh133.row_mm == pytest.approx(0.09409090909091)  # magnification factor 1: as is
    assert "Imager" in gh133.source
    scanned = open_instance(FO_DICOM / "1403-OB.dcm").pixel_spacing()
    assert scanned.row_mm == pytest.approx(0.17638889) and "film" in scanned.source


# ---------------------------------------------------------------- the table fast path


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16])
@pytest.mark.parametrize("voi", [pixels.Window(30, 90, "LINEAR"),
                                 pixels.Window(-5, 40, "LINEAR_EXACT"),
                                 pixels.Window(10, 60, "SIGMOID")])
def test_table_lookup_equals_the_per_pixel_pipeline(dtype, voi):
    rng = np.random.default_rng(7)
    info = np.iinfo(dtype)
    stored = rng.integers(info.min, info.max, size=(37, 41), endpoint=True).astype(dtype)
    ds = _dataset(RescaleSlope="0.5", RescaleIntercept="-3",
                  PixelRepresentation=int(info.min < 0))
    step = pixels.modality_step(ds, stored.dtype)  # 0.5: LINEAR at the data's own step
    for invert in (False, True):
        expected = pixels.to_display(pixels.modality_lut(stored, ds), voi, invert, step)
        assert np.array_equal(pixels.display_from_stored(stored, ds, 0, voi, invert), expected)
    values = pixels.modality_lut(stored, ds)
    assert pixels.default_voi_for_stored(ds, stored) == pixels.full_range_window(values)


def test_table_path_declines_what_it_cannot_index():
    ds = _dataset()
    window = pixels.Window(0, 10)
    assert pixels.display_from_stored(np.zeros(3, np.int32), ds, 0, window, False) is None
    assert pixels.display_from_stored(np.zeros(3, np.float32), ds, 0, window, False) is None
    assert pixels.display_from_stored(np.zeros(3, ">u2"), ds, 0, window, False) is None


@pytest.mark.parametrize("path", [
    PYDICOM_TEST_FILES / "CT_small.dcm",  # signed, rescale to HU
    FO_DICOM / "CR-MONO1-10-chest",  # MONOCHROME1
    FO_DICOM / "CR-ModalitySequenceLUT.dcm",  # Modality LUT Sequence
    PYDICOM_DATA / "mlut_18.dcm",  # signed Modality LUT Sequence
    PYDICOM_DATA / "vlut_04.dcm",  # VOI LUT Sequence
    FO_DICOM / "GH133.dcm",  # SIGMOID windows
], ids=lambda path: path.name)
def test_table_lookup_equals_the_per_pixel_pipeline_on_real_files(path):
    instance = open_instance(path)
    stored, header = instance.stored_frame(0), instance.header
    values = instance.modality_frame(0)
    vois = [instance.default_voi(), pixels.full_range_window(values),
            pixels.Window(float(np.median(values)), float(np.ptp(values)) / 3 + 1, "LINEAR")]
    for voi in vois:
        for invert in (False, True):
            expected = pixels.to_display(values, voi, invert)
            assert np.array_equal(pixels.display_from_stored(stored, header, 0, voi, invert),
                                  expected), (voi, invert)
    assert instance.full_range_voi() == pixels.full_range_window(values)


def test_enhanced_windows_are_per_frame():
    def frame_voi(center: str, width: str) -> Dataset:
        macro = Dataset()
        macro.WindowCenter, macro.WindowWidth = center, width
        group = Dataset()
        group.FrameVOILUTSequence = Sequence([macro])
        return group

    ds = _dataset(PerFrameFunctionalGroupsSequence=Sequence([frame_voi("40", "400"),
                                                             frame_voi("600", "2000")]))
    assert pixels.file_windows(ds, 0)[0].center == 40
    assert pixels.file_windows(ds, 1)[0] == pixels.Window(600, 2000, "LINEAR", "File window 1")


# ---------------------------------------------------------------- what the viewer says about values


def test_spacing_names_its_attribute_for_measurements():
    assert pixels.pixel_spacing(_dataset(PixelSpacing=["0.2", "0.3"])).attribute == "PixelSpacing"
    imager = pixels.pixel_spacing(_dataset(ImagerPixelSpacing=["0.1", "0.1"],
                                           EstimatedRadiographicMagnificationFactor="1.2"))
    assert imager.attribute == "ImagerPixelSpacing"
    scanned = pixels.pixel_spacing(_dataset(NominalScannedPixelSpacing=["0.5", "0.5"]))
    assert scanned.attribute == "NominalScannedPixelSpacing"


def test_a_blank_window_explanation_gets_a_name():
    ds = _dataset(WindowCenter=["2048", "100"], WindowWidth=["4096", "200"],
                  WindowCenterWidthExplanation=["  ", "BONE"])
    assert [w.label for w in pixels.file_windows(ds)] == ["File window 1", "BONE"]


@pytest.mark.parametrize("attributes, unit", [
    ({"Modality": "CT", "RescaleType": "US"}, "HU"),
    ({"Modality": "CR", "RescaleType": "OD"}, "OD"),
    ({"Modality": "MR", "RescaleType": "US"}, ""),
    ({"Modality": "PT", "RescaleType": "MGML"}, "mg/ml"),
    ({"Modality": "OT", "RescaleType": "PVAL"}, "(presentation value)"),
    ({"Modality": "OT", "RescaleType": "OD REL"}, "(Rescale Type OD REL)"),
    ({"Modality": "DX"}, ""),
])
def test_modality_unit_never_passes_a_code_off_as_a_unit(attributes, unit):
    assert pixels.modality_unit(_dataset(**attributes)) == unit


def test_modality_unit_from_a_modality_lut_type():
    ds = _dataset(Modality="CR", RescaleType="US",
                  ModalityLUTSequence=Sequence([_lut_item([4, 0, 16], [0, 1, 2, 3],
                                                          ModalityLUTType="OD")]))
    assert pixels.modality_unit(ds) == "OD"


# ---------------------------------------------------------------- any scale of values (#17)


def _ramp_file(tmp_path, name: str, data=None, **attributes):
    y, x = np.mgrid[0:16, 0:40]
    values = (x * 100).astype(np.uint16) if data is None else data
    return open_instance(write_dicom(tmp_path / f"{name}.dcm", values, **attributes))


def _levels(image: np.ndarray) -> int:
    return len(np.unique(image))


@pytest.mark.parametrize("slope, intercept", [("1e308", "0"), ("1", "1e308"),
                                              ("-1e308", "-1e308"), ("1e305", "0")])
def test_rescale_beyond_any_number_is_refused_in_words(tmp_path, slope, intercept):
    instance = _ramp_file(tmp_path, "huge", RescaleSlope=slope, RescaleIntercept=intercept)
    with pytest.raises(LoadError) as raised:
        instance.display_frame(0)
    assert "give values too large for any number" in raised.value.reason
    assert "nan" not in str(raised.value).lower()


@pytest.mark.parametrize("slope, intercept", [("1e-308", "0"), (str(0.002 / 3900), "0"),
                                              (str(0.002 / 3900), "1000"), ("1e30", "-5e33"),
                                              ("1e34", "0"), ("1e300", "1e305")])
def test_rescaled_values_at_any_scale_show_full_contrast(tmp_path, slope, intercept):
    instance = _ramp_file(tmp_path, "scaled", RescaleSlope=slope, RescaleIntercept=intercept)
    values = instance.modality_frame(0)
    assert np.all(np.isfinite(values)) and np.ptp(values) > 0
    image = instance.display_frame(0)
    assert (image.min(), image.max()) == (0, 255) and _levels(image) == 40
    assert isinstance(instance.default_voi(0), pixels.Window)
    assert instance.default_voi(0).width == pytest.approx(float(np.ptp(values)), rel=1e-5)


def test_float32_is_kept_where_it_holds_the_values():
    ds = _dataset(RescaleSlope="0.5", RescaleIntercept="-1024")
    assert pixels.modality_lut(np.arange(4, dtype=np.uint16), ds).dtype == np.float32
    tiny = _dataset(RescaleSlope="1e-308", RescaleIntercept="0")
    assert pixels.modality_lut(np.arange(4, dtype=np.uint16), tiny).dtype == np.float64


def test_a_window_wider_than_float32_holds_is_computed_exactly():
    values = np.array([-2e38, 0.0, 2e38], dtype=np.float64)
    window = pixels.Window(0.0, 4e38, "LINEAR_EXACT")
    assert pixels.apply_window(values, window).tolist() == pytest.approx([0.0, 0.5, 1.0])
    narrow_far = pixels.Window(1000.0005, 0.001, "LINEAR_EXACT")
    assert pixels.apply_window(np.array([1000.0, 1000.0005, 1000.001], np.float32),
                               narrow_far).tolist() == pytest.approx([0.0, 0.5, 1.0], abs=0.05)


def test_an_absurdly_wide_file_window_is_ignored_for_the_data_range(tmp_path):
    instance = _ramp_file(tmp_path, "wide", WindowCenter="100", WindowWidth="4e38")
    assert instance.file_windows(0) == []
    assert _levels(instance.display_frame(0)) == 40


def test_linear_windows_narrower_than_one_stay_ramps_on_small_scale_data(tmp_path):
    instance = _ramp_file(tmp_path, "tiny", RescaleSlope=str(0.002 / 3900))
    narrow = pixels.Window(0.001, 0.002, "LINEAR", "Command line")
    image = instance.display_frame(0, narrow)
    assert _levels(image) == 40 and (image.min(), image.max()) == (0, 255)
    assert pixels.modality_step(instance.header, instance.stored_frame(0).dtype) \
        == pytest.approx(0.002 / 3900)
    # The file's own narrow LINEAR window is kept at this scale (it is ignored at step 1).
    windowed = _ramp_file(tmp_path, "tiny-window", RescaleSlope=str(0.002 / 3900),
                          WindowCenter="0.001", WindowWidth="0.002")
    assert windowed.file_windows(0)[0].width == pytest.approx(0.002)


def test_linear_with_unit_steps_is_exactly_the_standard():
    values = np.array([98, 99.5, 99.6, 101], dtype=np.float64)
    window = pixels.Window(100, 1, "LINEAR")
    assert pixels.apply_window(values, window, step=1.0).tolist() == [0, 0, 1, 1]
    ramp = pixels.apply_window(np.array([99.9995, 100.0, 100.0005]), window, step=0.0)
    assert ramp.tolist() == pytest.approx([0.4995, 0.5, 0.5005], abs=1e-6)
    assert pixels.modality_step(_dataset(), np.dtype(np.float32)) == 0.0
    assert pixels.modality_step(_dataset(RescaleSlope="2"), np.dtype(np.uint16)) == 1.0


def test_nan_in_float_data_shows_black_without_warnings():
    values = np.array([np.nan, 0.5, 1.0], dtype=np.float32)
    with np.errstate(all="raise"):
        image = pixels.to_display(values, pixels.Window(0.5, 1.0, "LINEAR_EXACT"), False)
    assert image.tolist() == [0, 128, 255]


def test_the_narrowest_window_scales_with_the_data():
    assert pixels.smallest_width(65535.0) == pytest.approx(1.0, rel=1e-4)
    assert pixels.smallest_width(0.002) == pytest.approx(0.002 / 65536)
    assert pixels.smallest_width(0.0) == 1.0
    assert pixels.window_for_range(0.0, 0.002).width == pytest.approx(0.002)
    assert pixels.window_for_range(5.0, 5.0).width == 1.0
    assert pixels.window_for_range(-1.5e308, 1.5e308).center == 0.0
