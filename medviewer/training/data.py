"""Training data: sources (class folders, CSV, label store), patient keys, splits, preloading.

Every image goes through :func:`preprocess_image`, which IS the inference package's
preprocessing for the card the exporter writes (``display_frame(0)`` / 255, grey by BT.601
luma, bilinear stretch to ``size x size``), so inference reproduces the training input.
The preprocessed set is kept in RAM as one float32 tensor; augmentation runs on batches.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import logging
import math
import os
from collections import Counter
from collections.abc import Generator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medviewer.errors import UserError
from medviewer.jobs import CancelFlag, Progress
from medviewer.labels.splits import SPLIT_NAMES, SplitError, grouped_split, patient_from_name

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".dcm", ".dicom"})
SPLIT_FORMAT = "medviewer-split"


class DataError(UserError):
    """A data source the trainer cannot use (missing, empty, one class only...)."""


@dataclass(frozen=True)
class ImageRecord:
    """One labelled image; ``patient`` is None when no patient can be told apart."""

    path: str
    label: int
    patient: str | None = None


@dataclass
class LabelledSet:
    records: list[ImageRecord]
    class_names: list[str]
    source: str

    def class_counts(self) -> dict[str, int]:
        counts = Counter(r.label for r in self.records)
        return {name: counts.get(i, 0) for i, name in enumerate(self.class_names)}


# ---------------------------------------------------------------- patient keys

# patient_from_name lives with the torch-free split (the dataset export uses both).
def patient_from_dicom(path: str | Path) -> str | None:
    """DICOM Patient ID (header only), or None for plain images and files without one."""
    from medviewer.dicom import images
    from medviewer.dicom.reader import LoadError, read_header

    if images.is_plain_image(Path(path)):
        return None  # their header's PatientID is synthetic (a content hash)
    try:
        header = read_header(path)
    except LoadError:
        return None
    value = str(header.get("PatientID", "") or "").strip()
    return value or None


def patient_key(path: str | Path) -> str | None:
    return patient_from_dicom(path) or patient_from_name(path)


# ---------------------------------------------------------------- sources


def _is_image_file(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and (
        path.suffix.lower() in IMAGE_SUFFIXES or path.suffix == "")


def _finish(records: list[ImageRecord], class_names: list[str], source: str) -> LabelledSet:
    if not records:
        raise DataError(f"The training data {source} holds no images.")
    present = {r.label for r in records}
    if len(present) < 2:
        raise DataError(f"The training data {source} has images of only one class "
                        f"({class_names[next(iter(present))]}); at least two are needed.")
    return LabelledSet(records, class_names, source)


def from_folder(root: str | Path) -> LabelledSet:
    """One sub-folder per class (searched recursively); class order is alphabetical."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"The training data folder {root} does not exist.")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_dirs) < 2:
        raise DataError(f"The training data folder {root} needs one sub-folder per class "
                        f"(found {len(class_dirs)}).")
    class_names = [p.name for p in class_dirs]
    records = []
    for label, class_dir in enumerate(class_dirs):
        for path in sorted(class_dir.rglob("*")):
            if _is_image_file(path):
                records.append(ImageRecord(str(path), label, patient_key(path)))
    return _finish(records, class_names, str(root))


def from_csv(csv_path: str | Path) -> LabelledSet:
    """A CSV with columns path,label (header optional; an optional third column patient).

    Relative paths are taken relative to the CSV's folder.
    """
    from medviewer import csv_safety
    from medviewer.files import open_regular, os_error_reason

    csv_path = Path(csv_path)
    try:
        with open_regular(csv_path, "r", newline="", encoding="utf-8-sig") as handle:
            rows = [row for row in csv_safety.restored_rows(handle)
                    if row and any(c.strip() for c in row)]
    except OSError as exc:
        raise DataError(f"The training CSV {csv_path} cannot be read "
                        f"({os_error_reason(exc)}).") from None
    except (UnicodeDecodeError, csv.Error):
        raise DataError(f"The training CSV {csv_path} is not UTF-8 CSV text.") from None
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "label"]:
        rows = rows[1:]
    entries = []
    for number, row in enumerate(rows, start=1):
        if len(row) < 2:
            raise DataError(f"The training CSV {csv_path} has a row without a label "
                            f"(data row {number}).")
        path = Path(row[0].strip())
        if not path.is_absolute():
            path = csv_path.parent / path
        if not path.is_file():
            raise DataError(f"The training CSV {csv_path} lists {path}, which does not exist.")
        patient = row[2].strip() if len(row) > 2 and row[2].strip() else patient_key(path)
        entries.append((str(path), row[1].strip(), patient))
    class_names = sorted({label for _, label, _ in entries})
    index = {name: i for i, name in enumerate(class_names)}
    records = [ImageRecord(p, index[label], patient) for p, label, patient in entries]
    return _finish(records, class_names, str(csv_path))


def from_label_store(label_set: str, store_path: str | Path | None = None,
                     rule: str = "majority") -> LabelledSet:
    """Images labelled in the app's label store, one class each by the consensus ``rule``.

    The store's patient id (DICOM Patient ID) groups images; plain images fall back to a
    patient key from the file name. Labelled images no longer on disk are left out.
    """
    from medviewer.labels.consensus import training_labels
    from medviewer.labels.store import LabelStore

    with LabelStore(store_path) as store:
        labels = training_labels(store, label_set, rule)
    if labels.multi_label:
        raise DataError(f"The label set {label_set} allows several classes per image; the "
                        f"trainer needs exactly one class per image.")
    class_names = list(labels.classes)
    records, missing, several = [], 0, 0
    for item in labels.items:
        if not item.path or not Path(item.path).is_file():
            missing += 1
            continue
        if len(item.labels) != 1:
            several += 1
            continue
        records.append(ImageRecord(item.path, class_names.index(item.labels[0]),
                                   item.patient_id or patient_from_name(item.path)))
    if missing or several:
        log.warning("label set %s: %d labelled images missing on disk and %d with several "
                    "classes are left out", label_set, missing, several)
    return _finish(records, class_names, f"label set {label_set}")


def from_dataset(folder: str | Path) -> LabelledSet:
    """A research dataset folder exported from a label set (``medviewer labels
    export-dataset``): its images, classes and (pseudonymous) patients. The trainer makes
    its own split of it, by patient."""
    from medviewer.labels.research_dataset import read_dataset

    contents = read_dataset(folder)
    if contents.multi_label:
        raise DataError(f"The dataset {folder} allows several classes per image; the trainer "
                        f"needs exactly one class per image.")
    index = {name: i for i, name in enumerate(contents.classes)}
    records = [ImageRecord(str(row.path), index[row.classes[0]], row.patient)
               for row in contents.rows if len(row.classes) == 1 and row.classes[0] in index]
    return _finish(records, contents.classes, str(folder))


def resolve_source(spec: str) -> LabelledSet:
    """``DIR`` (a folder per class, or a research dataset), ``FILE.csv``, or ``labelset:NAME``."""
    from medviewer.labels.research_dataset import is_dataset_folder

    if spec.startswith("labelset:"):
        return from_label_store(spec.split(":", 1)[1])
    path = Path(spec).expanduser()
    if path.is_dir() and is_dataset_folder(path):
        return from_dataset(path)
    if path.is_dir():
        return from_folder(path)
    if path.suffix.lower() == ".csv":
        return from_csv(path)
    raise DataError(f"The training data {spec} is neither a folder, a CSV file nor "
                    f"labelset:NAME.")


# ---------------------------------------------------------------- splits


@dataclass
class Split:
    """Indices of a LabelledSet per split, and how they were made."""

    train: list[int]
    val: list[int]
    test: list[int]
    by: str  # "patient" or "image"
    seed: int
    fractions: dict[str, float] = field(default_factory=dict)

    def indices(self, name: str) -> list[int]:
        return getattr(self, name)


def _group_key(record: ImageRecord) -> str:
    return f"patient:{record.patient}" if record.patient else f"image:{record.path}"


def split_records(records: Sequence[ImageRecord], val_fraction: float, test_fraction: float,
                  seed: int) -> Split:
    """Stratified, seeded split that keeps every patient's images in one split.

    Patients are the groups when a patient key is known, otherwise each image is its own
    group (``medviewer.labels.splits.grouped_split``, shared with the dataset export).
    """
    try:
        parts = grouped_split([r.label for r in records], [_group_key(r) for r in records],
                              val_fraction, test_fraction, seed)
    except SplitError as exc:
        raise DataError(str(exc)) from None
    by_patient = any(r.patient for r in records)
    return Split(parts.train, parts.val, parts.test, "patient" if by_patient else "image",
                 seed, parts.fractions)


def check_no_leakage(records: Sequence[ImageRecord], split: Split) -> None:
    """Raise if an image or a patient appears in two splits (a bug, never the user's)."""
    seen: dict[str, str] = {}
    for name in SPLIT_NAMES:
        for index in split.indices(name):
            for key in {records[index].path, _group_key(records[index])}:
                if seen.setdefault(key, name) != name:
                    raise AssertionError(f"{key} is in both {seen[key]} and {name}")


def split_to_json(data: LabelledSet, split: Split, extra_test: LabelledSet | None = None) -> dict:
    def rows(indices: Sequence[int], records: Sequence[ImageRecord]) -> list[dict]:
        return [asdict(records[i]) for i in indices]

    test_rows = rows(split.test, data.records)
    if extra_test is not None:
        test_rows += [asdict(r) for r in extra_test.records]
    return {
        "format": SPLIT_FORMAT, "version": 1, "by": split.by, "seed": split.seed,
        "fractions": split.fractions, "class_names": data.class_names, "source": data.source,
        "test_source": extra_test.source if extra_test is not None else data.source,
        "train": rows(split.train, data.records), "val": rows(split.val, data.records),
        "test": test_rows,
    }


def save_split(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=1))


def load_split(path: Path) -> tuple[list[str], dict[str, list[ImageRecord]], dict]:
    """Class names and the records of each split from a saved split JSON."""
    try:
        payload = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"The split file {path} cannot be read ({exc}).") from None
    if payload.get("format") != SPLIT_FORMAT:
        raise DataError(f"The split file {path} is not a MedViewer split.")
    splits = {name: [ImageRecord(**row) for row in payload[name]] for name in SPLIT_NAMES}
    return payload["class_names"], splits, payload


# ---------------------------------------------------------------- decoding

# The files whose code decides what an image becomes; the disk cache is keyed on them too.
_PIPELINE_MODULES = ("medviewer/dicom/reader.py", "medviewer/dicom/header.py",
                     "medviewer/dicom/image_geometry.py", "medviewer/dicom/frames.py",
                     "medviewer/dicom/pixels.py", "medviewer/dicom/images.py",
                     "medviewer/inference/preprocess.py", "medviewer/training/data.py")


@functools.lru_cache(maxsize=8)
def _input_card(size: int):
    """A model card describing our input, so inference's own preprocessing is used."""
    from medviewer.inference import registry

    return registry.ModelCard(
        name="training-input", version="0", classes=["a", "b"],
        input=registry.InputSpec(channels=1, height=size, width=size, name="image"),
        sha256="0" * 64, preprocessing=card_preprocessing())


def card_preprocessing():
    """The model card's preprocessing for every model this trainer exports."""
    from medviewer.inference import registry

    return registry.Preprocessing(source="display", resize="stretch", interpolation="bilinear",
                                  mean=[0.0], std=[1.0], channel_mode="replicate")


def preprocess_image(path: str | Path, size: int) -> np.ndarray:
    """The model's input image, float32 (size, size) in [0, 1].

    It is ``medviewer.inference.preprocess.prepare_instance`` with this trainer's card, so
    ``medviewer predict`` feeds an exported model exactly what it was trained on.
    """
    from medviewer.dicom.reader import open_instance
    from medviewer.inference import preprocess

    prepared = preprocess.prepare_instance(open_instance(path), _input_card(size))
    return prepared.tensor[0]


def preprocessing_spec(size: int) -> dict:
    """A readable account of the input, recorded in the model card's training section."""
    return {
        "steps": [
            "medviewer.dicom.reader.open_instance(path).display_frame(0): the 8-bit image as "
            "displayed with the default VOI (MONOCHROME1 inverted)",
            "divide by 255; colour becomes grey by BT.601 luma (0.299, 0.587, 0.114)",
            f"resize to {size} x {size} (aspect ratio not kept), Pillow BILINEAR on float32",
            "no normalisation outside the model: mean/std are inside the ONNX graph",
        ],
        "implementation": "medviewer.inference.preprocess.prepare_instance",
    }


def _pipeline_digest() -> str:
    from medviewer.paths import PROJECT_ROOT

    digest = hashlib.sha256()
    for relative in _PIPELINE_MODULES:
        path = PROJECT_ROOT / relative
        digest.update(path.read_bytes() if path.is_file() else b"-")
    return digest.hexdigest()


def _cache_file(paths: Sequence[str], size: int) -> Path:
    from medviewer.paths import user_cache_dir

    digest = hashlib.sha256(f"v2|{size}|{_pipeline_digest()}".encode())
    for path in paths:
        stat = Path(path).stat()
        digest.update(f"{path}|{stat.st_mtime_ns}|{stat.st_size}\n".encode())
    folder = user_cache_dir() / "training"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"images-{size}-{digest.hexdigest()[:24]}.npy"


def preload_images(records: Sequence[ImageRecord], size: int, cancel: CancelFlag | None = None,
                   use_cache: bool = True) -> Generator[Progress, None, torch.Tensor]:
    """Preprocess every image once into a float32 tensor [N, 1, size, size] (cached on disk).

    float32, not uint8: the inputs are exactly what inference computes, without rounding.
    """
    paths = [r.path for r in records]
    cache = _cache_file(paths, size) if use_cache and paths else None
    if cache is not None and cache.is_file():
        try:
            array = np.load(cache)
            if array.shape == (len(paths), 1, size, size) and array.dtype == np.float32:
                yield Progress(len(paths), len(paths), "images loaded from cache")
                return torch.from_numpy(array)
        except (OSError, ValueError):
            log.warning("ignoring an unreadable image cache %s", cache.name)
    out = np.empty((len(paths), 1, size, size), dtype=np.float32)
    step = max(1, len(paths) // 100)
    for index, path in enumerate(paths):
        if cancel is not None:
            cancel.raise_if_cancelled()
        out[index, 0] = preprocess_image(path, size)
        if index % step == 0 or index == len(paths) - 1:
            yield Progress(index + 1, len(paths), "decoding images")
    if cache is not None:
        tmp = cache.with_name(f"{cache.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, out)
        tmp.replace(cache)
    return torch.from_numpy(out)


# ---------------------------------------------------------------- augmentation


@dataclass
class AugmentConfig:
    """Mild, X-ray friendly augmentation; flips are off because anatomy is not symmetric."""

    rotation_deg: float = 7.0
    scale: float = 0.1
    translate: float = 0.06
    brightness: float = 0.1
    contrast: float = 0.15
    gamma: float = 0.0  # x ** exp(U(-gamma, gamma)): exposure differences between devices
    hflip: bool = False
    enabled: bool = True


def augment_batch(images: torch.Tensor, config: AugmentConfig,
                  generator: torch.Generator) -> torch.Tensor:
    """Random affine + brightness/contrast on a float batch [N, 1, H, W] in [0, 1]."""
    if not config.enabled:
        return images
    n = images.shape[0]
    device = images.device

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=generator) * (high - low) + low

    angle = uniform(-config.rotation_deg, config.rotation_deg) * (math.pi / 180.0)
    scale = uniform(1.0 - config.scale, 1.0 + config.scale)
    tx = uniform(-config.translate, config.translate) * 2.0
    ty = uniform(-config.translate, config.translate) * 2.0
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) \
        if config.hflip else torch.ones(n)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1),
                         torch.stack([sin * flip, cos, ty], 1)], 1).to(device)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    # Border padding: a black wedge would be a shortcut feature nothing else has.
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border",
                        align_corners=False)
    brightness = uniform(-config.brightness, config.brightness).to(device).view(n, 1, 1, 1)
    contrast = uniform(1.0 - config.contrast, 1.0 + config.contrast).to(device).view(n, 1, 1, 1)
    if config.gamma > 0:
        gamma = torch.exp(uniform(-config.gamma, config.gamma)).to(device).view(n, 1, 1, 1)
        out = out.clamp(min=1e-6).pow(gamma)
    mean = out.mean(dim=(2, 3), keepdim=True)
    out = (out - mean) * contrast + mean + brightness
    return out.clamp_(0.0, 1.0)
