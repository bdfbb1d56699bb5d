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

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from medviewer.errors import UserError

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
        return json.loads(manifest.read_text(encoding="utf-8")).get("format") == DATASET_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def read_dataset(folder: str | Path) -> DatasetContents:
    """The rows of a dataset folder, or a UserError naming what is wrong with it."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
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
            document = json.loads(labels_file.read_text(encoding="utf-8"))
            for image in document.get("images", []):
                rows.append(DatasetRow(str(image["image"]), folder / image["file_name"],
                                       tuple(image.get("labels") or ()),
                                       image.get("patient") or None, str(image["split"])))
        else:
            with open(labels_file, newline="", encoding="utf-8") as handle:
                for row in csv.DictReader(handle):
                    classes = tuple(c for c in row["labels"].split(CLASS_SEPARATOR) if c)
                    rows.append(DatasetRow(row["image"], folder / row["file"], classes,
                                           row["patient"] or None, row["split"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"The dataset labels {labels_file} cannot be read ({exc}).") from None
    return DatasetContents(folder, list(manifest.get("classes") or []),
                           bool(manifest.get("multi_label")), rows, manifest)
