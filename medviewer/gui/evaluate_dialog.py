"""Models > Evaluate on labelled images…: a local validation of a model, in a dialog.

The inputs are a model and either a CSV (``path,label``, with an optional label mapping) or
(path, class) pairs handed over by the caller (a label set's images). The job is
``medviewer.app.validation.validation_job`` run by ``gui/workers.JobWorker`` with progress
and cancel; its report is saved as a local validation record (off the GUI thread) and
shown as text with a reliability diagram. "Adopt" makes the threshold set here this site's
operating point for that finding (recorded in the audit log).

The shell opens it with ``EvaluateDialog(entries, current_key, parent=window)`` (and
``pairs=[(path, class), ...]`` plus ``source="label set NAME"`` for a label set) and may
listen to ``validation_saved(model_key)`` to refresh the model dialog.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import (
    QComboBox, QDialog, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
    QLineEdit, QProgressBar, QPushButton, QSplitter, QTextBrowser, QVBoxLayout, QWidget,
)

from medviewer.gui.workers import JobWorker

if TYPE_CHECKING:
    from medviewer.app.validation import ValidationReport
    from medviewer.inference.registry import ModelEntry


class ReliabilityDiagram(QWidget):
    """Observed frequency against mean predicted probability per bin, with the diagonal
    of perfect calibration; bar widths follow the bins, a dot per bin shows the observed
    share and its size the image count. Plots ``metrics.reliability_bins`` data."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("reliabilityDiagram")
        self.setMinimumSize(260, 240)
        self.bins: list[dict[str, Any]] = []
        self.title = ""

    def set_bins(self, bins: Sequence[dict[str, Any]], title: str = "") -> None:
        self.bins = list(bins)
        self.title = title
        self.update()

    def paintEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        text = self.palette().text().color()
        margin_left, margin_bottom, margin_top, margin_right = 42, 34, 22, 10
        area = QRectF(margin_left, margin_top, self.width() - margin_left - margin_right,
                      self.height() - margin_top - margin_bottom)
        painter.setPen(text)
        painter.drawText(QRectF(0, 0, self.width(), margin_top),
                         Qt.AlignmentFlag.AlignCenter, self.title or "Reliability")

        def point(x: float, y: float) -> QPointF:
            return QPointF(area.left() + x * area.width(), area.bottom() - y * area.height())

        painter.drawRect(area)
        for tick in (0.0, 0.5, 1.0):
            painter.drawText(QRectF(point(tick, 0).x() - 15, area.bottom() + 2, 30, 14),
                             Qt.AlignmentFlag.AlignCenter, f"{tick:g}")
            painter.drawText(QRectF(2, point(0, tick).y() - 7, margin_left - 6, 14),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                             f"{tick:g}")
        painter.drawText(QRectF(area.left(), self.height() - 16, area.width(), 14),
                         Qt.AlignmentFlag.AlignCenter, "predicted probability")
        painter.setPen(QPen(QColor("#888888"), 1, Qt.PenStyle.DashLine))
        painter.drawLine(point(0, 0), point(1, 1))
        total = sum(b["count"] for b in self.bins) or 1
        for b in self.bins:
            if not b["count"] or b["observed"] is None:
                continue
            top_left, bottom_right = point(b["low"], b["observed"]), point(b["high"], 0)
            painter.fillRect(QRectF(top_left, bottom_right).adjusted(1, 0, -1, 0),
                             QColor(70, 130, 220, 150))
            radius = 2.5 + 6.0 * (b["count"] / total) ** 0.5
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#ff9f40"))
            painter.drawEllipse(point(b["mean_predicted"], b["observed"]), radius, radius)
        painter.end()


def _run_and_save(entry: ModelEntry, pairs: list[tuple[Path, str]], thresholds: dict,
                  source: str, cancel: Any):
    """The job the worker runs: the validation, then its record written (both off the
    GUI thread)."""
    from medviewer.app import validation

    report = yield from validation.validation_job(entry, pairs, user_thresholds=thresholds,
                                                  source=source, cancel=cancel)
    validation.save_validation(entry, report)
    return report


class EvaluateDialog(QDialog):
    """Evaluate a model on labelled images (non-modal)."""

    validation_saved = Signal(str)  # model key

    def __init__(self, entries: Sequence[ModelEntry], current_key: str = "",
                 pairs: Sequence[tuple[str | Path, str]] | None = None, source: str = "",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("evaluateDialog")
        self.setWindowTitle("Evaluate on labelled images")
        self.entries = list(entries)
        self.pairs = [(Path(p), c) for p, c in pairs] if pairs is not None else None
        self.source = source
        self.worker: JobWorker | None = None
        self.report: ValidationReport | None = None

        self.model_combo = QComboBox()
        self.model_combo.setObjectName("evaluateModel")
        for entry in self.entries:
            self.model_combo.addItem(f"{entry.name} {entry.version} ({entry.source})", entry.key)
        keys = [e.key for e in self.entries]
        if current_key in keys:
            self.model_combo.setCurrentIndex(keys.index(current_key))
        self.model_combo.currentIndexChanged.connect(self._on_model)

        self.csv_edit = QLineEdit()
        self.csv_edit.setPlaceholderText("CSV with the columns path,label")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        csv_row = QHBoxLayout()
        csv_row.addWidget(self.csv_edit, 1)
        csv_row.addWidget(browse)
        self.map_edit = QLineEdit()
        self.map_edit.setPlaceholderText("optional, e.g. pneumonia=PNEUMONIA,normal=NORMAL")
        self.finding_combo = QComboBox()
        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setRange(0.0, 1.0)
        self.threshold_spin.setDecimals(3)
        self.threshold_spin.setSingleStep(0.01)
        # A wheel over an unfocused box scrolls the dialog, not the value.
        for box in (self.model_combo, self.finding_combo, self.threshold_spin):
            box.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        point_row = QHBoxLayout()
        point_row.addWidget(self.finding_combo)
        point_row.addWidget(QLabel("at"))
        point_row.addWidget(self.threshold_spin)
        point_row.addStretch(1)

        form = QFormLayout()
        form.addRow("Model", self.model_combo)
        if self.pairs is None:
            form.addRow("Labels", csv_row)
            form.addRow("Label mapping", self.map_edit)
        else:
            form.addRow("Images", QLabel(f"{len(self.pairs)} labelled images"
                                         f"{' from ' + source if source else ''}"))
            for unused in (self.csv_edit, browse, self.map_edit):  # owned, never shown
                unused.setParent(self)
                unused.hide()
        form.addRow("Your threshold", point_row)

        self.progress = QProgressBar()
        self.progress.setObjectName("evaluateProgress")
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.status = QLabel()
        self.status.setObjectName("evaluateStatus")
        self.status.setWordWrap(True)
        self.run_button = QPushButton("Evaluate")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.adopt_button = QPushButton("Adopt your threshold for this site…")
        self.adopt_button.setEnabled(False)
        self.adopt_button.clicked.connect(self.adopt)
        close = QPushButton("Close")
        close.clicked.connect(self.close)

        self.report_view = QTextBrowser()
        self.report_view.setObjectName("evaluateReport")
        self.diagram = ReliabilityDiagram()
        results = QSplitter(Qt.Orientation.Horizontal)
        results.addWidget(self.report_view)
        results.addWidget(self.diagram)
        results.setSizes([520, 300])

        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        buttons.addWidget(self.adopt_button)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(results, 1)
        layout.addLayout(buttons)
        self.resize(900, 620)
        self._on_model()

    # ------------------------------------------------------------ inputs
    def entry(self) -> ModelEntry | None:
        index = self.model_combo.currentIndex()
        return self.entries[index] if 0 <= index < len(self.entries) else None

    def _on_model(self) -> None:
        from medviewer.app.validation import finding_names

        entry = self.entry()
        self.finding_combo.clear()
        if entry is None:
            return
        for name in finding_names(entry.card):
            self.finding_combo.addItem(name)
        first = self.finding_combo.currentText()
        point = entry.card.operating_points.get(first)
        self.threshold_spin.setValue(point.threshold if point else 0.5)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Labels CSV", "", "CSV files (*.csv)")
        if path:
            self.csv_edit.setText(path)

    def _pairs(self, entry: ModelEntry) -> list[tuple[Path, str]]:
        from medviewer.app import validation

        if self.pairs is not None:
            return self.pairs
        text = self.csv_edit.text().strip()
        if not text:
            raise validation.ValidationError("Choose a CSV of labelled images (path,label).")
        return validation.read_labels_csv(text, entry.card.classes,
                                          validation.parse_mapping(self.map_edit.text()))

    # ------------------------------------------------------------ the job
    def start(self) -> JobWorker | None:
        from medviewer.errors import UserError

        entry = self.entry()
        if entry is None or (self.worker is not None and self.worker.is_running()):
            return None
        try:
            pairs = self._pairs(entry)  # a CSV of a few KB: read here, the images are not
        except UserError as exc:
            self._show_status(str(exc), error=True)
            return None
        thresholds = ({self.finding_combo.currentText(): self.threshold_spin.value()}
                      if self.finding_combo.currentText() else {})
        source = self.source or self.csv_edit.text().strip()
        worker = JobWorker(lambda cancel: _run_and_save(entry, pairs, thresholds, source,
                                                        cancel),
                           "evaluating the model on labelled images")
        worker.event.connect(self._on_event)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(lambda sentence: self._on_stopped(sentence, error=True))
        worker.cancelled.connect(lambda: self._on_stopped("Evaluation cancelled."))
        self.worker = worker
        self.report = None
        self.adopt_button.setEnabled(False)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 0)
        self.progress.show()
        self._show_status(f"Reading {len(pairs)} images with {entry.name} {entry.version}…")
        worker.start()
        return worker

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.cancel_button.setEnabled(False)

    def _on_event(self, event: Any) -> None:
        from medviewer.jobs import Progress

        if isinstance(event, Progress) and event.total:
            self.progress.setRange(0, event.total)
            self.progress.setValue(event.done)
            self.progress.setFormat(f"{event.message} (%v/%m)")

    def _on_stopped(self, sentence: str, error: bool = False) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.hide()
        self._show_status(sentence, error)

    def _on_finished(self, report: ValidationReport) -> None:
        self._on_stopped(f"Saved as local validation {report.id}; the model dialog lists it.")
        self.show_report(report)
        self.validation_saved.emit(f"{report.model['name']}@{report.model['version']}")

    def show_report(self, report: ValidationReport) -> None:
        from medviewer.app.validation import report_lines

        self.report = report
        lines = report_lines(report)
        self.report_view.setHtml("".join(
            f"<p style='margin:2px 0 2px {16 if line.startswith('  ') else 0}px'>"
            f"{html.escape(line.strip())}</p>" for line in lines))
        finding = self.finding_combo.currentText() or next(iter(report.findings), "")
        figures = report.findings.get(finding)
        if figures:
            ece = figures.get("ece")
            self.diagram.set_bins(figures["reliability"],
                                  f"{finding}: ECE {ece:.3f}" if ece is not None else finding)
        self.adopt_button.setEnabled(bool(figures and figures.get("at_user_point")))

    def adopt(self) -> None:
        from medviewer.app.validation import adopt_operating_point
        from medviewer.errors import UserError
        from PySide6.QtWidgets import QMessageBox

        entry, report = self.entry(), self.report
        finding = self.finding_combo.currentText()
        if entry is None or report is None or not finding:
            return
        at = report.findings[finding]["at_user_point"]
        answer = QMessageBox.question(
            self, "Adopt a site operating point",
            f"Flag {finding} at {at['threshold']:.3f} instead of the card's threshold for "
            f"every read with {entry.name} {entry.version} on this computer? This is "
            "recorded in the audit log; the model card is not changed.")
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            adopt_operating_point(entry, report, finding)
        except UserError as exc:
            self._show_status(str(exc), error=True)
            return
        self._show_status(f"{finding} is now flagged at {at['threshold']:.3f} at this site "
                          f"(from local validation {report.id}).")
        self.validation_saved.emit(entry.key)

    def _show_status(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet("color: #ff8080;" if error else "")
        self.status.setText(text)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        if self.worker is not None and self.worker.is_running():
            self.worker.cancel()
        super().closeEvent(event)
