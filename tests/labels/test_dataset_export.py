"""Research dataset export from a real label store: de-identified DICOM or PNG images, labels
keyed by pseudonyms, a patient-level split, a manifest with the SHA-256 of every file, the
private mapping beside the store, and nothing in the folder that names a patient."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from medviewer.app.dataset_export import DatasetExportRequest, export_dataset_job
from medviewer.cli import main
from medviewer.dicom.reader import open_instance
from medviewer.errors import UserError
from medviewer.jobs import run_to_end
from medviewer.labels.identity import resolve_image
from medviewer.labels.research_dataset import read_dataset
from medviewer.labels.store import LabelStore, Rectangle
from tests.dicom.deid_helpers import core_dataset, identity_strings, rich_dataset, write

PATIENTS = [("PID-100", "Alpha^Ann"), ("PID-200", "Bravo^Bob"), ("PID-300", "Charlie^Cy"),
            ("PID-400", "Delta^Dee"), ("PID-500", "Echo^Eve"), ("PID-600", "Foxtrot^Fay")]


@pytest.fixture
def labelled(tmp_path: Path):
    """Six patients, two CT images each, labelled normal/abnormal by patient; a region."""
    store_path = tmp_path / "data" / "labels.sqlite"
    store_path.parent.mkdir()
    originals = []
    with LabelStore(store_path, reader="alice") as store:
        store.create_label_set("chest", ["normal", "abnormal"])
        for number, (patient_id, name) in enumerate(PATIENTS):
            for instance in (1, 2):
                maker = rich_dataset if number == 0 else core_dataset
                ds = maker(patient_id=patient_id, name=name, instance=instance)
                path = write(ds, tmp_path / "images" / f"{patient_id}-{instance}.dcm")
                originals.append(ds)
                image = resolve_image(path)
                store.set_label("chest", image, "abnormal" if number % 2 else "normal")
                if number == 1 and instance == 1:
                    store.add_region("chest", image, "abnormal", Rectangle(2, 3, 4, 5))
    return store_path, originals


def export(store_path: Path, output: Path, **options):
    options = {"val_fraction": 0.25, "test_fraction": 0.25, **options}
    return run_to_end(export_dataset_job(DatasetExportRequest(
        "chest", output, store_path=store_path, **options)))


def all_files(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.rglob("*")) if p.is_file()]


def test_deidentified_dicom_dataset(tmp_path, labelled):
    store_path, originals = labelled
    key = tmp_path / "project.key"
    result = export(store_path, tmp_path / "ds", deidentify=True, key_file=key,
                    images="dicom", options=frozenset({"retain-modified-dates"}))
    assert result.images == 12 and result.patients == 6 and not result.skipped
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["format"] == "medviewer-dataset" and manifest["images"] == 12
    assert manifest["options"]["profile_options"] == ["retain-modified-dates"]
    assert sum(sum(c.values()) for c in manifest["counts"].values()) == 12
    for relative, digest in manifest["sha256"].items():
        assert hashlib.sha256((tmp_path / "ds" / relative).read_bytes()).hexdigest() == digest
    contents = read_dataset(tmp_path / "ds")
    by_patient: dict[str, set[str]] = {}
    for row in contents.rows:
        by_patient.setdefault(row.patient, set()).add(row.split)
        ds = pydicom.dcmread(row.path)
        assert ds.SOPInstanceUID == row.image and ds.PatientID == row.patient
        assert row.path.parent.name == row.classes[0]  # images/<split>/<class>/
        open_instance(row.path).display_frame(0)
    assert all(len(splits) == 1 for splits in by_patient.values())  # patient-level split
    assert {s for splits in by_patient.values() for s in splits} <= {"train", "val", "test"}
    # No byte of the dataset names a patient; the mapping (outside it) does, privately.
    needles = {n for ds in originals for n in identity_strings(ds)}
    needles |= {name.encode() for _, name in PATIENTS} | {p.encode() for p, _ in PATIENTS}
    for path in all_files(tmp_path / "ds"):
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"{needle!r} in {path}"
    mapping = result.mapping_file
    assert mapping is not None and mapping.parent.parent == store_path.parent
    assert mapping.stat().st_mode & 0o077 == 0 and "PID-300" in mapping.read_text()


def test_png_dataset_trains_and_links_to_the_dicom_export(tmp_path, labelled):
    store_path, _ = labelled
    key = tmp_path / "project.key"
    png = export(store_path, tmp_path / "png", deidentify=True, key_file=key, format="coco")
    dicom = export(store_path, tmp_path / "dcm", deidentify=True, key_file=key, images="dicom")
    assert png.images == dicom.images == 12
    png_rows = {r.image: r for r in read_dataset(tmp_path / "png").rows}
    dcm_rows = {r.image: r for r in read_dataset(tmp_path / "dcm").rows}
    assert png_rows.keys() == dcm_rows.keys()  # the same key gives the same pseudonyms
    assert all(png_rows[i].patient == dcm_rows[i].patient for i in png_rows)
    row = next(iter(png_rows.values()))
    pixels = np.asarray(Image.open(row.path))
    source = open_instance(dcm_rows[row.image].path).display_frame(0)
    assert np.array_equal(pixels, source)  # the model's input, not a re-windowed copy
    document = json.loads((tmp_path / "png" / "annotations.json").read_text())
    assert len(document["annotations"]) == 1 and document["annotations"][0]["bbox"] == \
        [2, 3, 4, 5]
    pytest.importorskip("torch")
    from medviewer.training import data

    labelled_set = data.resolve_source(str(tmp_path / "png"))
    assert labelled_set.class_names == ["normal", "abnormal"]
    assert len(labelled_set.records) == 12
    assert len({r.patient for r in labelled_set.records}) == 6


def test_plain_export_keeps_the_store_keys_and_says_so(tmp_path, labelled, capsys):
    store_path, originals = labelled
    code = main(["labels", "export-dataset", "--label-set", "chest", "-o",
                 str(tmp_path / "plain"), "--store", str(store_path), "--val-fraction", "0.25",
                 "--test-fraction", "0.25"])
    assert code == 0
    assert "not de-identified" in capsys.readouterr().out
    with open(tmp_path / "plain" / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["image"] for r in rows} == {ds.SOPInstanceUID for ds in originals}


def test_cli_json_and_refusals(tmp_path, labelled, capsys):
    store_path, _ = labelled
    code = main(["labels", "export-dataset", "--label-set", "chest", "-o",
                 str(tmp_path / "out"), "--store", str(store_path), "--deidentify",
                 "--split-by", "image", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 12 and report["deidentified"] and report["mapping_file"] is None
    code = main(["labels", "export-dataset", "--label-set", "chest", "-o",
                 str(tmp_path / "dcm"), "--store", str(store_path), "--images", "dicom"])
    assert code == 1
    assert "--deidentify" in capsys.readouterr().err
    with pytest.raises(UserError, match="not empty"):
        export(store_path, tmp_path / "out")


def test_missing_images_are_left_out_with_a_sentence(tmp_path, labelled):
    store_path, _ = labelled
    shutil.move(tmp_path / "images" / "PID-100-1.dcm", tmp_path / "moved.dcm")
    result = export(store_path, tmp_path / "ds", deidentify=True)
    assert result.images == 11
    assert len(result.skipped) == 1 and "no longer on disk" in result.skipped[0]
    # Without a key file nothing links back: no mapping is written.
    assert result.mapping_file is None and not (store_path.parent / "deid-mappings").exists()
