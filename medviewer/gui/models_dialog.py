"""Models > Manage models and Model information: the installed models and their model cards.

The card is shown as the registry reads it (``medviewer.inference.registry.ModelCard``): name,
version, classes with their operating points (and any the site adopted), intended use in
words and as checked on every read, the out-of-distribution check and calibration, test
figures with the sentences that explain where validation and test disagree, the site's local
validations, training data and test metrics. A card whose intended use says it is a
demonstration or not for clinical use gets a banner saying so, above everything else.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QTextOption
from PySide6.QtWidgets import (
    QAbstractItemView, QDialog, QDialogButtonBox, QHBoxLayout, QHeaderView, QLabel,
    QPushButton, QSplitter, QTableWidget, QTableWidgetItem, QTextBrowser, QVBoxLayout, QWidget,
)

from medviewer.app.training_export import model_origin
from medviewer.gui.widgets import bracketed_interval

if TYPE_CHECKING:
    from medviewer.app.validation import ValidationReport
    from medviewer.inference.registry import ModelCard, ModelEntry, ScanProblem

DEMO_BANNER = "Demo model, not for clinical use."
# Wording in a card that marks a model as unfit for clinical decisions.
_NOT_CLINICAL = re.compile(
    r"not\s+for\s+(clinical|diagnos)|never\s+be\s+used\s+for\s+diagnos|\bdemo(nstration)?\b"
    r"|research\s+(and\s+teaching\s+)?(use\s+)?only|not\s+(a\s+)?medical\s+device",
    re.IGNORECASE)
_MAX_ITEMS = 60  # rows of free-form training/metrics detail shown before "…"


def not_for_clinical_use(card: ModelCard) -> bool:
    """Whether the card says the model is a demo / not for clinical use."""
    text = " ".join((card.intended_use, card.limitations, card.description))
    return bool(_NOT_CLINICAL.search(text))


def _number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def flatten(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested dicts/lists -> ('a › b', 'value') rows for the free-form card sections."""
    rows: list[tuple[str, str]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            label = f"{prefix} › {key}" if prefix else str(key)
            rows.extend(flatten(value, label))
    elif isinstance(data, list) and data and all(isinstance(v, (int, float, str)) for v in data):
        rows.append((prefix, ", ".join(_number(v) for v in data[:12])
                     + (" …" if len(data) > 12 else "")))
    elif isinstance(data, list):
        for index, value in enumerate(data[:12]):
            rows.extend(flatten(value, f"{prefix}[{index}]"))
    else:
        rows.append((prefix, _number(data)))
    return rows


def _table(rows: Iterable[tuple[str, ...]], header: tuple[str, ...] | None = None) -> str:
    out = ['<table cellspacing="0" cellpadding="3" width="99%">']
    if header:
        out.append("<tr>" + "".join(f'<th align="left">{html.escape(h)}</th>' for h in header)
                   + "</tr>")
    for count, row in enumerate(rows):
        if count == _MAX_ITEMS:
            out.append(f'<tr><td colspan="{len(row)}">…</td></tr>')
            break
        out.append("<tr>" + "".join(
            f'<td valign="top">{html.escape(str(cell))}</td>' for cell in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def headline_test_figures(card: ModelCard) -> list[str]:
    """The card's headline test figures in sentences, each with its interval when the card
    has one; [] when the card reports none. Its metrics are free-form: anything unexpected
    is left to the full table further down."""
    def mapping(value: Any) -> dict:
        return value if isinstance(value, dict) else {}

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    metrics = mapping(card.metrics)
    aurocs, intervals = mapping(metrics.get("auroc")), mapping(metrics.get("intervals"))
    points = mapping(metrics.get("operating_points"))

    def bracket(figure: str, name: str) -> str:
        return bracketed_interval(mapping(intervals.get(figure)).get(name))

    flagged = [name for name in card.classes if card.operating_point(name) is not None]
    shown = [name for name in flagged or card.classes if number(aurocs.get(name))]
    if not shown:
        return []
    notes = [f"{metrics['n']:,} images"] if number(metrics.get("n")) else []
    if number(intervals.get("level")):
        notes.append(f"{intervals['level']:.0%} intervals in brackets")
    lines = [f"Test set{' (' + '; '.join(notes) + ')' if notes else ''}: AUROC "
             + ", ".join(f"{name} {aurocs[name]:.3f}{bracket('auroc', name)}"
                         for name in shown) + "."]
    for name in flagged:
        point = mapping(points.get(name))
        if all(number(point.get(k)) for k in ("threshold", "sensitivity", "specificity")):
            lines.append(f"{name} at threshold {point['threshold']:.3f}: sensitivity "
                         f"{point['sensitivity']:.3f}{bracket('sensitivity', name)}, "
                         f"specificity {point['specificity']:.3f}"
                         f"{bracket('specificity', name)}.")
    return lines


def validation_test_differences(card: ModelCard) -> list[str]:
    """Sentences for each figure whose validation value lies outside the test figure's 95 %
    interval (e.g. the shipped model's specificity: 0.99 on validation, 0.61 on test)."""
    def mapping(value: Any) -> dict:
        return value if isinstance(value, dict) else {}

    metrics = mapping(card.metrics)
    intervals = mapping(metrics.get("intervals"))
    lines = []
    for name, point in card.operating_points.items():
        for figure in ("sensitivity", "specificity"):
            validation = point.metrics.get(f"val_{figure}")
            test = point.metrics.get(f"test_{figure}")
            bounds = mapping(intervals.get(figure)).get(name)
            if not (isinstance(validation, (int, float)) and isinstance(test, (int, float))
                    and isinstance(bounds, list) and len(bounds) == 2):
                continue
            low, high = bounds
            if low <= validation <= high:
                continue
            direction = "lower" if test < validation else "higher"
            lines.append(
                f"{name}: the {figure} at the operating point was {validation:.2f} on the "
                f"validation images but {test:.2f} [{low:.2f}-{high:.2f}] on the test set, "
                f"{direction} and outside the test figure's 95 % interval, so the difference "
                "is not chance. The validation images were split off the training images "
                "(same source, same selection); the test set was gathered apart and differs "
                "from them. Expect figures nearer the test set's on new images, and check "
                "the model on your own labelled images before relying on it.")
    val_auroc = mapping(mapping(card.training.get("val_metrics")).get("auroc"))
    test_auroc = mapping(metrics.get("auroc"))
    for name in card.operating_points:
        bounds = mapping(intervals.get("auroc")).get(name)
        value, test = val_auroc.get(name), test_auroc.get(name)
        if (isinstance(value, (int, float)) and isinstance(test, (int, float))
                and isinstance(bounds, list) and len(bounds) == 2
                and not bounds[0] <= value <= bounds[1]):
            lines.append(f"{name}: AUROC {value:.3f} on validation, {test:.3f} "
                         f"[{bounds[0]:.3f}-{bounds[1]:.3f}] on the test set: the validation "
                         "figure is outside the test interval.")
    return lines


def scope_rows(card: ModelCard) -> list[tuple[str, str]]:
    """The machine-readable intended use, one row per check a read goes through."""
    scope = card.intended_scope
    if scope is None:
        return []

    def listed(values: list[str]) -> str:
        return ", ".join(values) if values else "any"

    ages = (f"{scope.patient_age_years[0]:g} to {scope.patient_age_years[1]:g} years"
            if scope.patient_age_years else "any")
    if scope.age_source and scope.patient_age_years:
        ages += f" ({scope.age_source})"
    return [("Modalities", listed(scope.modalities)), ("Body parts", listed(scope.body_parts)),
            ("Views", listed(scope.views)), ("Patient age", ages),
            ("Smallest side", f"{scope.minimum_size} pixels" if scope.minimum_size else "any"),
            ("Pixels", listed(scope.photometric))]


def checks_lines(card: ModelCard) -> list[str]:
    """Calibration and out-of-distribution status, in sentences."""
    lines = []
    if card.calibration is None:
        lines.append("Probabilities are the model's own: it carries no calibration.")
    else:
        cal = card.calibration
        text = (f"Probabilities are calibrated by temperature scaling (T = "
                f"{cal.temperature:.3g}, fitted on the {cal.fitted_on or 'validation split'}).")
        figures = cal.figures if isinstance(cal.figures, dict) else {}
        parts = []
        for split in ("validation", "test"):
            before = figures.get("before", {}).get(split)
            after = figures.get("after", {}).get(split)
            if isinstance(before, dict) and isinstance(after, dict):
                parts.append(f"{split}: ECE {before.get('ece', float('nan')):.3f} -> "
                             f"{after.get('ece', float('nan')):.3f}, Brier "
                             f"{before.get('brier', float('nan')):.3f} -> "
                             f"{after.get('brier', float('nan')):.3f}")
        if parts:
            text += " Before -> after: " + "; ".join(parts) + "."
        test_before = figures.get("before", {}).get("test", {})
        test_after = figures.get("after", {}).get("test", {})
        if (isinstance(test_before, dict) and isinstance(test_after, dict)
                and test_after.get("ece", 0) > test_before.get("ece", 0)):
            text += (" On the test set the calibration got worse: the scaling fitted the "
                     "validation images, which this model finds easier than the test images.")
        lines.append(text)
    if card.ood is None:
        lines.append("No out-of-distribution check is available for this model: unusual "
                     "images are not recognised.")
    else:
        measured = card.ood.detail.get("measured", {})
        text = ("Every read gets an out-of-distribution score from the same forward pass; "
                f"above {card.ood.threshold:.3g} the image is shown as unusual for this model "
                f"({card.ood.detail.get('threshold_rule', '')}).")
        if measured:
            text += (f" Measured: {measured.get('kermany_test_flagged_unusual', 0):.1%} of "
                     f"the test images and {measured.get('out_of_scope_flagged_unusual', 0):.0%}"
                     f" of {measured.get('out_of_scope_images', '?')} out-of-scope images were "
                     "flagged unusual.")
        lines.append(text)
    return lines


def validations_html(validations: list[ValidationReport], site_points: dict[str, Any]) -> str:
    """The site's local validations of this model file and any operating point adopted."""
    esc = html.escape
    parts = []
    adopted = site_points.get("points", {}) if isinstance(site_points, dict) else {}
    for name, point in adopted.items():
        parts.append(f"<p><b>Site operating point in force:</b> {esc(name)} at "
                     f"{float(point.get('threshold', 0)):.3f} ({esc(point.get('method', ''))}, "
                     f"{esc(str(point.get('adopted_at', '')))}); the card says "
                     f"{point.get('card_threshold')}.</p>")
    if not validations:
        parts.append("<p><i>None yet. Models &gt; Evaluate on labelled images… checks this "
                     "model on your own images.</i></p>")
        return "".join(parts)
    rows = []
    for report in validations[:_MAX_ITEMS]:
        for name, figures in report.findings.items():
            auroc = figures.get("auroc", {})
            at = figures.get("at_card_point") or {}
            sens = at.get("sensitivity", {}).get("value")
            spec = at.get("specificity", {}).get("value")
            rows.append((
                report.created[:16].replace("T", " "), report.id, f"{report.read}", name,
                (f"{auroc['value']:.3f}{bracketed_interval(auroc.get('interval'))}"
                 if auroc.get("value") is not None else "—"),
                (f"{sens:.2f} / {spec:.2f}" if sens is not None and spec is not None else "—"),
                (f"{report.ood['fraction_unusual']:.0%}"
                 if report.ood.get("fraction_unusual") is not None else "no check")))
    parts.append(_table(rows, ("Date (UTC)", "Record", "Images", "Finding", "AUROC",
                               "Sens. / spec. at card point", "Unusual")))
    return "".join(parts)


def card_html(entry: ModelEntry, provider: str = "",
              validations: list[ValidationReport] | None = None,
              site_points: dict[str, Any] | None = None) -> str:
    """The model card as rich text for a QTextBrowser."""
    card = entry.card
    esc = html.escape
    parts = [f"<h2>{esc(card.name)} <small>version {esc(card.version)}</small></h2>"]
    if not_for_clinical_use(card):
        parts.append('<p style="background:#7a2323; color:#ffffff; padding:6px; '
                     f'font-weight:bold;">&#9888; {DEMO_BANNER}</p>')
    if card.description:
        parts.append(f"<p>{esc(card.description)}</p>")
    parts.append("<h3>Intended use</h3>")
    parts.append(f"<p>{esc(card.intended_use) or '<i>not stated in the card</i>'}</p>")
    scope = scope_rows(card)
    if scope:
        parts.append("<p>Checked on every read (an image outside this is not shown as a "
                     "finding unless the reader chooses to read it anyway):</p>")
        parts.append(_table(scope))
    else:
        parts.append("<p><i>The card states no machine-readable intended use: images are not "
                     "checked against it.</i></p>")
    if card.limitations:
        parts.append(f"<h3>Limitations</h3><p>{esc(card.limitations)}</p>")

    parts.append("<h3>Checks on every answer</h3>")
    parts.extend(f"<p>{esc(line)}</p>" for line in checks_lines(card))

    parts.append("<h3>Classes and operating points</h3>")
    rows = []
    for name in card.classes:
        op = card.operating_point(name)
        if op is None:
            offered = (" (offered when nothing is flagged)" if name == card.no_finding_class
                       else "")
            rows.append((name, "—", f"no operating point: shown, never flagged{offered}", ""))
        else:
            detail = ", ".join(f"{k} {_number(v)}" for k, v in op.metrics.items())
            rows.append((name, f"{op.threshold:.3f}", op.method or "—", detail))
    parts.append(_table(rows, ("Class", "Threshold", "Chosen by", "At the threshold")))
    task = ("one class per image (multiclass)" if card.task == "multiclass"
            else "independent findings (multilabel)")
    parts.append(f"<p>Task: {esc(task)}.</p>")
    tested = headline_test_figures(card)
    if tested:
        parts.append("<h3>On the test set</h3>")
        parts.extend(f"<p>{esc(line)}</p>" for line in tested)
    differences = validation_test_differences(card)
    if differences:
        parts.append("<h3>Validation and test disagree</h3>")
        parts.extend(f'<p style="color:#ffcf70;">{esc(line)}</p>' for line in differences)
    if validations is not None:
        parts.append("<h3>Local validations at this site</h3>")
        parts.append(validations_html(validations, site_points or {}))

    parts.append("<h3>Training data</h3>")
    training = flatten(card.training)
    parts.append(_table(training) if training else "<p><i>not stated in the card</i></p>")
    parts.append("<h3>Test metrics</h3>")
    metrics = flatten(card.metrics)
    parts.append(_table(metrics) if metrics else "<p><i>not stated in the card</i></p>")

    prep = card.preprocessing
    window = (f", window C {prep.window.center:g} / W {prep.window.width:g}"
              if prep.window else "")
    parts.append("<h3>Input and outputs</h3>")
    parts.append(_table([
        ("Input", f"{card.input.channels} x {card.input.height} x {card.input.width} "
                  f"({card.input.name or 'first input'})"),
        ("Pixels", f"{prep.source}{window}, {prep.resize}, mean {prep.mean}, std {prep.std}"),
        ("Probabilities", f"output '{card.outputs.probabilities}', activation "
                          f"{card.outputs.activation}"),
        ("Saliency", "class activation maps from the same forward pass "
                     f"(output '{card.outputs.cam}')" if card.has_cam
         else "occlusion (no CAM output: many forward passes)"),
    ]))
    parts.append("<h3>File</h3>")
    file_rows = [("Source", model_origin(entry)), ("Model file", str(entry.onnx_path)),
                 ("SHA-256", card.sha256)]
    if card.created:
        file_rows.append(("Created", card.created))
    if provider:
        file_rows.append(("Runs on", provider))
    # Paragraphs, not a table: a long path or hash may then wrap anywhere.
    parts.extend(f"<p><b>{esc(label)}:</b> {esc(value)}</p>" for label, value in file_rows)
    return "\n".join(parts)


def local_records(entry: ModelEntry) -> tuple[list[ValidationReport], dict[str, Any]]:
    """This model file's local validations and adopted points (a few small JSON files, read
    when a card is shown; an unreadable one is left out rather than hiding the card)."""
    from medviewer.app.validation import list_validations
    from medviewer.errors import UserError
    from medviewer.inference.site_points import read_site_points

    try:
        site = read_site_points(entry.card)
    except UserError:
        site = {}
    if site.get("sha256") != entry.card.sha256:
        site = {}
    return list_validations(entry), site


class CardView(QTextBrowser):
    """A read-only, scrollable rendering of one model card."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelCardView")
        self.setOpenExternalLinks(False)
        # Long paths and hashes wrap inside the view instead of scrolling it sideways.
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.entry: ModelEntry | None = None

    def show_entry(self, entry: ModelEntry | None, provider: str = "") -> None:
        self.entry = entry
        if entry is None:
            self.setHtml("<p><i>No model selected.</i></p>")
        else:
            validations, site_points = local_records(entry)
            self.setHtml(card_html(entry, provider, validations, site_points))


class ModelInfoDialog(QDialog):
    """Models > Model information: the active model's card (non-modal)."""

    def __init__(self, entry: ModelEntry, provider: str = "",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelInfoDialog")
        self.setWindowTitle(f"Model information — {entry.name} {entry.version}")
        self.view = CardView()
        self.view.show_entry(entry, provider)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.view, 1)
        layout.addWidget(buttons)
        self.resize(640, 720)

    def text(self) -> str:
        return self.view.toPlainText()


class ModelsDialog(QDialog):
    """Models > Manage models: every installed model, its card, and Use / Import."""

    use_requested = Signal(str)  # model key (name@version)
    import_requested = Signal()

    COLUMNS = ("Name", "Version", "Source", "Classes", "Saliency", "In use")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelsDialog")
        self.setWindowTitle("AI models")
        self._entries: list[ModelEntry] = []
        self._active_key = ""
        self._provider = ""

        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setObjectName("modelsTable")
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.table.itemDoubleClicked.connect(lambda _item: self._use_selected())

        self.problems_label = QLabel()
        self.problems_label.setObjectName("modelProblems")
        self.problems_label.setWordWrap(True)
        self.problems_label.setStyleSheet("color: #ffcf70;")
        self.problems_label.hide()

        self.card_view = CardView()
        self.use_button = QPushButton("Use this model")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(self._use_selected)
        self.import_button = QPushButton("Import model…")
        self.import_button.clicked.connect(self.import_requested)
        close = QPushButton("Close")
        close.clicked.connect(self.close)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.table, 1)
        left_layout.addWidget(self.problems_label)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(self.card_view)
        splitter.setSizes([430, 520])
        buttons = QHBoxLayout()
        buttons.addWidget(self.import_button)
        buttons.addStretch(1)
        buttons.addWidget(self.use_button)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter, 1)
        layout.addLayout(buttons)
        self.resize(1000, 640)

    def set_entries(self, entries: list[ModelEntry], problems: list[ScanProblem] = (),
                    active_key: str = "", provider: str = "") -> None:
        selected = self.selected_entry()
        keep = selected.key if selected else active_key
        self._entries = list(entries)
        self._active_key = active_key
        self._provider = provider
        self.table.setRowCount(len(self._entries))
        for row, entry in enumerate(self._entries):
            card = entry.card
            cells = (card.name, card.version, model_origin(entry), ", ".join(card.classes),
                     "CAM" if card.has_cam else "occlusion",
                     "✓" if entry.key == active_key else "")
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(str(entry.onnx_path) if column == 0 else text)
                self.table.setItem(row, column, item)
        if problems:
            self.problems_label.setText("Not usable: " + " ".join(p.reason for p in problems))
        self.problems_label.setVisible(bool(problems))
        keys = [e.key for e in self._entries]
        if keep in keys:
            self.table.selectRow(keys.index(keep))
        elif self._entries:
            self.table.selectRow(0)
        else:
            self.card_view.setHtml("<p><i>No AI model is installed. Use <b>Import model…</b> "
                                   "to add an .onnx file and its model card.</i></p>")
        self._on_selection()  # the same row stays selected: refresh the card and buttons

    def entries(self) -> list[ModelEntry]:
        return list(self._entries)

    def selected_entry(self) -> ModelEntry | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows or rows[0].row() >= len(self._entries):
            return None
        return self._entries[rows[0].row()]

    def select_key(self, key: str) -> bool:
        for row, entry in enumerate(self._entries):
            if entry.key == key:
                self.table.selectRow(row)
                return True
        return False

    def _on_selection(self) -> None:
        entry = self.selected_entry()
        provider = self._provider if entry is not None and entry.key == self._active_key else ""
        self.card_view.show_entry(entry, provider)
        self.use_button.setEnabled(entry is not None and entry.key != self._active_key)

    def _use_selected(self) -> None:
        entry = self.selected_entry()
        if entry is not None:
            self.use_requested.emit(entry.key)
