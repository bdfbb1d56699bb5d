"""`medviewer labels list|stats|import|export|recover` through medviewer.cli.main."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medviewer.cli import main
from medviewer.labels.store import LabelStore, default_store_path
from medviewer.settings import Settings, save_settings


@pytest.fixture
def csv_with_problems(shared_data, tmp_path) -> Path:
    folder = shared_data / "xray" / "kermany224" / "test"
    normal = sorted((folder / "NORMAL").glob("*.jpeg"))[:2]
    sick = sorted((folder / "PNEUMONIA").glob("*.jpeg"))[:2]
    lines = ["path,label,reader",
             f"{normal[0]},normal,alice", f"{normal[1]},normal,alice",
             f"{sick[0]},pneumonia,alice", f"{sick[1]},pneumonia,alice",
             f"{normal[0]},normal,bob", f"{normal[1]},pneumonia,bob",
             f"{sick[0]},pneumonia,bob", f"{sick[1]},pneumonia,bob",
             f"{tmp_path / 'gone.jpeg'},normal,bob",   # row 10
             f"{sick[0]},effusion,carol"]              # row 11
    path = tmp_path / "reads.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_import_refuses_problem_rows_then_imports_the_rest_with_yes(csv_with_problems,
                                                                    capsys):
    args = ["labels", "import", str(csv_with_problems), "--label-set", "pneumonia",
            "--classes", "normal,pneumonia"]
    assert main(args) == 1
    out, err = capsys.readouterr()
    assert "reads.csv row 10: the file" in out and "does not exist" in out
    assert "reads.csv row 11: unknown class 'effusion'" in out
    assert err.count("\n") == 1 and err.startswith("medviewer: 2 of 10 rows")
    assert "--yes" in err
    with LabelStore(reader="x") as store:
        assert store.label_sets() == []

    assert main(args + ["--yes"]) == 0
    out, _ = capsys.readouterr()
    assert "Imported 8 labels and 0 regions into 'pneumonia' (new label set)" in out
    assert "2 problem rows left out" in out


def test_list_stats_and_export_after_an_import(csv_with_problems, tmp_path, capsys):
    main(["labels", "import", str(csv_with_problems), "--label-set", "pneumonia",
          "--classes", "normal,pneumonia", "--yes"])
    capsys.readouterr()

    assert main(["labels", "list"]) == 0
    out, _ = capsys.readouterr()
    assert "pneumonia: single-label, classes normal, pneumonia; 4 images, 8 labels by 2 " \
           "readers, 0 regions" in out
    assert main(["labels", "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["store"] == str(default_store_path())
    assert listing["label_sets"][0]["decisions"] == 8

    assert main(["labels", "stats", "--label-set", "pneumonia"]) == 0
    out, _ = capsys.readouterr()
    # alice n n p p, bob n p p p: p_o 3/4, p_e (2*1 + 2*3)/16 = 1/2 -> kappa 0.5
    assert "Cohen's kappa alice vs bob: 0.500 on 4 images" in out
    assert "Per class: normal 3, pneumonia 5" in out
    assert main(["labels", "stats", "--label-set", "pneumonia", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["per_reader"]["bob"]["classes"] == {"normal": 1, "pneumonia": 3}
    assert stats["agreement"]["pairs"][0]["kappa"] == pytest.approx(0.5)

    out_csv, out_json = tmp_path / "out.csv", tmp_path / "out.json"
    assert main(["labels", "export", "--label-set", "pneumonia", "-o", str(out_csv)]) == 0
    assert "Wrote 8 rows" in capsys.readouterr().out
    assert len(out_csv.read_text().splitlines()) == 9
    assert main(["labels", "export", "--label-set", "pneumonia", "-o", str(out_json),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"output": str(out_json), "format": "json",
                                                   "images": 4}
    coco = tmp_path / "regions.json"
    assert main(["labels", "export", "--label-set", "pneumonia", "-o", str(coco),
                 "--format", "coco"]) == 0
    assert json.loads(coco.read_text())["annotations"] == []
    capsys.readouterr()

    # The JSON export imports into a project store of its own.
    project = tmp_path / "project.sqlite"
    assert main(["labels", "import", str(out_json), "--store", str(project), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["imported"] and result["labels_written"] == 8
    assert main(["labels", "list", "--store", str(project)]) == 0
    assert "4 images, 8 labels by 2 readers" in capsys.readouterr().out


def test_user_errors_are_one_sentence(tmp_path, capsys):
    assert main(["labels", "stats", "--label-set", "nope"]) == 1
    assert capsys.readouterr().err == \
        "medviewer: There is no label set named 'nope' (label sets: none yet).\n"
    assert main(["labels", "list", "--store", str(tmp_path / "typo.sqlite")]) == 1
    assert "There is no label store at" in capsys.readouterr().err
    assert not (tmp_path / "typo.sqlite").exists()
    assert main(["labels", "export", "--label-set", "x", "-o", str(tmp_path / "a.txt")]) == 1
    assert "--format" in capsys.readouterr().err
    assert main(["labels", "import", str(tmp_path / "a.xlsx"), "--label-set", "x"]) == 1
    assert "only .csv and .json" in capsys.readouterr().err
    assert main(["labels", "import", str(tmp_path / "a.csv"), "--label-set", "x"]) == 1
    assert "no label set named 'x'" in capsys.readouterr().err


def test_import_rows_without_reader_belong_to_the_settings_reader(shared_data, tmp_path,
                                                                   capsys):
    save_settings(Settings(reader_name="dr lee"))
    jpeg = next((shared_data / "xray" / "kermany224" / "test" / "NORMAL").glob("*.jpeg"))
    rows = tmp_path / "one.csv"
    rows.write_text(f"{jpeg},normal\n")
    assert main(["labels", "import", str(rows), "--label-set", "p", "--classes",
                 "normal,pneumonia"]) == 0
    with LabelStore() as store:
        assert [lab.reader for lab in store.current_labels("p")] == ["dr lee"]
        assert store.history()[0].actor == "dr lee"


def test_recover_command(tmp_path, capsys):
    path = tmp_path / "labels.sqlite"
    with LabelStore(path, reader="alice") as store:
        store.create_label_set("p", ["a", "b"])
    data = bytearray(path.read_bytes())
    data[:16] = b"garbage garbage!"
    path.write_bytes(bytes(data))
    assert main(["labels", "list", "--store", str(path)]) == 1
    err = capsys.readouterr().err
    assert "is damaged" in err and f"medviewer labels recover --store {path}" in err
    assert main(["labels", "recover", "--store", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert Path(report["damaged_copy"]).read_bytes() == bytes(data)
    assert main(["labels", "list", "--store", str(path)]) == 0
    assert "No label sets" in capsys.readouterr().out


def test_history_undo_and_redo_commands(tmp_path, capsys):
    from tests.labels.helpers import image

    path = tmp_path / "labels.sqlite"
    with LabelStore(path, reader="alice") as store:
        store.create_label_set("p", ["normal", "pneumonia"])
        store.set_label("p", image(1), "normal")
        store.set_label("p", image(1), "pneumonia")
    store_args = ["--store", str(path)]
    assert main(["labels", "undo", "--reader", "bob", *store_args]) == 0
    assert capsys.readouterr().out == "Nothing to undo for reader 'bob'.\n"
    assert main(["labels", "undo", "--reader", "alice", *store_args]) == 0
    assert capsys.readouterr().out.startswith("Undid set label #")
    with LabelStore(path, reader="alice") as store:
        assert store.label_for("p", image(1).key).classes == ("normal",)
    assert main(["labels", "redo", "--reader", "alice", "--json", *store_args]) == 0
    redone = json.loads(capsys.readouterr().out)
    assert redone["result"]["kind"] == "undo" and redone["result"]["label_set"] == "p"
    with LabelStore(path, reader="alice") as store:
        assert store.label_for("p", image(1).key).classes == ("pneumonia",)

    assert main(["labels", "history", "--label-set", "p", *store_args]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4  # two labels, one undo, one redo; newest first
    assert " alice: redo (of #" in lines[0] and "normal -> pneumonia" in lines[0]
    assert " alice: undo (of #" in lines[1] and "pneumonia -> normal" in lines[1]
    assert "(none) -> normal" in lines[3]
    assert main(["labels", "history", "--limit", "1", "--json", *store_args]) == 0
    assert len(json.loads(capsys.readouterr().out)["history"]) == 1
    assert main(["labels", "history", "--label-set", "nope", *store_args]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_measurements_are_exported_and_listed_in_the_history(tmp_path, capsys):
    from tests.labels.helpers import image

    path = tmp_path / "labels.sqlite"
    with LabelStore(path, reader="alice") as store:
        store.add_measurement(image(1), "distance", [(0, 0), (30, 40)], label="AP",
                              values={"length_px": 50.0})
        store.add_measurement(image(2), "text", [(1, 1)], text="prior", reader="bob")
    store_args = ["--store", str(path)]
    out_csv = tmp_path / "measurements.csv"
    assert main(["labels", "export", "--measurements", "-o", str(out_csv), *store_args]) == 0
    assert capsys.readouterr().out == f"Wrote 2 measurements to {out_csv} (csv).\n"
    assert out_csv.read_text().splitlines()[0].startswith("path,image_key,")
    out_json = tmp_path / "bob.json"
    assert main(["labels", "export", "--measurements", "--reader", "bob", "-o",
                 str(out_json), "--json", *store_args]) == 0
    assert json.loads(capsys.readouterr().out) == {"output": str(out_json), "format": "json",
                                                   "measurements": 1}
    assert json.loads(out_json.read_text())["images"][0]["image_key"] == image(2).key

    assert main(["labels", "history", "--image", image(1).key, *store_args]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert " alice: add measurement - measurement 1 of alice on " in line
    assert line.endswith("(none) -> distance AP")

    for wrong, sentence in (
            (["--measurements", "--label-set", "p"], "one of the two"),
            ([], "one of the two"),
            (["--label-set", "p", "--reader", "bob"], "add --measurements"),
            (["--measurements", "--format", "coco"], "CSV or JSON, not coco")):
        assert main(["labels", "export", *wrong, "-o", str(tmp_path / "x.json"),
                     *store_args]) == 1
        err = capsys.readouterr().err
        assert sentence in err and err.count("\n") == 1


def test_many_problem_rows_print_a_bounded_report(tmp_path, capsys):
    rows = 20_000
    csv_file = tmp_path / "bad.csv"
    csv_file.write_text("path,label\n" + "".join(f"/nowhere/{n}.dcm,normal\n"
                                                 for n in range(rows)))
    args = ["labels", "import", str(csv_file), "--label-set", "s", "--classes", "normal",
            "--store", str(tmp_path / "s.sqlite")]
    assert main(args) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 51 and lines[-1].startswith(f"bad.csv: ... and {rows - 50} more rows")
    assert err.count("\n") == 1 and err.startswith(f"medviewer: {rows} of {rows} rows")
    assert main([*args, "--yes", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["problem_count"] == rows and len(report["problems"]) == 1000
    assert report["problems_not_listed"] == rows - 1000


def _mount_small_disk(folder: Path) -> bool:
    import os
    import subprocess

    if os.geteuid() != 0:
        return False
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
                          capture_output=True)
    return done.returncode == 0


def test_a_full_disk_is_named_as_such(tmp_path, capsys):
    import subprocess

    disk = tmp_path / "disk"
    if not _mount_small_disk(disk):
        pytest.skip("needs root and tmpfs to make a full disk")
    try:
        store_path = disk / "labels.sqlite"
        with LabelStore(store_path) as store:
            store.create_label_set("chest", ["normal", "sick"])
        try:
            with open(disk / "filler", "wb") as filler:
                while True:
                    filler.write(b"\0" * 4096)
                    filler.flush()
        except OSError:  # the disk is full now
            pass
        for argv in (["labels", "list"], ["labels", "stats", "--label-set", "chest"]):
            assert main([*argv, "--store", str(store_path)]) == 1
            err = capsys.readouterr().err
            assert err == (f"medviewer: Cannot use the label store {store_path}: the disk is "
                           "full; nothing was changed.\n"), err
    finally:
        subprocess.run(["umount", str(disk)], check=False)
