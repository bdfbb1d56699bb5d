"""Results as DICOM objects a PACS keeps beside the images (written with highdicom).

- :func:`write_ai_report`: an AI read as a Comprehensive SR (TID 1500 measurement report):
  per class a measurement group with the probability, the operating point and the decision,
  the model (name, version, SHA-256) as algorithm identification and device observer, and a
  reference to the source image; in a new series of the source study.
- :func:`write_overlay_capture`: the saliency overlay as a Secondary Capture in that series.
- :func:`write_label_report`: one reader's labels and regions on one image (TID 1500 with
  planar ROIs: rectangles and polygons as closed polylines, ellipses as ELLIPSE).
- :func:`read_report`: any of these SRs back as plain values (tests, ``pacs`` tools).

Writers take plain values (paths, names, numbers), never GUI objects. Class names have no
standard code, so they are coded in MedViewer's private scheme ``99MDVWR`` (the meaning
carries the name); yes/no use SNOMED CT, units UCUM.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medviewer import __version__
from medviewer.errors import UserError

PRIVATE_SCHEME = "99MDVWR"
MANUFACTURER = "MedViewer"
AI_SERIES_NUMBER = 9900
LABEL_SERIES_NUMBER = 9901
_CODE_CHARS = re.compile(r"^[A-Za-z0-9_.\-]{1,16}$")


class SrError(UserError):
    """A report that cannot be written or read; the sentence names the file."""


@dataclass(frozen=True)
class Finding:
    """One class of an AI read."""

    name: str
    probability: float
    threshold: float | None = None  # the operating point; None where the model has none
    flagged: bool | None = None  # probability >= threshold
    method: str = ""  # how the operating point was chosen


@dataclass(frozen=True)
class ModelIdentity:
    name: str
    version: str
    sha256: str


@dataclass(frozen=True)
class RegionMark:
    """A reader's region in image pixels (x = column, y = row; 0,0 the top-left corner)."""

    class_name: str
    shape: str  # rectangle, ellipse or polygon
    x: float = 0.0
    y: float = 0.0
    width: float = 0.0
    height: float = 0.0
    points: tuple[tuple[float, float], ...] = ()
    frame: int = 0


@dataclass
class ReportValues:
    """What :func:`read_report` finds in an SR."""

    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    series_description: str
    observer: str
    algorithm: dict | None
    referenced_images: list[dict] = field(default_factory=list)
    findings: list[dict] = field(default_factory=list)
    regions: list[dict] = field(default_factory=list)


# ---------------------------------------------------------------- codes


def _hd():
    import highdicom

    return highdicom


def class_code(name: str):
    """A class name as a private code: the name itself when it fits a code value."""
    hd = _hd()
    value = name if _CODE_CHARS.match(name) else "C" + hashlib.sha1(name.encode()).hexdigest()[:15]
    return hd.sr.CodedConcept(value, PRIVATE_SCHEME, name[:64])


def _codes():
    hd = _hd()
    concept = hd.sr.CodedConcept
    return {
        "probability": concept("PROB", PRIVATE_SCHEME, "Probability"),
        "threshold": concept("OPPOINT", PRIVATE_SCHEME, "Operating point threshold"),
        "decision": concept("AIDECISION", PRIVATE_SCHEME, "Finding flagged at operating point"),
        "yes": concept("373066001", "SCT", "Yes"),
        "no": concept("373067005", "SCT", "No"),
        "unitless": concept("1", "UCUM", "no units"),
        "procedure": concept("18748-4", "LN", "Diagnostic imaging study"),
        "label": concept("READERLABEL", PRIVATE_SCHEME, "Reader's label"),
    }


def _read_source(source: Path):
    import pydicom

    try:
        ds = pydicom.dcmread(source, stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable source is one sentence
        raise SrError(f"Cannot read {source} as the source image of a report: {exc}.") \
            from None
    missing = [k for k in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID",
                           "SeriesInstanceUID") if not ds.get(k)]
    if missing:
        raise SrError(f"{source} cannot be referenced by a report: it has no "
                      f"{', '.join(missing)} (only DICOM images can).")
    return ds


def _frames(ds, frame: int) -> list[int] | None:
    return [frame + 1] if int(ds.get("NumberOfFrames", 1) or 1) > 1 else None


def _save(document, out_dir: Path, kind: str) -> Path:
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{kind}-{document.SOPInstanceUID}.dcm"
        document.save_as(path, enforce_file_format=True)
    except OSError as exc:
        raise SrError(f"Cannot write the {kind} report in {out_dir}: "
                      f"{exc.strerror or exc}.") from None
    return path


# ---------------------------------------------------------------- AI read


def write_ai_report(source: Path, findings: Sequence[Finding], model: ModelIdentity,
                    out_dir: Path, *, series_uid: str | None = None,
                    series_number: int = AI_SERIES_NUMBER, instance_number: int = 1) -> Path:
    """Write one AI read of ``source`` as a Comprehensive SR in ``out_dir``; returns its path.

    Give the same ``series_uid`` for every report of one run (and its overlays), so they form
    one new series in each source study.
    """
    hd = _hd()
    from pydicom.uid import generate_uid

    if not findings:
        raise SrError(f"There is no finding to report for {source}.")
    codes = _codes()
    ds = _read_source(Path(source))
    algorithm = hd.sr.AlgorithmIdentification(
        name=model.name, version=model.version or "unknown",
        parameters=[f"sha256={model.sha256}"], manufacturer=MANUFACTURER)
    groups = []
    for finding in findings:
        measurements = [hd.sr.Measurement(name=codes["probability"],
                                          value=float(finding.probability),
                                          unit=codes["unitless"], algorithm_id=algorithm)]
        evaluations = []
        if finding.threshold is not None:
            measurements.append(hd.sr.Measurement(
                name=codes["threshold"], value=float(finding.threshold),
                unit=codes["unitless"], algorithm_id=algorithm))
            evaluations.append(hd.sr.QualitativeEvaluation(
                codes["decision"], codes["yes"] if finding.flagged else codes["no"]))
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=generate_uid(), identifier=f"AI finding: {finding.name}"[:64]),
            finding_type=class_code(finding.name), algorithm_id=algorithm,
            measurements=measurements, qualitative_evaluations=evaluations or None,
            source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(ds)]))
    observer = hd.sr.ObserverContext(
        observer_type=hd.sr.CodedConcept("121007", "DCM", "Device"),
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=[model.sha256 or model.name]),
            name=model.name[:64], manufacturer_name=MANUFACTURER,
            model_name=f"{model.name} {model.version}"[:64]))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=None,
                                                     observer_device_context=observer),
        procedure_reported=codes["procedure"], imaging_measurements=groups)
    document = hd.sr.ComprehensiveSR(
        evidence=[ds], content=report[0], series_instance_uid=series_uid or generate_uid(),
        series_number=series_number, sop_instance_uid=generate_uid(),
        instance_number=instance_number, manufacturer=MANUFACTURER, is_complete=True,
        series_description=f"AI read: {model.name} {model.version}"[:64],
        software_versions=f"MedViewer {__version__}")
    return _save(document, out_dir, "ai-read")


def write_overlay_capture(source: Path, rgb: np.ndarray, out_dir: Path, *,
                          series_uid: str, series_number: int = AI_SERIES_NUMBER,
                          instance_number: int = 2, description: str = "AI saliency") -> Path:
    """The saliency overlay (an RGB uint8 image) as a Secondary Capture in the AI series."""
    hd = _hd()
    from pydicom.uid import generate_uid

    ds = _read_source(Path(source))
    pixels = np.ascontiguousarray(rgb, dtype=np.uint8)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise SrError(f"The overlay for {source} must be an RGB image.")
    capture = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=ds, pixel_array=pixels, photometric_interpretation="RGB",
        bits_allocated=8, coordinate_system="PATIENT", series_instance_uid=series_uid,
        series_number=series_number, sop_instance_uid=generate_uid(),
        instance_number=instance_number, manufacturer=MANUFACTURER,
        patient_orientation=("L", "P"), series_description=description[:64])
    capture.DerivationDescription = "Saliency map blended on the source image"[:1024]
    capture.SourceImageSequence = [_image_reference(ds)]
    return _save(capture, out_dir, "ai-overlay")


def _image_reference(ds):
    from pydicom.dataset import Dataset

    item = Dataset()
    item.ReferencedSOPClassUID = ds.SOPClassUID
    item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    return item


# ---------------------------------------------------------------- a reader's labels


def _region(mark: RegionMark, ds):
    hd = _hd()
    if mark.shape == "rectangle":
        x0, y0, x1, y1 = mark.x, mark.y, mark.x + mark.width, mark.y + mark.height
        points, kind = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)], "POLYLINE"
    elif mark.shape == "ellipse":
        cx, cy = mark.x + mark.width / 2, mark.y + mark.height / 2
        rx, ry = mark.width / 2, mark.height / 2
        # Major axis end points first, then the minor axis's.
        if rx >= ry:
            points = [(cx - rx, cy), (cx + rx, cy), (cx, cy - ry), (cx, cy + ry)]
        else:
            points = [(cx, cy - ry), (cx, cy + ry), (cx - rx, cy), (cx + rx, cy)]
        kind = "ELLIPSE"
    elif mark.shape == "polygon":
        points = [tuple(p) for p in mark.points]
        if points and points[0] != points[-1]:
            points.append(points[0])
        kind = "POLYLINE"
    else:
        raise SrError(f"The region shape '{mark.shape}' cannot be written to a report.")
    return hd.sr.ImageRegion(
        graphic_type=kind, graphic_data=np.asarray(points, dtype=float),
        source_image=hd.sr.SourceImageForRegion.from_source_image(
            ds, referenced_frame_numbers=_frames(ds, mark.frame)))


def write_label_report(source: Path, reader: str, label_set: str, classes: Sequence[str],
                       regions: Sequence[RegionMark], out_dir: Path, *,
                       series_uid: str | None = None, series_number: int = LABEL_SERIES_NUMBER,
                       instance_number: int = 1) -> Path:
    """One reader's image labels (``classes``) and regions on ``source`` as a TID 1500 SR."""
    hd = _hd()
    from pydicom.uid import generate_uid

    if not classes and not regions:
        raise SrError(f"{reader} has no label or region on {source} to report.")
    codes = _codes()
    ds = _read_source(Path(source))
    groups = []
    for name in classes:
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=generate_uid(), identifier=f"{label_set}: {name}"[:64]),
            finding_type=class_code(name), finding_category=codes["label"],
            source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(ds)]))
    for number, mark in enumerate(regions, start=1):
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=generate_uid(), identifier=f"{label_set}: region {number}"[:64]),
            referenced_region=_region(mark, ds), finding_type=class_code(mark.class_name)))
    person = hd.sr.ObserverContext(
        observer_type=hd.sr.CodedConcept("121006", "DCM", "Person"),
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
            name=_person_name(reader)))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=person),
        procedure_reported=codes["procedure"], imaging_measurements=groups)
    document = hd.sr.ComprehensiveSR(
        evidence=[ds], content=report[0], series_instance_uid=series_uid or generate_uid(),
        series_number=series_number, sop_instance_uid=generate_uid(),
        instance_number=instance_number, manufacturer=MANUFACTURER, is_complete=True,
        series_description=f"Labels: {label_set}"[:64],
        software_versions=f"MedViewer {__version__}")
    return _save(document, out_dir, "labels")


def _person_name(reader: str) -> str:
    """A reader's name as a DICOM person name; a one-word name gets the trailing caret that
    marks it as a family name on purpose."""
    name = reader.strip().replace("\\", "/")[:63]
    return name if "^" in name else name + "^"


# ---------------------------------------------------------------- reading back


def read_report(path: Path) -> ReportValues:
    """An SR written here, back as plain values (what a PACS viewer would show)."""
    hd = _hd()
    try:
        document = hd.sr.srread(path)
        report = document.content
        if not isinstance(report, hd.sr.MeasurementReport):
            report = hd.sr.MeasurementReport.from_sequence(document.ContentSequence)
    except Exception as exc:  # noqa: BLE001 - a foreign or damaged file is one sentence
        raise SrError(f"{path} is not a measurement report MedViewer can read: {exc}.") \
            from None
    observers = report.get_observer_contexts()
    observer = ""
    for context in observers:
        attributes = context.observer_identifying_attributes
        observer = str(getattr(attributes, "name", "") or observer).rstrip("^")
    values = ReportValues(
        path=Path(path), sop_class_uid=str(document.SOPClassUID),
        sop_instance_uid=str(document.SOPInstanceUID),
        study_uid=str(document.StudyInstanceUID), series_uid=str(document.SeriesInstanceUID),
        series_description=str(document.get("SeriesDescription", "")), observer=observer,
        algorithm=None)
    for evidence in document.get("CurrentRequestedProcedureEvidenceSequence", []):
        for series in evidence.ReferencedSeriesSequence:
            for item in series.ReferencedSOPSequence:
                values.referenced_images.append({
                    "study_uid": str(evidence.StudyInstanceUID),
                    "series_uid": str(series.SeriesInstanceUID),
                    "sop_class_uid": str(item.ReferencedSOPClassUID),
                    "sop_instance_uid": str(item.ReferencedSOPInstanceUID)})
    for group in report.get_image_measurement_groups():
        finding = {"name": group.finding_type.meaning if group.finding_type else "",
                   "tracking": group.tracking_identifier,
                   "sources": [str(s.referenced_sop_instance_uid) for s in group.source_images]}
        for measurement in group.get_measurements():
            key = {"PROB": "probability", "OPPOINT": "threshold"}.get(measurement.name.value)
            if key:
                finding[key] = float(measurement.value)
        for evaluation in group.get_qualitative_evaluations():
            if evaluation.name.value == "AIDECISION":
                finding["flagged"] = evaluation.value.value == "373066001"
        algorithm = _algorithm(group)
        if algorithm:
            values.algorithm = algorithm
        values.findings.append(finding)
    for group in report.get_planar_roi_measurement_groups():
        roi = group.roi
        values.regions.append({
            "class": group.finding_type.meaning if group.finding_type else "",
            "graphic_type": roi.graphic_type.value,
            "points": [tuple(float(v) for v in p) for p in roi.value],
            "sop_instance_uid": str(roi.ContentSequence[0].ReferencedSOPSequence[0]
                                    .ReferencedSOPInstanceUID)})
    return values


def _algorithm(group) -> dict | None:
    """TID 4019 (algorithm identification) among the group's own content items."""
    items = group[0].ContentSequence if len(group) == 1 and "ContentSequence" in group[0] \
        else group
    for item in items:
        if getattr(item, "ConceptNameCodeSequence", None) and \
                item.ConceptNameCodeSequence[0].CodeValue == "111001":  # Algorithm Name
            parameters = []
            version = ""
            for sibling in items:
                code = sibling.ConceptNameCodeSequence[0].CodeValue
                if code == "111003":  # Algorithm Version
                    version = str(sibling.TextValue)
                elif code == "111002":  # Algorithm Parameters
                    parameters.append(str(sibling.TextValue))
            return {"name": str(item.TextValue), "version": version, "parameters": parameters}
    return None
