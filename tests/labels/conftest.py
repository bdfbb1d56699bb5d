"""Fixtures for the label store tests: a fresh store file per test, read by 'alice'."""

from __future__ import annotations

from pathlib import Path

import pytest

from medviewer.labels.store import LabelStore


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "labels.sqlite"


@pytest.fixture
def store(store_path: Path):
    with LabelStore(store_path, reader="alice") as opened:
        yield opened


@pytest.fixture
def pneumonia(store: LabelStore):
    return store.create_label_set("pneumonia", ["normal", "pneumonia"])


@pytest.fixture
def findings(store: LabelStore):
    return store.create_label_set("findings", ["effusion", "nodule", "cardiomegaly"],
                                  multi_label=True)
