"""The research dataset folder a label set is exported to, and reading it back.

Layout (written by ``medviewer.app.dataset_export``, documented in docs/deidentification.md)::

    manifest.json              format, options, counts per class and split, SHA-256 per file
    labels.csv                 (--format folder) image,file,patient,split,labels
    annotations.json           (--format coco) COCO images/categories/annotations
    images/<split>/[<class>/]<image>.png|.dcm

``read_dataset`` gives back (file, classes, patient, split) rows, so the trainer can take the
folder as its data source. Torch-free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medviewer import csv_safety
from medviewer.errors import UserError
from medviewer.files import open_regular

DATASET_FORMAT = "medviewer-dataset"
DATASET_VERSION = 1
MANIFEST_NAME = "manifest.json"
LABELS_CSV = "labels.csv"
COCO_JSON = "annotations.json"
CSV_COLUMNS = ("image", "file", "patient", "split", "labels")
CLASS_SEPARATOR = ";"


@dataclass(frozen=True)
class DatasetRow:
    image: str  # the (pseudonymous) image ID
    path: Path
    classes: tuple[str, ...]
    patient: str | None
    split: str


@dataclass
class DatasetContents:
    folder: Path
    classes: list[str]
    multi_label: bool
    rows: list[DatasetRow]
    manifest: dict


def is_dataset_folder(folder: Path) -> bool:
    manifest = Path(folder) / MANIFEST_NAME
    if not manifest.is_file():
        return False
    try:
        document = _read_json(manifest)
    except (OSError, ValueError):
        return False
    return isinstance(document, dict) and document.get("format") == DATASET_FORMAT


def _read_json(path: Path) -> Any:
    """A JSON file, opened only if it is a regular file (a FIFO would block for ever)."""
    with open_regular(path) as handle:
        return json.loads(handle.read().decode("utf-8"))


def read_dataset(folder: str | Path) -> DatasetContents:
    """The rows of a dataset folder, or a UserError naming what is wrong with it."""
    folder = Path(folder)
    try:
        manifest = _read_json(folder / MANIFEST_NAME)
    except (OSError, ValueError) as exc:
        raise UserError(f"The dataset manifest {folder / MANIFEST_NAME} cannot be read "
                        f"({exc}).") from None
    if not isinstance(manifest, dict) or manifest.get("format") != DATASET_FORMAT:
        raise UserError(f"{folder} is not a MedViewer research dataset (its manifest has "
                        f"another format).")
    labels_file = folder / str(manifest.get("labels_file") or LABELS_CSV)
    rows: list[DatasetRow] = []
    try:
        if labels_file.suffix == ".json":
            document = _read_json(labels_file)
            for image in document.get("images", []):
                rows.append(DatasetRow(str(image["image"]), folder / image["file_name"],
                                       tuple(image.get("labels") or ()),
                                       image.get("patient") or None, str(image["split"])))
        else:
            with open_regular(labels_file, "r", newline="", encoding="utf-8") as handle:
                cells = csv_safety.restored_rows(handle)
                header = next(cells, [])
                for row in (dict(zip(header, values)) for values in cells):
                    classes = tuple(c for c in row["labels"].split(CLASS_SEPARATOR) if c)
                    rows.append(DatasetRow(row["image"], folder / row["file"], classes,
                                           row["patient"] or None, row["split"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"The dataset labels {labels_file} cannot be read ({exc}).") from None
    return DatasetContents(folder, list(manifest.get("classes") or []),
                           bool(manifest.get("multi_label")), rows, manifest)
