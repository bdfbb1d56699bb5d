"""Closing one study or series of what is open: the rest stays open, navigation, keys, AI
suggestions and the image on screen follow (Session.close_images, Qt-free)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from medviewer.app.session import Session
from medviewer.dicom.catalog import (
    Catalog, InstanceRecord, PatientNode, SeriesNode, StudyNode,
)
from medviewer.settings import Settings


def series(uid: str, folder: Path, names: list[str]) -> SeriesNode:
    return SeriesNode(uid, 1, "", "CR",
                      [InstanceRecord(folder / n, f"{uid}.{i}", i + 1)
                       for i, n in enumerate(names)])


def two_study_catalog(root: Path) -> Catalog:
    first = StudyNode("1.1", "20240101", series=[series("1.1.1", root, ["a1.dcm", "a2.dcm"]),
                                                 series("1.1.2", root, ["a3.dcm"])])
    second = StudyNode("1.2", "20240301", series=[series("1.2.1", root, ["b1.dcm", "b2.dcm"])])
    return Catalog(root, [PatientNode("P1", "DOE^JANE", studies=[first, second])])


def open_session(tmp_path: Path) -> tuple[Session, Catalog, list]:
    session = Session(Settings(reader_name="dr.lee"), label_store_path=tmp_path / "l.db")
    catalog = two_study_catalog(tmp_path / "folder")
    heard: list = []
    session.events.images_closed.connect(lambda paths: heard.append(("closed", paths)))
    session.events.image_gone.connect(lambda _none: heard.append(("gone", None)))
    session.add_catalog(catalog)
    return session, catalog, heard


def paths_of(study: StudyNode) -> list[Path]:
    return [r.path for s in study.series for r in s.instances]


def test_closing_one_study_keeps_the_other_open(tmp_path):
    session, catalog, heard = open_session(tmp_path)
    first, second = catalog.patients[0].studies
    shown = paths_of(second)[0]
    session.show_image(SimpleNamespace(path=shown))
    session.labelling.show_image(shown, None)

    closed = session.close_images(paths_of(first))

    assert closed == paths_of(first)
    assert heard == [("closed", paths_of(first))]  # the image on screen was not closed
    assert [r.path for r in session.open_records()] == paths_of(second)
    assert [s.uid for s in session.catalogs[0].patients[0].studies] == ["1.2"]
    # The catalog the browser holds is not changed underneath it.
    assert len(catalog.patients[0].studies) == 2
    labelling = session.labelling
    assert labelling.known_paths == paths_of(second)
    assert labelling.key_for(paths_of(first)[0]) is None
    assert labelling.step(1) == (paths_of(second)[1], "")
    assert labelling.progress() == (0, 2)
    assert session.image is not None and labelling.current_path == shown


def test_closing_the_study_on_screen_says_the_image_is_gone_first(tmp_path):
    session, catalog, heard = open_session(tmp_path)
    second = catalog.patients[0].studies[1]
    shown = paths_of(second)[1]
    session.show_image(SimpleNamespace(path=shown))
    session.labelling.show_image(shown, None)

    session.close_images(paths_of(second))

    assert heard == [("gone", None), ("closed", paths_of(second))]
    assert session.image is None and session.labelling.current_path is None
    assert [s.uid for s in session.catalogs[0].patients[0].studies] == ["1.1"]


def test_closing_one_series_and_then_the_rest_empties_the_catalog(tmp_path):
    session, catalog, _heard = open_session(tmp_path)
    first, second = catalog.patients[0].studies
    session.close_images([r.path for r in first.series[0].instances])
    studies = session.catalogs[0].patients[0].studies
    assert [[s.uid for s in study.series] for study in studies] == [["1.1.2"], ["1.2.1"]]
    session.close_images(paths_of(first) + paths_of(second))
    assert session.catalogs == [] and session.open_records() == []
    assert session.labelling.known_paths == []


def test_closing_what_is_not_open_changes_nothing(tmp_path):
    session, _catalog, heard = open_session(tmp_path)
    before = session.open_records()
    assert session.close_images([tmp_path / "elsewhere.dcm"]) == []
    assert session.open_records() == before and heard == []
