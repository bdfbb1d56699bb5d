"""DICOM SR writing (dicom/sr.py): every report is read back and checked (structure,
references, values), and by DCMTK's dsrdump where it is installed; `predict --sr` and
`labels export --format dicom-sr` write them from the command line."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pydicom
import pytest

from medviewer.cli import main
from medviewer.dicom import sr
from tests.pacs.orthanc import pacs_required
from tests.pacs.studies import make_study

MODEL = sr.ModelIdentity("chest-cnn", "1.2", "0123456789abcdef" * 4)
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"


@pytest.fixture
def study(tmp_path):
    return make_study(tmp_path / "study", 2, patient_id="SR-1", patient_name="Report^Rita")


def dsrdump(path) -> str:
    """DCMTK's reading of the SR; it must parse it without a warning or an error."""
    if shutil.which("dsrdump") is None:
        if pacs_required():
            pytest.fail("dsrdump (Debian dcmtk) is missing; tools/install_pacs_deps.sh "
                        "installs it")
        pytest.skip("dsrdump is missing; install it with: sudo apt-get install dcmtk")
    done = subprocess.run(["dsrdump", "-Ec", str(path)], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert "W:" not in done.stderr and "E:" not in done.stderr, done.stderr
    return done.stdout


def test_ai_read_round_trip(study, tmp_path):
    source = study.paths[0]
    findings = [sr.Finding("pneumonia", 0.8125, 0.5, True, "youden"),
                sr.Finding("effusion", 0.125, 0.3, False, "fixed"),
                sr.Finding("other", 0.0625)]  # no operating point: no decision
    path = sr.write_ai_report(source, findings, MODEL, tmp_path / "out")
    values = sr.read_report(path)
    image = pydicom.dcmread(source)
    document = pydicom.dcmread(path)
    assert values.sop_class_uid == COMPREHENSIVE_SR
    assert values.study_uid == image.StudyInstanceUID  # in the source study...
    assert values.series_uid != image.SeriesInstanceUID  # ...in a new series
    assert document.PatientID == "SR-1" and document.Modality == "SR"
    assert document.CompletionFlag == "COMPLETE"
    assert values.referenced_images == [{
        "study_uid": image.StudyInstanceUID, "series_uid": image.SeriesInstanceUID,
        "sop_class_uid": image.SOPClassUID, "sop_instance_uid": image.SOPInstanceUID}]
    assert values.algorithm == {"name": "chest-cnn", "version": "1.2",
                                "parameters": [f"sha256={MODEL.sha256}"]}
    assert values.observer == "chest-cnn"
    by_name = {f["name"]: f for f in values.findings}
    assert by_name["pneumonia"]["probability"] == 0.8125
    assert by_name["pneumonia"]["threshold"] == 0.5 and by_name["pneumonia"]["flagged"] is True
    assert by_name["effusion"]["flagged"] is False
    assert "threshold" not in by_name["other"] and "flagged" not in by_name["other"]
    assert all(f["sources"] == [image.SOPInstanceUID] for f in values.findings)
    dump = dsrdump(path)
    assert '"Probability")="0.8125"' in dump and "sha256=" in dump
    assert '(373066001,SCT,"Yes")' in dump and '(373067005,SCT,"No")' in dump


def test_reports_of_one_run_share_a_series_and_the_overlay_joins_it(study, tmp_path):
    series_uid = pydicom.uid.generate_uid()
    first = sr.write_ai_report(study.paths[0], [sr.Finding("a", 0.5)], MODEL, tmp_path,
                               series_uid=series_uid)
    overlay = np.zeros((64, 64, 3), np.uint8)
    overlay[10:20, 30:40] = (255, 0, 0)
    capture = sr.write_overlay_capture(study.paths[0], overlay, tmp_path, series_uid=series_uid)
    assert sr.read_report(first).series_uid == series_uid
    sc = pydicom.dcmread(capture)
    assert sc.SeriesInstanceUID == series_uid
    assert sc.StudyInstanceUID == study.study_uid
    assert sc.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
    assert np.array_equal(sc.pixel_array, overlay)
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == \
        pydicom.dcmread(study.paths[0]).SOPInstanceUID


def test_labels_and_regions_round_trip(study, tmp_path):
    regions = [sr.RegionMark("nodule", "rectangle", 4, 6, 10, 20),
               sr.RegionMark("nodule", "ellipse", 10, 10, 30, 12),
               sr.RegionMark("opacity", "polygon", points=((1, 1), (20, 2), (8, 15)))]
    path = sr.write_label_report(study.paths[1], "alice", "chest", ["abnormal"], regions,
                                 tmp_path)
    values = sr.read_report(path)
    uid = pydicom.dcmread(study.paths[1]).SOPInstanceUID
    assert values.observer == "alice" and values.series_description == "Labels: chest"
    assert [(f["name"], f["sources"]) for f in values.findings] == [("abnormal", [uid])]
    assert values.regions == [
        {"class": "nodule", "graphic_type": "POLYLINE", "sop_instance_uid": uid,
         "points": [(4, 6), (14, 6), (14, 26), (4, 26), (4, 6)]},
        {"class": "nodule", "graphic_type": "ELLIPSE", "sop_instance_uid": uid,
         "points": [(10, 16), (40, 16), (25, 10), (25, 22)]},
        {"class": "opacity", "graphic_type": "POLYLINE", "sop_instance_uid": uid,
         "points": [(1, 1), (20, 2), (8, 15), (1, 1)]}]
    dump = dsrdump(path)
    assert "SCOORD" in dump and "(ELLIPSE," in dump


def test_a_plain_image_cannot_be_referenced(tmp_path):
    from PIL import Image

    png = tmp_path / "xray.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(png)
    with pytest.raises(sr.SrError, match=r"^Cannot read .*xray.png as the source image"):
        sr.write_ai_report(png, [sr.Finding("a", 0.5)], MODEL, tmp_path)


def test_predict_writes_one_sr_per_dicom_input(capsys, study, tmp_path):
    from tests.inference import onnx_models

    model = onnx_models.cam_model(tmp_path / "src" / "chest.onnx", 64, 64, 8)
    onnx_models.write_card(model, name="chest", input={"height": 64, "width": 64},
                           outputs={"cam": "cam"})
    assert main(["models", "import", str(model)]) == 0
    capsys.readouterr()
    out_dir = tmp_path / "reports"
    code = main(["predict", *map(str, study.paths), "--model", "chest@1.0", "--device", "cpu",
                 "--json", "--sr", str(out_dir)])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0
    reports = sorted(out_dir.iterdir())
    assert len(reports) == 2
    values = [sr.read_report(p) for p in reports]
    assert len({v.series_uid for v in values}) == 1  # one new series for the run
    by_source = {v.referenced_images[0]["sop_instance_uid"]: v for v in values}
    for prediction in printed["predictions"]:
        read = by_source[prediction["input_uid"]]
        finding = {f["name"]: f for f in read.findings}["finding"]
        assert finding["probability"] == pytest.approx(
            prediction["classes"]["finding"]["probability"])
        assert finding["threshold"] == 0.5
        assert finding["flagged"] == prediction["classes"]["finding"]["flagged"]
        assert read.algorithm["parameters"] == [f"sha256={printed['model']['sha256']}"]


def test_labels_export_dicom_sr(capsys, study, tmp_path):
    from medviewer.labels.store import ImageRef, LabelStore, Rectangle

    store_path = tmp_path / "labels.sqlite"
    image = pydicom.dcmread(study.paths[0])
    ref = ImageRef(image.SOPInstanceUID, path=str(study.paths[0]), width=64, height=64)
    plain = ImageRef.from_hash("ab" * 32, path=str(tmp_path / "gone.png"))
    with LabelStore(store_path, reader="bob") as store:
        store.create_label_set("chest", ["normal", "nodule"])
        store.set_label("chest", ref, "nodule")
        store.add_region("chest", ref, "nodule", Rectangle(2, 3, 10, 12))
        store.set_label("chest", plain, "normal")  # no DICOM source: skipped
    out_dir = tmp_path / "sr"
    code = main(["labels", "export", "--store", str(store_path), "--label-set", "chest",
                 "--format", "dicom-sr", "-o", str(out_dir), "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out) == {"output": str(out_dir),
                                                   "format": "dicom-sr", "reports": 1}
    (report,) = out_dir.iterdir()
    values = sr.read_report(report)
    assert values.observer == "bob" and values.study_uid == study.study_uid
    assert [f["name"] for f in values.findings] == ["nodule"]
    assert values.regions[0]["points"] == [(2, 3), (12, 3), (12, 15), (2, 15), (2, 3)]
