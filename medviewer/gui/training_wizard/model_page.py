"""The Model page: the architecture, or an earlier model or checkpoint to fine-tune, and
the input size."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (QComboBox, QFileDialog, QGridLayout, QGroupBox, QHBoxLayout,
                               QLabel, QProgressBar, QRadioButton, QSpinBox, QVBoxLayout)

from medviewer.app.training import CheckpointSummary, ToolsInfo, read_checkpoint, runs_dir
from medviewer.gui.training_wizard.page_helpers import (WizardHost, WizardPage, narrow, note,
                                                        set_error)

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


class ModelPage(WizardPage):
    """Which architecture, from scratch or fine-tuned from a checkpoint, and the input size."""

    def __init__(self, wizard: WizardHost) -> None:
        super().__init__(wizard, "Model", "Choose the network to train, or an earlier model "
                         "to fine-tune, and the image size it sees.")
        self.loading_label = note("Loading PyTorch…")
        self.loading_bar = QProgressBar()
        self.loading_bar.setRange(0, 0)
        self.loading_bar.setMaximumHeight(10)
        self.loading_bar.setTextVisible(False)

        self.scratch_radio = QRadioButton("Train a new model from scratch")
        self.fine_tune_radio = QRadioButton("Fine-tune an earlier model or checkpoint")
        self.scratch_radio.setChecked(True)
        self.arch_combo = QComboBox()
        self.arch_note = note()
        self.source_combo = QComboBox()
        self.source_combo.setMinimumContentsLength(40)
        self.checkpoint_label = note()
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
        size_row.addWidget(narrow(self.input_spin))
        size_row.addStretch(1)
        input_layout.addLayout(size_row)
        input_layout.addWidget(note("Each image becomes a grey square of this size (aspect "
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
            set_error(self.loading_label, failure)
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
        set_error(self.checkpoint_label, "")
        self.checkpoint_label.setText(
            f"{summary.arch}, {summary.input_size} px, classes {', '.join(summary.class_names)}"
            f", trained {summary.epoch} epochs{auroc}.{head}")
        self.input_spin.setValue(summary.input_size)
        self.arch_combo.setCurrentIndex(max(0, self.arch_combo.findData(summary.arch)))
        self.completeChanged.emit()

    def _on_checkpoint_failed(self, sentence: str) -> None:
        self.checkpoint = None
        set_error(self.checkpoint_label, sentence)
        self.completeChanged.emit()

    def isComplete(self) -> bool:  # noqa: N802 - Qt naming
        if self.owner.tools is None:
            return False
        return self.checkpoint is not None if self.fine_tune else bool(self.arch)

