"""Training wizard: data, model, settings, train (live curves), evaluate (ROC), export.

The main window imports this module only when Training > Train a model… is chosen, and
PyTorch is imported only after that, on a worker thread, while the wizard is already on
screen: the viewer starts without torch and runs where it is not installed (the Viewer
edition), in which case :func:`open_training_wizard` explains what the Studio edition adds.

Every long step (loading PyTorch, reading the data and its split, reading a checkpoint,
training, scoring the validation/test images, exporting) is one of the plain job generators
below, run by :class:`medviewer.gui.workers.JobWorker`; the pages only show their events.
The jobs use the training package's public functions and hold no Qt.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import logging
import math
import os
import re
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QRegularExpressionValidator
from PySide6.QtWidgets import (
    QAbstractItemView, QButtonGroup, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog,
    QFormLayout, QFrame, QGridLayout, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
    QMessageBox, QProgressBar, QPushButton, QRadioButton, QSizePolicy, QSlider, QSpinBox,
    QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget, QWizard, QWizardPage,
)

from medviewer.app.training_export import FINE_TUNE_CHECKPOINT_NAME, ExportOutcome
from medviewer.errors import UserError
from medviewer.gui.widgets import bold_label, bracketed_interval, interval_text
from medviewer.gui.workers import JobWorker
from medviewer.jobs import CancelFlag, Progress

log = logging.getLogger(__name__)

STUDIO_TITLE = "Training needs MedViewer Studio"
STUDIO_EXPLANATION = (
    "This is the MedViewer Viewer edition: it opens studies and runs installed AI models, "
    "but it does not include PyTorch, which training needs.\n\n"
    "The Studio edition adds local retraining: pick labelled images (a folder per class, a "
    "CSV of path,label or a label set you made in MedViewer), train or fine-tune a "
    "classifier on this computer's CPU or CUDA GPU while watching its loss and AUROC, choose "
    "its operating point on the ROC curve, and export it to ONNX with its model card so it "
    "appears in the model list.\n\n"
    "Install MedViewer Studio (or, from source, pip install 'medviewer[studio]') to train.")

# The wizard's weight average spans ~200 batches; its warm-up keeps short runs current.
WEIGHT_AVERAGE_DECAY = 0.995
_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"

ARCHITECTURE_NOTES = {
    "smallcnn": "small residual CNN, about 1 M parameters; trains on a CPU in minutes",
    "resnet14": "ResNet-18 without its last stage, 2.8 M parameters; a few MB exported",
    "resnet18": "ResNet-18, 11 M parameters; a GPU is recommended",
    "resnet34": "ResNet-34, 21 M parameters; a GPU is recommended",
    "resnet50": "ResNet-50, 24 M parameters; needs a GPU",
    "densenet121": "DenseNet-121, 7 M parameters, memory hungry; needs a GPU",
    "efficientnet_b0": "EfficientNet-B0, 4 M parameters; a GPU is recommended",
    "mobilenet_v3_small": "MobileNetV3-Small, 1.5 M parameters; fast on a CPU",
    "mobilenet_v3_large": "MobileNetV3-Large, 4 M parameters",
}

# The export page's choices of how the file stores its weights (export.WEIGHT_STORAGE).
WEIGHT_CHOICES = (("Full precision (float32)", "float32"),
                  ("Half precision (float16): half the file", "float16"),
                  ("8-bit (int8): a quarter of the file", "int8"))

PAGE_DATA, PAGE_MODEL, PAGE_SETTINGS, PAGE_TRAIN, PAGE_EVALUATE, PAGE_EXPORT = range(6)
SPLIT_TITLES = {"train": "Train", "val": "Validation", "test": "Test"}
# Closing while one of these runs asks first: their work would be lost.
CONFIRM_JOBS = {"train": "Training", "export": "The export"}


def studio_available() -> bool:
    """True where PyTorch and torchvision are installed (checked without importing them)."""
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "torchvision"))


def runs_dir() -> Path:
    from medviewer.paths import user_data_dir

    folder = user_data_dir() / "training" / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def default_cpu_threads() -> int:
    """Leave one core to the GUI thread (and the rest of the machine)."""
    return max(1, (os.cpu_count() or 1) - 1)


# ====================================================================== Qt-free jobs


@dataclass
class FineTuneSource:
    label: str
    checkpoint: str


@dataclass
class ToolsInfo:
    """What the wizard needs from PyTorch and the app, gathered on a worker when it opens."""

    architectures: list[str]
    cuda_name: str | None
    cuda_memory_gb: float | None
    torch_version: str
    label_sets: list[tuple[str, list[str]]] = field(default_factory=list)
    fine_tune_sources: list[FineTuneSource] = field(default_factory=list)


@contextlib.contextmanager
def _without_gc_pauses() -> Iterator[None]:
    """Import heavy packages without full garbage collections, then freeze what they made.

    A worker that allocates triggers the cyclic GC, which holds the GIL for the whole pass:
    after torch (and its lazily imported compiler stack) is loaded a full pass walks a
    million objects and froze the GUI for 0.2-0.7 s at a time (docs/performance.md).
    Freezing moves the objects that exist now (modules, classes: they live for the whole
    process anyway) out of the collector's way; later passes only walk new objects.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        if was_enabled:
            gc.enable()


def load_training_tools(cancel: CancelFlag | None = None) -> Generator[Progress, None, ToolsInfo]:
    """Import PyTorch and the training package, detect the GPU, list data and checkpoints."""
    yield Progress(0, 4, "loading PyTorch")
    with _without_gc_pauses():
        import torch

        from medviewer.training import data as _data  # noqa: F401 - loaded here, off the GUI
        from medviewer.training import export as _export  # noqa: F401
        from medviewer.training import models, trainer  # noqa: F401

        yield Progress(1, 4, "preparing the optimiser")
        # The first optimiser imports torch's compiler stack (a few seconds): do it now.
        torch.optim.AdamW([torch.zeros(1, requires_grad=True)])
        yield Progress(2, 4, "loading the image readers")
        _warm_image_pipeline()
    yield Progress(3, 4, "looking for a GPU")
    cuda_name = cuda_memory = None
    if torch.cuda.is_available():
        cuda_name = torch.cuda.get_device_name(0)
        cuda_memory = torch.cuda.get_device_properties(0).total_memory / 2 ** 30
    info = ToolsInfo(list(models.ARCHITECTURES), cuda_name, cuda_memory,
                     str(torch.__version__))
    info.label_sets = _label_sets()
    info.fine_tune_sources = _fine_tune_sources()
    yield Progress(4, 4, "ready")
    return info


def _warm_image_pipeline() -> None:
    """Decode one bundled image, so the first training image does not load the codecs.

    The first decode imports pydicom and its codec plugins (GDCM, libjpeg, OpenJPEG...);
    loading their shared libraries holds the GIL, which froze the GUI for 0.1-0.3 s at the
    start of training. Here it happens while the wizard says it is loading.
    """
    import PIL.JpegImagePlugin  # noqa: F401 - Kermany-style JPEG X-rays
    import PIL.PngImagePlugin  # noqa: F401

    from medviewer.paths import SAMPLE_STUDY_DIR
    from medviewer.training import data as data_mod

    sample = next(iter(sorted(SAMPLE_STUDY_DIR.glob("*.dcm"))), None)
    if sample is None:
        return
    try:
        data_mod.preprocess_image(sample, 32)
    except UserError as exc:
        log.warning("The image pipeline was not warmed up: %s", exc)


def _label_sets() -> list[tuple[str, list[str]]]:
    from medviewer.labels.store import LabelStore, default_store_path

    path = default_store_path()
    if not path.is_file():
        return []  # never create a store just to list it
    try:
        with LabelStore(path, check=False) as store:
            return [(s.name, list(s.classes)) for s in store.label_sets() if not s.multi_label]
    except (UserError, OSError) as exc:
        log.warning("The label store could not be listed: %s", exc)
        return []


def _fine_tune_sources() -> list[FineTuneSource]:
    """Registered models saved with their training checkpoint, then recent wizard runs."""
    from medviewer.inference import registry

    sources = []
    for entry in registry.list_models():
        checkpoint = entry.onnx_path.parent / FINE_TUNE_CHECKPOINT_NAME
        if checkpoint.is_file():
            sources.append(FineTuneSource(f"Model {entry.key} ({entry.source})", str(checkpoint)))
    runs = sorted((p for p in runs_dir().iterdir() if (p / "checkpoints/best.pt").is_file()),
                  reverse=True)
    for run in runs[:20]:
        sources.append(FineTuneSource(f"Run {run.name}", str(run / "checkpoints/best.pt")))
    return sources


@dataclass
class DataSummary:
    """A source's classes and the train/validation/test split the trainer will make."""

    spec: str
    source: str
    class_names: list[str]
    counts: dict[str, dict[str, int]]  # split -> class -> images
    patients: dict[str, int]  # split -> distinct patients (0 when split by image)
    split_by: str
    seed: int
    val_fraction: float
    test_fraction: float
    labelled: Any = None  # the training package's LabelledSet, kept for re-splitting

    def total(self, split: str) -> int:
        return sum(self.counts[split].values())


def read_training_data(spec: str, val_fraction: float, test_fraction: float, seed: int,
                       labelled: Any = None, cancel: CancelFlag | None = None,
                       ) -> Generator[Progress, None, DataSummary]:
    """Resolve a data source and split it exactly as the trainer will (same function, seed)."""
    from medviewer.training import data as data_mod

    if labelled is None:
        yield Progress(0, None, "reading the images and their patients")
        labelled = data_mod.resolve_source(spec)
    yield Progress(1, 2, "splitting by patient")
    split = data_mod.split_records(labelled.records, val_fraction, test_fraction, seed)
    data_mod.check_no_leakage(labelled.records, split)
    counts: dict[str, dict[str, int]] = {}
    patients: dict[str, int] = {}
    for name in data_mod.SPLIT_NAMES:
        records = [labelled.records[i] for i in split.indices(name)]
        counts[name] = {c: 0 for c in labelled.class_names}
        for record in records:
            counts[name][labelled.class_names[record.label]] += 1
        patients[name] = len({r.patient for r in records if r.patient})
    yield Progress(2, 2, "done")
    return DataSummary(spec, labelled.source, list(labelled.class_names), counts, patients,
                       split.by, seed, val_fraction, test_fraction, labelled)


@dataclass
class CheckpointSummary:
    path: str
    arch: str
    input_size: int
    class_names: list[str]
    epoch: int
    best_val_auroc: float | None


def read_checkpoint(path: str) -> Generator[Progress, None, CheckpointSummary]:
    from medviewer.training import trainer

    yield Progress(0, None, "reading the checkpoint")
    payload = trainer.load_checkpoint(path)
    config = trainer.TrainConfig.from_dict(payload["config"])
    return CheckpointSummary(path, config.arch, config.input_size, list(payload["class_names"]),
                             int(payload.get("epoch", 0)), payload.get("best_val_auroc"))


def make_train_config(choices: dict) -> Any:
    """The trainer's TrainConfig from the wizard's plain choices (see TrainingWizard.choices)."""
    from dataclasses import asdict

    from medviewer.training import data as data_mod
    from medviewer.training import trainer

    augment = data_mod.AugmentConfig()
    strength = float(choices.get("augment_strength", 1.0))
    augment.rotation_deg *= strength
    augment.scale *= strength
    augment.translate *= strength
    augment.brightness *= strength
    augment.contrast *= strength
    augment.enabled = bool(choices.get("augment", True)) and strength > 0
    known = {k: v for k, v in choices.items() if k not in ("augment", "augment_strength")}
    config = trainer.TrainConfig.from_dict(known)
    config.augment = asdict(augment)
    return config


def train_job(choices: dict, run_dir: str, cancel: CancelFlag) -> Generator[Any, None, Any]:
    from medviewer.training import trainer

    return (yield from trainer.train(make_train_config(choices), run_dir, cancel))


@dataclass
class Evaluation:
    """Scores of the best checkpoint on the validation and test images."""

    checkpoint: str
    class_names: list[str]
    scores: dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (probabilities [N, C], labels)
    trained_points: dict[str, dict]  # class -> operating point chosen on validation
    best_epoch: int | None
    best_val_auroc: float | None
    arch: str
    installed_keys: set[str] = field(default_factory=set)
    # (split, class) -> 95 % bootstrap interval of the AUROC: too slow for the GUI thread.
    auroc_intervals: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)


def score_checkpoint(checkpoint: str, device: str, threads: int | None,
                     cancel: CancelFlag | None = None) -> Generator[Progress, None, Evaluation]:
    """Probabilities of the best checkpoint on its run's validation and test images."""
    import torch

    from medviewer.inference import registry
    from medviewer.training import data as data_mod
    from medviewer.training import metrics, trainer

    if threads:
        torch.set_num_threads(threads)
    payload = trainer.load_checkpoint(checkpoint)
    config = trainer.TrainConfig.from_dict(payload["config"])
    torch_device = trainer.resolve_device(device)
    model = trainer.model_from_checkpoint(payload).to(torch_device)
    scores = {}
    for split in ("val", "test"):
        records = [data_mod.ImageRecord(**row) for row in payload["split"][split]]
        if not records:
            continue
        job = data_mod.preload_images(records, config.input_size, cancel, config.use_cache)
        images = yield from job
        probabilities = trainer.predict_probabilities(model, images, torch_device,
                                                      config.eval_batch_size, cancel)
        scores[split] = (probabilities, np.array([r.label for r in records]))
        yield Progress(len(scores), 2, f"scored the {SPLIT_TITLES[split].lower()} images")
    class_names = list(payload["class_names"])
    intervals = {}
    for split, (probabilities, labels) in scores.items():
        for index, name in enumerate(class_names):
            if cancel is not None:
                cancel.raise_if_cancelled()
            positive = labels == index
            if positive.any() and not positive.all():
                intervals[split, name] = metrics.auroc_interval(positive,
                                                                probabilities[:, index])
    installed = {entry.key for entry in registry.list_models()}
    return Evaluation(checkpoint, class_names, scores,
                      dict(payload.get("best_operating_points") or {}),
                      payload.get("best_epoch"), payload.get("best_val_auroc"), config.arch,
                      installed, intervals)


def export_model(run_dir: str, name: str, version: str, description: str,
                 chosen_points: dict[str, dict], register: bool,
                 cancel: CancelFlag | None = None, out_dir: str | None = None,
                 weights: str = "float32") -> Generator[Progress, None, Any]:
    """The export workflow medviewer export uses too (medviewer.app.training_export)."""
    from medviewer.app.training_export import export_model as shared_export

    return (yield from shared_export(run_dir, name, version, description=description,
                                     chosen_points=chosen_points, register=register,
                                     out_dir=out_dir, weights=weights, cancel=cancel))


def suggest_model_name(spec: str, arch: str) -> str:
    stem = spec.split(":", 1)[1] if spec.startswith("labelset:") else Path(spec).stem
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{stem}-{arch}").strip("-._") or arch
    return name[:48]


def next_free_version(name: str, installed_keys: set[str]) -> str:
    lowered = {key.lower() for key in installed_keys}
    version = 1
    while f"{name}@{version}".lower() in lowered:
        version += 1
    return str(version)


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return ""
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


# ====================================================================== pages


def _note(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def _set_error(label: QLabel, sentence: str) -> None:
    label.setStyleSheet("color: #ff8080;" if sentence else "")
    label.setText(sentence)


def _read_only_table(rows: int, columns: int) -> QTableWidget:
    table = QTableWidget(rows, columns)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
    return table


def _fit_height(table: QTableWidget) -> None:
    """Make a small table exactly as tall as its rows, so no empty grid shows below them."""
    table.resizeRowsToContents()
    height = table.horizontalHeader().height() + 2 * table.frameWidth()
    height += sum(table.rowHeight(row) for row in range(table.rowCount()))
    table.setFixedHeight(height)
    table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)


def _narrow(widget: QWidget, width: int = 150) -> QWidget:
    widget.setMaximumWidth(width)
    return widget


def _cell(text: str, bold: bool = False) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    if bold:
        font = item.font()
        font.setBold(True)
        item.setFont(font)
    return item


class _Page(QWizardPage):
    def __init__(self, wizard: TrainingWizard, title: str, subtitle: str) -> None:
        super().__init__()
        self.owner = wizard
        self.setTitle(title)
        self.setSubTitle(subtitle)


class DataPage(_Page):
    """Where the labelled images come from, and the split by patient they give."""

    SOURCES = (("folder", "A folder with one sub-folder per class"),
               ("csv", "A CSV file of path,label (optional third column: patient)"),
               ("labelset", "A label set from MedViewer's label store"))

    def __init__(self, wizard: TrainingWizard) -> None:
        super().__init__(wizard, "Data", "Choose labelled images. They are split into "
                         "training, validation and test sets by patient, so no patient's "
                         "images are in two sets.")
        self.source_buttons = QButtonGroup(self)
        source_box = QGroupBox("Source")
        source_layout = QGridLayout(source_box)
        for row, (key, text) in enumerate(self.SOURCES):
            button = QRadioButton(text)
            button.setObjectName(f"source_{key}")
            self.source_buttons.addButton(button, row)
            source_layout.addWidget(button, row, 0, 1, 3)
        self.source_buttons.button(0).setChecked(True)
        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("Folder or CSV file")
        self.browse_button = QPushButton("Browse…")
        self.label_set_combo = QComboBox()
        self.label_set_combo.addItem("Reading the label store…", None)
        source_layout.addWidget(QLabel("Path"), 3, 0)
        source_layout.addWidget(self.path_edit, 3, 1)
        source_layout.addWidget(self.browse_button, 3, 2)
        source_layout.addWidget(QLabel("Label set"), 4, 0)
        source_layout.addWidget(self.label_set_combo, 4, 1, 1, 2)
        source_layout.setColumnStretch(1, 1)

        self.val_spin = QSpinBox()
        self.test_spin = QSpinBox()
        for spin, value in ((self.val_spin, 15), (self.test_spin, 15)):
            spin.setRange(0, 45)
            spin.setSuffix(" %")
            spin.setValue(value)
        self.val_spin.setMinimum(5)
        split_row = QHBoxLayout()
        split_row.addWidget(QLabel("Validation"))
        split_row.addWidget(self.val_spin)
        split_row.addSpacing(16)
        split_row.addWidget(QLabel("Test"))
        split_row.addWidget(self.test_spin)
        split_row.addSpacing(16)
        split_row.addWidget(_note("of the images, by patient; the rest is for training. "
                                  "The seed on the Settings page also decides the split."), 1)

        self.status_label = _note()
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)
        self.busy_bar.setMaximumHeight(10)
        self.busy_bar.setTextVisible(False)
        self.busy_bar.hide()
        self.table = _read_only_table(0, 4)
        self.table.setHorizontalHeaderLabels(["Train", "Validation", "Test", "All"])
        self.split_note = _note()

        layout = QVBoxLayout(self)
        layout.addWidget(source_box)
        layout.addLayout(split_row)
        layout.addWidget(self.busy_bar)
        layout.addWidget(self.status_label)
        layout.addWidget(self.table)
        layout.addWidget(self.split_note)
        layout.addStretch(1)

        self.summary: DataSummary | None = None
        self._requested: tuple | None = None
        self._reread = QTimer(self)
        self._reread.setSingleShot(True)
        self._reread.setInterval(400)
        self._reread.timeout.connect(self.read_data)
        self.source_buttons.idToggled.connect(lambda _id, on: on and self._source_changed())
        self.path_edit.textChanged.connect(lambda _t: self._reread.start())
        self.label_set_combo.currentIndexChanged.connect(lambda _i: self._reread.start())
        self.val_spin.valueChanged.connect(lambda _v: self._reread.start())
        self.test_spin.valueChanged.connect(lambda _v: self._reread.start())
        self.browse_button.clicked.connect(self.browse)
        self._source_changed()

    # -- inputs
    @property
    def source_kind(self) -> str:
        return self.SOURCES[max(0, self.source_buttons.checkedId())][0]

    def set_source(self, kind: str, value: str) -> None:
        """Choose a source as the user would (tests and scripts)."""
        index = [k for k, _ in self.SOURCES].index(kind)
        self.source_buttons.button(index).setChecked(True)
        if kind == "labelset":
            self.label_set_combo.setCurrentIndex(self.label_set_combo.findData(value))
        else:
            self.path_edit.setText(value)
        self._reread.stop()
        self.read_data()

    def spec(self) -> str:
        if self.source_kind == "labelset":
            name = self.label_set_combo.currentData()
            return f"labelset:{name}" if name else ""
        return self.path_edit.text().strip()

    def fill_label_sets(self, label_sets: list[tuple[str, list[str]]]) -> None:
        current = self.label_set_combo.currentData()
        self.label_set_combo.blockSignals(True)
        self.label_set_combo.clear()
        for name, classes in label_sets:
            self.label_set_combo.addItem(f"{name} ({', '.join(classes)})", name)
        if not label_sets:
            self.label_set_combo.addItem("No single-label label sets yet", None)
        index = self.label_set_combo.findData(current)
        self.label_set_combo.setCurrentIndex(max(0, index))
        self.label_set_combo.blockSignals(False)
        if self.source_kind == "labelset":
            self._reread.start()

    def _source_changed(self) -> None:
        is_labelset = self.source_kind == "labelset"
        self.path_edit.setEnabled(not is_labelset)
        self.browse_button.setEnabled(not is_labelset)
        self.label_set_combo.setEnabled(is_labelset)
        self.path_edit.setPlaceholderText(
            "A CSV file of path,label" if self.source_kind == "csv"
            else "A folder with one sub-folder per class")
        self._reread.start()

    def browse(self) -> None:
        start = self.path_edit.text().strip() or str(Path.home())
        if self.source_kind == "csv":
            path, _ = QFileDialog.getOpenFileName(self, "Training CSV", start,
                                                  "CSV files (*.csv);;All files (*)")
        else:
            path = QFileDialog.getExistingDirectory(self, "Training folder", start)
        if path:
            self.path_edit.setText(path)

    # -- reading on a worker
    def read_data(self, labelled: Any = None) -> None:
        spec = self.spec()
        seed = self.owner.settings_page.seed_spin.value()
        request = (spec, self.val_spin.value() / 100, self.test_spin.value() / 100, seed)
        if self.summary is not None and self._summary_key(self.summary) == request:
            return
        if self.owner.is_running("data") and request == self._requested:
            return
        self.summary = None
        self._requested = request
        self.table.setRowCount(0)
        self.split_note.clear()
        self.completeChanged.emit()
        if not spec:
            self.owner.cancel("data")
            self.busy_bar.hide()
            _set_error(self.status_label, "")
            self.status_label.setText("Choose a folder, a CSV file or a label set.")
            return
        _set_error(self.status_label, "")
        self.status_label.setText(f"Reading {spec}…")
        self.busy_bar.show()
        self.owner.start_job(
            "data",
            lambda cancel: read_training_data(*request, labelled=labelled, cancel=cancel),
            "reading the training data",
            on_finished=self._on_summary, on_failed=self._on_failed)

    def resplit(self) -> None:
        """The seed changed: split the images already read again (on a worker)."""
        if self.summary is not None and self.summary.spec == self.spec():
            labelled = self.summary.labelled
            self.summary = None
            self.read_data(labelled)
        elif self._requested is not None:
            self._requested = None
            self.read_data()

    @staticmethod
    def _summary_key(summary: DataSummary) -> tuple:
        return (summary.spec, summary.val_fraction, summary.test_fraction, summary.seed)

    def _on_summary(self, summary: DataSummary) -> None:
        self.busy_bar.hide()
        if self._summary_key(summary) != self._requested:
            return  # the inputs changed meanwhile; a newer read is on its way
        self.summary = summary
        names = summary.class_names
        splits = ("train", "val", "test")
        self.table.setRowCount(len(names) + 2)
        self.table.setVerticalHeaderLabels(names + ["All images", "Patients"])
        for row, name in enumerate(names):
            for column, split in enumerate(splits):
                self.table.setItem(row, column, _cell(f"{summary.counts[split][name]:,}"))
            total = sum(summary.counts[s][name] for s in splits)
            self.table.setItem(row, 3, _cell(f"{total:,}", bold=True))
        totals = [summary.total(s) for s in splits]
        for column, value in enumerate(totals + [sum(totals)]):
            self.table.setItem(len(names), column, _cell(f"{value:,}", bold=True))
        if summary.split_by == "patient":
            patients = [summary.patients[s] for s in splits]
            for column, value in enumerate(patients + [sum(patients)]):
                self.table.setItem(len(names) + 1, column, _cell(f"{value:,}"))
            self.split_note.setText(
                f"Split by patient (seed {summary.seed}): {sum(patients):,} patients, none "
                f"of them in two sets. Images without a patient id count as their own "
                f"patient.")
        else:
            for column in range(4):
                self.table.setItem(len(names) + 1, column, _cell("–"))
            self.split_note.setText(
                f"No patient ids were found (no DICOM Patient ID, no patient in the file "
                f"names or the CSV), so images are split one by one (seed {summary.seed}): "
                f"images of one patient may end up in two sets.")
        _fit_height(self.table)
        self.status_label.setText(
            f"{sum(totals):,} images in {len(names)} classes from {summary.source}.")
        self.completeChanged.emit()

    def _on_failed(self, sentence: str) -> None:
        self.busy_bar.hide()
        self._requested = None
        _set_error(self.status_label, sentence)
        self.completeChanged.emit()

    def isComplete(self) -> bool:  # noqa: N802 - Qt naming
        return self.summary is not None and not self.owner.is_running("data")


class ModelPage(_Page):
    """Which architecture, from scratch or fine-tuned from a checkpoint, and the input size."""

    def __init__(self, wizard: TrainingWizard) -> None:
        super().__init__(wizard, "Model", "Choose the network to train, or an earlier model "
                         "to fine-tune, and the image size it sees.")
        self.loading_label = _note("Loading PyTorch…")
        self.loading_bar = QProgressBar()
        self.loading_bar.setRange(0, 0)
        self.loading_bar.setMaximumHeight(10)
        self.loading_bar.setTextVisible(False)

        self.scratch_radio = QRadioButton("Train a new model from scratch")
        self.fine_tune_radio = QRadioButton("Fine-tune an earlier model or checkpoint")
        self.scratch_radio.setChecked(True)
        self.arch_combo = QComboBox()
        self.arch_note = _note()
        self.source_combo = QComboBox()
        self.source_combo.setMinimumContentsLength(40)
        self.checkpoint_label = _note()
        self.input_spin = QSpinBox()
        self.input_spin.setRange(32, 1024)
        self.input_spin.setSingleStep(16)
        self.input_spin.setValue(128)
        self.input_spin.setSuffix(" px")

        start_box = QGroupBox("Start from")
        start_layout = QGridLayout(start_box)
        start_layout.addWidget(self.scratch_radio, 0, 0, 1, 2)
        start_layout.addWidget(QLabel("Architecture"), 1, 0)
        start_layout.addWidget(self.arch_combo, 1, 1)
        start_layout.addWidget(self.arch_note, 2, 1)
        start_layout.addWidget(self.fine_tune_radio, 3, 0, 1, 2)
        start_layout.addWidget(QLabel("Checkpoint"), 4, 0)
        start_layout.addWidget(self.source_combo, 4, 1)
        start_layout.addWidget(self.checkpoint_label, 5, 1)
        start_layout.setColumnStretch(1, 1)
        input_box = QGroupBox("Input")
        input_layout = QVBoxLayout(input_box)
        size_row = QHBoxLayout()
        size_row.addWidget(QLabel("Image size"))
        size_row.addWidget(_narrow(self.input_spin))
        size_row.addStretch(1)
        input_layout.addLayout(size_row)
        input_layout.addWidget(_note("Each image becomes a grey square of this size (aspect "
                                     "ratio not kept). Larger sizes see finer detail and "
                                     "train more slowly."))
        layout = QVBoxLayout(self)
        layout.addWidget(self.loading_bar)
        layout.addWidget(self.loading_label)
        layout.addWidget(start_box)
        layout.addWidget(input_box)
        layout.addStretch(1)

        self.checkpoint: CheckpointSummary | None = None
        self.arch_combo.currentIndexChanged.connect(self._arch_changed)
        self.scratch_radio.toggled.connect(self._mode_changed)
        self.source_combo.activated.connect(self._source_chosen)
        self._mode_changed()

    def tools_loaded(self, tools: ToolsInfo | None, failure: str = "") -> None:
        self.loading_bar.hide()
        if tools is None:
            _set_error(self.loading_label, failure)
            self.completeChanged.emit()
            return
        self.loading_label.setText(f"PyTorch {tools.torch_version} is ready.")
        self.arch_combo.blockSignals(True)
        for name in tools.architectures:
            self.arch_combo.addItem(name, name)
        self.arch_combo.setCurrentIndex(max(0, self.arch_combo.findData("smallcnn")))
        self.arch_combo.blockSignals(False)
        self._arch_changed()
        self.source_combo.clear()
        for source in tools.fine_tune_sources:
            self.source_combo.addItem(source.label, source.checkpoint)
        self.source_combo.addItem("Choose a checkpoint file (.pt)…", None)
        self._mode_changed()

    @property
    def arch(self) -> str:
        if self.fine_tune:
            return self.checkpoint.arch if self.checkpoint is not None else ""
        return self.arch_combo.currentData() or ""

    @property
    def fine_tune(self) -> bool:
        return self.fine_tune_radio.isChecked()

    def _arch_changed(self) -> None:
        self.arch_note.setText(ARCHITECTURE_NOTES.get(self.arch_combo.currentData() or "", ""))

    def _mode_changed(self) -> None:
        loaded = self.owner.tools is not None
        self.arch_combo.setEnabled(loaded and not self.fine_tune)
        self.source_combo.setEnabled(loaded and self.fine_tune)
        if self.fine_tune and self.checkpoint is None and self.source_combo.count() > 1:
            self._source_chosen(self.source_combo.currentIndex())
        self.completeChanged.emit()

    def use_checkpoint(self, path: str) -> None:
        """Fine-tune from this checkpoint file (tests and the file dialog)."""
        index = self.source_combo.findData(path)
        if index < 0:
            self.source_combo.insertItem(self.source_combo.count() - 1, Path(path).name, path)
            index = self.source_combo.findData(path)
        self.source_combo.setCurrentIndex(index)
        self.fine_tune_radio.setChecked(True)
        self._source_chosen(index)

    def _source_chosen(self, index: int) -> None:
        path = self.source_combo.itemData(index)
        if path is None:
            chosen, _ = QFileDialog.getOpenFileName(self, "Checkpoint to fine-tune",
                                                    str(runs_dir()),
                                                    "Checkpoints (*.pt);;All files (*)")
            if chosen:
                self.use_checkpoint(chosen)
            return
        self.checkpoint = None
        self.checkpoint_label.setText("Reading the checkpoint…")
        self.completeChanged.emit()
        self.owner.start_job("checkpoint", lambda cancel: read_checkpoint(path),
                             "reading a checkpoint", on_finished=self._on_checkpoint,
                             on_failed=self._on_checkpoint_failed)

    def _on_checkpoint(self, summary: CheckpointSummary) -> None:
        self.checkpoint = summary
        auroc = "" if summary.best_val_auroc is None else \
            f"; validation AUROC {summary.best_val_auroc:.3f}"
        data = self.owner.data_page.summary
        head = ""
        if data is not None and data.class_names != summary.class_names:
            head = (" Its classes differ from the data's, so its last layer starts anew; "
                    "everything else is copied.")
        _set_error(self.checkpoint_label, "")
        self.checkpoint_label.setText(
            f"{summary.arch}, {summary.input_size} px, classes {', '.join(summary.class_names)}"
            f", trained {summary.epoch} epochs{auroc}.{head}")
        self.input_spin.setValue(summary.input_size)
        self.arch_combo.setCurrentIndex(max(0, self.arch_combo.findData(summary.arch)))
        self.completeChanged.emit()

    def _on_checkpoint_failed(self, sentence: str) -> None:
        self.checkpoint = None
        _set_error(self.checkpoint_label, sentence)
        self.completeChanged.emit()

    def isComplete(self) -> bool:  # noqa: N802 - Qt naming
        if self.owner.tools is None:
            return False
        return self.checkpoint is not None if self.fine_tune else bool(self.arch)


class SettingsPage(_Page):
    """Optimisation, augmentation, class balance, device and seed."""

    BALANCE = (("weights", "Weight the loss by class frequency"),
               ("sampler", "Balanced sampling (classes drawn evenly per batch)"),
               ("none", "None"))

    def __init__(self, wizard: TrainingWizard) -> None:
        super().__init__(wizard, "Settings", "How to train. The defaults suit a first run.")
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(1, 1000)
        self.epochs_spin.setValue(20)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(2, 1024)
        self.batch_spin.setValue(32)
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(5)
        self.lr_spin.setRange(0.00001, 1.0)
        self.lr_spin.setSingleStep(0.0005)
        self.lr_spin.setValue(0.003)
        self.patience_spin = QSpinBox()
        self.patience_spin.setRange(1, 1000)
        self.patience_spin.setValue(6)
        self.average_check = QCheckBox("Validate and export an average of the weights")
        self.average_check.setChecked(True)
        self.average_check.setToolTip(
            "A running average of the weights over the last few hundred batches (EMA). It "
            "smooths the swings between epochs of a model trained from scratch.")
        self.augment_check = QCheckBox("Augment the training images")
        self.augment_check.setChecked(True)
        self.strength_slider = QSlider(Qt.Orientation.Horizontal)
        self.strength_slider.setRange(1, 8)  # x 25 %
        self.strength_slider.setValue(4)
        self.strength_slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.strength_label = QLabel()
        self.strength_label.setMinimumWidth(60)
        self.balance_combo = QComboBox()
        for key, text in self.BALANCE:
            self.balance_combo.addItem(text, key)
        self.device_combo = QComboBox()
        self.device_label = _note()
        self.threads_spin = QSpinBox()
        self.threads_spin.setRange(1, max(1, os.cpu_count() or 1))
        self.threads_spin.setValue(default_cpu_threads())
        self.threads_spin.setToolTip("One core is left free by default so the viewer stays "
                                     "responsive while training.")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2 ** 31 - 1)

        optimise = QGroupBox("Optimisation")
        form = QFormLayout(optimise)
        form.addRow("Epochs", _narrow(self.epochs_spin))
        form.addRow("Batch size", _narrow(self.batch_spin))
        form.addRow("Learning rate (peak)", _narrow(self.lr_spin))
        form.addRow("Stop early after", self._with_suffix(
            _narrow(self.patience_spin, 90), "epochs without a better validation AUROC"))
        form.addRow("", self.average_check)
        augment = QGroupBox("Augmentation and class balance")
        augment_layout = QVBoxLayout(augment)
        augment_layout.addWidget(self.augment_check)
        augment_layout.addWidget(_note("Small rotations, shifts, zoom and brightness/contrast "
                                       "changes; never flips (anatomy is not symmetric)."))
        augment_form = QFormLayout()
        strength_row = QHBoxLayout()
        strength_row.addWidget(self.strength_slider, 1)
        strength_row.addWidget(self.strength_label)
        augment_form.addRow("Strength", strength_row)
        augment_form.addRow("Class balance", self.balance_combo)
        augment_layout.addLayout(augment_form)
        hardware = QGroupBox("Hardware and reproducibility")
        hardware_layout = QVBoxLayout(hardware)
        hardware_form = QFormLayout()
        hardware_form.addRow("Device", self.device_combo)
        hardware_form.addRow("CPU threads", self._with_suffix(
            _narrow(self.threads_spin, 90), "one core is left free for the viewer by default"))
        hardware_form.addRow("Seed", self._with_suffix(
            _narrow(self.seed_spin, 130), "decides the split, the initial weights and the "
                                          "batch order"))
        hardware_layout.addLayout(hardware_form)
        hardware_layout.addWidget(self.device_label)
        columns = QHBoxLayout()
        left = QVBoxLayout()
        left.addWidget(optimise)
        left.addWidget(augment)
        left.addStretch(1)
        right = QVBoxLayout()
        right.addWidget(hardware)
        right.addStretch(1)
        columns.addLayout(left, 1)
        columns.addLayout(right, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(columns)

        self.augment_check.toggled.connect(self._augment_changed)
        self.strength_slider.valueChanged.connect(self._augment_changed)
        self.device_combo.currentIndexChanged.connect(self._device_changed)
        self.seed_spin.valueChanged.connect(lambda _v: self.owner.data_page.resplit())
        self._augment_changed()

    @staticmethod
    def _with_suffix(widget: QWidget, text: str) -> QWidget:
        holder = QWidget()
        row = QHBoxLayout(holder)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(widget)
        row.addWidget(QLabel(text), 1)
        return holder

    @property
    def augment_strength(self) -> float:
        return self.strength_slider.value() * 0.25

    def _augment_changed(self) -> None:
        self.strength_slider.setEnabled(self.augment_check.isChecked())
        self.strength_label.setText(f"{self.augment_strength * 100:.0f} %")

    def tools_loaded(self, tools: ToolsInfo) -> None:
        self.device_combo.clear()
        cpus = os.cpu_count() or 1
        if tools.cuda_name:
            gpu = f"{tools.cuda_name} ({tools.cuda_memory_gb:.0f} GB)"
            self.device_combo.addItem(f"CUDA GPU: {gpu}", "cuda")
            self.device_combo.addItem("CPU", "cpu")
            self.device_label.setText(f"Detected a CUDA GPU, {gpu}, and {cpus} CPU cores.")
        else:
            self.device_combo.addItem("CPU", "cpu")
            self.device_combo.addItem("CUDA GPU (none detected)", "cuda")
            self.device_combo.model().item(1).setEnabled(False)
            self.device_label.setText(f"No CUDA GPU was detected: training runs on the "
                                      f"{cpus} CPU cores.")
        self.device_combo.setCurrentIndex(0)
        self._device_changed()

    @property
    def device(self) -> str:
        return self.device_combo.currentData() or "cpu"

    def _device_changed(self) -> None:
        self.threads_spin.setEnabled(self.device == "cpu")


class TrainPage(_Page):
    """Runs the trainer on a worker and shows its progress and curves."""

    def __init__(self, wizard: TrainingWizard) -> None:
        super().__init__(wizard, "Train", "The model trains in the background; the viewer "
                         "stays usable. Stopping keeps the best checkpoint so far.")
        from medviewer.gui.curves import TrainingCurves

        self.headline = bold_label("")
        self.details = _note()
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.eta_label = QLabel()
        self.eta_label.setMinimumWidth(220)
        self.stop_button = QPushButton("Stop training")
        self.stop_button.setToolTip("Stop after the current batch; the best checkpoint so far "
                                    "is kept and can be evaluated and exported.")
        self.curves = TrainingCurves()
        self.epoch_label = _note()
        row = QHBoxLayout()
        row.addWidget(self.progress, 1)
        row.addWidget(self.eta_label)
        row.addWidget(self.stop_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.headline)
        layout.addWidget(self.details)
        layout.addLayout(row)
        layout.addWidget(self.curves, 1)
        layout.addWidget(self.epoch_label)
        self.stop_button.clicked.connect(self.stop)

        self.run_dir: Path | None = None
        self.result: Any = None  # TrainResult when the run ended normally
        self.outcome = ""  # "", "finished", "cancelled", "failed"
        self.best_epoch: int | None = None
        self.best_auroc: float | None = None
        self.started: Any = None  # RunStarted
        self._batch_started_at: float | None = None
        self._batches_done = 0
        self._last_eta_update = 0.0

    @property
    def best_checkpoint(self) -> Path | None:
        if self.run_dir is None:
            return None
        path = self.run_dir / "checkpoints" / "best.pt"
        return path if path.is_file() else None

    def initializePage(self) -> None:  # noqa: N802 - Qt naming
        self.start()

    def start(self) -> None:
        owner = self.owner
        choices = owner.choices()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = runs_dir() / f"{stamp}-{choices['arch']}"
        suffix = 2
        while run_dir.exists():
            run_dir = runs_dir() / f"{stamp}-{choices['arch']}-{suffix}"
            suffix += 1
        self.run_dir = run_dir
        self.result, self.outcome, self.started = None, "", None
        self.best_epoch = self.best_auroc = None
        self._batch_started_at, self._batches_done = None, 0
        self.curves.clear()
        self.epoch_label.clear()
        self.progress.setRange(0, 0)
        self.progress.setFormat("%p %")
        self.eta_label.clear()
        self.stop_button.setEnabled(True)
        source = "from scratch" if not choices.get("init_checkpoint") else "fine-tuning"
        self.headline.setText(f"Preparing {choices['arch']} ({source})…")
        _set_error(self.details, "")
        self.details.setText(f"Run folder: {run_dir}")
        owner.start_job("train", lambda cancel: train_job(choices, str(run_dir), cancel),
                        "training a model", on_event=self._on_event,
                        on_finished=self._on_finished, on_failed=self._on_failed,
                        on_cancelled=self._on_cancelled)
        self._update_navigation()

    def stop(self) -> None:
        if self.owner.is_running("train"):
            self.owner.cancel("train")
            self.stop_button.setEnabled(False)
            self.headline.setText("Stopping after the current batch…")

    @property
    def running(self) -> bool:
        return self.owner.is_running("train")

    # -- events from the trainer
    def _on_event(self, event: Any) -> None:
        from medviewer.training import trainer

        if isinstance(event, Progress):
            # Throttled progress can arrive late: once batches run, it is stale.
            if event.total and self.started is None:
                self.progress.setRange(0, event.total)
                self.progress.setValue(event.done)
                self.progress.setFormat(f"{event.message} %v/%m")
        elif isinstance(event, trainer.BatchProgress):
            self._on_batch(event)
        elif isinstance(event, trainer.EpochEnd):
            self._on_epoch(event)
        elif isinstance(event, trainer.CheckpointSaved) and event.best:
            self.epoch_label.setText(self.epoch_label.text() + "  Saved as the best so far.")
        elif isinstance(event, trainer.RunStarted):
            self.started = event
            self.curves.set_epochs(event.epochs)
            counts = ", ".join(f"{SPLIT_TITLES[k].lower()} {v:,}" for k, v in
                               event.counts.items())
            self.headline.setText(f"Training {self.owner.model_page.arch} on {event.device}")
            self.details.setText(f"{counts} images (split by {event.split_by}); classes "
                                 f"{', '.join(event.class_names)}; {event.parameters:,} "
                                 f"parameters. Run folder: {self.run_dir}")
        elif isinstance(event, trainer.EarlyStopped):
            self.epoch_label.setText(self.epoch_label.text() + f"  Stopped early: no better "
                                     f"validation AUROC since epoch {event.best_epoch}.")

    def _on_batch(self, event: Any) -> None:
        now = time.perf_counter()
        if self._batch_started_at is None:
            self._batch_started_at = now
            self.progress.setFormat("epoch %v/%m")
        epochs = self.started.epochs if self.started else event.epoch
        start_epoch = self.started.start_epoch if self.started else 0
        total = (epochs - start_epoch) * event.batches
        self._batches_done = (event.epoch - 1 - start_epoch) * event.batches + event.batch
        self.progress.setRange(0, total)
        self.progress.setValue(self._batches_done)
        self.progress.setFormat(f"epoch {event.epoch}/{epochs}, batch {event.batch}/"
                                f"{event.batches}")
        self.curves.add_batch(event.epoch - 1 + event.batch / event.batches, event.loss)
        if now - self._last_eta_update >= 0.5 or self._batches_done == total:
            self._last_eta_update = now
            elapsed = now - self._batch_started_at
            left = elapsed / max(1, self._batches_done) * (total - self._batches_done)
            eta = format_duration(left)
            self.eta_label.setText(f"{event.images_per_second:,.0f} images/s" +
                                   (f", about {eta} left" if eta and self._batches_done > 2
                                    else ""))

    def _on_epoch(self, event: Any) -> None:
        m = event.metrics
        self.best_epoch, self.best_auroc = m.get("best_epoch"), m.get("best_val_auroc")
        self.curves.add_epoch(event.epoch, m["train_loss"], m["val_loss"], m["val_auroc"],
                              self.best_epoch)
        best = f" (best: epoch {self.best_epoch}, {self.best_auroc:.3f})" \
            if self.best_auroc is not None else ""
        self.epoch_label.setText(
            f"Epoch {event.epoch}/{event.epochs}: train loss {m['train_loss']:.3f}, "
            f"validation loss {m['val_loss']:.3f}, accuracy {m['val_accuracy']:.3f}, "
            f"AUROC {m['val_auroc']:.3f}{best}.")

    def _on_finished(self, result: Any) -> None:
        self.result, self.outcome = result, "finished"
        auroc = "" if result.best_val_auroc is None else \
            f" (validation AUROC {result.best_val_auroc:.3f})"
        self.headline.setText(f"Finished {result.epochs_run} epochs: the best was epoch "
                              f"{result.best_epoch}{auroc}.")
        self.eta_label.setText("")
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
        self.progress.setValue(self.progress.maximum())
        self._update_navigation()

    def _on_cancelled(self) -> None:
        self.outcome = "cancelled"
        self.eta_label.setText("")
        if self.best_checkpoint is not None:
            auroc = f", validation AUROC {self.best_auroc:.3f}" \
                if self.best_auroc is not None else ""
            self.headline.setText(f"Stopped. The best checkpoint (epoch {self.best_epoch}"
                                  f"{auroc}) is kept: evaluate and export it, or go Back to "
                                  f"change the settings and train again.")
        else:
            self.headline.setText("Stopped before the first epoch ended, so there is no "
                                  "checkpoint. Go Back to change the settings and train again.")
        self._update_navigation()

    def _on_failed(self, sentence: str) -> None:
        self.outcome = "failed"
        self.headline.setText("Training failed.")
        _set_error(self.details, sentence)
        self.eta_label.setText("")
        self._update_navigation()

    def _update_navigation(self) -> None:
        self.stop_button.setEnabled(self.running)
        # Back is disabled while a page's previous page is a commit page.
        self.owner.settings_page.setCommitPage(self.running)
        self.completeChanged.emit()

    def isComplete(self) -> bool:  # noqa: N802 - Qt naming
        return not self.running and self.best_checkpoint is not None


class ConfusionMatrix(QTableWidget):
    """2 x 2 counts for one class against the rest at one threshold."""

    def __init__(self) -> None:
        super().__init__(2, 2)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.setMinimumHeight(120)
        self.setMaximumHeight(150)
        self.counts = (0, 0, 0, 0)

    def show_counts(self, positive: str, negative: str, tp: int, fn: int, fp: int,
                    tn: int) -> None:
        self.counts = (tp, fn, fp, tn)
        self.setHorizontalHeaderLabels([f"Predicted {positive}", f"Predicted {negative}"])
        self.setVerticalHeaderLabels([f"Actually {positive}", f"Actually {negative}"])
        cells = ((tp, True), (fn, False), (fp, False), (tn, True))
        for index, (value, correct) in enumerate(cells):
            item = QTableWidgetItem(f"{value:,}")
            item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            font = item.font()
            font.setPointSizeF(font.pointSizeF() * 1.3)
            font.setBold(True)
            item.setFont(font)
            item.setBackground(QColor(30, 80, 50) if correct else QColor(95, 40, 40))
            self.setItem(index // 2, index % 2, item)


class EvaluatePage(_Page):
    """ROC of the best checkpoint, with its operating point movable by drag or slider."""

    def __init__(self, wizard: TrainingWizard) -> None:
        super().__init__(wizard, "Evaluate", "How the best checkpoint separates the classes. "
                         "Drag on the ROC curve (or use the slider) to choose the operating "
                         "point on the validation set; the test set shows how it holds up.")
        from medviewer.gui.curves import RocPlot

        self.status_label = _note()
        self.roc = RocPlot()
        self.class_combo = QComboBox()
        self.split_combo = QComboBox()
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setMinimum(1)
        self.threshold_label = bold_label("")
        self.threshold_note = _note()
        self.reset_button = QPushButton("Back to the trained point")
        self.reset_button.setToolTip("The threshold chosen during training (Youden's J on the "
                                     "validation set)")
        self.figures = _read_only_table(2, 5)
        self.figures.setHorizontalHeaderLabels(["Sensitivity", "Specificity", "PPV", "NPV",
                                                "AUROC"])
        self.figures.setVerticalHeaderLabels(["Validation", "Test"])
        self.figures_note = _note("Below each figure: its 95% interval (Wilson; bootstrap "
                                  "for AUROC). Few images give wide intervals.")
        self.matrix = ConfusionMatrix()
        self.matrix_title = bold_label("Confusion matrix")

        side = QVBoxLayout()
        chooser = QFormLayout()
        chooser.addRow("Positive class", self.class_combo)
        chooser.addRow("Show", self.split_combo)
        side.addLayout(chooser)
        side.addWidget(self.threshold_label)
        side.addWidget(self.threshold_note)
        side.addWidget(self.slider)
        side.addWidget(self.reset_button, 0, Qt.AlignmentFlag.AlignLeft)
        side.addSpacing(8)
        side.addWidget(self.figures)
        side.addWidget(self.figures_note)
        side.addSpacing(8)
        side.addWidget(self.matrix_title)
        side.addWidget(self.matrix)
        side.addStretch(1)
        body = QHBoxLayout()
        body.addWidget(self.roc, 5)
        side_widget = QWidget()
        side_widget.setLayout(side)
        side_widget.setMinimumWidth(460)
        body.addWidget(side_widget, 4)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status_label)
        layout.addLayout(body, 1)

        self.evaluation: Evaluation | None = None
        self.thresholds: dict[str, float] = {}
        self._roc_cache: dict[tuple[str, str], tuple] = {}
        self.class_combo.currentIndexChanged.connect(lambda _i: self._show())
        self.split_combo.currentIndexChanged.connect(lambda _i: self._show())
        self.slider.valueChanged.connect(self._slider_moved)
        self.roc.point_picked.connect(self._point_picked)
        self.reset_button.clicked.connect(self.reset_threshold)
        self._set_enabled(False)

    def _set_enabled(self, enabled: bool) -> None:
        for widget in (self.roc, self.class_combo, self.split_combo, self.slider,
                       self.reset_button, self.figures, self.matrix):
            widget.setEnabled(enabled)

    def initializePage(self) -> None:  # noqa: N802 - Qt naming
        checkpoint = self.owner.train_page.best_checkpoint
        if checkpoint is None:
            return
        if self.evaluation is not None and self.evaluation.checkpoint == str(checkpoint):
            return
        self.evaluation = None
        self._set_enabled(False)
        _set_error(self.status_label, "")
        self.status_label.setText("Scoring the validation and test images with the best "
                                  "checkpoint…")
        choices = self.owner.choices()
        self.owner.start_job(
            "score", lambda cancel: score_checkpoint(str(checkpoint), choices["device"],
                                                     choices.get("num_threads"), cancel),
            "scoring the validation and test images", on_finished=self._on_scored,
            on_failed=self._on_failed)
        self.completeChanged.emit()

    def cleanupPage(self) -> None:  # noqa: N802 - Qt naming
        self.owner.cancel("score")

    def _on_failed(self, sentence: str) -> None:
        _set_error(self.status_label, sentence)
        self.completeChanged.emit()

    def _on_scored(self, evaluation: Evaluation) -> None:
        self.evaluation = evaluation
        self._roc_cache.clear()
        self.thresholds = {name: float(point["threshold"])
                           for name, point in evaluation.trained_points.items()}
        names = evaluation.class_names
        self.class_combo.blockSignals(True)
        self.class_combo.clear()
        for name in names:
            self.class_combo.addItem(name, name)
        from medviewer.training.metrics import finding_classes  # numpy only, no torch

        self.class_combo.setCurrentIndex(names.index(finding_classes(names)[0]))
        self.class_combo.blockSignals(False)
        self.split_combo.blockSignals(True)
        self.split_combo.clear()
        for split in ("val", "test"):
            if split in evaluation.scores:
                n = len(evaluation.scores[split][1])
                self.split_combo.addItem(f"{SPLIT_TITLES[split]} ({n:,} images)", split)
        self.split_combo.blockSignals(False)
        best = "" if evaluation.best_val_auroc is None else \
            f", validation AUROC {evaluation.best_val_auroc:.3f}"
        self.status_label.setText(f"Best checkpoint: {evaluation.arch}, epoch "
                                  f"{evaluation.best_epoch}{best}.")
        self._set_enabled(True)
        self._show()
        self.completeChanged.emit()

    # -- the current view
    @property
    def positive_class(self) -> str:
        return self.class_combo.currentData() or ""

    @property
    def shown_split(self) -> str:
        return self.split_combo.currentData() or "val"

    def _roc(self, split: str, class_name: str) -> tuple | None:
        """(fpr, tpr, thresholds, is_positive, scores) or None when the split has one side."""
        from medviewer.training import metrics

        key = (split, class_name)
        if key not in self._roc_cache:
            probabilities, labels = self.evaluation.scores[split]
            index = self.evaluation.class_names.index(class_name)
            positive = labels == index
            scores = probabilities[:, index]
            if positive.all() or not positive.any():
                self._roc_cache[key] = None
            else:
                fpr, tpr, thresholds = metrics.roc_curve(positive, scores)
                self._roc_cache[key] = (fpr, tpr, thresholds, positive, scores)
        return self._roc_cache[key]

    def _show(self) -> None:
        if self.evaluation is None or not self.positive_class:
            return
        roc = self._roc(self.shown_split, self.positive_class)
        if roc is None:
            self.status_label.setText(f"The {SPLIT_TITLES[self.shown_split].lower()} images "
                                      f"are all (or none) {self.positive_class}: no ROC.")
            return
        fpr, tpr, thresholds, _, _ = roc
        auroc = float(np.trapezoid(tpr, fpr))
        negative = self._negative_name()
        spread = bracketed_interval(
            self.evaluation.auroc_intervals.get((self.shown_split, self.positive_class)))
        self.roc.set_curve(fpr, tpr, f"ROC, {SPLIT_TITLES[self.shown_split].lower()}: "
                                     f"{self.positive_class} vs {negative}, AUROC "
                                     f"{auroc:.3f}{spread}")
        self.slider.blockSignals(True)
        self.slider.setMaximum(len(thresholds) - 1)
        self.slider.blockSignals(False)
        if self.positive_class not in self.thresholds:
            self.thresholds[self.positive_class] = self._threshold_at(thresholds,
                                                                      len(thresholds) // 2)
        self._apply_threshold(self.thresholds[self.positive_class])

    def _negative_name(self) -> str:
        others = [n for n in self.evaluation.class_names if n != self.positive_class]
        return others[0] if len(others) == 1 else "the rest"

    @staticmethod
    def _index_for(thresholds: np.ndarray, threshold: float) -> int:
        """The ROC point whose predictions equal ``score >= threshold`` (thresholds descend)."""
        index = int(np.searchsorted(-thresholds, -threshold, side="right")) - 1
        return min(max(index, 1), len(thresholds) - 1)

    @staticmethod
    def _threshold_at(thresholds: np.ndarray, index: int) -> float:
        """A threshold giving ROC point ``index``: halfway to the next lower score.

        A threshold equal to a score is fragile: outputs near 1 repeat the same float32
        value, and onnxruntime may compute that image one unit lower than PyTorch, moving it
        across the threshold. Halfway between two scores gives the same point robustly.
        """
        index = min(max(index, 1), len(thresholds) - 1)
        if index == len(thresholds) - 1:
            return 0.0  # the last point: every image is called positive
        return float((thresholds[index] + thresholds[index + 1]) / 2)

    def _slider_moved(self, index: int) -> None:
        roc = self._roc(self.shown_split, self.positive_class)
        if roc is not None:
            self._apply_threshold(self._threshold_at(roc[2], index))

    def _point_picked(self, index: int) -> None:
        roc = self._roc(self.shown_split, self.positive_class)
        if roc is not None:
            self._apply_threshold(self._threshold_at(roc[2], index))

    def reset_threshold(self) -> None:
        trained = (self.evaluation.trained_points if self.evaluation else {}).get(
            self.positive_class)
        if trained is not None:
            self._apply_threshold(float(trained["threshold"]))

    def set_threshold(self, threshold: float) -> None:
        self._apply_threshold(threshold)

    def _apply_threshold(self, threshold: float) -> None:
        name = self.positive_class
        self.thresholds[name] = threshold
        roc = self._roc(self.shown_split, name)
        if roc is None:
            return
        fpr, tpr, thresholds, positive, scores = roc
        index = self._index_for(thresholds, threshold)
        self.slider.blockSignals(True)
        self.slider.setValue(index)
        self.slider.blockSignals(False)
        self.roc.set_point(index)
        trained = self.evaluation.trained_points.get(name)
        moved = trained is not None and not math.isclose(trained["threshold"], threshold,
                                                         rel_tol=0, abs_tol=1e-12)
        self.threshold_label.setText(f"Threshold {threshold:.4f}" +
                                     (" (moved)" if moved else " (as trained)"))
        self.threshold_note.setText(f"{name} is predicted when its probability is at least "
                                    f"the threshold.")
        predicted = scores >= threshold
        tp = int((predicted & positive).sum())
        fn = int((~predicted & positive).sum())
        fp = int((predicted & ~positive).sum())
        tn = int((~predicted & ~positive).sum())
        self.matrix.show_counts(name, self._negative_name(), tp, fn, fp, tn)
        self.matrix_title.setText(f"Confusion matrix, {SPLIT_TITLES[self.shown_split].lower()}"
                                  f" ({tp + fn + fp + tn:,} images)")
        for row, split in enumerate(("val", "test")):
            figures = self.figures_at(split, name, threshold)
            for column, key in enumerate(("sensitivity", "specificity", "ppv", "npv",
                                          "auroc")):
                value = figures.get(key) if figures else None
                text = "–" if value is None or not math.isfinite(value) else f"{value:.3f}"
                spread = interval_text(figures["intervals"].get(key), 2) if figures else ""
                if spread:
                    text += f"\n{spread}"
                self.figures.setItem(row, column, _cell(text))
        _fit_height(self.figures)

    def figures_at(self, split: str, class_name: str, threshold: float) -> dict | None:
        if self.evaluation is None or split not in self.evaluation.scores:
            return None
        roc = self._roc(split, class_name)
        if roc is None:
            return None
        fpr, tpr, _, positive, scores = roc
        predicted = scores >= threshold
        tp = int((predicted & positive).sum())
        fn = int((~predicted & positive).sum())
        fp = int((predicted & ~positive).sum())
        tn = int((~predicted & ~positive).sum())

        def ratio(a: int, b: int) -> float:
            return a / b if b else float("nan")

        from medviewer.training.metrics import proportion_interval  # numpy only, no torch

        intervals = {"sensitivity": proportion_interval(tp, tp + fn),
                     "specificity": proportion_interval(tn, tn + fp),
                     "ppv": proportion_interval(tp, tp + fp),
                     "npv": proportion_interval(tn, tn + fn)}
        auroc_bounds = self.evaluation.auroc_intervals.get((split, class_name))
        if auroc_bounds is not None:
            intervals["auroc"] = auroc_bounds
        return {"sensitivity": ratio(tp, tp + fn), "specificity": ratio(tn, tn + fp),
                "ppv": ratio(tp, tp + fp), "npv": ratio(tn, tn + fn),
                "auroc": float(np.trapezoid(tpr, fpr)), "counts": (tp, fn, fp, tn),
                "intervals": intervals}

    def chosen_points(self) -> dict[str, dict]:
        """Thresholds moved away from the trained ones, with their validation figures."""
        if self.evaluation is None:
            return {}
        out = {}
        for name, threshold in self.thresholds.items():
            trained = self.evaluation.trained_points.get(name)
            if trained is not None and math.isclose(trained["threshold"], threshold,
                                                    rel_tol=0, abs_tol=1e-12):
                continue
            figures = self.figures_at("val", name, threshold)
            if figures is None:
                continue
            out[name] = {"threshold": threshold, "val_sensitivity": figures["sensitivity"],
                         "val_specificity": figures["specificity"]}
        return out

    def isComplete(self) -> bool:  # noqa: N802 - Qt naming
        return not self.owner.is_running("score")


class ExportPage(_Page):
    """Name, version, export to ONNX with the model card, and register."""

    def __init__(self, wizard: TrainingWizard) -> None:
        super().__init__(wizard, "Export", "Save the best checkpoint as an ONNX model with its "
                         "model card, and add it to MedViewer's model list.")
        validator = QRegularExpressionValidator(_NAME_PATTERN)
        self.name_edit = QLineEdit()
        self.name_edit.setValidator(validator)
        self.version_edit = QLineEdit()
        self.version_edit.setValidator(QRegularExpressionValidator(_NAME_PATTERN))
        self.description_edit = QLineEdit()
        self.description_edit.setPlaceholderText("Optional: what it was trained on and for")
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("The run folder's export/ folder")
        self.folder_button = QPushButton("Browse…")
        self.folder_button.clicked.connect(self.choose_folder)
        self.weights_combo = QComboBox()
        for label, storage in WEIGHT_CHOICES:
            self.weights_combo.addItem(label, storage)
        self.weights_combo.setToolTip("Smaller files compute the same way; the export checks "
                                      "and reports how far their outputs move")
        self.register_check = QCheckBox("Add it to the model list (register it)")
        self.register_check.setChecked(True)
        self.export_button = QPushButton("Export")
        self.export_button.setDefault(False)
        self.export_button.setAutoDefault(False)
        self.progress = QProgressBar()
        self.progress.hide()
        self.points_label = _note()
        self.result_label = _note()
        self.result_label.setTextFormat(Qt.TextFormat.RichText)
        form = QFormLayout()
        form.addRow("Name", self.name_edit)
        form.addRow("Version", self.version_edit)
        form.addRow("Description", self.description_edit)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(self.folder_button)
        form.addRow("Save in", folder_row)
        form.addRow("Weights", self.weights_combo)
        form.addRow("", self.register_check)
        buttons = QHBoxLayout()
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.progress, 1)
        buttons.addStretch(0)
        self.export_button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.export_button.setMinimumWidth(120)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.points_label)
        layout.addLayout(buttons)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        layout.addWidget(line)
        layout.addWidget(self.result_label)
        layout.addStretch(1)
        self.outcome: ExportOutcome | None = None
        self.export_button.clicked.connect(self.export)
        self.name_edit.textChanged.connect(self._inputs_changed)
        self.version_edit.textChanged.connect(self._inputs_changed)

    def initializePage(self) -> None:  # noqa: N802 - Qt naming
        owner = self.owner
        evaluation = owner.evaluate_page.evaluation
        data = owner.data_page.summary
        name = suggest_model_name(data.spec if data else "model", owner.model_page.arch)
        if not self.name_edit.text():
            self.name_edit.setText(name)
        installed = set(evaluation.installed_keys) if evaluation else set()
        if self.outcome is not None and self.outcome.entry is not None:
            installed.add(self.outcome.entry.key)
        self.version_edit.setText(next_free_version(self.name_edit.text(), installed))
        chosen = owner.evaluate_page.chosen_points()
        if chosen:
            text = "; ".join(f"{k} at threshold {v['threshold']:.4f} (validation sensitivity "
                             f"{v['val_sensitivity']:.3f}, specificity "
                             f"{v['val_specificity']:.3f})" for k, v in chosen.items())
            self.points_label.setText(f"Operating point chosen on the Evaluate page: {text}.")
        else:
            self.points_label.setText("Operating point: the one chosen during training "
                                      "(Youden's J on the validation set).")
        self._inputs_changed()

    def choose_folder(self) -> None:
        start = self.folder_edit.text().strip() or str(self.owner.train_page.run_dir or "")
        folder = QFileDialog.getExistingDirectory(self, "Save the model in", start)
        if folder:
            self.folder_edit.setText(folder)

    def _inputs_changed(self) -> None:
        valid = self.name_edit.hasAcceptableInput() and self.version_edit.hasAcceptableInput()
        self.export_button.setEnabled(valid and not self.owner.is_running("export"))

    def export(self) -> None:
        owner = self.owner
        run_dir = owner.train_page.run_dir
        if run_dir is None or owner.is_running("export"):
            return
        name, version = self.name_edit.text(), self.version_edit.text()
        description = self.description_edit.text().strip()
        chosen = owner.evaluate_page.chosen_points()
        register = self.register_check.isChecked()
        out_dir = self.folder_edit.text().strip() or None
        weights = self.weights_combo.currentData()
        self.outcome = None
        self.result_label.setStyleSheet("")
        self.result_label.setText("")
        self.progress.setRange(0, 0)
        self.progress.show()
        owner.start_job(
            "export", lambda cancel: export_model(str(run_dir), name, version, description,
                                                  chosen, register, cancel, out_dir,
                                                  weights),
            "exporting the model", on_event=self._on_event, on_finished=self._on_exported,
            on_failed=self._on_failed, on_cancelled=self._on_cancelled)
        self._update_navigation()

    def _on_event(self, event: Any) -> None:
        if isinstance(event, Progress) and event.total:
            self.progress.setRange(0, event.total)
            self.progress.setValue(event.done)
            self.progress.setFormat(event.message)

    def _on_exported(self, outcome: ExportOutcome) -> None:
        self.outcome = outcome
        result = outcome.result
        lines = [f"Exported <b>{Path(result.onnx_path).name}</b> "
                 f"({result.size_bytes / 1e6:.1f} MB) with its model card to "
                 f"{Path(result.onnx_path).parent}.",
                 f"PyTorch and onnxruntime agree on {result.parity_images} validation images "
                 f"(largest difference {result.parity_max_abs_probabilities:.1e})."]
        metrics = result.test_metrics or {}
        if metrics.get("auroc"):
            spread = metrics.get("intervals", {})

            def bracket(figure: str, class_name: str) -> str:
                return bracketed_interval(spread.get(figure, {}).get(class_name))

            auroc = ", ".join(f"{k} {v:.3f}{bracket('auroc', k)}"
                              for k, v in metrics["auroc"].items())
            level = f" (in brackets: {spread['level']:.0%} intervals)" if spread else ""
            lines.append(f"Test set, {metrics['n']:,} images, scored by the exported file"
                         f"{level}: AUROC {auroc}.")
            from medviewer.training.metrics import finding_classes  # numpy only

            findings = finding_classes(list(metrics["auroc"]))  # those the card flags
            for class_name, point in metrics.get("operating_points", {}).items():
                if class_name not in findings:
                    continue
                lines.append(
                    f"&nbsp;&nbsp;{class_name} at threshold {point['threshold']:.4f}: "
                    f"sensitivity {point['sensitivity']:.3f}"
                    f"{bracket('sensitivity', class_name)}, specificity "
                    f"{point['specificity']:.3f}{bracket('specificity', class_name)}.")
        if outcome.entry is not None:
            lines.append(f"Registered as <b>{outcome.entry.key}</b>: it is in the viewer's "
                         f"model list now.")
        self.result_label.setText("<br>".join(lines))
        self.progress.hide()
        self._update_navigation()
        if outcome.entry is not None:
            self.owner.model_registered.emit(outcome.entry)

    def _on_failed(self, sentence: str) -> None:
        self.progress.hide()
        _set_error(self.result_label, sentence)
        self._update_navigation()

    def _on_cancelled(self) -> None:
        self.progress.hide()
        self.result_label.setText("Export cancelled.")
        self._update_navigation()

    def _update_navigation(self) -> None:
        running = self.owner.is_running("export")
        self.owner.evaluate_page.setCommitPage(running)
        for widget in (self.name_edit, self.version_edit, self.description_edit,
                       self.folder_edit, self.folder_button, self.register_check):
            widget.setEnabled(not running)
        self._inputs_changed()
        self.completeChanged.emit()

    def isComplete(self) -> bool:  # noqa: N802 - Qt naming
        return not self.owner.is_running("export")


# ====================================================================== the wizard


class TrainingWizard(QWizard):
    """Data -> Model -> Settings -> Train -> Evaluate -> Export; every long step on a worker.

    Closing while training or exporting asks first, then stops the job (within one batch;
    the best checkpoint stays on disk) and closes once its thread has ended.
    """

    model_registered = Signal(object)  # medviewer.inference.registry.ModelEntry
    tools_ready = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Train a model")
        self.setObjectName("trainingWizard")
        self.setWindowFlag(Qt.WindowType.Window, True)
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.setOption(QWizard.WizardOption.NoDefaultButton, True)
        self.resize(1180, 820)
        self.tools: ToolsInfo | None = None
        self._workers: dict[str, JobWorker] = {}
        self._live: set[JobWorker] = set()
        self._closing = False
        self._close_accepted = False
        self.stop_question: QMessageBox | None = None

        # Settings first: the data page reads its seed.
        self.settings_page = SettingsPage(self)
        self.data_page = DataPage(self)
        self.model_page = ModelPage(self)
        self.train_page = TrainPage(self)
        self.evaluate_page = EvaluatePage(self)
        self.export_page = ExportPage(self)
        for page_id, page in ((PAGE_DATA, self.data_page), (PAGE_MODEL, self.model_page),
                              (PAGE_SETTINGS, self.settings_page),
                              (PAGE_TRAIN, self.train_page),
                              (PAGE_EVALUATE, self.evaluate_page),
                              (PAGE_EXPORT, self.export_page)):
            self.setPage(page_id, page)
        self.setStartId(PAGE_DATA)
        self.start_job("tools", load_training_tools, "loading the training tools",
                       on_finished=self._on_tools, on_failed=self._on_tools_failed)

    # -- tools
    def _on_tools(self, tools: ToolsInfo) -> None:
        self.tools = tools
        self.data_page.fill_label_sets(tools.label_sets)
        self.settings_page.tools_loaded(tools)
        self.model_page.tools_loaded(tools)
        self.tools_ready.emit()

    def _on_tools_failed(self, sentence: str) -> None:
        self.model_page.tools_loaded(None, f"The training tools could not be loaded: "
                                           f"{sentence}")

    # -- what the pages chose
    def choices(self) -> dict:
        """Plain values for :func:`make_train_config` (built on the worker)."""
        data, model, settings = self.data_page, self.model_page, self.settings_page
        choices = {
            "data": data.spec(), "arch": model.arch, "input_size": model.input_spin.value(),
            "val_fraction": data.val_spin.value() / 100,
            "test_fraction": data.test_spin.value() / 100,
            "epochs": settings.epochs_spin.value(), "batch_size": settings.batch_spin.value(),
            "lr": settings.lr_spin.value(), "patience": settings.patience_spin.value(),
            "ema_decay": WEIGHT_AVERAGE_DECAY if settings.average_check.isChecked() else 0.0,
            "augment": settings.augment_check.isChecked(),
            "augment_strength": settings.augment_strength,
            "balance": settings.balance_combo.currentData(), "device": settings.device,
            "num_threads": settings.threads_spin.value(), "seed": settings.seed_spin.value(),
        }
        if model.fine_tune and model.checkpoint is not None:
            choices["init_checkpoint"] = model.checkpoint.path
        return choices

    # -- workers
    def start_job(self, purpose: str, factory: Callable[[CancelFlag], Generator],
                  description: str, *, on_event: Callable | None = None,
                  on_finished: Callable | None = None, on_failed: Callable | None = None,
                  on_cancelled: Callable | None = None) -> JobWorker:
        """Run a job for one purpose; a job already running for it is cancelled and ignored."""
        self.cancel(purpose)
        worker = JobWorker(factory, description)

        def current(handler: Callable | None, last: bool = True) -> Callable:
            def call(*args: Any) -> None:
                if last:  # its thread has ended: pages asking is_running() get False
                    self._live.discard(worker)
                if handler is not None and self._workers.get(purpose) is worker:
                    handler(*args)
            return call

        worker.event.connect(current(on_event, last=False))
        worker.finished.connect(current(on_finished))
        worker.failed.connect(current(on_failed))
        worker.cancelled.connect(current(on_cancelled))
        worker.ended.connect(lambda: self._on_worker_ended(worker))
        self._workers[purpose] = worker
        self._live.add(worker)
        worker.start()
        return worker

    def is_running(self, purpose: str) -> bool:
        """True from start until the job's outcome (finished, failed, cancelled) is handled."""
        return self._workers.get(purpose) in self._live

    def cancel(self, purpose: str) -> None:
        if self.is_running(purpose):
            self._workers[purpose].cancel()

    def running_jobs(self) -> list[str]:
        return [p for p, w in self._workers.items() if w in self._live]

    def _on_worker_ended(self, worker: JobWorker) -> None:
        self._live.discard(worker)
        if self._closing and not self._live:
            self._closing = False
            (QWizard.accept if self._close_accepted else QWizard.reject)(self)

    def shutdown(self, timeout_ms: int = 120_000) -> bool:
        """Cancel every job and wait for its thread (application exit, tests)."""
        ok = True
        for worker in list(self._live):
            ok = worker.wait(timeout_ms) and ok
        # Their outcome signals are still queued: nothing is left to handle them.
        self._workers.clear()
        self._live.clear()
        return ok

    # -- closing
    def confirm_stop(self) -> bool:
        """Ask before stopping a training or an export (True: stop it); True when none runs."""
        running = [CONFIRM_JOBS[p] for p in self.running_jobs() if p in CONFIRM_JOBS]
        if not running:
            return True
        kept = ""
        if "train" in self.running_jobs():
            kept = " The best checkpoint so far is kept in the run folder."
        box = QMessageBox(QMessageBox.Icon.Question, "Stop and close?",
                          f"{running[0]} is still running. Stop it and close the wizard?{kept}",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        self.stop_question = box
        try:
            return box.exec() == QMessageBox.StandardButton.Yes
        finally:
            self.stop_question = None
            box.deleteLater()

    def reject(self) -> None:
        """Cancel, Esc and the window's close button: ask if work would be lost, then stop."""
        if self._closing:
            return
        if not self.confirm_stop():
            return
        self._stop_then_close()

    def accept(self) -> None:
        if self._closing:
            return
        self._stop_then_close(accept=True)

    def _stop_then_close(self, accept: bool = False) -> None:
        live = list(self._live)
        if not live:
            (QWizard.accept if accept else QWizard.reject)(self)
            return
        # Close once the threads have ended (within one batch); the GUI keeps running.
        self._closing = True
        self._close_accepted = accept
        for worker in live:
            worker.cancel()
        self.train_page.headline.setText("Stopping…")
        for button in (QWizard.WizardButton.BackButton, QWizard.WizardButton.NextButton,
                       QWizard.WizardButton.FinishButton, QWizard.WizardButton.CancelButton):
            self.button(button).setEnabled(False)

    def done(self, result: int) -> None:  # noqa: D102 - every way of closing ends here
        self.data_page._reread.stop()  # no data read may start after the wizard closed
        super().done(result)

    @property
    def closing(self) -> bool:
        return self._closing


# ====================================================================== from the main window


class _MainWindowCloseGuard(QObject):
    """Asks before the main window closes while the wizard trains; stops it first."""

    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self._window = window

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() != QEvent.Type.Close:
            return False
        wizard = getattr(self._window, "_training_wizard", None)
        if wizard is None or not wizard.isVisible():
            return False
        if not wizard.confirm_stop():
            event.ignore()
            return True
        wizard.shutdown()
        QWizard.reject(wizard)
        return False


def notify_model_registered(window: QWidget, entry: Any) -> None:
    """Tell the main window's AI part (``window.ai``, results_panel.py) that a model was added."""
    ai_reader = getattr(window, "ai", None)
    if ai_reader is not None:
        ai_reader.refresh_models()
    status_bar = getattr(window, "statusBar", None)
    if callable(status_bar):
        status_bar().showMessage(f"Model {entry.key} was added to the model list.", 15_000)


def open_training_wizard(window: QWidget) -> TrainingWizard | QMessageBox:
    """Training > Train a model…: the wizard, or in the Viewer edition what Studio adds."""
    if not studio_available():
        box = QMessageBox(QMessageBox.Icon.Information, STUDIO_TITLE, STUDIO_EXPLANATION,
                          QMessageBox.StandardButton.Ok, window)
        box.setObjectName("studioExplanation")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        return box
    wizard = getattr(window, "_training_wizard", None)
    if wizard is not None and wizard.isVisible():
        wizard.raise_()
        wizard.activateWindow()
        return wizard
    if wizard is not None:
        wizard.deleteLater()
    wizard = TrainingWizard(window)
    wizard.model_registered.connect(lambda entry: notify_model_registered(window, entry))
    window._training_wizard = wizard
    if getattr(window, "_training_close_guard", None) is None:
        window._training_close_guard = _MainWindowCloseGuard(window)
        window.installEventFilter(window._training_close_guard)
    wizard.show()
    return wizard

