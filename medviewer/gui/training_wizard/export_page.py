"""The Export page: name, version and storage of the model, then the shared export
workflow (ONNX, model card, chosen thresholds, registration) on a worker.

It says, before exporting, what the export will warn about (``gates.export_warnings`` on
the Evaluate page's scores; the export decides again on the exported file) and then asks
for an explicit tick to register such a model; and which threshold the card will store:
the one picked on the trainer's raw scores, carried into the card's calibrated scale.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QFrame,
                               QHBoxLayout, QLineEdit, QProgressBar, QPushButton, QSizePolicy,
                               QVBoxLayout)

from medviewer.app.training import Evaluation, next_free_version, suggest_model_name
from medviewer.app.training_export import ExportOutcome, export_model
from medviewer.gui.training_wizard.page_helpers import WizardHost, WizardPage, note, set_error
from medviewer.gui.widgets import bracketed_interval
from medviewer.jobs import EventConsumer, Progress

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"

# The export page's choices of how the file stores its weights (export.WEIGHT_STORAGE).
WEIGHT_CHOICES = (("Full precision (float32)", "float32"),
                  ("Half precision (float16): half the file", "float16"),
                  ("8-bit (int8): a quarter of the file", "int8"))
REGISTER_TEXT = "Add it to the model list (register it)"
REGISTER_ANYWAY_TEXT = "Add it to the model list anyway: I have read the warning above"
WARNING_STYLE = "color: #ffcf70; border: 1px solid #8a6d2f; padding: 6px;"


def threshold_sentences(evaluation: Evaluation, chosen: dict[str, dict]) -> list[str]:
    """For each finding: the threshold picked on the trainer's raw scores and the one the
    card will store on its calibrated scale (gates.calibrated_threshold), in words."""
    from medviewer.training.metrics import finding_classes, method_in_words  # numpy only

    lines = []
    two_classes = len(evaluation.class_names) == 2
    for name in finding_classes(evaluation.class_names):
        trained = evaluation.trained_points.get(name)
        if name in chosen:
            point = chosen[name]
            raw, how = float(point["threshold"]), "chosen on the Evaluate page"
            sensitivity, specificity = point["val_sensitivity"], point["val_specificity"]
        elif trained is not None:
            raw = float(trained["threshold"])
            method = trained.get("method", "youden")
            how = "as trained (" + ("Youden's J" if method == "youden" else
                                     method_in_words(method)) + " on validation)"
            sensitivity, specificity = trained["sensitivity"], trained["specificity"]
        else:
            continue
        text = (f"{name}: threshold {raw:.4f} on the trainer's raw scores, {how}; validation "
                f"sensitivity {sensitivity:.3f}, specificity {specificity:.3f}.")
        if two_classes:
            stored = evaluation.calibrated_threshold(name, raw)
            text += (f" The model card stores the same operating point on its calibrated "
                     f"scale, at about {stored:.4f} (temperature "
                     f"{evaluation.temperature:.2f}, fitted on validation by the export).")
        elif name in chosen:
            text += (" The model card stores it unchanged: with more than two classes a raw "
                     "threshold has no exact counterpart on the calibrated scale.")
        else:
            text += " The export chooses it again on the calibrated validation scores."
        lines.append(text)
    return lines


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
        self.register_check = QCheckBox(REGISTER_TEXT)
        self.register_check.setChecked(True)
        self.warning_label = note()
        self.warning_label.setObjectName("exportWarning")
        self.warning_label.setStyleSheet(WARNING_STYLE)
        self.warning_label.hide()
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
        layout.addWidget(self.warning_label)
        layout.addLayout(form)
        layout.addWidget(self.points_label)
        layout.addLayout(buttons)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        layout.addWidget(line)
        layout.addWidget(self.result_label)
        layout.addStretch(1)
        self.outcome: ExportOutcome | None = None
        self.warnings: list[str] = []  # shown now: the Evaluate page's, then the export's
        self.exported_runs: set[str] = set()  # run folders exported from this page
        self._defaults_for = ""  # the checkpoint the register box's default was set for
        self.export_button.clicked.connect(self.export)
        self.name_edit.textChanged.connect(self._inputs_changed)
        self.version_edit.textChanged.connect(self._inputs_changed)

    def initializePage(self) -> None:  # noqa: N802 - Qt naming
        owner = self.owner
        evaluation = owner.evaluate_page.evaluation
        if evaluation is None:  # the Evaluate page lets no one here without it
            self._inputs_changed()
            return
        if not self.name_edit.text():
            self.name_edit.setText(suggest_model_name(evaluation.data or "model",
                                                      evaluation.arch))
        installed = set(evaluation.installed_keys)
        if self.outcome is not None and self.outcome.entry is not None:
            installed.add(self.outcome.entry.key)
        self.version_edit.setText(next_free_version(self.name_edit.text(), installed))
        if evaluation.checkpoint != self._defaults_for:
            self._defaults_for = evaluation.checkpoint
            self._show_warnings(evaluation.warnings, reset_register=True)
        sentences = threshold_sentences(evaluation, owner.evaluate_page.chosen_points())
        self.points_label.setText("\n".join(["Operating point:"] + sentences))
        self._inputs_changed()

    def _show_warnings(self, warnings: list[str], reset_register: bool) -> None:
        """Show the export's warnings; registering then takes an explicit tick, which is
        cleared (``reset_register``) when they first appear."""
        self.warnings = list(warnings)
        self.warning_label.setVisible(bool(warnings))
        self.warning_label.setText(
            "Before adding this model to the model list:\n"
            + "\n".join(f"• {line}" for line in warnings)
            + "\nIt can be exported to look at it; registering it makes it available for "
              "reading images, so it takes a tick below." if warnings else "")
        self.register_check.setText(REGISTER_ANYWAY_TEXT if warnings else REGISTER_TEXT)
        if reset_register:
            self.register_check.setChecked(not warnings)

    def choose_folder(self) -> None:
        start = self.folder_edit.text().strip() or str(self.owner.current_run_dir() or "")
        folder = QFileDialog.getExistingDirectory(self, "Save the model in", start)
        if folder:
            self.folder_edit.setText(folder)

    def _inputs_changed(self) -> None:
        valid = self.name_edit.hasAcceptableInput() and self.version_edit.hasAcceptableInput()
        self.export_button.setEnabled(valid and not self.owner.is_running("export"))

    def export(self) -> None:
        owner = self.owner
        run_dir = owner.current_run_dir()
        if run_dir is None or owner.is_running("export"):
            return
        name, version = self.name_edit.text(), self.version_edit.text()
        description = self.description_edit.text().strip()
        chosen = owner.evaluate_page.chosen_points()
        register = self.register_check.isChecked()
        # Ticked while the warnings showed: the user's explicit confirmation.
        anyway = register and bool(self.warnings)
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
                register=register, out_dir=out_dir, weights=weights, cancel=cancel,
                register_despite_warnings=anyway),
            "exporting the model", on_event=self.dispatch,
            on_finished=lambda outcome: self._on_exported(outcome, str(run_dir)),
            on_failed=self._on_failed, on_cancelled=self._on_cancelled)
        self._update_navigation()

    def on_progress(self, event: Progress) -> None:
        if event.total:
            self.progress.setRange(0, event.total)
            self.progress.setValue(event.done)
            self.progress.setFormat(event.message)

    def _on_exported(self, outcome: ExportOutcome, run_dir: str) -> None:
        self.outcome = outcome
        self.exported_runs.add(run_dir)
        result = outcome.result
        if outcome.warnings != self.warnings:  # the exported file's figures decide
            self._show_warnings(outcome.warnings, reset_register=outcome.registration_withheld)
        raw_thresholds = self._raw_thresholds(outcome.chosen_points)
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
                raw = raw_thresholds.get(class_name)
                scale = "" if raw is None else \
                    f" (calibrated scale; {raw:.4f} on the trainer's raw scores)"
                lines.append(
                    f"&nbsp;&nbsp;{class_name} at threshold {point['threshold']:.4f}{scale}: "
                    f"sensitivity {point['sensitivity']:.3f}"
                    f"{bracket('sensitivity', class_name)}, specificity "
                    f"{point['specificity']:.3f}{bracket('specificity', class_name)}.")
        if outcome.entry is not None:
            lines.append(f"Registered as <b>{outcome.entry.key}</b>: it is in the viewer's "
                         f"model list now.")
        elif outcome.registration_withheld:
            lines.append("<b>Not added to the model list</b>: the exported file's test "
                         "figures give the warning above. Tick the box to add it anyway and "
                         "export again.")
        else:
            lines.append("Not added to the model list (the box was not ticked).")
        self.result_label.setText("<br>".join(lines))
        self.progress.hide()
        self._update_navigation()
        if outcome.entry is not None:
            self.owner.model_registered.emit(outcome.entry)

    def _raw_thresholds(self, chosen: dict[str, dict]) -> dict[str, float]:
        """Per class, the threshold on the trainer's raw scores behind the card's one."""
        evaluation = self.owner.evaluate_page.evaluation
        trained = evaluation.trained_points if evaluation is not None else {}
        raw = {name: float(point["threshold"]) for name, point in trained.items()}
        raw.update({name: float(point["threshold"]) for name, point in chosen.items()})
        return raw

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

