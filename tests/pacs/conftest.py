"""Fixtures for the PACS tests: a real Orthanc on loopback, and servers configured for it.

Without Orthanc the tests skip with one line saying what to install; with
MEDVIEWER_REQUIRE_PACS=1 (CI) they fail instead, so CI never passes with them skipped.
"""

from __future__ import annotations

import pytest

from medviewer.pacs.servers import ServerConfig, secrets
from tests.pacs.orthanc import (
    ORTHANC_AE,
    PASSWORD,
    USER,
    Orthanc,
    missing_programs,
    pacs_required,
)
from tests.pacs.studies import make_study


def _need_orthanc() -> None:
    missing = missing_programs()
    if missing:
        if pacs_required():
            pytest.fail(f"MEDVIEWER_REQUIRE_PACS is set but: {missing}")
        pytest.skip(missing)


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/pacs/" in item.nodeid or {"orthanc", "own_orthanc"} & set(item.fixturenames):
            item.add_marker(pytest.mark.pacs)


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    """One Orthanc for the session (tests use their own studies' UIDs)."""
    _need_orthanc()
    server = Orthanc(tmp_path_factory.mktemp("orthanc")).start()
    yield server
    server.stop()


@pytest.fixture
def own_orthanc(tmp_path):
    """An Orthanc this test may stop or kill."""
    _need_orthanc()
    server = Orthanc(tmp_path / "orthanc").start()
    yield server
    server.stop()


def dimse_config(server: Orthanc, name: str = "pacs", **changes) -> ServerConfig:
    values = {"name": name, "kind": "dimse", "ae_title": ORTHANC_AE, "host": "127.0.0.1",
              "port": server.dicom_port, "move_port": server.move_port, "timeout_s": 10}
    return ServerConfig(**{**values, **changes}).checked()


def web_config(server: Orthanc, name: str = "web", **changes) -> ServerConfig:
    values = {"name": name, "kind": "dicomweb", "url": server.dicomweb_url, "auth": "basic",
              "username": USER, "timeout_s": 10}
    return ServerConfig(**{**values, **changes}).checked()


@pytest.fixture
def dimse_server(orthanc) -> ServerConfig:
    return dimse_config(orthanc)


@pytest.fixture
def web_server(orthanc) -> ServerConfig:
    server = web_config(orthanc)
    secrets.set(server.name, PASSWORD, remember=False)
    yield server
    secrets.forget(server.name)


@pytest.fixture(scope="session")
def stored_study(orthanc, tmp_path_factory):
    """A two-series study of 12 instances on the session's Orthanc."""
    study = make_study(tmp_path_factory.mktemp("study"), 12, series=2, patient_id="PAT-STORED",
                       patient_name="Stored^Pat", accession="ACC-STORED",
                       study_date="20230607", modality="MR")
    orthanc.upload(study.paths)
    return study
