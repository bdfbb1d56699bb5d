"""Import (validate, then apply) and atomic export of labels, on real image files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medviewer.errors import UserError
from medviewer.jobs import CancelFlag, JobCancelled, Progress, run_to_end
from medviewer.labels import export as label_export
from medviewer.labels import io as label_io
from medviewer.labels.errors import ExportError, ImportRejectedError
from medviewer.labels.identity import resolve_image
from medviewer.labels.store import Ellipse, LabelEntry, LabelStore, Polygon, Rectangle
from tests.labels.helpers import image

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def xrays(shared_data) -> list[Path]:
    folder = shared_data / "xray" / "kermany224" / "test"
    return sorted((folder / "NORMAL").glob("*.jpeg"))[:3] + \
        sorted((folder / "PNEUMONIA").glob("*.jpeg"))[:3]


@pytest.fixture
def dicoms(shared_data) -> list[Path]:
    folder = shared_data / "dicom" / "wg04" / "REF"
    return [folder / "RG2_UNC", folder / "RG3_UNC"]


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_problem_rows_are_reported_and_nothing_is_imported_without_consent(
        store, tmp_path, xrays, dicoms):
    csv_file = write_csv(tmp_path / "reads.csv", [
        "path,label,reader",
        f"{xrays[0]},normal,bob",                 # row 2
        f"{xrays[3]},pneumonia,bob",              # row 3
        f"{tmp_path / 'missing.dcm'},normal,bob",  # row 4: no such file
        f"{xrays[1]},cat,bob",                    # row 5: unknown class
        f"{dicoms[0]},pneumonia,",                # row 6: reader defaults to alice
        f"{tmp_path / 'reads.csv'},normal,bob",   # row 7: not an image
        ",normal,bob",                            # row 8: empty path
    ])
    plan = label_io.validate_csv(store, csv_file, "pneumonia",
                                 classes=["normal", "pneumonia"])
    assert plan.creates_label_set and plan.rows_total == 7 and plan.rows_ok == 3
    problems = {p.row: p.reason for p in plan.problems}
    assert sorted(problems) == [4, 5, 7, 8]
    assert "missing.dcm does not exist" in problems[4]
    assert problems[5] == "unknown class 'cat' (classes: normal, pneumonia)"
    assert "cannot be read" in problems[7] and "empty" in problems[8]

    with pytest.raises(ImportRejectedError, match=r"4 of 7 rows .* row 4: .*nothing was "
                                                  r"imported.*the other 3"):
        label_io.apply_import(store, plan)
    assert store.label_sets() == []  # not even the label set was created

    result = label_io.apply_import(store, plan, accept_partial=True)
    assert result.label_set_created and result.labels_written == 3
    decisions = store.decisions("pneumonia")
    assert decisions == {resolve_image(xrays[0]).key: {"bob": ("normal",)},
                         resolve_image(xrays[3]).key: {"bob": ("pneumonia",)},
                         resolve_image(dicoms[0]).key: {"alice": ("pneumonia",)}}
    labelled = store.current_labels("pneumonia")
    assert {lab.source for lab in labelled} == {"imported"}
    assert {lab.path for lab in labelled} == {str(xrays[0]), str(xrays[3]), str(dicoms[0])}
    # The whole import is one undo step of the person who ran it.
    undone = store.undo()
    assert undone.kind == "import" and len(undone.image_keys) == 3
    assert store.current_labels("pneumonia") == []


def test_a_clean_csv_imports_without_asking(store, pneumonia, tmp_path, xrays):
    csv_file = write_csv(tmp_path / "ok.csv", [f"{p},normal" for p in xrays[:3]])
    plan = label_io.validate_csv(store, csv_file, "pneumonia")  # no header: path,label
    assert plan.problems == [] and not plan.creates_label_set
    assert label_io.apply_import(store, plan).labels_written == 3
    # Importing the same file again changes nothing.
    again = label_io.apply_import(store, label_io.validate_csv(store, csv_file, "pneumonia"))
    assert (again.labels_written, again.labels_unchanged) == (0, 3)


def test_relative_paths_are_resolved_from_the_csv_folder(store, pneumonia, tmp_path, xrays):
    folder = tmp_path / "study"
    folder.mkdir()
    shutil.copy(xrays[0], folder / "a.jpeg")
    csv_file = write_csv(folder / "labels.csv", ["path,label", "a.jpeg,pneumonia"])
    plan = label_io.validate_csv(store, csv_file, "pneumonia")
    assert plan.problems == []
    assert plan.labels[0].image.key == resolve_image(xrays[0]).key  # same content, same key


def test_several_rows_make_a_multi_label_decision(store, findings, tmp_path, xrays):
    csv_file = write_csv(tmp_path / "multi.csv", [
        "path,label,reader",
        f"{xrays[0]},nodule,bob",
        f"{xrays[0]},effusion,bob",
        f"{xrays[0]},nodule,bob",  # a repeated row is harmless
        f"{xrays[0]},cardiomegaly,carol",
    ])
    plan = label_io.validate_csv(store, csv_file, "findings")
    assert plan.problems == []
    label_io.apply_import(store, plan)
    key = resolve_image(xrays[0]).key
    assert store.decisions("findings") == {key: {"bob": ("effusion", "nodule"),
                                                 "carol": ("cardiomegaly",)}}


def test_two_classes_for_one_reader_in_a_single_label_set_are_problems(
        store, pneumonia, tmp_path, xrays):
    csv_file = write_csv(tmp_path / "clash.csv", [
        "path,label,reader", f"{xrays[0]},normal,bob", f"{xrays[1]},normal,bob",
        f"{xrays[0]},pneumonia,bob"])
    plan = label_io.validate_csv(store, csv_file, "pneumonia")
    assert sorted(p.row for p in plan.problems) == [2, 4]
    assert "2 classes (normal, pneumonia)" in plan.problems[0].reason
    assert "rows 2, 4" in plan.problems[0].reason
    assert plan.rows_ok == 1


def test_import_needs_classes_for_a_new_set_and_readable_text(store, tmp_path, xrays):
    csv_file = write_csv(tmp_path / "a.csv", [f"{xrays[0]},normal"])
    with pytest.raises(UserError, match="no label set named 'new'.*--classes"):
        label_io.validate_csv(store, csv_file, "new")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("path,label\nr\xe9sum\xe9.dcm,normal\n".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        label_io.validate_csv(store, latin, "new", classes=["normal"])
    with pytest.raises(UserError, match="does not exist"):
        label_io.validate_csv(store, tmp_path / "none.csv", "new", classes=["normal"])


def test_validation_is_a_cancellable_job_with_progress(store, pneumonia, tmp_path, xrays):
    csv_file = write_csv(tmp_path / "many.csv", [f"{xrays[n % 6]},normal,r{n}"
                                                 for n in range(60)])
    events = []
    plan = run_to_end(label_io.validate_csv_job(store, csv_file, "pneumonia"), events.append)
    assert len(plan.labels) == 60
    assert all(isinstance(e, Progress) for e in events) and events[-1].fraction == 1.0
    flag = CancelFlag()
    flag.cancel()
    with pytest.raises(JobCancelled):
        run_to_end(label_io.validate_csv_job(store, csv_file, "pneumonia", cancel=flag))


def test_rows_with_a_key_import_even_when_the_file_has_moved(store, pneumonia, tmp_path):
    csv_file = write_csv(tmp_path / "moved.csv", [
        "path,label,reader,image_key",
        f"/elsewhere/a.dcm,normal,bob,{image(1).key}",
        "/elsewhere/b.dcm,normal,bob,"])
    plan = label_io.validate_csv(store, csv_file, "pneumonia")
    assert [p.row for p in plan.problems] == [3]
    label_io.apply_import(store, plan, accept_partial=True)
    assert store.images()[image(1).key].path == "/elsewhere/a.dcm"


def populate(store: LabelStore) -> None:
    store.create_label_set("pneumonia", ["normal", "pneumonia"])
    store.set_label("pneumonia", image(1, path="/d/1.dcm", patient_id="P1", width=200,
                                        height=100), "normal", note="clear, \"quoted\"")
    store.set_label("pneumonia", image(1), "pneumonia", reader="bob",
                    source="ai_overridden", ai_classes=["normal"])
    store.set_label("pneumonia", image(2, path="/d/2.dcm"), "pneumonia",
                    source="ai_accepted")
    store.add_region("pneumonia", image(1), "pneumonia", Rectangle(10, 20, 30, 40))
    store.add_region("pneumonia", image(1), "pneumonia", Ellipse(0, 0, 20, 10), reader="bob")
    store.add_region("pneumonia", image(1), "normal",
                     Polygon(((0, 0), (100, 0), (100, 50))), frame=0)


def test_csv_export_round_trips_through_import(store, tmp_path):
    populate(store)
    out = tmp_path / "export.csv"
    assert label_export.export_csv(store, "pneumonia", out) == 3
    text = out.read_text(encoding="utf-8")
    assert text.splitlines()[0] == ",".join(label_export.CSV_COLUMNS)
    assert '"clear, ""quoted"""' in text
    with LabelStore(tmp_path / "other.sqlite", reader="zed") as other:
        # The exported paths do not exist here: the image_key column carries the identity.
        plan = label_io.validate_csv(other, out, "pneumonia", classes=["normal", "pneumonia"])
        assert plan.problems == []
        label_io.apply_import(other, plan)
        assert other.decisions("pneumonia") == store.decisions("pneumonia")
        notes = {lab.reader: (lab.note, lab.source) for lab in other.current_labels("pneumonia")
                 if lab.image_key == image(1).key}
        assert notes == {"alice": ('clear, "quoted"', "manual"),
                         "bob": (None, "ai_overridden")}


def test_json_export_round_trips_labels_and_regions(store, tmp_path):
    populate(store)
    out = tmp_path / "export.json"
    assert label_export.export_json(store, "pneumonia", out) == 2
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["format"] == "medviewer-labels" and document["version"] == 1
    assert document["label_set"] == {"name": "pneumonia", "classes": ["normal", "pneumonia"],
                                     "multi_label": False, "description": ""}
    first = document["images"][0]
    assert first["sop_instance_uid"] == image(1).key and first["patient_id"] == "P1"
    assert (first["width"], first["height"]) == (200, 100)
    with LabelStore(tmp_path / "other.sqlite", reader="zed") as other:
        plan = label_io.validate_json(other, out)
        assert plan.problems == [] and plan.creates_label_set
        label_io.apply_import(other, plan)
        assert other.decisions("pneumonia") == store.decisions("pneumonia")
        bob = other.label_for("pneumonia", image(1).key, reader="bob")
        assert bob.ai_classes == ("normal",) and bob.source == "ai_overridden"

        def shapes(s: LabelStore) -> list:
            return sorted((r.reader, r.class_name, r.geometry) for r in s.regions("pneumonia"))

        assert shapes(other) == shapes(store)


def test_json_import_reports_bad_images(store, pneumonia, tmp_path):
    out = tmp_path / "bad.json"
    out.write_text(json.dumps({"format": "medviewer-labels", "version": 1,
                               "label_set": {"name": "pneumonia"},
                               "images": [
                                   {"image_key": image(1).key,
                                    "labels": [{"reader": "bob", "classes": ["normal"]}]},
                                   {"image_key": image(2).key,
                                    "labels": [{"reader": "bob", "classes": ["dog"]}]},
                                   {"labels": []},
                                   {"image_key": image(3).key,
                                    "regions": [{"reader": "bob", "class": "normal",
                                                 "shape": "star"}]}]}))
    plan = label_io.validate_json(store, out)
    assert [str(p) for p in plan.problems] == [
        "image 2: unknown class 'dog' (classes: normal, pneumonia)",
        "image 3: it has no image_key", "image 4: unknown region shape 'star'"]
    with pytest.raises(ImportRejectedError, match="3 of 4 images"):
        label_io.apply_import(store, plan)
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(UserError, match="neither a MedViewer labels JSON.*nor a COCO"):
        label_io.validate_json(store, tmp_path / "other.json")


def test_coco_export_of_regions(store, tmp_path):
    populate(store)
    out = tmp_path / "coco.json"
    assert label_export.export_coco(store, "pneumonia", out) == 3
    coco = json.loads(out.read_text())
    assert coco["categories"] == [
        {"id": 1, "name": "normal", "supercategory": "pneumonia"},
        {"id": 2, "name": "pneumonia", "supercategory": "pneumonia"}]
    assert coco["images"] == [{"id": 1, "file_name": "/d/1.dcm", "width": 200, "height": 100,
                               "image_key": image(1).key,
                               "sop_instance_uid": image(1).key, "content_hash": None}]
    rectangle, ellipse, polygon = coco["annotations"]
    assert rectangle["bbox"] == [10, 20, 30, 40] and rectangle["area"] == 1200
    assert rectangle["category_id"] == 2 and rectangle["attributes"]["reader"] == "alice"
    assert rectangle["segmentation"] == [[10, 20, 40, 20, 40, 60, 10, 60]]
    assert ellipse["attributes"]["shape"] == "ellipse"
    assert ellipse["area"] == pytest.approx(3.14159265 * 20 * 10 / 4)
    assert len(ellipse["segmentation"][0]) == 64
    # Polygon (0,0) (100,0) (100,50): a right triangle of area 100 * 50 / 2.
    assert polygon["bbox"] == [0, 0, 100, 50] and polygon["area"] == 2500
    assert polygon["category_id"] == 1


def test_coco_export_round_trips_regions_with_their_shapes_and_readers(store, tmp_path):
    populate(store)
    out = tmp_path / "coco.json"
    label_export.export_coco(store, "pneumonia", out)
    with LabelStore(tmp_path / "other.sqlite", reader="zed") as other:
        plan = label_io.validate_json(other, out)  # the label set is the supercategory
        assert plan.problems == [] and plan.label_set == "pneumonia"
        label_io.apply_import(other, plan)

        def shapes(s: LabelStore) -> list:
            return sorted((r.image_key, r.reader, r.class_name, r.geometry, r.frame)
                          for r in s.regions("pneumonia"))

        assert shapes(other) == shapes(store)


def test_coco_from_another_tool_finds_images_by_file_name(store, tmp_path, xrays):
    """A detection file as CVAT or Labelbox writes it: file names, boxes, polygons, RLE."""
    folder = tmp_path / "images"
    folder.mkdir()
    for path in xrays[:2]:
        shutil.copy(path, folder / path.name)
    out = tmp_path / "instances.json"
    out.write_text(json.dumps({
        "images": [{"id": 10, "file_name": f"images/{xrays[0].name}", "width": 224,
                    "height": 224},
                   {"id": 11, "file_name": f"images/{xrays[1].name}"},
                   {"id": 12, "file_name": "images/missing.jpeg"}],
        "categories": [{"id": 1, "name": "opacity"}, {"id": 2, "name": "device"}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 1, "bbox": [10, 20, 30, 40],
             "segmentation": []},
            {"id": 2, "image_id": 10, "category_id": 2, "bbox": [0, 0, 50, 50],
             "segmentation": [[0, 0, 50, 0, 50, 50], [60, 60, 70, 60, 70, 70]]},
            {"id": 3, "image_id": 11, "category_id": 1, "bbox": [5, 5, 10, 10],
             "iscrowd": 1, "segmentation": {"counts": [0, 4], "size": [224, 224]}},
            {"id": 4, "image_id": 12, "category_id": 1, "bbox": [1, 1, 2, 2]},
            {"id": 5, "image_id": 10, "category_id": 9, "bbox": [1, 1, 2, 2]},
            {"id": 6, "image_id": 99, "category_id": 1, "bbox": [1, 1, 2, 2]},
            {"id": 7, "image_id": 10, "category_id": 1, "bbox": [200, 200, 50, 50]},
            {"id": 8, "image_id": 10, "category_id": 1, "bbox": [1, "a", 2, 2]}]}))
    with pytest.raises(UserError, match="needs the name of a label set"):
        label_io.validate_json(store, out)
    plan = label_io.validate_json(store, out, "findings", classes=["opacity", "device"],
                                  reader="carol")
    assert [str(p) for p in plan.problems] == [
        "annotation 4: the file images/missing.jpeg does not exist",
        "annotation 5: unknown category_id 9",
        "annotation 6: its image_id 99 is not in the file's images",
        "annotation 7: The region (200, 200, 50 x 50) lies outside the 224 x 224 image",
        "annotation 8: its geometry is incomplete or not numbers (could not convert string "
        "to float: 'a')"]
    with pytest.raises(ImportRejectedError, match="5 of 8 annotations"):
        label_io.apply_import(store, plan)
    result = label_io.apply_import(store, plan, accept_partial=True)
    assert result.regions_written == 4 and result.label_set_created
    regions = store.regions("findings")
    assert {r.reader for r in regions} == {"carol"}
    first = resolve_image(folder / xrays[0].name).key
    assert sorted((r.image_key == first, r.shape, r.class_name) for r in regions) == [
        (False, "rectangle", "opacity"), (True, "polygon", "device"),
        (True, "polygon", "device"), (True, "rectangle", "opacity")]


def test_a_failing_export_leaves_the_previous_file_untouched(tmp_path):
    target = tmp_path / "labels.csv"
    target.write_text("the previous export\n")
    with pytest.raises(RuntimeError):
        with label_export.atomic_writer(target) as handle:
            handle.write("half of a new export")
            raise RuntimeError("the writer failed half-way")
    assert target.read_text() == "the previous export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["labels.csv"]
    with pytest.raises(ExportError, match="Cannot write .*no-such-folder"):
        with label_export.atomic_writer(tmp_path / "no-such-folder" / "x.csv") as handle:
            handle.write("x")


def test_a_write_refused_by_the_file_system_keeps_the_old_export(tmp_path):
    """A real write error (file size limit, as on a full disk) in a CLI export."""
    store_path = tmp_path / "labels.sqlite"
    with LabelStore(store_path, reader="alice") as store:
        store.create_label_set("pneumonia", ["normal", "pneumonia"])
        store.import_labels("pneumonia", [LabelEntry(image(n, path=f"/d/{n:05d}.dcm"),
                                                     "alice", ("normal",))
                                          for n in range(3000)])
    target = tmp_path / "out.csv"
    target.write_text("the previous export\n")
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))\n"
        "from medviewer.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    done = subprocess.run(
        [sys.executable, "-c", script, "labels", "export", "--store", str(store_path),
         "--label-set", "pneumonia", "-o", str(target)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("medviewer: Cannot write") and "unchanged" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert target.read_text() == "the previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir()
                  if not p.name.startswith("labels.sqlite")) == ["out.csv"]


def test_any_import_file_is_checked_by_its_kind(store, pneumonia, tmp_path, xrays):
    csv_file = write_csv(tmp_path / "reads.csv", [f"{xrays[0]},normal"])
    with pytest.raises(UserError, match="needs the name of a label set"):
        run_to_end(label_io.validate_file_job(store, csv_file, None))
    plan = run_to_end(label_io.validate_file_job(store, csv_file, "pneumonia"))
    assert plan.problems == [] and len(plan.labels) == 1
    with pytest.raises(UserError, match="only .csv and .json files can be imported"):
        label_io.import_kind(tmp_path / "reads.txt")
    assert set(label_export.EXPORTERS) == {"csv", "json", "coco", "dicom-sr"}


def _measured_store(path: Path) -> LabelStore:
    store = LabelStore(path, reader="alice")
    chest = image(1, path="/data/chest.dcm", patient_id="P1", width=500, height=400)
    store.add_measurement(chest, "distance", [(10, 20), (110, 20)], pixel_spacing=(0.5, 0.5),
                          spacing_source="PixelSpacing", label="width",
                          values={"length_mm": 50.0, "length_px": 100.0})
    store.add_measurement(chest, "rectangle", [(0, 0), (10, 10)], label="ROI 1",
                          values={"mean": 812.5, "sd": 3.25, "min": 800, "max": 830,
                                  "area_px": 100.0, "units": "HU", "label": "x"})
    store.add_measurement(image(2), "text", [(5, 5)], text='He said "=1+1", then left',
                          reader="bob")
    return store


def test_measurements_export_as_json_per_image(tmp_path):
    with _measured_store(tmp_path / "labels.sqlite") as store:
        count = label_export.export_measurements_json(store, tmp_path / "m.json")
        alices = label_export.measurements_document(store, reader="alice")
    assert count == 3
    document = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    assert (document["format"], document["version"]) == ("medviewer-measurements", 1)
    first, second = document["images"]
    assert (first["image_key"], first["path"], first["patient_id"], first["width"]) == (
        image(1).key, "/data/chest.dcm", "P1", 500)
    distance, roi = first["measurements"]
    assert distance["points"] == [[10.0, 20.0], [110.0, 20.0]]
    assert distance["pixel_spacing"] == [0.5, 0.5]
    assert distance["spacing_source"] == "PixelSpacing" and distance["label"] == "width"
    assert distance["values"] == {"length_mm": 50.0, "length_px": 100.0}
    assert roi["pixel_spacing"] is None and roi["spacing_source"] == "none"
    assert second["measurements"][0]["reader"] == "bob"
    assert second["measurements"][0]["text"] == 'He said "=1+1", then left'
    assert [len(i["measurements"]) for i in alices["images"]] == [2]


def test_measurements_export_as_csv_with_a_column_per_value(tmp_path):
    import csv

    with _measured_store(tmp_path / "labels.sqlite") as store:
        rows = label_export.export_measurements_csv(store, tmp_path / "m.csv")
        one = label_export.export_measurements_csv(store, tmp_path / "one.csv",
                                               image_key=image(2).key)
    assert (rows, one) == (3, 1)
    with open(tmp_path / "m.csv", newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    header = list(table[0])
    assert header[:len(label_export.MEASUREMENT_CSV_COLUMNS)] == list(
        label_export.MEASUREMENT_CSV_COLUMNS)
    assert header[len(label_export.MEASUREMENT_CSV_COLUMNS):] == [
        "area_px", "value_label", "length_mm", "length_px", "max", "mean", "min", "sd",
        "units"]  # sorted by value name; one named like a fixed column keeps its own column
    distance, roi, text = table
    assert (distance["kind"], distance["length_mm"], distance["mean"]) == ("distance",
                                                                          "50.0", "")
    assert distance["points"] == "[[10.0,20.0],[110.0,20.0]]"
    assert (distance["pixel_spacing_row_mm"], distance["pixel_spacing_column_mm"]) == (
        "0.5", "0.5")
    assert (roi["label"], roi["value_label"], roi["units"], roi["min"]) == ("ROI 1", "x",
                                                                           "HU", "800")
    assert (text["reader"], text["text"], text["path"]) == ("bob",
                                                            'He said "=1+1", then left', "")
    assert text["pixel_spacing_row_mm"] == "" and text["spacing_source"] == "none"


def test_an_empty_measurement_export_is_a_valid_file(store, tmp_path):
    assert label_export.export_measurements_csv(store, tmp_path / "none.csv") == 0
    assert (tmp_path / "none.csv").read_text().splitlines() == [
        ",".join(label_export.MEASUREMENT_CSV_COLUMNS)]
    assert label_export.export_measurements_json(store, tmp_path / "none.json") == 0
    assert json.loads((tmp_path / "none.json").read_text())["images"] == []


# ---------------------------------------------------------------- hostile imports (#17)


def _check_rows_naming_missing_files(store, folder: Path, rows: int):
    """(plan, peak traced bytes) for a CSV of ``rows`` rows that all name missing files."""
    import tracemalloc

    csv_file = folder / f"huge-{rows}.csv"
    with open(csv_file, "w", encoding="utf-8") as handle:
        handle.write("path,label,reader\n")
        for number in range(rows):
            handle.write(f"{folder}/missing/scan-{number:07d}-{'x' * 60}.dcm,normal,bob\n")
    tracemalloc.start()
    try:
        plan = label_io.validate_csv(store, csv_file, "pneumonia",
                                     classes=["normal", "pneumonia"])
        return plan, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_a_huge_csv_of_bad_rows_is_checked_in_bounded_memory(store, tmp_path):
    import csv
    import tracemalloc

    _check_rows_naming_missing_files(store, tmp_path, 500)  # imports happen here, not below
    rows = 100_000
    plan, peak = _check_rows_naming_missing_files(store, tmp_path, rows)
    assert plan.rows_total == rows and plan.problem_count == rows and plan.rows_ok == 0
    assert len(plan.problems) == label_io.MAX_PROBLEMS_KEPT
    assert [p.row for p in plan.problems[:2]] == [2, 3]
    assert plan.as_dict()["problems_not_listed"] == rows - label_io.MAX_PROBLEMS_KEPT
    # Baseline in the same run: the file's rows in a list, where the check used to begin
    # (it then added every problem: gigabytes for millions of rows). The check keeps one
    # row, 1,000 problems and at most 10,000 failed paths, whatever the file's size.
    tracemalloc.start()
    try:
        with open(tmp_path / f"huge-{rows}.csv", newline="", encoding="utf-8") as handle:
            held = list(csv.reader(handle))
        baseline = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(held) == rows + 1
    assert peak < baseline / 2 and peak < 16 * 1024**2, (peak, baseline)


def test_a_fifo_is_neither_imported_nor_waited_on(store, tmp_path, xrays):
    import os
    import time

    os.mkfifo(tmp_path / "pipe.csv")
    started = time.monotonic()
    with pytest.raises(UserError, match="it is a named pipe \\(FIFO\\), not a regular file"):
        label_io.validate_csv(store, tmp_path / "pipe.csv", "pneumonia",
                              classes=["normal", "pneumonia"])
    os.mkfifo(tmp_path / "pipe.dcm")
    csv_file = write_csv(tmp_path / "reads.csv", ["path,label", f"{tmp_path / 'pipe.dcm'},normal",
                                                  f"{xrays[0]},normal"])
    plan = label_io.validate_csv(store, csv_file, "pneumonia", classes=["normal", "pneumonia"])
    assert time.monotonic() - started < 5
    assert [p.reason for p in plan.problems] == [
        "the file pipe.dcm cannot be read (it is a named pipe (FIFO), not a regular file)".replace(
            "pipe.dcm", str(tmp_path / "pipe.dcm"))]
    assert plan.rows_ok == 1


def test_a_csv_that_is_not_text_or_not_csv_is_one_sentence(store, tmp_path):
    (tmp_path / "binary.csv").write_bytes(b"path,label\n\xff\xfe,normal\n")
    with pytest.raises(UserError, match="it is not UTF-8 text"):
        label_io.validate_csv(store, tmp_path / "binary.csv", "pneumonia", classes=["normal"])
    (tmp_path / "huge-cell.csv").write_text("path,label\n" + "a" * 200_000 + ",normal\n")
    with pytest.raises(UserError, match="row 2 is not valid CSV"):
        label_io.validate_csv(store, tmp_path / "huge-cell.csv", "pneumonia",
                              classes=["normal"])


def test_export_never_replaces_a_pipe_or_device(store, pneumonia, tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.csv")
    for target in (tmp_path / "pipe.csv", tmp_path):
        with pytest.raises(ExportError, match="not a regular file"):
            label_export.export_csv(store, "pneumonia", target)


def test_an_image_whose_name_is_not_utf8_can_be_labelled(store, pneumonia, tmp_path):
    import os

    odd = os.fsdecode(bytes(tmp_path) + b"/caf\xe9.dcm")
    shutil.copy(PROJECT_ROOT / "resources" / "sample_study" / "S01_I01.dcm", odd)
    ref = resolve_image(odd)
    assert ref.path.endswith("caf\\xe9.dcm")  # kept as text, escaped
    store.set_label("pneumonia", ref, ["normal"])
    assert [label.image_key for label in store.current_labels("pneumonia")] == [ref.key]
