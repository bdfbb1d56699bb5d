"""The models / predict / saliency sub-commands through medviewer.cli.main."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from medviewer.cli import main
from medviewer.settings import Settings, save_settings
from tests.inference import onnx_models


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cam_files(tmp_path):
    onnx_path = onnx_models.cam_model(tmp_path / "src" / "chest.onnx", 64, 64, 8)
    onnx_models.write_card(onnx_path, name="chest", input={"height": 64, "width": 64},
                           outputs={"cam": "cam"})
    return onnx_path


def test_no_model_at_all_is_one_sentence(capsys, kermany_images):
    code, out, err = _run(capsys, "predict", str(kermany_images[0]))
    assert code == 1 and out == ""
    assert err == ("medviewer: No AI model is installed: import one with "
                   "'medviewer models import MODEL.onnx'.\n")
    code, out, _ = _run(capsys, "models", "list")
    assert code == 0 and "No models installed." in out


def test_models_import_then_list(capsys, cam_files):
    code, out, _ = _run(capsys, "models", "import", str(cam_files))
    assert code == 0 and out.startswith("Imported model chest version 1.0 into ")
    code, out, _ = _run(capsys, "models", "list", "--json")
    listing = json.loads(out)
    assert code == 0
    assert [(m["name"], m["version"], m["source"], m["cam"]) for m in listing["models"]] == [
        ("chest", "1.0", "user", True)]
    providers = listing["providers"]
    assert "CPUExecutionProvider" in providers["available"]
    assert providers["active"] in providers["available"]
    code, out, _ = _run(capsys, "models")
    assert code == 0 and "Models would run on: " in out and "chest  1.0" in out


def test_import_refusal_is_one_line_on_stderr(capsys, tmp_path):
    path = onnx_models.mean_model(tmp_path / "m.onnx")
    card = onnx_models.write_card(path, input={"channels": 3})
    code, out, err = _run(capsys, "models", "import", str(path), "--card", str(card))
    assert code == 1 and out == ""
    assert err == ("medviewer: The model m.onnx does not match its card: input channels is 1 "
                   "in the model but 3 in the card.\n")


def test_predict_json_and_csv(capsys, cam_files, kermany_images, broken_dicom, tmp_path):
    main(["models", "import", str(cam_files)])
    capsys.readouterr()
    inputs = [str(p) for p in kermany_images[:2]] + [str(broken_dicom)]
    code, out, _ = _run(capsys, "predict", *inputs, "--model", "chest@1.0", "--device", "cpu",
                        "--json")
    assert code == 0
    report = json.loads(out)
    assert report["provider"] == "CPUExecutionProvider" and report["model"]["name"] == "chest"
    predictions = report["predictions"]
    assert [p["path"] for p in predictions] == inputs
    assert predictions[2]["error"].startswith(f"Cannot open {broken_dicom}")
    for p in predictions[:2]:
        assert p["error"] is None
        assert sum(c["probability"] for c in p["classes"].values()) == pytest.approx(1.0)
        finding = p["classes"]["finding"]
        assert finding["threshold"] == 0.5
        assert finding["flagged"] == (finding["probability"] >= 0.5)
        assert p["classes"]["normal"] == {**p["classes"]["normal"], "threshold": None,
                                          "flagged": False}
        # The test card names no "no finding" class: nothing is offered unless flagged.
        assert p["decision"] == (["finding"] if finding["flagged"] else [])
        assert "top_class" not in p
        assert p["in_scope"] is None and p["ood"] is None and p["ood_score"] is None
    assert report["model"]["ood_check"].startswith("not available")

    out_csv = tmp_path / "out.csv"
    code, out, _ = _run(capsys, "predict", *inputs, "--csv", str(out_csv))
    assert code == 0 and "3 inputs: 2 predicted, 1 errors" in out
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["path"] for r in rows] == inputs
    assert float(rows[0]["p_finding"]) == pytest.approx(
        predictions[0]["classes"]["finding"]["probability"], abs=1e-6)
    assert rows[2]["error"] and rows[2]["p_finding"] == ""
    assert "top_class" not in rows[0]
    for row, p in zip(rows[:2], predictions[:2]):
        assert row["decision"] == ";".join(p["decision"])
        assert float(row["threshold_finding"]) == 0.5 and row["threshold_normal"] == ""
        assert row["flagged_finding"] == str(int(p["classes"]["finding"]["flagged"]))
        assert row["ood"] == "" and row["in_scope"] == ""


def test_predict_uses_the_default_model_from_settings(capsys, tmp_path, kermany_images):
    for name in ("alpha", "beta"):
        path = onnx_models.mean_model(tmp_path / name / f"{name}.onnx")
        onnx_models.write_card(path, name=name)
        main(["models", "import", str(path)])
    save_settings(Settings(default_model="beta"))
    capsys.readouterr()
    code, out, _ = _run(capsys, "predict", str(kermany_images[0]))
    assert code == 0 and out.startswith("Model beta 1.0 on ")
    code, _, err = _run(capsys, "predict", str(kermany_images[0]), "--model", "gamma")
    assert code == 1 and "No installed model is called 'gamma'" in err


def test_saliency_writes_an_overlay_of_the_image_size(capsys, cam_files, tmp_path):
    main(["models", "import", str(cam_files)])
    pixels = np.zeros((90, 150), np.uint8)
    pixels[10:30, 100:140] = 255
    image = tmp_path / "wide.png"
    Image.fromarray(pixels).save(image)
    capsys.readouterr()
    overlay = tmp_path / "overlay.png"
    code, out, _ = _run(capsys, "saliency", str(image), "--class", "finding", "-o", str(overlay),
                        "--json")
    assert code == 0
    report = json.loads(out)
    assert report["saliency"]["method"] == "cam" and report["saliency"]["forward_passes"] == 1
    written = np.asarray(Image.open(overlay))
    assert written.shape == (90, 150, 3)
    # The hot block is red-dominated; a cold corner keeps the black image.
    assert written[20, 120, 0] > written[20, 120, 2] and written[20, 120, 0] > 60
    assert written[80, 5].tolist() == [0, 0, 0]

    code, out, _ = _run(capsys, "saliency", str(image), "--method", "occlusion", "--patch", "16",
                        "--stride", "16", "-o", str(overlay))
    assert code == 0 and "occlusion map for" in out and "17 forward passes" in out


def test_saliency_cam_on_a_model_without_cam_is_refused(capsys, tmp_path, kermany_images):
    path = onnx_models.mean_model(tmp_path / "plain.onnx")
    onnx_models.write_card(path)
    main(["models", "import", str(path)])
    capsys.readouterr()
    code, _, err = _run(capsys, "saliency", str(kermany_images[0]), "--method", "cam",
                        "-o", str(tmp_path / "o.png"))
    assert code == 1
    assert err == ("medviewer: Model 'plain' has no class activation map output; "
                   "use --method occlusion.\n")


def test_predict_csv_neutralises_cells_a_spreadsheet_would_run(capsys, cam_files,
                                                               kermany_images, tmp_path,
                                                               monkeypatch):
    import shutil

    from medviewer import csv_safety

    main(["models", "import", str(cam_files)])
    monkeypatch.chdir(tmp_path)
    shutil.copy(kermany_images[0], tmp_path / "=cmd.jpeg")
    shutil.copy(kermany_images[1], tmp_path / "@x.jpeg")
    (tmp_path / "+broken.dcm").write_bytes(b"\0" * 200)
    out_csv = tmp_path / "out.csv"
    capsys.readouterr()
    code, _, _ = _run(capsys, "predict", "=cmd.jpeg", "@x.jpeg", "+broken.dcm",
                      "--csv", str(out_csv))
    assert code == 0
    raw = list(csv.reader(out_csv.open(newline="")))
    assert [row[0] for row in raw[1:]] == ["'=cmd.jpeg", "'@x.jpeg", "'+broken.dcm"]
    assert not [cell for row in raw for cell in row if cell and cell[0] in "=+@\t\r"]
    restored = list(csv_safety.restored_rows(out_csv.open(newline="")))
    assert [row[0] for row in restored[1:]] == ["=cmd.jpeg", "@x.jpeg", "+broken.dcm"]


def test_predict_refuses_a_bad_csv_path_before_the_work(capsys, kermany_images, tmp_path):
    import os

    os_fifo = tmp_path / "out.csv"
    os.mkfifo(os_fifo)
    code, out, err = _run(capsys, "predict", str(kermany_images[0]), "--csv", str(os_fifo))
    assert code == 1 and out == ""
    assert err == (f"medviewer: Cannot write {os_fifo}: it is a named pipe (FIFO), not a "
                   "regular file.\n")
