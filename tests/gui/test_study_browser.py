"""The study browser: large catalogs go in without blocking, thumbnails come from a worker."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from medviewer.dicom.catalog import (
    Catalog, InstanceRecord, PatientNode, SeriesNode, StudyNode,
)
from medviewer.gui.study_browser import StudyBrowser, person_name, shrink, study_text

from .conftest import pydicom_file


def synthetic_catalog(root: Path, patients: int) -> Catalog:
    catalog = Catalog(root)
    for p in range(patients):
        record = InstanceRecord(root / f"missing_{p}.dcm", f"1.2.3.{p}", 1, modality="CR")
        series = SeriesNode(f"1.2.3.{p}.1", 1, "PA", "CR", [record])
        study = StudyNode(f"1.2.3.{p}.2", "20240101", "Chest", series=[series])
        catalog.patients.append(PatientNode(f"P{p}", f"Doe^Jane{p}", studies=[study]))
    return catalog


def test_a_large_catalog_is_inserted_in_slices_without_duplicates(qtbot, tmp_path,
                                                                    monkeypatch):
    # A zero budget makes every slice one patient, whatever the machine's speed.
    monkeypatch.setattr("medviewer.gui.study_browser.INSERT_BUDGET_S", 0.0)
    browser = StudyBrowser()
    qtbot.addWidget(browser)
    catalog = synthetic_catalog(tmp_path, 600)
    failures: list[tuple[str, str]] = []
    browser.thumbnail_failed.connect(lambda path, reason: failures.append((path, reason)))
    with qtbot.waitSignal(browser.rows_inserted, timeout=30_000):
        added = browser.add_catalog(catalog)
        assert len(added) == 600
        assert browser.tree.topLevelItemCount() == 1, "the first slice only, at once"
    assert browser.tree.topLevelItemCount() == 600
    assert browser.add_catalog(catalog) == []  # the same files again: nothing new
    assert browser.tree.topLevelItemCount() == 600
    # The files do not exist: every thumbnail fails with the reader's sentence.
    qtbot.waitUntil(lambda: not browser.is_busy, timeout=60_000)
    assert len(failures) == 600
    first = browser.item_for(tmp_path / "missing_0.dcm")
    assert first.toolTip(0).startswith(f"Cannot open {tmp_path / 'missing_0.dcm'}")
    browser.clear()
    assert browser.records() == [] and not browser.is_busy


def test_thumbnails_are_real_images(qtbot, tmp_path):
    from medviewer.dicom.catalog import index_path
    from medviewer.jobs import run_to_end

    shutil.copy(pydicom_file("CT_small.dcm"), tmp_path / "ct.dcm")
    catalog = run_to_end(index_path(tmp_path))
    browser = StudyBrowser()
    qtbot.addWidget(browser)
    with qtbot.waitSignal(browser.thumbnails_done, timeout=20_000):
        browser.add_catalog(catalog)
    icon = browser.item_for(catalog.instances()[0].path).icon(0).pixmap(64, 64).toImage()
    values = {icon.pixelColor(x, y).value() for x in range(0, 64, 8) for y in range(0, 64, 8)}
    assert len(values) > 5, "a CT thumbnail has many grey levels, the placeholder one"


def test_shrink_averages_blocks():
    image = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10
    small = shrink(image, 2)
    assert small.shape == (2, 2)
    assert small[0, 0] == round((0 + 10 + 40 + 50) / 4)
    rgb = np.zeros((300, 200, 3), dtype=np.uint8)
    assert shrink(rgb, 64).shape == (60, 40, 3)
    assert np.array_equal(shrink(image, 64), image)


def test_row_texts():
    assert person_name("Doe^Jane^Q") == "Doe, Jane Q"
    assert person_name("") == "(no name)"
    assert study_text(StudyNode("1", "20240131", "", "A12")) == "2024-01-31 · Study · Acc A12"


def test_plain_images_are_one_row_per_folder_by_file_name(qtbot, tmp_path, shared_data):
    """A folder of X-ray JPEGs is not thousands of one-image patients."""
    from medviewer.dicom.catalog import index_path
    from medviewer.jobs import run_to_end

    source = sorted((shared_data / "xray" / "kermany224" / "test" / "NORMAL").glob("*.jpeg"))
    for folder, names in (("normal", ("b.jpeg", "a.jpeg", "c.jpeg")), ("other", ("z.jpeg",))):
        (tmp_path / folder).mkdir()
        for name, image in zip(names, source):
            shutil.copy(image, tmp_path / folder / name)
    shutil.copy(pydicom_file("CT_small.dcm"), tmp_path / "ct.dcm")
    browser = StudyBrowser()
    qtbot.addWidget(browser)
    with qtbot.waitSignal(browser.rows_inserted, timeout=20_000):
        browser.add_catalog(run_to_end(index_path(tmp_path / "normal")))
    assert browser.tree.topLevelItemCount() == 1
    row = browser.tree.topLevelItem(0)
    assert row.text(0) == "normal · 3 images" and row.toolTip(0) == str(tmp_path / "normal")
    assert [row.child(i).text(0).split("\n")[0] for i in range(row.childCount())] == \
        ["a.jpeg", "b.jpeg", "c.jpeg"]
    assert row.child(0).text(0).endswith("224 × 224")
    with qtbot.waitSignal(browser.instance_selected) as selected:
        browser.tree.setCurrentItem(row)  # the folder row opens its first image
    assert selected.args[0].path == tmp_path / "normal" / "a.jpeg"

    # Opening the parent later: the same folder's row is reused, DICOM keeps its tree.
    with qtbot.waitSignal(browser.rows_inserted, timeout=20_000):
        added = browser.add_catalog(run_to_end(index_path(tmp_path)))
    assert [r.path.name for r in added] == ["ct.dcm", "z.jpeg"]  # DICOM first, then folders
    texts = sorted(browser.tree.topLevelItem(i).text(0)
                   for i in range(browser.tree.topLevelItemCount()))
    assert len(texts) == 3 and "normal · 3 images" in texts and "other · 1 image" in texts
    qtbot.waitUntil(lambda: not browser.is_busy, timeout=20_000)
    browser.clear()
    assert browser.tree.topLevelItemCount() == 0 and not browser._folder_items
