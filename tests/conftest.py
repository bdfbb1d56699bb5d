"""Shared fixtures: every test runs with its own MEDVIEWER_HOME so no real user data is touched."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = (PROJECT_ROOT.parent / "shared" / "data").resolve()

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("medviewer-home")
    monkeypatch.setenv("MEDVIEWER_HOME", str(home))
    yield home
    from medviewer.error_log import remove_handlers

    remove_handlers()  # cli.main logs to this test's home: the next test has its own


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True, scope="session")
def audit_log_connected():
    """As ``medviewer.cli.main`` does for the app: every published prediction is audited.
    Tests that call library functions directly get the same wiring."""
    from medviewer.inference.audit import connect_audit_log

    connect_audit_log()
