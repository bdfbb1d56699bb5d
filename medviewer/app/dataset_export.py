"""Research dataset export: a label set's images, labels, patient-level split and manifest in
one folder, optionally de-identified. Qt-free: the GUI's dialog and ``medviewer labels
export-dataset`` both run :func:`export_dataset_job`.

Per labelled image (one set of classes per image, by the consensus rule):

* the image: a PNG of the model's input (the displayed frame as grey 8-bit, the pixels the
  trainer and the AI read start from), or the DICOM file de-identified by the profile;
* its ID: with ``deidentify`` the de-identified SOP Instance UID (the same one a DICOM export
  or ``medviewer deid`` with the same key gives) or a keyed pseudonym for plain images, and
  the patient's pseudonym; without, the label store's own keys and patient IDs;
* its split (train / val / test), keeping each patient in one split
  (``labels.splits.grouped_split``, the trainer's algorithm).

The folder is built beside the output and renamed into place when complete. With a key
file, a mapping from pseudonyms back to the originals is written next to the label store
(``deid-mappings/``, 0600) and never into the dataset.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

from medviewer import __version__, csv_safety
from medviewer.errors import UserError
from medviewer.jobs import CancelFlag, JobCancelled, Progress
from medviewer.labels.research_dataset import (
    CLASS_SEPARATOR,
    COCO_JSON,
    CSV_COLUMNS,
    DATASET_FORMAT,
    DATASET_VERSION,
    LABELS_CSV,
    MANIFEST_NAME,
)
from medviewer.labels.splits import SPLIT_NAMES, grouped_split, patient_from_name

log = logging.getLogger(__name__)

IMAGE_KINDS = ("png", "dicom")
FORMATS = ("folder", "coco")
SPLIT_BY = ("patient", "image")


@dataclass
class DatasetExportRequest:
    label_set: str
    output: Path
    store_path: Path | None = None  # default: the user's label store
    deidentify: bool = False
    key_file: Path | None = None
    images: str = "png"
    format: str = "folder"
    split_by: str = "patient"
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    rule: str = "majority"
    options: frozenset[str] = frozenset()  # de-identification profile options
    confirm_burned_in: bool = False


@dataclass
class DatasetExportResult:
    output: Path
    images: int = 0
    patients: int = 0
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # one sentence per image left out
    deidentified: bool = False
    key_file: Path | None = None
    key_created: bool = False
    mapping_file: Path | None = None

    def to_json(self) -> dict:
        return {"output": str(self.output), "images": self.images, "patients": self.patients,
                "counts": self.counts, "skipped": self.skipped,
                "deidentified": self.deidentified,
                "key_file": str(self.key_file) if self.key_file else None,
                "key_created": self.key_created,
                "mapping_file": str(self.mapping_file) if self.mapping_file else None}


@dataclass
class _Item:
    key: str
    path: Path | None  # None: the store knows no path for it
    classes: tuple[str, ...]
    patient: str | None  # original
    sop_instance_uid: str | None


def _check(request: DatasetExportRequest) -> None:
    if request.images not in IMAGE_KINDS:
        raise UserError(f"The image kind '{request.images}' is not one of "
                        f"{', '.join(IMAGE_KINDS)}.")
    if request.format not in FORMATS:
        raise UserError(f"The dataset format '{request.format}' is not one of "
                        f"{', '.join(FORMATS)}.")
    if request.split_by not in SPLIT_BY:
        raise UserError(f"A dataset is split by {' or '.join(SPLIT_BY)}, not "
                        f"'{request.split_by}'.")
    if request.images == "dicom" and not request.deidentify:
        raise UserError("A dataset of DICOM files is written de-identified only: add "
                        "--deidentify (or export PNG images).")
    if request.key_file is not None and not request.deidentify:
        raise UserError("A key file is used to de-identify: add --deidentify.")
    output = Path(request.output).expanduser()
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise UserError(f"The dataset folder {output} is not empty; choose a new or empty "
                        f"folder.")


def _load_items(request: DatasetExportRequest):
    from medviewer.labels.consensus import training_labels
    from medviewer.labels.store import LabelStore, default_store_path

    store_path = Path(request.store_path) if request.store_path else default_store_path()
    if not store_path.exists():
        raise UserError(f"There is no label store at {store_path}.")
    with LabelStore(store_path, reader="dataset-export") as store:
        labels = training_labels(store, request.label_set, request.rule)
        regions = store.regions(request.label_set) if request.format == "coco" else []
    items = [_Item(item.image_key, Path(item.path) if item.path else None, item.labels,
                   item.patient_id or (patient_from_name(item.path) if item.path else None),
                   item.sop_instance_uid)
             for item in labels.items]
    return store_path, labels, items, regions


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_png(path: Path, source: Path) -> None:
    import numpy as np
    from PIL import Image

    from medviewer.dicom.reader import open_instance
    from medviewer.inference.preprocess import LUMA_WEIGHTS

    frame = open_instance(source).display_frame(0)
    if frame.ndim == 3:  # colour becomes grey exactly as the model's input does
        frame = np.clip(np.rint(frame.astype(np.float32) @ LUMA_WEIGHTS), 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame.astype(np.uint8), mode="L").save(path, format="PNG")


def _safe_name(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in ".-_" else "-" for ch in text)


def export_dataset_job(request: DatasetExportRequest, cancel: CancelFlag | None = None
                       ) -> Generator[Progress, None, DatasetExportResult]:
    _check(request)
    yield Progress(0, None, "Reading the label set...")
    store_path, labels, items, regions = _load_items(request)
    from medviewer.dicom.deid.job import (
        MAPPING_FOLDER,
        RefusedFile,
        deidentify_file,
        open_key,
        read_dataset,
        write_dataset,
        write_mapping,
    )
    from medviewer.dicom.deid.pixels import burned_in_reason
    from medviewer.dicom.deid.profile import Profile
    from medviewer.dicom.load_errors import LoadError
    from medviewer.dicom.reader import read_header

    output = Path(request.output).expanduser()
    result = DatasetExportResult(output, deidentified=request.deidentify)
    key = None
    if request.deidentify:
        key, result.key_created = open_key(request.key_file)
        result.key_file = key.path
    profile = Profile(frozenset(request.options))
    present = []
    for item in items:
        if item.path is None or not item.path.is_file():
            result.skipped.append(f"{item.path or item.key} is labelled but no longer on disk.")
        else:
            present.append(item)
    if not present:
        raise UserError(f"No labelled image of label set {request.label_set} is on disk.")
    classes = list(labels.classes)
    first_class = [classes.index(item.classes[0]) for item in present]
    groups = [f"patient:{item.patient}" if request.split_by == "patient" and item.patient
              else f"image:{item.key}" for item in present]
    parts = grouped_split(first_class, groups, request.val_fraction, request.test_fraction,
                          request.seed)
    split_of = {index: name for name in SPLIT_NAMES for index in parts.indices(name)}

    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.partial-"))
    rows: list[dict] = []
    mapping: dict[tuple[str, str], tuple[str, str, str, str]] = {}
    ids: dict[str, str] = {}  # store key -> exported image id
    try:
        for done, (index, item) in enumerate(zip(range(len(present)), present), start=1):
            if cancel is not None:
                cancel.raise_if_cancelled()
            split = split_of[index]
            folder = Path("images") / split
            if request.format == "folder" and not labels.multi_label:
                folder = folder / _safe_name(item.classes[0])
            try:
                patient, image_id = item.patient, item.key
                if key is not None:
                    patient = key.patient_id(item.patient or f"image:{item.key}")
                    image_id = key.uid(item.sop_instance_uid) if item.sop_instance_uid \
                        else key.image_id(item.key)
                if request.images == "dicom":
                    ds = read_dataset(item.path)
                    outcome, _ = deidentify_file(item.path, ds, profile, key,
                                                 confirm_burned_in=request.confirm_burned_in)
                    image_id, patient = str(ds.SOPInstanceUID), outcome.patient_pseudonym
                    relative = folder / f"{_safe_name(image_id)}.dcm"
                    write_dataset(ds, staging / relative)
                else:
                    if key is not None and item.sop_instance_uid:
                        reason = burned_in_reason(read_header(item.path))
                        if reason and not request.confirm_burned_in:
                            raise RefusedFile(item.path, f"{reason}; confirm that its pixels "
                                                         f"hold no identity to include it")
                    relative = folder / f"{_safe_name(image_id)}.png"
                    _write_png(staging / relative, item.path)
            except RefusedFile as refused:
                result.skipped.append(str(refused))
                continue
            except LoadError as exc:
                result.skipped.append(str(exc))
                continue
            ids[item.key] = image_id
            rows.append({"image": image_id, "file": relative.as_posix(),
                         "patient": patient or "", "split": split,
                         "labels": list(item.classes), "path": relative})
            if key is not None and key.persistent:
                mapping[("patient", patient)] = ("patient", patient or "", item.patient or "",
                                                  "")
                mapping[("image", image_id)] = ("image", image_id, item.key, str(item.path))
            yield Progress(done, len(present), f"Exported {done} of {len(present)} images")
        if not rows:
            raise UserError(f"No image of label set {request.label_set} could be exported "
                            f"(first reason: {result.skipped[0]})")
        labels_name = _write_labels(staging, request, labels, rows, regions, ids)
        counts = {name: dict(Counter(c for r in rows if r["split"] == name
                                     for c in r["labels"])) for name in SPLIT_NAMES}
        files = {r["file"]: _sha256(staging / r["path"]) for r in rows}
        files[labels_name] = _sha256(staging / labels_name)
        manifest = {
            "format": DATASET_FORMAT, "version": DATASET_VERSION,
            "medviewer_version": __version__, "label_set": labels.label_set,
            "classes": classes, "multi_label": labels.multi_label, "rule": labels.rule,
            "labels_file": labels_name,
            "options": {"deidentify": request.deidentify, "images": request.images,
                        "format": request.format, "split_by": request.split_by,
                        "val_fraction": request.val_fraction,
                        "test_fraction": request.test_fraction, "seed": request.seed,
                        "profile": "basic" if request.deidentify else None,
                        "profile_options": sorted(request.options) if request.deidentify
                        else [], "key": "project key" if key is not None and key.persistent
                        else ("one-run key" if key is not None else None)},
            "images": len(rows), "patients": len({r["patient"] for r in rows}),
            "counts": counts, "excluded": labels.excluded, "left_out": len(result.skipped),
            "sha256": files,
        }
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1) + "\n",
                                             encoding="utf-8")
        for path in staging.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        staging.chmod(0o755)
        if output.exists():
            output.rmdir()
        os.replace(staging, output)
    except (JobCancelled, Exception):
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result.images, result.counts = len(rows), counts
    result.patients = manifest["patients"]
    if mapping:
        result.mapping_file = write_mapping(store_path.parent / MAPPING_FOLDER,
                                            mapping.values())
    return result


def _write_labels(folder: Path, request: DatasetExportRequest, labels, rows: list[dict],
                  regions, ids: dict[str, str]) -> str:
    if request.format == "folder":
        text = io.StringIO()
        writer = csv_safety.writer(text, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow([row["image"], row["file"], row["patient"], row["split"],
                             CLASS_SEPARATOR.join(row["labels"])])
        (folder / LABELS_CSV).write_text(text.getvalue(), encoding="utf-8")
        return LABELS_CSV
    category = {name: i + 1 for i, name in enumerate(labels.classes)}
    image_number = {row["image"]: i + 1 for i, row in enumerate(rows)}
    images = [{"id": image_number[r["image"]], "file_name": r["file"], "image": r["image"],
               "patient": r["patient"], "split": r["split"], "labels": r["labels"]}
              for r in rows]
    annotations = []
    for region in regions:
        image = ids.get(region.image_key)
        if image is None:
            continue
        g = region.geometry
        annotations.append({"id": len(annotations) + 1, "image_id": image_number[image],
                            "category_id": category[region.class_name],
                            "bbox": [g.x, g.y, g.width, g.height],
                            "area": g.width * g.height, "iscrowd": 0,
                            "attributes": {"shape": region.shape, "frame": region.frame}})
    document = {"info": {"description": f"MedViewer research dataset of label set "
                                        f"'{labels.label_set}'", "version": __version__},
                "images": images, "annotations": annotations,
                "categories": [{"id": i, "name": n, "supercategory": labels.label_set}
                               for n, i in category.items()]}
    (folder / COCO_JSON).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return COCO_JSON
