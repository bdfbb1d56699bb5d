"""The PDF report of an AI read: made by `medviewer report` with real models on real images,
then checked the way a reader sees it, by rendering its pages (pdftoppm) and extracting its
text (pdftotext)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from medviewer.app.report import (
    DISCLAIMER,
    Finding,
    ReaderLabel,
    ReportError,
    findings_from_prediction,
    report_content,
    write_report_pdf,
)
from medviewer.cli import main
from medviewer.dicom.reader import open_instance
from medviewer.inference.predict import ClassScore, Prediction
from medviewer.inference.registry import import_model, resolve_model
from medviewer.labels.store import ImageRef, LabelStore, default_store_path
from medviewer.paths import SAMPLE_STUDY_DIR
from tests.inference import onnx_models

POPPLER = shutil.which("pdftoppm") and shutil.which("pdftotext")
needs_poppler = pytest.mark.skipif(
    not POPPLER, reason="poppler-utils (pdftoppm, pdftotext) is not installed; make test "
                        "installs it when run as root.")
SAMPLE = SAMPLE_STUDY_DIR / "S02_I03.dcm"  # the demo model flags PNEUMONIA on this one


@pytest.fixture(autouse=True)
def clean_session_cache():
    from medviewer.inference import runtime

    runtime.clear_session_cache()
    yield
    runtime.clear_session_cache()


def pdf_text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout


def pdf_pages(pdf: Path, folder: Path, dpi: int = 50) -> list[np.ndarray]:
    subprocess.run(["pdftoppm", "-r", str(dpi), "-png", str(pdf), str(folder / "page")],
                   check=True)
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("page*.png"))]


def run_report(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["report", *args])
    out, err = capsys.readouterr()
    return code, out, err


def colourful(page: np.ndarray) -> np.ndarray:
    """Pixels clearly off the grey axis: the saliency overlay's colours."""
    channels = page.astype(np.int16)
    return (channels.max(axis=2) - channels.min(axis=2)) > 80


@needs_poppler
def test_report_of_a_flagged_image_with_the_shipped_model(tmp_path, capsys):
    output = tmp_path / "report.pdf"
    code, out, err = run_report(capsys, str(SAMPLE), "--model", "pneumonia-demo",
                                "-o", str(output), "--json")
    assert code == 0, err
    described = json.loads(out)
    assert described["pages"] >= 1 and described["saliency"]["method"] == "cam"
    assert described["saliency"]["forward_passes"] == 1  # the same pass as the probabilities
    prediction = described["prediction"]
    assert prediction["flagged"] == ["PNEUMONIA"]
    assert described["saliency"]["class"] == "PNEUMONIA"

    text = pdf_text(output)
    card = resolve_model("pneumonia-demo").card
    assert card.sha256 in text  # the whole hash, on one line
    assert "DEMO, CHEST NOT-A-PATIENT" in text and "DEMO-0001" in text
    pneumonia = prediction["classes"]["PNEUMONIA"]
    assert f"{pneumonia['probability']:.3f}" in text
    assert f"{pneumonia['threshold']:.3f} (youden on validation)" in text
    finding_line = next(line for line in text.splitlines() if line.strip().startswith("PNEUMONIA"))
    assert finding_line.split()[-1] == "Flagged"
    normal_line = next(line for line in text.splitlines() if line.strip().startswith("NORMAL"))
    assert "No operating point" in normal_line
    assert "pneumonia-demo" in text and "1.3" in text
    assert "Demonstration model trained on a public pediatric" in text  # intended use
    assert "it has not been validated on" in " ".join(text.split())  # limitations
    assert " ".join(DISCLAIMER.split()[:12]) in " ".join(text.split())

    pages = pdf_pages(output, tmp_path)
    assert len(pages) == described["pages"]
    first = pages[0]
    # Somewhere on page 1 there is an image: a large region that is neither white nor flat.
    grey = first.mean(axis=2)
    rows = np.where((grey < 200).sum(axis=1) > first.shape[1] * 0.25)[0]
    assert len(rows) > first.shape[0] * 0.15
    image_band = grey[rows]
    assert image_band.std() > 30
    # ...and the saliency overlay beside it, in colour.
    assert colourful(first).sum() > 0.01 * first.shape[0] * first.shape[1]


@needs_poppler
def test_deidentified_report_names_no_one(tmp_path, capsys):
    with LabelStore(default_store_path(), reader="dr.lee") as store:
        store.create_label_set("chest", ["normal", "pneumonia"])
        label = store.set_label("chest", ImageRef.from_instance(open_instance(SAMPLE)),
                                ["pneumonia"])
    output = tmp_path / "anonymous.pdf"
    code, out, err = run_report(capsys, str(SAMPLE), "-o", str(output), "--deidentify",
                                "--reader", "dr.lee", "--json")
    assert code == 0, err
    described = json.loads(out)
    assert described["prediction"]["path"] is None
    assert described["prediction"]["input_uid"] is None
    header = pydicom.dcmread(SAMPLE, stop_before_pixels=True)
    text = pdf_text(output)
    info = subprocess.run(["pdfinfo", str(output)], capture_output=True, text=True).stdout
    for identifying in ("DEMO, CHEST", "NOT-A-PATIENT", str(header.PatientID),
                        str(header.AccessionNumber), "not a hospital", str(header.SOPInstanceUID),
                        SAMPLE.name, "2000-01-01", label.labelled_at[:16].replace("T", " ")):
        assert identifying not in text, identifying
        assert identifying not in info, identifying
    assert "De-identified" in text and "burned into the image" in text
    assert "PNEUMONIA" in text and resolve_model("pneumonia-demo").card.sha256 in text
    assert "pneumonia (by dr.lee)" in text  # the label, without when it was given
    assert colourful(pdf_pages(output, tmp_path)[0]).sum() > 0


@needs_poppler
def test_the_readers_label_and_note_come_from_the_label_store(tmp_path, capsys):
    key = ImageRef.from_instance(open_instance(SAMPLE))
    with LabelStore(default_store_path(), reader="dr.lee") as store:
        store.create_label_set("chest", ["normal", "pneumonia"])
        store.set_label("chest", key, ["pneumonia"])
        store.set_note("chest", key, "Right lower lobe consolidation; compare with prior.")
        store.create_label_set("other", ["a", "b"])
    output = tmp_path / "labelled.pdf"
    code, _, err = run_report(capsys, str(SAMPLE), "-o", str(output), "--reader", "dr.lee")
    assert code == 0, err
    text = " ".join(pdf_text(output).split())
    assert "pneumonia (by dr.lee" in text
    assert "Note: Right lower lobe consolidation; compare with prior." in text

    # Another reader has no label: the report says so.
    code, _, err = run_report(capsys, str(SAMPLE), "-o", str(output), "--reader", "dr.kim")
    assert code == 0, err
    assert "No label by dr.kim is recorded for this image." in " ".join(pdf_text(output).split())

    # An unknown label set is one sentence.
    code, _, err = run_report(capsys, str(SAMPLE), "-o", str(output), "--reader", "dr.lee",
                              "--label-set", "nope")
    assert code == 1 and err.count("\n") == 1 and "nope" in err


@needs_poppler
def test_labels_come_from_the_label_store_the_request_names(tmp_path):
    """The viewer's report reads the store its label panel works in, not the default one."""
    from medviewer.app.report import ReportRequest, report_job
    from medviewer.jobs import run_to_end

    store_path = tmp_path / "project-labels.sqlite"
    key = ImageRef.from_instance(open_instance(SAMPLE))
    with LabelStore(store_path, reader="dr.lee") as store:
        store.create_label_set("chest", ["normal", "pneumonia"])
        store.set_label("chest", key, ["pneumonia"])
    output = tmp_path / "project.pdf"
    run_to_end(report_job(ReportRequest(SAMPLE, resolve_model("pneumonia-demo"), output,
                                        device="cpu", reader="dr.lee", label_set="chest",
                                        store_path=store_path)))
    assert "pneumonia (by dr.lee" in " ".join(pdf_text(output).split())
    assert not default_store_path().exists()


@needs_poppler
def test_a_model_without_cam_gets_occlusion_or_no_saliency_on_a_plain_image(tmp_path, capsys):
    onnx = onnx_models.mean_model(tmp_path / "src" / "brightness.onnx")
    onnx_models.write_card(onnx, intended_use="Tests only.", limitations="It sees brightness.")
    import_model(onnx)
    png = tmp_path / "xray.png"
    values = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (64, 1))
    Image.fromarray(values).save(png)

    plain = tmp_path / "plain.pdf"
    code, out, err = run_report(capsys, str(png), "--model", "brightness", "-o", str(plain),
                                "--saliency", "none", "--json")
    assert code == 0, err
    assert json.loads(out)["saliency"] is None
    text = pdf_text(plain)
    assert "No saliency map was made for this report." in text
    assert "a plain image file carries no patient data" in " ".join(text.split())
    assert "xray.png" in text and "It sees brightness." in text

    occluded = tmp_path / "occlusion.pdf"
    code, out, err = run_report(capsys, str(png), "--model", "brightness", "-o", str(occluded),
                                "--json")
    assert code == 0, err
    saliency = json.loads(out)["saliency"]
    assert saliency["method"] == "occlusion" and saliency["forward_passes"] > 1
    assert "occlusion sensitivity" in pdf_text(occluded)

    code, _, err = run_report(capsys, str(png), "--model", "brightness", "-o", str(occluded),
                              "--saliency", "cam")
    assert code == 1 and "has no class activation map" in err and err.count("\n") == 1


@pytest.mark.parametrize("case", ["no folder", "no image", "bad frame"])
def test_user_errors_are_one_sentence(tmp_path, capsys, case):
    args = {"no folder": [str(SAMPLE), "-o", str(tmp_path / "missing" / "r.pdf")],
            "no image": [str(tmp_path / "nothing.dcm"), "-o", str(tmp_path / "r.pdf")],
            "bad frame": [str(SAMPLE), "-o", str(tmp_path / "r.pdf"), "--frame", "3"]}[case]
    code, out, err = run_report(capsys, *args)
    assert code == 1 and out == ""
    assert err.startswith("medviewer: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "r.pdf").exists()


def prediction_with(scores: list[ClassScore]) -> Prediction:
    return Prediction(Path("x.dcm"), 0, "1.2.3", "m", "1", "0" * 64, "CPUExecutionProvider",
                      scores)


def test_findings_say_flagged_not_flagged_or_no_operating_point():
    findings = findings_from_prediction(prediction_with([
        ClassScore("normal", 0.2, None, None),
        ClassScore("effusion", 0.5, 0.5, True, "youden"),
        ClassScore("nodule", 0.3, 0.4, False, "fixed")]))
    assert findings == [Finding("normal", 0.2, None, "No operating point"),
                        Finding("effusion", 0.5, 0.5, "Flagged", "youden"),
                        Finding("nodule", 0.3, 0.4, "Not flagged", "fixed")]


@needs_poppler
def test_names_with_markup_and_other_scripts_are_printed_as_written(tmp_path):
    dataset = pydicom.dcmread(SAMPLE)
    dataset.SpecificCharacterSet = "ISO_IR 192"
    dataset.PatientName = "Иванов^Пётр"
    dataset.InstitutionName = "St <John> & Mary's"
    dataset.BurnedInAnnotation = "YES"
    copy = tmp_path / "named.dcm"
    dataset.save_as(copy)
    instance = open_instance(copy)
    prediction = prediction_with([ClassScore("finding", 0.7, 0.5, True, "fixed")])
    card = resolve_model("pneumonia-demo").card
    content = report_content(instance, prediction, card, reader_labels=[
        ReaderLabel("chest", "dr.lee", ("finding",), "a <b>bold</b> note")])
    pages = write_report_pdf(content, tmp_path / "named.pdf")
    assert pages >= 1
    text = " ".join(pdf_text(tmp_path / "named.pdf").split())
    assert "St <John> & Mary's" in text and "a <b>bold</b> note" in text
    assert "Burned In Annotation: YES" in text
    assert f"page 1 of {pages}" in text
    if "Иванов, Пётр" not in text:
        pytest.skip("no DejaVu font here, so Cyrillic names cannot be checked")


def test_a_failed_prediction_gives_no_report():
    instance = open_instance(SAMPLE)
    failed = prediction_with([])
    failed.error = "Cannot prepare x.dcm for the model: it is broken."
    with pytest.raises(ReportError, match="No report can be made"):
        report_content(instance, failed, resolve_model("pneumonia-demo").card)


def test_report_command_prints_one_line_and_loads_no_qt(tmp_path):
    """The report is Qt-free: it works on a machine without a display."""
    import os

    from tests.conftest import PROJECT_ROOT

    script = ("import sys; from medviewer.cli import main; code = main(sys.argv[1:]); "
              "print('qt loaded' if any(m.startswith('PySide6') for m in sys.modules) "
              "else 'no qt'); sys.exit(code)")
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    env.pop("DISPLAY", None)
    result = subprocess.run([sys.executable, "-c", script, "report", str(SAMPLE), "-o",
                             str(tmp_path / "r.pdf"), "--no-labels"], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if not line.startswith("Notice:")]
    assert lines[0].startswith(f"Wrote {tmp_path / 'r.pdf'}: ") and "PNEUMONIA" in lines[0]
    assert lines[1] == "no qt"
    assert (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF")
