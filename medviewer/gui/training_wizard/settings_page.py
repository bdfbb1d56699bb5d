"""The Settings page: optimisation, augmentation, class balance, device and seed."""

from __future__ import annotations

import os

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox,
                               QHBoxLayout, QLabel, QSlider, QSpinBox, QVBoxLayout, QWidget)

from medviewer.app.training import ToolsInfo, default_cpu_threads
from medviewer.gui.training_wizard.page_helpers import WizardHost, WizardPage, narrow, note


class SettingsPage(WizardPage):
    """Optimisation, augmentation, class balance, device and seed."""

    BALANCE = (("weights", "Weight the loss by class frequency"),
               ("sampler", "Balanced sampling (classes drawn evenly per batch)"),
               ("none", "None"))

    def __init__(self, wizard: WizardHost) -> None:
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
        self.device_label = note()
        self.threads_spin = QSpinBox()
        self.threads_spin.setRange(1, max(1, os.cpu_count() or 1))
        self.threads_spin.setValue(default_cpu_threads())
        self.threads_spin.setToolTip("One core is left free by default so the viewer stays "
                                     "responsive while training.")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2 ** 31 - 1)

        optimise = QGroupBox("Optimisation")
        form = QFormLayout(optimise)
        form.addRow("Epochs", narrow(self.epochs_spin))
        form.addRow("Batch size", narrow(self.batch_spin))
        form.addRow("Learning rate (peak)", narrow(self.lr_spin))
        form.addRow("Stop early after", self._with_suffix(
            narrow(self.patience_spin, 90), "epochs without a better validation AUROC"))
        form.addRow("", self.average_check)
        augment = QGroupBox("Augmentation and class balance")
        augment_layout = QVBoxLayout(augment)
        augment_layout.addWidget(self.augment_check)
        augment_layout.addWidget(note("Small rotations, shifts, zoom and brightness/contrast "
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
            narrow(self.threads_spin, 90), "one core is left free for the viewer by default"))
        hardware_form.addRow("Seed", self._with_suffix(
            narrow(self.seed_spin, 130), "decides the split, the initial weights and the "
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

