"""The PDF report of an AI read, for the command line (``medviewer report``) and the GUI.

Qt-free: the PDF is drawn with reportlab (BSD-licensed, pure Python, widely used for PDFs),
because Qt's own PDF writer may only be used inside ``gui/`` and the command line must work
without a display. Three steps, each usable alone:

* :func:`report_content` gathers what the report says from an opened image, its
  :class:`~medviewer.inference.predict.Prediction`, the model card and (optionally) the
  saliency map and the reader's labels; ``deidentify`` leaves out everything that names the
  patient or the study.
* :func:`write_report_pdf` draws that content (A4) and writes the file atomically.
* :func:`report_job` does both from a file name and a model (a job generator: the GUI runs it
  on a worker, the command line with ``run_to_end``), with the saliency map from the same
  forward pass (CAM) where the model has one.

:func:`findings_from_prediction` is the one place that reads the prediction's decisions, so a
change in how predictions express them is adapted here only.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import numpy as np

from medviewer import __version__
from medviewer.errors import UserError
from medviewer.jobs import CancelFlag, Progress

if TYPE_CHECKING:
    from medviewer.dicom.reader import Instance
    from medviewer.inference.predict import Prediction
    from medviewer.inference.registry import ModelCard, ModelEntry
    from medviewer.inference.runtime import ModelSession
    from medviewer.inference.saliency import SaliencyMap

log = logging.getLogger(__name__)

SALIENCY_CHOICES = ("auto", "cam", "occlusion", "none")
MAX_IMAGE_SIDE = 1200  # pixels kept per image in the PDF: sharp at print size, small file
DISCLAIMER = (
    "This report shows the output of a computer model. It is meant to support a qualified "
    "reader, never to replace one: the model can be wrong, it has only been evaluated as its "
    "model card describes, and every decision about a patient rests with the clinician. "
    "MedViewer and the models it ships are demonstration software, not medical devices, and "
    "are not for clinical use.")
DEIDENTIFIED_NOTE = (
    "De-identified: names, identifiers, dates, the institution and the file name are left out. "
    "Text burned into the image's pixels, if any, is not removed, and the reader's note is "
    "printed as written.")


class ReportError(UserError):
    """A report that cannot be made or written; ``str()`` is one sentence."""


# ---------------------------------------------------------------- what the report says


@dataclass(frozen=True)
class Finding:
    """One class of the model's output as the report shows it."""

    name: str
    probability: float
    threshold: float | None  # the operating point; None where the card has none
    decision: str  # 'Flagged', 'Not flagged', 'No operating point' or not read (scope)
    method: str = ""  # how the operating point was chosen


def findings_from_prediction(prediction: Prediction) -> list[Finding]:
    """The report's findings from a Prediction: the only function that reads its decisions."""
    findings = []
    withheld = prediction.decision.withheld if prediction.decision is not None else ""
    for score in prediction.scores:
        if withheld:
            decision = "Not read: outside intended use"
        elif score.threshold is None:
            decision = "No operating point"
        else:
            decision = "Flagged" if score.flagged else "Not flagged"
        findings.append(Finding(score.name, float(score.probability), score.threshold, decision,
                                score.method))
    return findings


@dataclass(frozen=True)
class ReaderLabel:
    """A reader's decision on the image in one label set."""

    label_set: str
    reader: str
    classes: tuple[str, ...]
    note: str = ""
    labelled_at: str = ""


@dataclass
class ReportContent:
    title: str
    identification: list[tuple[str, str]]  # (field, value), in order
    deidentified: bool
    reference: str  # a pseudonymous reference to the image (no patient data)
    display: np.ndarray  # the image as displayed: uint8 grey [rows, cols] or RGB
    overlay: np.ndarray | None  # the image with the saliency map blended on (RGB), if any
    saliency_caption: str
    findings: list[Finding]
    model: list[tuple[str, str]]  # (field, value): name, version, SHA-256, provider...
    intended_use: str
    limitations: str
    reader_labels: list[ReaderLabel]
    reader_label_note: str  # said when there is no reader label
    created: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    notes: list[str] = field(default_factory=list)


def _text(header: Any, keyword: str) -> str:
    value = header.get(keyword, "") if header is not None else ""
    return str(value or "").strip()


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() \
        else value


def _time(value: str) -> str:
    digits = value.split(".")[0]
    return f"{digits[:2]}:{digits[2:4]}" if len(digits) >= 4 and digits.isdigit() else value


def _person(value: Any) -> str:
    """A DICOM person name as 'Family, Given Middle' (the raw text if it has no parts)."""
    family = getattr(value, "family_name", "") or ""
    given = " ".join(p for p in (getattr(value, "given_name", ""),
                                 getattr(value, "middle_name", "")) if p)
    if family and given:
        return f"{family}, {given}"
    return str(value or "").replace("^", " ").strip()


def identification_rows(instance: Instance, deidentify: bool) -> list[tuple[str, str]]:
    """Who and what the image is: patient, study and image rows (only the image's kind when
    ``deidentify``). Empty values are left out."""
    header = instance.header
    image_rows = [
        ("Modality", _text(header, "Modality")),
        ("Body part", _text(header, "BodyPartExamined")),
        ("View", _text(header, "ViewPosition")),
        ("Laterality", _text(header, "ImageLaterality") or _text(header, "Laterality")),
        ("Image size", f"{instance.columns} x {instance.rows} pixels"),
    ]
    if deidentify:
        rows = [("Patient", "De-identified")] + image_rows
    elif instance.content_hash:  # a plain PNG/JPEG: its header is made up, not the patient's
        rows = [("Patient", "Not recorded (a plain image file carries no patient data)"),
                ("File", Path(instance.path).name)] + image_rows[4:]
    else:
        birth = _date(_text(header, "PatientBirthDate"))
        age = _text(header, "PatientAge")
        study_when = " ".join(p for p in (_date(_text(header, "StudyDate")),
                                          _time(_text(header, "StudyTime"))) if p)
        series = _text(header, "SeriesNumber")
        number = _text(header, "InstanceNumber")
        rows = [
            ("Patient", _person(header.get("PatientName", ""))),
            ("Patient ID", _text(header, "PatientID")),
            ("Birth date", birth + (f" (age {age})" if age else "")),
            ("Sex", _text(header, "PatientSex")),
            ("Study", " - ".join(p for p in (study_when, _text(header, "StudyDescription"))
                                 if p)),
            ("Accession no.", _text(header, "AccessionNumber")),
            ("Institution", _text(header, "InstitutionName")),
            ("Referring physician", _person(header.get("ReferringPhysicianName", ""))),
            *image_rows[:4],
            ("Series / image", f"{series or '-'} / {number or '-'}" if series or number else ""),
            image_rows[4],
            ("SOP Instance UID", instance.sop_instance_uid),
            ("File", Path(instance.path).name),
        ]
    return [(name, value) for name, value in rows if value]


def image_reference(prediction: Prediction) -> str:
    """A short reference that finds the image again for whoever has it, and names no one:
    the first 16 hex digits of the SHA-256 of its UID (or content hash)."""
    return hashlib.sha256(prediction.input_uid.encode("utf-8")).hexdigest()[:16]


def model_rows(card: ModelCard, prediction: Prediction) -> list[tuple[str, str]]:
    rows = [("Model", card.name), ("Version", card.version), ("SHA-256", card.sha256),
            ("Ran on", prediction.provider),
            ("Inference time", f"{prediction.inference_ms:.0f} ms")]
    if card.created:
        rows.append(("Created", card.created))
    if card.description:
        rows.append(("Description", card.description))
    return rows


def report_content(instance: Instance, prediction: Prediction, card: ModelCard,
                   saliency: SaliencyMap | None = None, *, frame: int = 0,
                   deidentify: bool = False, reader_labels: Sequence[ReaderLabel] = (),
                   reader: str = "", opacity: float = 0.45) -> ReportContent:
    """Everything the report says about one AI read, ready for :func:`write_report_pdf`.

    ``reader`` names the reader whose labels were looked for (for the sentence shown when
    there are none).
    """
    from medviewer.inference.saliency import blend_overlay

    if not prediction.ok:
        raise ReportError(f"No report can be made for {instance.path}: {prediction.error}")
    display = np.ascontiguousarray(instance.display_frame(frame))
    overlay = None
    if saliency is not None:
        overlay = blend_overlay(display, saliency.values, opacity)
        how = ("class activation map, from the same forward pass as the probabilities"
               if saliency.method == "cam" else
               f"occlusion sensitivity, {saliency.forward_passes} forward passes")
        caption = f"Saliency for {saliency.class_name} ({how}); blue is low, red is high."
    else:
        caption = "No saliency map was made for this report."
    if reader_labels:
        reader_note = ""
    elif reader:
        reader_note = f"No label by {reader} is recorded for this image."
    else:
        reader_note = "No reader label was given for this image."
    notes = [DEIDENTIFIED_NOTE] if deidentify else []
    if deidentify:  # when a label was given is a date about the patient's care
        reader_labels = [replace(label, labelled_at="") for label in reader_labels]
    if not deidentify and _text(instance.header, "BurnedInAnnotation").upper() == "YES":
        notes.append("The image has text burned into its pixels (Burned In Annotation: YES).")
    return ReportContent(
        title="AI read report",
        identification=identification_rows(instance, deidentify),
        deidentified=deidentify,
        reference=image_reference(prediction),
        display=display, overlay=overlay, saliency_caption=caption,
        findings=findings_from_prediction(prediction),
        model=model_rows(card, prediction),
        intended_use=card.intended_use or "Not stated in the model card.",
        limitations=card.limitations or "Not stated in the model card.",
        reader_labels=list(reader_labels), reader_label_note=reader_note, notes=notes)


# ---------------------------------------------------------------- the reader's labels


def reader_labels_for(instance: Instance, reader: str, label_set: str | None = None,
                      store_path: str | os.PathLike | None = None) -> list[ReaderLabel]:
    """The reader's labels on this image in the label store (one label set, or every set).

    No store file yet means no labels; the store is never created here.
    """
    from medviewer.labels.store import ImageRef, LabelStore, default_store_path

    path = Path(store_path) if store_path is not None else default_store_path()
    if not path.is_file():
        if label_set:
            raise ReportError(f"There is no label store at {path}, so label set "
                              f"'{label_set}' cannot be read.")
        return []
    key = ImageRef.from_instance(instance).key
    with LabelStore(path, reader=reader) as store:
        names = [label_set] if label_set else [s.name for s in store.label_sets()]
        found = []
        for name in names:
            label = store.label_for(name, key, reader)  # an unknown set raises its sentence
            if label is not None:
                found.append(ReaderLabel(name, label.reader, tuple(label.classes),
                                         label.note or "", label.labelled_at))
    return found


# ---------------------------------------------------------------- the PDF


def _font_names() -> tuple[str, str, str]:
    """(regular, bold, monospace): DejaVu where the system has it, as it covers most
    scripts patient names are written in; else the PDF's built-in Helvetica."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if "MedViewerSans" in pdfmetrics.getRegisteredFontNames():
        return "MedViewerSans", "MedViewerSans-Bold", "MedViewerMono"
    folders = [Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/TTF"),
               Path("/usr/share/fonts/dejavu"), Path(os.environ.get("WINDIR", "C:/Windows"))
               / "Fonts", Path("/Library/Fonts")]
    wanted = {"MedViewerSans": "DejaVuSans.ttf", "MedViewerSans-Bold": "DejaVuSans-Bold.ttf",
              "MedViewerMono": "DejaVuSansMono.ttf"}
    for folder in folders:
        files = {name: folder / file for name, file in wanted.items()}
        if all(path.is_file() for path in files.values()):
            try:
                for name, path in files.items():
                    pdfmetrics.registerFont(TTFont(name, str(path)))
            except Exception as exc:  # noqa: BLE001 - a damaged font file: use the built-in
                log.debug("Font %s not usable: %s", folder, exc)
                continue
            return "MedViewerSans", "MedViewerSans-Bold", "MedViewerMono"
    return "Helvetica", "Helvetica-Bold", "Courier"


def _png(array: np.ndarray) -> io.BytesIO:
    from PIL import Image

    image = Image.fromarray(array)
    longest = max(image.size)
    if longest > MAX_IMAGE_SIDE:
        scale = MAX_IMAGE_SIDE / longest
        image = image.resize((max(1, round(image.width * scale)),
                              max(1, round(image.height * scale))), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    buffer.seek(0)
    return buffer


def _colour_bar(width: float, height: float) -> Any:
    """The saliency colour scale (the overlay's jet ramp), low to high, as a drawing."""
    from reportlab.graphics.shapes import Drawing, Rect
    from reportlab.lib.colors import Color

    from medviewer.inference.saliency import jet_colormap

    steps = 48
    drawing = Drawing(width, height)
    ramp = jet_colormap(np.linspace(0.0, 1.0, steps, dtype=np.float32))
    for i, (r, g, b) in enumerate(ramp.tolist()):
        drawing.add(Rect(i * width / steps, 0, width / steps + 0.5, height, strokeColor=None,
                         fillColor=Color(r / 255, g / 255, b / 255)))
    return drawing


def _format_probability(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "n/a"


def render_report_pdf(content: ReportContent) -> tuple[bytes, int]:
    """The PDF's bytes and its number of pages."""
    from reportlab.lib import colors
    from reportlab.lib.enums import TA_CENTER
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.pdfgen.canvas import Canvas
    from reportlab.platypus import (
        Image,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    regular, bold, mono = _font_names()
    base = ParagraphStyle("base", fontName=regular, fontSize=9.5, leading=12.5)
    small = ParagraphStyle("small", parent=base, fontSize=8, leading=10)
    caption = ParagraphStyle("caption", parent=small, alignment=TA_CENTER,
                             textColor=colors.HexColor("#444444"))
    heading = ParagraphStyle("heading", parent=base, fontName=bold, fontSize=11.5, leading=15,
                             spaceBefore=8, spaceAfter=3, keepWithNext=1)
    title = ParagraphStyle("title", parent=base, fontName=bold, fontSize=17, leading=21)
    code = ParagraphStyle("code", parent=base, fontName=mono, fontSize=8, leading=10.5)
    cell_bold = ParagraphStyle("cell_bold", parent=base, fontName=bold)

    def text(value: str, style: ParagraphStyle = base) -> Paragraph:
        return Paragraph(escape(value).replace("\n", "<br/>"), style)

    page_width = A4[0] - 36 * mm - 12  # the frame keeps 6 pt padding on each side
    grid = TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#cccccc")),
        ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
        ("LEFTPADDING", (0, 0), (-1, -1), 0)])

    def key_values(rows: list[tuple[str, str]], monospace: tuple[str, ...] = ()) -> Table:
        data = [[text(name, cell_bold), text(value, code if name in monospace else base)]
                for name, value in rows]
        table = Table(data, colWidths=[42 * mm, page_width - 42 * mm])
        table.setStyle(grid)
        return table

    def identification_grid(rows: list[tuple[str, str]]) -> Table:
        """Two key/value pairs per line; the long values (study, UID) get a line each."""
        wide = {"Study", "SOP Instance UID", "Patient", "Institution"}
        data: list[list[Any]] = []
        spans: list[tuple] = []
        pending: list[Any] = []
        for name, value in rows:
            cells = [text(name, cell_bold),
                     text(value, code if name == "SOP Instance UID" else base)]
            if name in wide:
                if pending:
                    data.append(pending + ["", ""])
                    pending = []
                spans.append(("SPAN", (1, len(data)), (3, len(data))))
                data.append(cells + ["", ""])
            elif pending:
                data.append(pending + cells)
                pending = []
            else:
                pending = cells
        if pending:
            data.append(pending + ["", ""])
        key = 36 * mm
        value = (page_width - 2 * key) / 2
        table = Table(data, colWidths=[key, value, key, value])
        table.setStyle(TableStyle([*grid.getCommands(), *spans]))
        return table

    created = content.created.astimezone(timezone.utc)
    # De-identified: the year only, since the day of a report can point to a patient's visit.
    made = (f"in {created:%Y}" if content.deidentified else f"on {created:%Y-%m-%d %H:%M} UTC")
    story: list[Any] = [
        text(content.title, title),
        text(f"Made with MedViewer {__version__} {made}. Image reference {content.reference}.",
             small),
        Spacer(1, 2 * mm),
        text("Patient and image", heading), identification_grid(content.identification)]
    for note in content.notes:
        story += [Spacer(1, 1.5 * mm), text(note, small)]

    header = [text(h, cell_bold) for h in ("Finding", "Probability", "Operating point",
                                             "Decision")]
    rows_out = [header]
    for finding in content.findings:
        point = ("none" if finding.threshold is None else
                 f"{finding.threshold:.3f}" + (f" ({finding.method})" if finding.method else ""))
        decision_style = cell_bold if finding.decision == "Flagged" else base
        rows_out.append([text(finding.name), text(_format_probability(finding.probability)),
                         text(point), text(finding.decision, decision_style)])
    findings = Table(rows_out, colWidths=[40 * mm, 26 * mm, page_width - 101 * mm, 35 * mm],
                     repeatRows=1)
    findings.setStyle(TableStyle([
        *grid.getCommands(),
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.black)]))
    story += [text("Findings", heading), findings, Spacer(1, 1 * mm),
              text("A finding is flagged when its probability is at or above the model's "
                   "operating point for it.", small)]

    story.append(text("Reader's label", heading))
    if content.reader_labels:
        story.append(key_values([
            (f"{label.label_set}", ", ".join(label.classes)
             + f" (by {label.reader}" + (f", {label.labelled_at[:16].replace('T', ' ')}"
                                         if label.labelled_at else "") + ")"
             + (f"\nNote: {label.note}" if label.note else ""))
            for label in content.reader_labels]))
    else:
        story.append(text(content.reader_label_note))

    # The image as displayed and the same with the saliency map, side by side.
    half = (page_width - 6 * mm) / 2
    rows, cols = content.display.shape[:2]
    box = min(half, 84 * mm)
    scale = min(box / cols, box / rows)
    size = (cols * scale, rows * scale)
    pictures: list[Any] = [Image(_png(content.display), *size)]
    captions: list[Any] = [text("The image as displayed (its default window).", caption)]
    if content.overlay is not None:
        pictures.append(Image(_png(content.overlay), *size))
        bar = Table([[text("low", caption), _colour_bar(half * 0.6, 3 * mm),
                      text("high", caption)]],
                    colWidths=[10 * mm, half * 0.6, 10 * mm])
        bar.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                                 ("LEFTPADDING", (0, 0), (-1, -1), 1),
                                 ("RIGHTPADDING", (0, 0), (-1, -1), 1)]))
        captions.append([text(content.saliency_caption, caption), bar])
    else:
        pictures.append(text(content.saliency_caption, caption))
        captions.append("")
    figure = Table([pictures, captions], colWidths=[half + 3 * mm, half + 3 * mm])
    figure.setStyle(TableStyle([("ALIGN", (0, 0), (-1, -1), "CENTER"),
                                ("VALIGN", (0, 0), (-1, 0), "MIDDLE"),
                                ("VALIGN", (0, 1), (-1, 1), "TOP")]))
    story += [text("Image and saliency", heading), figure]

    story += [text("Model", heading), key_values(content.model, monospace=("SHA-256",)),
              text("Intended use", heading), text(content.intended_use),
              text("Limitations", heading), text(content.limitations)]

    disclaimer = Table([[text(DISCLAIMER, base)]], colWidths=[page_width])
    disclaimer.setStyle(TableStyle([
        ("BOX", (0, 0), (-1, -1), 0.8, colors.HexColor("#9a3412")),
        ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#fff7ed")),
        ("LEFTPADDING", (0, 0), (-1, -1), 6), ("RIGHTPADDING", (0, 0), (-1, -1), 6),
        ("TOPPADDING", (0, 0), (-1, -1), 5), ("BOTTOMPADDING", (0, 0), (-1, -1), 6)]))
    story += [text("Disclaimer", heading), disclaimer]

    footer_text = (f"MedViewer AI read report - image reference {content.reference} - "
                   "not for clinical use")

    class NumberedCanvas(Canvas):
        """Holds each page until the end so the footer can say 'page N of M'."""

        pages_made = 0

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict] = []

        def showPage(self) -> None:  # noqa: N802 - reportlab's name
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self.setFont(regular, 7.5)
                self.setFillColor(colors.HexColor("#555555"))
                self.drawString(18 * mm, 10 * mm, footer_text)
                self.drawRightString(A4[0] - 18 * mm, 10 * mm,
                                     f"page {self._pageNumber} of {total}")
                super().showPage()
            NumberedCanvas.pages_made = total
            super().save()

    buffer = io.BytesIO()
    # No patient data in the document's properties: they travel unseen with the file.
    document = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm,
                                 topMargin=16 * mm, bottomMargin=18 * mm,
                                 title="MedViewer AI read report", author="MedViewer",
                                 subject=f"Image reference {content.reference}",
                                 creator=f"MedViewer {__version__}")
    document.build(story, canvasmaker=NumberedCanvas)
    return buffer.getvalue(), NumberedCanvas.pages_made


def write_report_pdf(content: ReportContent, output: str | os.PathLike) -> int:
    """Draw the report and write it to ``output`` atomically; returns the number of pages."""
    from medviewer.paths import write_atomically

    output = Path(output)
    if not output.parent.is_dir():
        raise ReportError(f"Cannot write {output}: the folder {output.parent} does not exist.")
    data, pages = render_report_pdf(content)
    try:
        write_atomically(output, data, private=False)
    except OSError as exc:
        raise ReportError(f"Cannot write {output}: {exc.strerror or exc}.") from None
    return pages


# ---------------------------------------------------------------- the job


@dataclass
class ReportRequest:
    image: Path
    model: ModelEntry | ModelSession
    output: Path
    deidentify: bool = False
    frame: int = 0
    saliency: str = "auto"  # auto: CAM where the model has it, else occlusion
    class_name: str | None = None  # the class the map explains (default: flagged, else top)
    opacity: float = 0.45
    device: str = "auto"
    reader: str = ""  # whose labels to include ('' : no labels looked up)
    label_set: str | None = None  # one label set, or every set when None
    reader_labels: list[ReaderLabel] | None = None  # given by the caller: no store lookup
    store_path: Path | None = None  # the label store to look in (default: the user's)


@dataclass
class ReportResult:
    output: Path
    pages: int
    prediction: Prediction
    saliency: SaliencyMap | None
    provider: str
    notice: str = ""


def report_job(request: ReportRequest, cancel: CancelFlag | None = None,
               ) -> Generator[Progress, None, ReportResult]:
    """Open the image, read it with the model, write the PDF; returns a :class:`ReportResult`."""
    from medviewer.dicom.reader import open_instance
    from medviewer.inference.predict import predict_instance
    from medviewer.inference.registry import ModelEntry
    from medviewer.inference.runtime import get_session
    from medviewer.inference.saliency import (
        explain_instance,
        flagged_first_index,
        occlusion_job,
    )

    cancel = cancel or CancelFlag()
    if request.saliency not in SALIENCY_CHOICES:
        raise ReportError(f"Unknown saliency choice '{request.saliency}' (choose one of "
                          f"{', '.join(SALIENCY_CHOICES)}).")
    total = 4
    yield Progress(0, total, f"Opening {Path(request.image).name}")
    instance = open_instance(request.image)
    if not 0 <= request.frame < instance.n_frames:
        raise ReportError(f"Cannot report on {request.image}: it has {instance.n_frames} "
                          f"frame(s), so there is no frame {request.frame + 1}.")
    model = request.model
    if isinstance(model, ModelEntry):
        yield Progress(1, total, f"Loading model {model.key}")
        model = get_session(model, request.device)
    cancel.raise_if_cancelled()
    method = request.saliency
    if method == "auto":
        method = "cam" if model.has_cam else "occlusion"
    if method == "cam" and not model.has_cam:
        raise ReportError(f"Model '{model.card.name}' has no class activation map output; "
                          "choose occlusion saliency or none.")
    yield Progress(2, total, "Reading the image with the model")
    saliency = None
    if method == "cam":
        prediction, saliency = explain_instance(model, instance, request.class_name,
                                                request.frame)
    else:
        prediction = predict_instance(model, instance, request.frame)
        if method == "occlusion":
            explained = request.class_name or flagged_first_index(prediction)
            saliency = yield from occlusion_job(model, instance, class_name=explained,
                                                frame=request.frame, cancel=cancel)
    cancel.raise_if_cancelled()
    labels = request.reader_labels
    if labels is None:
        labels = (reader_labels_for(instance, request.reader, request.label_set,
                                    request.store_path) if request.reader else [])
    yield Progress(3, total, "Writing the PDF")
    content = report_content(instance, prediction, model.card, saliency, frame=request.frame,
                             deidentify=request.deidentify, reader_labels=labels,
                             reader=request.reader, opacity=request.opacity)
    pages = write_report_pdf(content, request.output)
    yield Progress(total, total, f"Wrote {Path(request.output).name}")
    return ReportResult(Path(request.output), pages, prediction, saliency, model.provider,
                        getattr(model, "notice", ""))
