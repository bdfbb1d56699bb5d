"""CSV formula injection: cells are neutralised on every CSV written and restored on reading."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from medviewer import csv_safety
from medviewer.cli import main

HOSTILE = ["=1+2", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)", "\tTAB", "\rCR",
           "=HYPERLINK(\"http://evil\",\"click\")", "'=already quoted", "''", "'", "-",
           "plain", "", "-1.5", "+7", "3e-4", "O'Brien", "tab\tinside", "==", "@"]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_cell_round_trips_and_never_starts_a_formula(value):
    written = csv_safety.neutralise(value)
    assert csv_safety.restore(written) == value
    is_number = value in ("-1.5", "+7", "3e-4")
    if written and written[0] in csv_safety.FORMULA_STARTS:
        assert is_number, f"{written!r} would run as a formula"


def test_numbers_stay_numbers_and_text_stays_text():
    assert csv_safety.neutralise("-1.5") == "-1.5"
    assert csv_safety.neutralise("=1+2") == "'=1+2"
    assert csv_safety.neutralise("'quoted") == "''quoted"
    assert csv_safety.restore("'plain") == "'plain"  # not written by us: left alone


def test_writer_and_reader_round_trip_a_whole_file():
    rows = [HOSTILE, [1, -2.5, None, "x"]]
    buffer = io.StringIO(newline="")
    csv_safety.writer(buffer).writerows(rows)
    raw = list(csv.reader(io.StringIO(buffer.getvalue(), newline="")))
    assert all(not cell or cell[0] not in "=+@\t\r" or cell in ("+7",)
               for row in raw for cell in row)
    back = list(csv_safety.restored_rows(io.StringIO(buffer.getvalue(), newline="")))
    assert back[0] == HOSTILE and back[1] == ["1", "-2.5", "", "x"]


def test_labels_export_neutralises_and_import_restores_through_the_cli(tmp_path, capsys):
    from tests.dicom import write_dicom

    image = write_dicom(tmp_path / "scan.dcm", np.arange(64, dtype=np.uint16).reshape(8, 8),
                        PatientID="=1+2")
    source = tmp_path / "reads.csv"
    with open(source, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "reader", "note"])
        writer.writerow([str(image), "normal", "@evil", '=HYPERLINK("http://x","y")'])
        writer.writerow([str(image), "normal", "-reader", "+cmd|' /C calc'!A0"])
    store_a, store_b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    assert main(["labels", "import", str(source), "--label-set", "chest",
                 "--classes", "normal,sick", "--multi-label", "--store", str(store_a)]) == 0
    exported = tmp_path / "export.csv"
    assert main(["labels", "export", "--label-set", "chest", "-o", str(exported),
                 "--store", str(store_a)]) == 0
    with open(exported, newline="", encoding="utf-8") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    assert "'=1+2" in cells and "'@evil" in cells and "'-reader" in cells
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "@", "\t", "\r")
                or (cell[:1] == "-" and cell != "-")]
    assert main(["labels", "import", str(exported), "--label-set", "chest",
                 "--classes", "normal,sick", "--multi-label", "--store", str(store_b)]) == 0
    again = tmp_path / "again.csv"
    assert main(["labels", "export", "--label-set", "chest", "-o", str(again),
                 "--store", str(store_b)]) == 0
    capsys.readouterr()

    def rows(path):
        with open(path, newline="", encoding="utf-8") as handle:
            found = list(csv_safety.restored_rows(handle))
        header = found[0]
        keep = [header.index(c) for c in ("label", "reader", "note", "patient_id")]
        return sorted(tuple(row[i] for i in keep) for row in found[1:])

    assert rows(exported) == rows(again)
    assert ("normal", "@evil", '=HYPERLINK("http://x","y")', "=1+2") in rows(again)
