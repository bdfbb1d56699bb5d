"""The Export page: name, version and storage of the model, then the shared export
workflow (ONNX, model card, chosen thresholds, registration) on a worker."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QFrame,
                               QHBoxLayout, QLineEdit, QProgressBar, QPushButton, QSizePolicy,
                               QVBoxLayout)

from medviewer.app.training import next_free_version, suggest_model_name
from medviewer.app.training_export import ExportOutcome, export_model
from medviewer.gui.training_wizard.page_helpers import WizardHost, WizardPage, note, set_error
from medviewer.gui.widgets import bracketed_interval
from medviewer.jobs import EventConsumer, Progress

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"

# The export page's choices of how the file stores its weights (export.WEIGHT_STORAGE).
WEIGHT_CHOICES = (("Full precision (float32)", "float32"),
                  ("Half precision (float16): half the file", "float16"),
                  ("8-bit (int8): a quarter of the file", "int8"))



class ExportPage(WizardPage, EventConsumer):
    """Name, version, export to ONNX with the model card, and register."""

    def __init__(self, wizard: WizardHost) -> None:
        super().__init__(wizard, "Export", "Save the best checkpoint as an ONNX model with its "
                         "model card, and add it to MedViewer's model list.")
        validator = QRegularExpressionValidator(NAME_PATTERN)
        self.name_edit = QLineEdit()
        self.name_edit.setValidator(validator)
        self.version_edit = QLineEdit()
        self.version_edit.setValidator(QRegularExpressionValidator(NAME_PATTERN))
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
        self.points_label = note()
        self.result_label = note()
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
            "export", lambda cancel: export_model(
                str(run_dir), name, version, description=description, chosen_points=chosen,
                register=register, out_dir=out_dir, weights=weights, cancel=cancel),
            "exporting the model", on_event=self.dispatch, on_finished=self._on_exported,
            on_failed=self._on_failed, on_cancelled=self._on_cancelled)
        self._update_navigation()

    def on_progress(self, event: Progress) -> None:
        if event.total:
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
        set_error(self.result_label, sentence)
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

