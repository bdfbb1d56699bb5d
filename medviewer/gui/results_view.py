"""The AI results dock's widgets: :class:`ResultsPanel` and its :class:`ProbabilityBar` rows.

The panel shows the shown image's read (model, provider, one bar per class against its
operating point, inference time) and the saliency controls. It only displays what
:class:`~medviewer.gui.results_panel.AiReader` gives it; it has no signals of its own (the
reader connects to its buttons and controls).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QFormLayout, QFrame, QGroupBox, QHBoxLayout, QLabel, QProgressBar,
    QPushButton, QScrollArea, QSizePolicy, QSlider, QVBoxLayout, QWidget,
)

from medviewer.app.ai_reading import provider_name
from medviewer.gui.models_dialog import DEMO_BANNER, not_for_clinical_use
from medviewer.gui.widgets import ignore_wheel_unless_focused, wrapping_label
from medviewer.gui.overlay import COLOUR_MAPS
from medviewer.jobs import Progress

if TYPE_CHECKING:
    from medviewer.inference.predict import Prediction
    from medviewer.inference.registry import ModelEntry

FLAG_COLOUR = QColor(230, 92, 60)
BAR_COLOUR = QColor(70, 130, 200)
MARKER_COLOUR = QColor(255, 255, 255)
WARNING_STYLE = "color: #ffcf70;"
ERROR_STYLE = "color: #ff9a8a;"


class ProbabilityBar(QWidget):
    """One class: its probability as a bar, the operating point as a marker line."""

    BAR_HEIGHT = 14

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("probabilityBar")
        self.class_name = ""
        self.probability = 0.0
        self.threshold: float | None = None
        self.flagged = False
        self.method = ""
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(220)
        # Never squeezed by wrapped sentences around it: a bar cut in half reads wrongly.
        self.setMinimumHeight(self.sizeHint().height())

    def set_score(self, name: str, probability: float, threshold: float | None,
                  flagged: bool | None, method: str = "") -> None:
        self.class_name = name
        self.probability = min(max(float(probability), 0.0), 1.0)
        self.threshold = threshold
        self.flagged = bool(flagged)
        self.method = method
        self.setToolTip(self.describe())
        self.update()

    def describe(self) -> str:
        text = f"{self.class_name}: probability {self.probability:.3f}"
        if self.threshold is None:
            return text + "; no operating point in the model card, so never flagged."
        relation = "at or above" if self.flagged else "below"
        how = f" ({self.method})" if self.method else ""
        verdict = "flagged" if self.flagged else "not flagged"
        return f"{text}, {relation} the operating point {self.threshold:.3f}{how}: {verdict}."

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt naming
        line = self.fontMetrics().height()
        return QSize(260, 2 * line + self.BAR_HEIGHT + 12)

    def bar_rect(self) -> QRectF:
        line = self.fontMetrics().height()
        return QRectF(1.0, line + 4.0, max(self.width() - 2.0, 1.0), float(self.BAR_HEIGHT))

    def threshold_x(self) -> float | None:
        """Widget x of the operating-point marker (None without an operating point)."""
        if self.threshold is None:
            return None
        rect = self.bar_rect()
        return rect.left() + rect.width() * self.threshold

    def fill_width(self) -> float:
        return self.bar_rect().width() * self.probability

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt naming
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        palette_text = self.palette().windowText().color()
        metrics = self.fontMetrics()
        line = metrics.height()
        # Top line: class name left, probability and verdict right.
        name_font = QFont(self.font())
        name_font.setBold(self.flagged)
        painter.setFont(name_font)
        painter.setPen(FLAG_COLOUR if self.flagged else palette_text)
        painter.drawText(QRectF(0, 0, self.width(), line), Qt.AlignmentFlag.AlignLeft
                         | Qt.AlignmentFlag.AlignVCenter, self.class_name)
        verdict = f"{self.probability:.3f}" + ("  FLAGGED" if self.flagged else "")
        painter.drawText(QRectF(0, 0, self.width(), line), Qt.AlignmentFlag.AlignRight
                         | Qt.AlignmentFlag.AlignVCenter, verdict)
        # The bar.
        rect = self.bar_rect()
        painter.fillRect(rect, QColor(28, 28, 30))
        painter.setPen(QPen(QColor(90, 90, 95)))
        painter.drawRect(rect.adjusted(0, 0, -1, -1))
        fill = QRectF(rect.left(), rect.top(), self.fill_width(), rect.height())
        painter.fillRect(fill, FLAG_COLOUR if self.flagged else BAR_COLOUR)
        # The operating point: a marker line across the bar, labelled underneath.
        marker = self.threshold_x()
        painter.setFont(self.font())
        below = QRectF(0, rect.bottom() + 2, self.width(), line)
        if marker is not None:
            pen = QPen(MARKER_COLOUR)
            pen.setWidth(2)
            painter.setPen(pen)
            painter.drawLine(int(round(marker)), int(rect.top()) - 3,
                             int(round(marker)), int(rect.bottom()) + 2)
            painter.setPen(QColor(170, 170, 170))
            label = f"threshold {self.threshold:.3f}"
            width = metrics.horizontalAdvance(label)
            left = min(max(marker - width / 2.0, 0.0), self.width() - width)
            painter.drawText(QRectF(left, below.top(), width + 2, line),
                             Qt.AlignmentFlag.AlignLeft, label)
        else:
            painter.setPen(QColor(140, 140, 140))
            painter.drawText(below, Qt.AlignmentFlag.AlignLeft, "no operating point")
        painter.end()


def finding_text(prediction: Prediction) -> str:
    """The answer in words, from the decision: what is flagged (with the probability at or
    above its point), else each finding below its point, else that the card has none."""
    flagged = [prediction.score(name) for name in prediction.flagged]
    if flagged:
        return "Flagged: " + ", ".join(f"{s.name} ({s.probability:.3f} ≥ {s.threshold:.3f})"
                                       for s in flagged)
    findings = [s for s in prediction.scores if s.threshold is not None]
    if findings:
        return "Not flagged: " + ", ".join(f"{s.name} {s.probability:.3f} < {s.threshold:.3f}"
                                           for s in findings)
    return "The model card gives no operating points: probabilities only."


def ood_text(prediction: Prediction) -> str:
    if prediction.ood_score is None:
        return "This model has no check for unusual images (no out-of-distribution data)."
    if prediction.ood:
        return ("Unusual image for this model: it differs from the images the model was "
                f"trained on (score {prediction.ood_score:.1f}), so its answer may not apply.")
    return f"A usual image for this model (out-of-distribution score {prediction.ood_score:.1f})."


class ResultsPanel(QWidget):
    """The shown image's AI read: model, provider, bars, timing, saliency controls."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("resultsPanel")
        self.model_label = wrapping_label("aiModelLabel", "font-weight: bold;")
        self.demo_label = wrapping_label(
            "aiDemoLabel", "background: #7a2323; color: #ffffff; font-weight: bold; "
                           "padding: 3px 6px; border-radius: 3px;")
        self.demo_label.setText("⚠ " + DEMO_BANNER)
        self.demo_label.hide()
        self.provider_label = wrapping_label("aiProviderText")
        self.notice_label = wrapping_label("aiNoticeLabel", WARNING_STYLE)
        self.notice_label.hide()
        self.status_label = wrapping_label("aiStatusLabel")
        self.finding_label = wrapping_label("aiFindingLabel", "font-weight: bold;")
        # Why the answer is not shown as a finding (outside intended use), and the way past it.
        self.scope_label = wrapping_label("aiScopeLabel", WARNING_STYLE)
        self.scope_label.hide()
        self.read_anyway_button = QPushButton("Read anyway")
        self.read_anyway_button.setObjectName("readAnywayButton")
        self.read_anyway_button.setToolTip("Show this model's answer although the image is "
                                           "outside its intended use (written to the audit "
                                           "log)")
        self.read_anyway_button.hide()
        # "Unusual image for this model" (out-of-distribution), or why there is no check.
        self.ood_label = wrapping_label("aiOodLabel")
        self.ood_label.hide()
        self.timing_label = wrapping_label("aiTimingLabel", "color: #a0a0a0;")

        self.bars_box = QWidget()
        self.bars_layout = QVBoxLayout(self.bars_box)
        self.bars_layout.setContentsMargins(0, 4, 0, 4)
        self.bars_layout.setSpacing(6)
        self.bars: list[ProbabilityBar] = []

        self.run_button = QPushButton("Run AI")
        self.run_button.setObjectName("runAiButton")
        self.run_button.setToolTip("Read the shown image again (Ctrl+R)")
        self.batch_button = QPushButton("Run on open images")
        self.batch_button.setToolTip("Read every image in the study browser (Ctrl+Shift+R)")
        self.folder_button = QPushButton("Run on folder…")
        self.folder_button.setToolTip("Read every image in a folder, without opening it")
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.batch_button)
        buttons.addWidget(self.folder_button)
        buttons.addStretch(1)

        self.saliency_box = self._build_saliency_box()

        content = QWidget()
        layout = QVBoxLayout(content)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(6)
        layout.addWidget(self.model_label)
        layout.addWidget(self.demo_label)
        layout.addWidget(self.provider_label)
        layout.addWidget(self.notice_label)
        layout.addLayout(buttons)
        rule = QFrame()
        rule.setFrameShape(QFrame.Shape.HLine)
        rule.setFrameShadow(QFrame.Shadow.Plain)
        rule.setStyleSheet("color: #4a4a4e;")
        layout.addWidget(rule)
        layout.addWidget(self.status_label)
        layout.addWidget(self.scope_label)
        layout.addWidget(self.read_anyway_button)
        layout.addWidget(self.bars_box)
        layout.addWidget(self.finding_label)
        layout.addWidget(self.ood_label)
        layout.addWidget(self.timing_label)
        layout.addWidget(self.saliency_box)
        layout.addStretch(1)
        self.content = content
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        # Never squeezed below the model, provider and two bars by the panels beside it.
        self.setMinimumHeight(12 * self.fontMetrics().height())
        self.show_no_model("No AI model is loaded yet.")

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt naming
        # Ask for the whole content (bars and saliency controls), not a scroll area's guess.
        hint = self.content.sizeHint()
        return QSize(max(hint.width(), 320), hint.height() + 4)

    def _build_saliency_box(self) -> QGroupBox:
        box = QGroupBox("Saliency overlay")
        box.setObjectName("saliencyBox")
        self.overlay_check = QCheckBox("Show on the image")
        self.overlay_check.setObjectName("overlayCheck")
        self.method_label = wrapping_label("saliencyMethodLabel", "color: #a0a0a0;")
        self.class_combo = QComboBox()
        self.class_combo.setObjectName("saliencyClassCombo")
        self.class_combo.setToolTip("Which class's evidence the overlay shows")
        self.class_combo.setPlaceholderText("Nothing flagged: choose a class")
        self.compute_button = QPushButton("Compute occlusion map")
        self.compute_button.setObjectName("computeSaliencyButton")
        self.compute_button.hide()
        self.saliency_progress = QProgressBar()
        self.saliency_progress.setTextVisible(True)
        self.saliency_progress.hide()
        self.saliency_cancel = QPushButton("Cancel")
        self.saliency_cancel.hide()
        progress_row = QHBoxLayout()
        progress_row.setContentsMargins(0, 0, 0, 0)
        progress_row.addWidget(self.saliency_progress, 1)
        progress_row.addWidget(self.saliency_cancel)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setObjectName("opacitySlider")
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setToolTip("Overlay opacity")
        self.opacity_value = QLabel()
        self.opacity_value.setMinimumWidth(40)
        self.opacity_slider.valueChanged.connect(lambda v: self.opacity_value.setText(f"{v} %"))
        opacity_row = QHBoxLayout()
        opacity_row.setContentsMargins(0, 0, 0, 0)
        opacity_row.addWidget(self.opacity_slider, 1)
        opacity_row.addWidget(self.opacity_value)
        self.colour_combo = QComboBox()
        self.colour_combo.setObjectName("colourMapCombo")
        self.colour_combo.addItems(list(COLOUR_MAPS))
        ignore_wheel_unless_focused(self.class_combo, self.colour_combo, self.opacity_slider)
        form = QFormLayout(box)
        form.setContentsMargins(8, 6, 8, 8)
        form.addRow(self.overlay_check)
        form.addRow(self.method_label)
        form.addRow("Class", self.class_combo)
        form.addRow(self.compute_button)
        form.addRow(progress_row)
        form.addRow("Opacity", opacity_row)
        form.addRow("Colours", self.colour_combo)
        return box

    # ------------------------------------------------------------ model
    def show_model(self, entry: ModelEntry | None, provider: str = "", notice: str = "",
                   detail: str = "") -> None:
        if entry is None:
            self.model_label.setText("No model")
            self.demo_label.hide()
        else:
            self.model_label.setText(f"{entry.name} {entry.version}")
            self.model_label.setToolTip(entry.card.description or entry.key)
            self.demo_label.setVisible(not_for_clinical_use(entry.card))
        if provider:
            text = f"Runs on {provider_name(provider)}"
            self.provider_label.setText(f"{text} ({detail})" if detail else text)
        else:
            self.provider_label.setText(detail)
        self.notice_label.setText(notice)
        self.notice_label.setVisible(bool(notice))

    def show_no_model(self, sentence: str) -> None:
        self.show_model(None, detail="")
        self.show_status(sentence, error=False)
        self.clear_result()

    # ------------------------------------------------------------ result
    def show_status(self, text: str, error: bool = False) -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet(ERROR_STYLE if error else "")
        self.status_label.setVisible(bool(text))

    def clear_result(self) -> None:
        for bar in self.bars:
            bar.hide()
        self.finding_label.clear()
        self.finding_label.hide()
        for widget in (self.scope_label, self.read_anyway_button, self.ood_label):
            widget.hide()
        self.timing_label.clear()
        self.timing_label.hide()
        self.class_combo.blockSignals(True)
        self.class_combo.clear()
        self.class_combo.blockSignals(False)

    def show_prediction(self, prediction: Prediction, image_name: str = "") -> None:
        """The read as the one decision rule gives it (``prediction.decision``): flagged
        findings, or why nothing is; not read as a finding outside the model's intended use
        (the reasons and "Read anyway"); the out-of-distribution check."""
        decision = prediction.decision
        withheld = decision.withheld if decision is not None else ""
        while len(self.bars) < len(prediction.scores):
            bar = ProbabilityBar()
            self.bars.append(bar)
            self.bars_layout.addWidget(bar)
        for bar, score in zip(self.bars, prediction.scores):
            bar.set_score(score.name, score.probability, score.threshold, score.flagged,
                          score.method)
            bar.setVisible(not withheld)
        for bar in self.bars[len(prediction.scores):]:
            bar.hide()
        self.scope_label.setVisible(bool(withheld))
        self.read_anyway_button.setVisible(bool(withheld))
        if withheld:  # the sentence says it is not read as a finding, and why
            self.scope_label.setText(withheld)
            self.finding_label.setText("Not read as a finding.")
        else:
            self.finding_label.setText(finding_text(prediction))
            style = f"font-weight: bold; color: {FLAG_COLOUR.name()};" if prediction.flagged \
                else ("font-weight: bold;" if any(s.threshold is not None
                                                  for s in prediction.scores) else "")
            self.finding_label.setStyleSheet(style)
        self.finding_label.setVisible(not withheld)
        self.ood_label.setText(ood_text(prediction))
        self.ood_label.setStyleSheet(WARNING_STYLE if prediction.ood else "color: #a0a0a0;")
        self.ood_label.setVisible(not withheld)
        frame = f", frame {prediction.frame + 1}" if prediction.frame else ""
        site = (f"; operating points: {prediction.operating_points_source}"
                if prediction.operating_points_source != "card" else "")
        self.timing_label.setText(f"Inference {prediction.inference_ms:.1f} ms on "
                                  f"{provider_name(prediction.provider)}{frame}{site}")
        self.timing_label.show()
        # A long file name cannot wrap and would push the numbers out of the panel.
        shown = image_name if len(image_name) <= 40 else f"{image_name[:19]}…{image_name[-19:]}"
        self.show_status(f"Result for {shown}" if image_name else "", error=False)
        self.status_label.setToolTip(image_name)
        names = [s.name for s in prediction.scores]
        if [self.class_combo.itemText(i) for i in range(self.class_combo.count())] != names:
            self.class_combo.blockSignals(True)
            self.class_combo.clear()
            self.class_combo.addItems(names)
            self.class_combo.blockSignals(False)

    def visible_bars(self) -> list[ProbabilityBar]:
        return [bar for bar in self.bars if not bar.isHidden()]

    # ------------------------------------------------------------ saliency
    def set_saliency_progress(self, progress: Progress | None, running: bool) -> None:
        self.saliency_progress.setVisible(running)
        self.saliency_cancel.setVisible(running)
        if progress is not None and progress.total:
            self.saliency_progress.setRange(0, progress.total)
            self.saliency_progress.setValue(progress.done)
            self.saliency_progress.setFormat(progress.message or "%p %")
        elif running:
            self.saliency_progress.setRange(0, 0)
