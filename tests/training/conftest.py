"""A small, fixed subset of the Kermany chest X-rays for fast end-to-end training tests."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest
import torch

from medviewer.training.trainer import TrainConfig

# Two CPU cores are shared by everything on the machine; one thread keeps tests predictable.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def kermany_subset_csv(shared_data, tmp_path_factory) -> Path:
    """64 training images (32 per class), listed in a CSV of path,label."""
    rng = random.Random(7)
    rows = []
    for class_name in ("NORMAL", "PNEUMONIA"):
        files = sorted((shared_data / "xray/kermany224/train" / class_name).iterdir())
        rows += [(str(p), class_name) for p in rng.sample(files, 32)]
    path = tmp_path_factory.mktemp("kermany-subset") / "subset.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        writer.writerows(rows)
    return path


@pytest.fixture
def tiny_config(kermany_subset_csv) -> TrainConfig:
    return TrainConfig(data=str(kermany_subset_csv), arch="smallcnn", epochs=2, batch_size=8,
                       lr=2e-3, input_size=64, val_fraction=0.25, test_fraction=0.25,
                       seed=11, device="cpu", num_threads=1, patience=5)
