"""The Evaluate page: the best checkpoint's ROC on validation and test, with its operating
point movable by drag or slider, the figures at it (with intervals), its confusion matrix,
and beside the ROC the reliability diagram of the same split and class (computed with the
scores on the scoring worker)."""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QFormLayout, QHBoxLayout,
                               QHeaderView, QPushButton, QSlider, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from medviewer.app.training import Evaluation, score_checkpoint
from medviewer.gui.evaluate_dialog import ReliabilityDiagram
from medviewer.gui.training_wizard.page_helpers import (SPLIT_TITLES, WizardHost, WizardPage,
                                                        cell, fit_height, note,
                                                        read_only_table, set_error)
from medviewer.gui.widgets import bold_label, bracketed_interval, interval_text


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


class EvaluatePage(WizardPage):
    """ROC of the best checkpoint, with its operating point movable by drag or slider."""

    def __init__(self, wizard: WizardHost) -> None:
        super().__init__(wizard, "Evaluate", "How the best checkpoint separates the classes. "
                         "Drag on the ROC curve (or use the slider) to choose the operating "
                         "point on the validation set; the test set shows how it holds up.")
        from medviewer.gui.curves import RocPlot

        self.status_label = note()
        self.roc = RocPlot()
        self.class_combo = QComboBox()
        self.split_combo = QComboBox()
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setMinimum(1)
        self.threshold_label = bold_label("")
        self.threshold_note = note()
        self.reset_button = QPushButton("Back to the trained point")
        self.reset_button.setToolTip("The threshold chosen during training (Youden's J on the "
                                     "validation set)")
        self.figures = read_only_table(2, 5)
        self.figures.setHorizontalHeaderLabels(["Sensitivity", "Specificity", "PPV", "NPV",
                                                "AUROC"])
        self.figures.setVerticalHeaderLabels(["Validation", "Test"])
        self.figures_note = note("Below each figure: its 95% interval (Wilson; bootstrap "
                                  "for AUROC). Few images give wide intervals.")
        self.matrix = ConfusionMatrix()
        self.matrix_title = bold_label("Confusion matrix")
        self.reliability = ReliabilityDiagram()
        self.reliability.setMinimumSize(250, 220)
        self.calibration_note = note()

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
        calibration_row = QHBoxLayout()
        calibration_row.addWidget(self.reliability, 1)
        calibration_row.addWidget(self.calibration_note, 1)
        plots = QVBoxLayout()
        plots.addWidget(self.roc, 3)
        plots.addLayout(calibration_row, 2)
        body = QHBoxLayout()
        body.addLayout(plots, 5)
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
                       self.reset_button, self.figures, self.matrix, self.reliability):
            widget.setEnabled(enabled)

    def initializePage(self) -> None:  # noqa: N802 - Qt naming
        checkpoint = self.owner.current_checkpoint()
        if checkpoint is None:
            return
        if self.evaluation is not None and self.evaluation.checkpoint == str(checkpoint):
            return
        self.evaluation = None
        self._set_enabled(False)
        set_error(self.status_label, "")
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
        set_error(self.status_label, sentence)
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
        self._show_calibration()
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

    def _show_calibration(self) -> None:
        """The reliability diagram of the split and class shown, and what it says in words."""
        split, name = self.shown_split, self.positive_class
        reliability = self.evaluation.reliability.get((split, name))
        if reliability is None:
            self.reliability.set_bins([], "")
            self.calibration_note.clear()
            return
        words = SPLIT_TITLES[split].lower()
        images = sum(b["count"] for b in reliability.bins)
        self.reliability.set_bins(reliability.bins, f"Reliability, {words}: {name}")
        rough = (f" With {images:,} images the bins hold few each, so this is rough."
                 if images < 200 else "")
        self.calibration_note.setText(
            f"Calibration of the trainer's raw {name} scores on the {words} images: bars "
            f"show how often {name} was the truth among images given about that probability; "
            f"perfect calibration follows the diagonal. ECE {reliability.ece:.3f}: the "
            f"predicted probability is on average {reliability.ece * 100:.1f} percentage "
            f"points away from that frequency. Brier score {reliability.brier:.3f} (the mean "
            f"squared difference between the probabilities and the truth; 0 is perfect)."
            f"{rough}\n\nExport fits temperature scaling on the validation images "
            f"(T = {self.evaluation.temperature:.2f} on these scores) so the model's "
            f"probabilities mean what they say; its model card records ECE and Brier score "
            f"before and after, on validation and test.")

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
                self.figures.setItem(row, column, cell(text))
        fit_height(self.figures)

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
        # The Export page shows what this scoring found (warnings, thresholds): it needs one.
        return self.evaluation is not None and not self.owner.is_running("score")

