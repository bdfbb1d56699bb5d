"""`medviewer info` and `medviewer render` through the real entry point, and the sample study."""

from __future__ import annotations

import json
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from medviewer.cli import main
from medviewer.dicom.reader import open_instance
from medviewer.paths import PROJECT_ROOT, RESOURCES_DIR, SAMPLE_STUDY_DIR

DATA_STORE = Path(pydicom.__file__).parent.parent / "data_store" / "data"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_sentence(text: str) -> bool:
    lines = text.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith("medviewer: ") and lines[0].endswith(".")


@pytest.fixture
def mixed_folder(shared_data, tmp_path) -> Path:
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(SAMPLE_STUDY_DIR / "S01_I01.dcm", folder)
    shutil.copy(shared_data / "dicom" / "wg04" / "REF" / "MR1_UNC", folder)
    (folder / "broken.dcm").write_bytes(b"\x00" * 200)
    (folder / "readme.txt").write_text("not an image")
    return folder


# ---------------------------------------------------------------- info


def test_info_sample_study_text(capsys):
    code, out, err = run_cli(capsys, "info", SAMPLE_STUDY_DIR)
    assert code == 0 and err == ""
    assert out.splitlines()[0] == f"{SAMPLE_STUDY_DIR}: 1 patient, 1 study, 2 series, 6 instances"
    assert "Patient DEMO^CHEST^NOT-A-PATIENT  [ID DEMO-0001, sex O]" in out
    assert 'Series 1 DX "Demo chest X-rays - NORMAL": 3 instances' in out
    assert "224x224 MONOCHROME1  S01_I03.dcm" in out
    assert "could not be read" not in out


def test_info_json_and_cache_reuse(capsys):
    code, out, _ = run_cli(capsys, "info", SAMPLE_STUDY_DIR, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["summary"] == {"patients": 1, "studies": 1, "series": 2, "instances": 6,
                               "errors": 0, "ignored": 0, "from_cache": 0}
    [patient] = data["patients"]
    assert patient["patient_id"] == "DEMO-0001"
    series = patient["studies"][0]["series"]
    assert [s["number"] for s in series] == [1, 2]
    assert series[0]["instances"][2]["photometric"] == "MONOCHROME1"
    assert series[0]["instances"][0]["path"] == str(SAMPLE_STUDY_DIR / "S01_I01.dcm")

    _, out, _ = run_cli(capsys, "info", SAMPLE_STUDY_DIR, "--json")
    assert json.loads(out)["summary"]["from_cache"] == 6
    _, out, _ = run_cli(capsys, "info", SAMPLE_STUDY_DIR, "--json", "--no-cache")
    assert json.loads(out)["summary"]["from_cache"] == 0


def test_info_lists_bad_files_and_still_succeeds(capsys, mixed_folder):
    code, out, err = run_cli(capsys, "info", mixed_folder)
    assert code == 0 and err == ""
    assert "2 instances" in out.splitlines()[0]
    assert "1 file could not be read:" in out
    assert f"  Cannot open {mixed_folder / 'broken.dcm'}: " in out
    assert "Ignored 1 file that is not an image: .txt (1)" in out

    code, out, _ = run_cli(capsys, "info", mixed_folder, "--json")
    data = json.loads(out)
    assert code == 0
    assert [e["path"] for e in data["errors"]] == [str(mixed_folder / "broken.dcm")]
    assert data["errors"][0]["reason"].startswith(f"Cannot open {mixed_folder / 'broken.dcm'}: ")
    assert data["ignored"] == [str(mixed_folder / "readme.txt")]


def test_info_missing_path_is_one_sentence(capsys, tmp_path):
    code, out, err = run_cli(capsys, "info", tmp_path / "nope")
    assert code == 1 and out == ""
    assert err == f"medviewer: Cannot open {tmp_path / 'nope'}: it does not exist.\n"


def test_info_nothing_readable(capsys, tmp_path):
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"\x01\x02" * 100)
    code, out, err = run_cli(capsys, "info", bad)
    assert code == 1 and out == ""
    assert one_sentence(err) and err.startswith(f"medviewer: Cannot open {bad}: ")

    folder = tmp_path / "all-bad"
    folder.mkdir()
    shutil.copy(bad, folder / "a.dcm")
    shutil.copy(bad, folder / "b.dcm")
    code, out, err = run_cli(capsys, "info", folder)
    assert code == 1
    assert "2 files could not be read:" in out
    assert err == (f"medviewer: Nothing could be read in {folder}: all 2 files failed "
                   "(reasons listed above).\n")

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    code, _, err = run_cli(capsys, "info", empty)
    assert code == 1
    assert err == (f"medviewer: Nothing could be read in {empty}: it holds no DICOM, PNG or "
                   "JPEG files.\n")


def test_info_subprocess_has_no_traceback(shared_data, mixed_folder):
    """The real command line, as a user runs it: exit codes and a clean stderr."""
    command = [sys.executable, "-m", "medviewer", "info"]
    ok = subprocess.run(command + [str(shared_data / "dicom" / "fo-dicom")], cwd=PROJECT_ROOT,
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "Traceback" not in ok.stderr and ok.stderr == ""
    assert "could not be read:" in ok.stdout

    missing = subprocess.run(command + [str(mixed_folder / "nowhere")], cwd=PROJECT_ROOT,
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1
    assert "Traceback" not in missing.stderr and one_sentence(missing.stderr)


# ---------------------------------------------------------------- render


def read_png(path: Path) -> tuple[str, np.ndarray]:
    with Image.open(path) as image:
        return image.mode, np.asarray(image)


def test_render_default_voi_matches_display_frame(capsys, tmp_path):
    source = SAMPLE_STUDY_DIR / "S02_I01.dcm"
    out_png = tmp_path / "out.png"
    code, out, err = run_cli(capsys, "render", source, "-o", out_png)
    assert code == 0 and err == ""
    assert out.startswith(f"Wrote {out_png}: frame 1 of 1, 224x224 grey, VOI C ")
    mode, array = read_png(out_png)
    assert mode == "L"
    np.testing.assert_array_equal(array, open_instance(source).display_frame(0))


def test_render_monochrome1_is_shown_inverted(capsys, tmp_path):
    """S01_I03 stores inverted values as MONOCHROME1; a MONOCHROME2 twin must look the same."""
    mono1 = SAMPLE_STUDY_DIR / "S01_I03.dcm"
    ds = pydicom.dcmread(mono1)
    stored = ds.pixel_array
    ds.PixelData = (4095 - stored).astype("<u2").tobytes()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PresentationLUTShape = "IDENTITY"
    ds.WindowCenter = 4095 - float(ds.WindowCenter)
    twin = tmp_path / "mono2_twin.dcm"
    ds.save_as(twin)

    code, out, _ = run_cli(capsys, "render", mono1, "-o", tmp_path / "m1.png")
    assert code == 0 and "inverted as the file asks (MONOCHROME1)" in out
    assert run_cli(capsys, "render", twin, "-o", tmp_path / "m2.png")[0] == 0
    _, shown_mono1 = read_png(tmp_path / "m1.png")
    _, shown_twin = read_png(tmp_path / "m2.png")
    assert np.abs(shown_mono1.astype(int) - shown_twin.astype(int)).max() <= 1
    # and inversion really happened: the stored values run the other way
    assert np.corrcoef(stored.ravel(), shown_mono1.ravel())[0, 1] < -0.9


def test_render_window_and_frames(capsys, tmp_path):
    multi = DATA_STORE / "emri_small.dcm"  # 10 frames
    first, last = tmp_path / "f1.png", tmp_path / "f10.png"
    assert run_cli(capsys, "render", multi, "-o", first)[0] == 0
    code, out, _ = run_cli(capsys, "render", multi, "--frame", "10", "-o", last, "--json")
    assert code == 0
    described = json.loads(out)
    assert (described["frame"], described["frames"]) == (10, 10)
    _, a = read_png(first)
    _, b = read_png(last)
    assert a.shape == b.shape and not np.array_equal(a, b)
    np.testing.assert_array_equal(b, open_instance(multi).display_frame(9))

    windowed = tmp_path / "w.png"
    code, out, _ = run_cli(capsys, "render", multi, "--window", "100", "50", "-o", windowed)
    assert code == 0 and "VOI C 100 / W 50" in out
    _, w = read_png(windowed)
    assert not np.array_equal(w, a)

    code, _, err = run_cli(capsys, "render", multi, "--frame", "11", "-o", tmp_path / "x.png")
    assert code == 1 and one_sentence(err)
    assert "frame 11 does not exist" in err
    code, _, err = run_cli(capsys, "render", multi, "--frame", "0", "-o", tmp_path / "x.png")
    assert code == 1 and "frame numbers start at 1" in err and one_sentence(err)
    code, _, err = run_cli(capsys, "render", multi, "--window", "100", "0", "-o", tmp_path / "x.png")
    assert code == 1 and "window width must be positive" in err
    assert not (tmp_path / "x.png").exists()


def test_render_colour_is_rgb(capsys, shared_data, tmp_path):
    colour = shared_data / "dicom" / "wg04" / "REF" / "VL1_UNC"
    code, out, _ = run_cli(capsys, "render", colour, "-o", tmp_path / "c.png")
    assert code == 0 and " RGB, " in out
    mode, array = read_png(tmp_path / "c.png")
    assert mode == "RGB" and array.shape[2] == 3


def test_render_errors_are_one_sentence(capsys, tmp_path):
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"nonsense" * 50)
    code, _, err = run_cli(capsys, "render", bad, "-o", tmp_path / "x.png")
    assert code == 1 and one_sentence(err) and f"Cannot open {bad}: " in err
    code, _, err = run_cli(capsys, "render", tmp_path / "absent.dcm", "-o", tmp_path / "x.png")
    assert code == 1 and one_sentence(err) and "does not exist" in err
    code, _, err = run_cli(capsys, "render", SAMPLE_STUDY_DIR / "S01_I01.dcm",
                           "-o", tmp_path / "no" / "such" / "x.png")
    assert code == 1 and one_sentence(err) and "Cannot write" in err


def test_render_help_says_frames_count_from_one(capsys):
    with pytest.raises(SystemExit):
        main(["render", "--help"])
    assert "counting from 1" in capsys.readouterr().out


# ---------------------------------------------------------------- the bundled sample study


def test_sample_study_regenerates_byte_identical(shared_data, tmp_path):
    script = runpy.run_path(str(PROJECT_ROOT / "tools" / "make_sample_study.py"))
    source = shared_data / "xray" / "kermany224" / "test"
    assert script["main"](["--source", str(source), "--out", str(tmp_path)]) == 0
    committed = sorted(SAMPLE_STUDY_DIR.glob("*.dcm"))
    assert [p.name for p in committed] == sorted(p.name for p in tmp_path.glob("*.dcm"))
    assert 4 <= len(committed) <= 6
    for path in committed:
        assert path.read_bytes() == (tmp_path / path.name).read_bytes(), path.name
    assert sum(p.stat().st_size for p in committed) < 2 * 1024 * 1024


def test_sample_study_is_labelled_demo_data_with_its_source():
    for path in sorted(SAMPLE_STUDY_DIR.glob("*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.PatientName == "DEMO^CHEST^NOT-A-PATIENT" and ds.PatientID == "DEMO-0001"
        assert "NOT FOR CLINICAL USE" in ds.ImageComments
        assert "Kermany" in ds.DerivationDescription and "test/" in ds.DerivationDescription
        assert [float(v) for v in ds.ImagerPixelSpacing] == [1.2, 1.2]
        assert ds.BitsStored == 12
    attribution = (RESOURCES_DIR / "ATTRIBUTION.md").read_text()
    assert "CC BY 4.0" in attribution and "10.17632/rscbjbr9sj.2" in attribution
    assert "not for clinical use" in attribution.lower()


@pytest.mark.parametrize("window", [("nan", "100"), ("50", "inf"), ("-inf", "10"),
                                    ("40", "0"), ("40", "-3")])
def test_render_refuses_windows_that_are_not_finite_and_positive(capsys, tmp_path, window):
    code, _, err = run_cli(capsys, "render", SAMPLE_STUDY_DIR / "S01_I01.dcm", "--window",
                           *window, "-o", tmp_path / "x.png")
    assert code == 1 and one_sentence(err) and "window" in err
    assert not (tmp_path / "x.png").exists()


def test_render_with_a_narrow_window_on_small_scale_data_is_a_ramp(capsys, tmp_path):
    from tests.dicom import write_dicom

    ramp = (np.mgrid[0:16, 0:40][1] * 100).astype(np.uint16)
    path = write_dicom(tmp_path / "tiny.dcm", ramp, RescaleSlope=str(0.002 / 3900))
    for window in ([], ["--window", "0.001", "0.002"], ["--window", "0.001", "0.001"]):
        code, _, err = run_cli(capsys, "render", path, *window, "-o", tmp_path / "t.png")
        assert code == 0, err
        image = np.asarray(Image.open(tmp_path / "t.png"))
        assert len(np.unique(image)) > 20, window  # not flat grey, not a threshold


def test_render_refuses_outputs_that_are_not_regular_files(capsys, tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    for output in (tmp_path / "pipe.png", tmp_path, tmp_path / ("o" * 300 + ".png")):
        code, _, err = run_cli(capsys, "render", SAMPLE_STUDY_DIR / "S01_I01.dcm", "-o", output)
        assert code == 1 and one_sentence(err) and err.startswith(f"medviewer: Cannot write ")
