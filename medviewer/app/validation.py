"""Local validation: a site checks a model on its own labelled images before relying on it.

``validation_job`` (a job generator: Progress events, a CancelFlag, returns a
:class:`ValidationReport`) reads every image with the model exactly as a read does (same
preprocessing, calibration, scope check and OOD score; nothing is published to the audit
log: these are not reads a reader saw) and reports, with 95 % intervals:

- AUROC per finding (stratified bootstrap, as the model card's);
- sensitivity, specificity, PPV and NPV at the card's operating point and at one the user
  sets (Wilson intervals);
- calibration: ECE and Brier score, reliability bins per finding;
- the share of images flagged unusual (OOD) and outside the intended use;
- the images it could not read, each with its sentence.

The report is kept as a record beside the model's other local data
(``site_points.validation_folder``); the card and its hash are never rewritten. A site may
adopt its own operating point from a record (:func:`adopt_operating_point`): it is written
for that exact model file, recorded in the audit log, and predictions then use it and say so.

The command line (``medviewer evaluate``) and the GUI (``gui/evaluate_dialog.py``, through
``gui/workers.JobWorker``) run the same job. Qt-free and torch-free.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
from collections.abc import Generator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medviewer.errors import UserError
from medviewer.jobs import CancelFlag, Progress
from medviewer.paths import write_atomically

RECORD_PREFIX = "validation-"


class ValidationError(UserError):
    """Labels or a record that cannot be used; ``str()`` is one sentence."""


# ---------------------------------------------------------------- inputs


def parse_mapping(text: str | None) -> dict[str, str]:
    """'pneumonia=PNEUMONIA,normal=NORMAL' -> {'pneumonia': 'PNEUMONIA', ...}."""
    mapping: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        source, sep, target = part.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise ValidationError(f"The label mapping '{part.strip()}' is not SOURCE=CLASS.")
        mapping[source.strip().lower()] = target.strip()
    return mapping


def parse_thresholds(items: Sequence[str] | None, classes: Sequence[str]) -> dict[str, float]:
    """['PNEUMONIA=0.3'] -> {'PNEUMONIA': 0.3}, class names matched case-insensitively."""
    out: dict[str, float] = {}
    for item in items or ():
        for part in item.split(","):
            name, sep, value = part.partition("=")
            if not sep:
                raise ValidationError(f"The threshold '{part}' is not CLASS=T.")
            match = _class_named(name.strip(), classes)
            try:
                threshold = float(value)
            except ValueError:
                threshold = -1.0
            if match is None or not 0.0 <= threshold <= 1.0:
                raise ValidationError(f"The threshold '{part}' needs one of the model's classes "
                                      f"({', '.join(classes)}) and a probability in [0, 1].")
            out[match] = threshold
    return out


def _class_named(name: str, classes: Sequence[str]) -> str | None:
    lowered = {c.lower(): c for c in classes}
    return lowered.get(name.lower())


def read_labels_csv(path: str | os.PathLike, classes: Sequence[str],
                    mapping: dict[str, str] | None = None) -> list[tuple[Path, str]]:
    """(image, class) pairs from a CSV with the columns ``path`` and ``label``.

    Relative paths are taken from the CSV's folder. A label is a class of the model
    (case-insensitive) or a key of ``mapping``; any other label is refused with its row.
    """
    path = Path(path)
    mapping = {k.lower(): v for k, v in (mapping or {}).items()}
    from medviewer import csv_safety
    from medviewer.files import open_regular, os_error_reason

    try:  # only a regular file: a FIFO would wait for ever
        with open_regular(path, "r", newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            fields = [f.strip().lower() for f in reader.fieldnames or []]
            if "path" not in fields or "label" not in fields:
                raise ValidationError(f"The labels file {path} needs the columns 'path' and "
                                      "'label'.")
            rows = [{k.strip().lower(): csv_safety.restore((v or "").strip())
                     for k, v in row.items() if k} for row in reader]
    except FileNotFoundError:
        raise ValidationError(f"The labels file {path} does not exist.") from None
    except OSError as exc:
        raise ValidationError(f"Cannot read the labels file {path}: "
                              f"{os_error_reason(exc)}.") from None
    except UnicodeError:
        raise ValidationError(f"The labels file {path} is not UTF-8 text.") from None
    pairs = []
    for number, row in enumerate(rows, start=2):
        raw = row.get("label", "")
        target = mapping.get(raw.lower(), raw)
        name = _class_named(target, classes)
        if name is None:
            raise ValidationError(f"Row {number} of {path} has the label '{raw}', which is not "
                                  f"a class of the model ({', '.join(classes)}); map it with "
                                  "--map SOURCE=CLASS.")
        image = Path(row.get("path", ""))
        pairs.append((image if image.is_absolute() else path.parent / image, name))
    if not pairs:
        raise ValidationError(f"The labels file {path} lists no images.")
    return pairs


# ---------------------------------------------------------------- the report


@dataclass
class ValidationReport:
    """A local validation, as stored (JSON-able through ``to_dict``)."""

    model: dict[str, str]  # name, version, sha256
    created: str
    images: int  # labelled images given
    read: int  # images the model read
    class_counts: dict[str, int]
    findings: dict[str, dict[str, Any]]  # per finding: auroc, at_card_point, at_user_point
    calibration: dict[str, Any]
    ood: dict[str, Any]
    scope: dict[str, Any]
    unreadable: list[dict[str, str]] = field(default_factory=list)
    source: str = ""  # the labels file or label set, in words
    id: str = ""  # set when saved
    level: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationReport:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def _counts(truth: Any, called: Any) -> dict[str, int]:
    return {"tp": int((called & truth).sum()), "fp": int((called & ~truth).sum()),
            "tn": int((~called & ~truth).sum()), "fn": int((~called & truth).sum())}


def figures_at(truth: Any, scores: Any, threshold: float, source: str) -> dict[str, Any]:
    """Sensitivity, specificity, PPV and NPV with Wilson intervals at a threshold."""
    from medviewer.inference.decision import at_or_above
    from medviewer.training.metrics import proportion_interval

    counts = _counts(truth, at_or_above(scores, threshold))
    tp, fp, tn, fn = counts["tp"], counts["fp"], counts["tn"], counts["fn"]

    def share(hits: int, total: int) -> dict[str, Any]:
        value = hits / total if total else None
        low, high = proportion_interval(hits, total) if total else (None, None)
        return {"value": value, "interval": [low, high], "of": total}

    return {"threshold": float(threshold), "source": source, **counts,
            "sensitivity": share(tp, tp + fn), "specificity": share(tn, tn + fp),
            "ppv": share(tp, tp + fp), "npv": share(tn, tn + fn)}


def finding_names(card: Any) -> list[str]:
    """The classes a validation reports on: those with an operating point, else the
    findings by name (not the no-finding class)."""
    from medviewer.training.metrics import finding_classes

    with_points = [c for c in card.classes if c in card.operating_points]
    return with_points or [c for c in finding_classes(list(card.classes))
                           if c != card.no_finding_class]


def build_report(card: Any, predictions: list[Any], pairs: Sequence[tuple[Path, str]],
                 user_thresholds: dict[str, float] | None = None,
                 source: str = "") -> ValidationReport:
    """The figures of a validation from its predictions (same order as ``pairs``)."""
    import numpy as np

    from medviewer.training import metrics

    classes = list(card.classes)
    read = [(p, label) for p, (_, label) in zip(predictions, pairs) if p.ok]
    unreadable = [{"path": str(path), "reason": p.error or ""}
                  for p, (path, _) in zip(predictions, pairs) if not p.ok]
    probabilities = np.array([[s.probability for s in p.scores] for p, _ in read],
                             np.float64).reshape(len(read), len(classes))
    labels = np.array([classes.index(label) for _, label in read], np.int64)
    findings: dict[str, dict[str, Any]] = {}
    for name in finding_names(card):
        index = classes.index(name)
        truth = labels == index
        scores = probabilities[:, index]
        entry: dict[str, Any] = {"positives": int(truth.sum()),
                                 "negatives": int((~truth).sum())}
        if truth.any() and (~truth).any():
            entry["auroc"] = {"value": metrics.auroc(truth, scores),
                              "interval": list(metrics.auroc_interval(truth, scores))}
        else:
            entry["auroc"] = {"value": None, "interval": [None, None],
                              "note": "needs images with and without the finding"}
        point = card.operating_points.get(name)
        if point is not None:
            entry["at_card_point"] = figures_at(truth, scores, point.threshold,
                                                point.method or "the model card")
        if user_thresholds and name in user_thresholds:
            entry["at_user_point"] = figures_at(truth, scores, user_thresholds[name],
                                                "set for this validation")
        entry["reliability"] = metrics.reliability_bins(probabilities, labels, index)
        entry["ece"] = metrics.expected_calibration_error(probabilities, labels, index) \
            if len(read) else None
        findings[name] = entry
    ood_scores = [p.ood for p, _ in read]
    available = card.ood is not None
    return ValidationReport(
        model={"name": card.name, "version": card.version, "sha256": card.sha256},
        created=_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        images=len(pairs), read=len(read),
        class_counts={c: int((labels == i).sum()) for i, c in enumerate(classes)},
        findings=findings,
        calibration={**(metrics.calibration_figures(probabilities, labels) if len(read)
                        else {"n": 0, "ece": None, "brier": None}),
                     "calibrated": card.calibration is not None,
                     "reliability_top_class": metrics.reliability_bins(probabilities, labels)},
        ood={"available": available,
             "unusual": sum(1 for flag in ood_scores if flag) if available else None,
             "fraction_unusual": (sum(1 for flag in ood_scores if flag) / len(read)
                                  if available and read else None)},
        scope={"outside_intended_use": sum(1 for p, _ in read if p.in_scope is False),
               "checked": card.intended_scope is not None},
        unreadable=unreadable, source=source)


def validation_job(entry: Any, pairs: Sequence[tuple[str | os.PathLike, str]], *,
                   user_thresholds: dict[str, float] | None = None, device: str = "auto",
                   batch_size: int = 8, source: str = "", cancel: CancelFlag | None = None,
                   ) -> Generator[Progress, None, ValidationReport]:
    """Read every labelled image with the model and return the report (not yet saved).

    ``pairs`` are (image file, class name of the model): from :func:`read_labels_csv` or a
    label set's images. Progress per batch; cancelling stops between batches.
    """
    from medviewer.inference.predict import PredictionReady, predict_job

    pairs = [(Path(path), label) for path, label in pairs]
    if not pairs:
        raise ValidationError("There are no labelled images to evaluate the model on.")
    unknown = sorted({label for _, label in pairs} - set(entry.card.classes))
    if unknown:
        raise ValidationError(f"The labels {', '.join(unknown)} are not classes of model "
                              f"'{entry.name}' ({', '.join(entry.card.classes)}).")
    cancel = cancel or CancelFlag()
    job = predict_job([p for p, _ in pairs], entry, batch_size=batch_size, device=device,
                      cancel=cancel, audit=False)
    predictions: list[Any] | None = None
    while True:
        try:
            event = next(job)
        except StopIteration as stop:
            predictions = stop.value
            break
        if isinstance(event, Progress):
            yield Progress(event.done, event.total, f"Reading {event.message}"
                           if event.total else event.message)
        elif not isinstance(event, PredictionReady):
            yield event
    assert predictions is not None
    if len(predictions) != len(pairs):  # a folder among the paths expanded into files
        raise ValidationError("Each labelled path must be one image file, not a folder.")
    yield Progress(len(pairs), len(pairs), "Computing the figures")
    return build_report(entry.card, predictions, pairs, user_thresholds, source)


# ---------------------------------------------------------------- records


def save_validation(entry: Any, report: ValidationReport) -> Path:
    """Keep the report as a record for this exact model file; returns its path."""
    from medviewer.inference.site_points import validation_folder

    folder = validation_folder(entry.card)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path, suffix = folder / f"{RECORD_PREFIX}{stamp}.json", 2
    while path.exists():
        path, suffix = folder / f"{RECORD_PREFIX}{stamp}-{suffix}.json", suffix + 1
    report.id = path.stem[len(RECORD_PREFIX):]
    write_atomically(path, json.dumps(report.to_dict(), indent=1, default=float) + "\n")
    return path


def list_validations(entry: Any) -> list[ValidationReport]:
    """This model file's records, newest first (unreadable files are skipped)."""
    from medviewer.inference.site_points import validation_folder

    folder = validation_folder(entry.card)
    out = []
    for path in sorted(folder.glob(f"{RECORD_PREFIX}*.json"), reverse=True):
        try:
            report = ValidationReport.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            continue
        if report.model.get("sha256") == entry.card.sha256:
            out.append(report)
    return out


def adopt_operating_point(entry: Any, report: ValidationReport, class_name: str,
                          threshold: float | None = None) -> dict[str, Any]:
    """Adopt a site operating point for a finding from a saved validation.

    ``threshold`` None takes the record's user-set point for that finding. The point is
    stored for this exact model file (never in its card) and recorded in the audit log;
    predictions use it from then on and say so. Returns the stored point.
    """
    from medviewer.inference.audit import AuditLog
    from medviewer.inference.site_points import read_site_points, write_site_points

    card = entry.card
    if not report.id:
        raise ValidationError("Only a saved local validation can set a site operating point.")
    if report.model.get("sha256") != card.sha256:
        raise ValidationError(f"The local validation {report.id} was made with another file of "
                              f"model '{card.name}'.")
    figures = report.findings.get(class_name)
    if figures is None:
        raise ValidationError(f"The local validation {report.id} has no figures for "
                              f"'{class_name}'.")
    if threshold is None:
        user = figures.get("at_user_point")
        if user is None:
            raise ValidationError(f"The local validation {report.id} has no threshold set for "
                                  f"'{class_name}'; give one.")
        threshold = float(user["threshold"])
    if not 0.0 <= threshold <= 1.0:
        raise ValidationError(f"The threshold {threshold} is not a probability in [0, 1].")
    at = figures.get("at_user_point") if figures.get("at_user_point", {}).get(
        "threshold") == threshold else None
    stored = read_site_points(card)
    points = dict(stored.get("points", {})) if stored.get("sha256") == card.sha256 else {}
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    point = {"threshold": threshold, "validation": report.id, "adopted_at": now,
             "method": f"adopted by this site from local validation {report.id}",
             "metrics": ({"local_sensitivity": at["sensitivity"]["value"],
                          "local_specificity": at["specificity"]["value"]} if at else {}),
             "card_threshold": (card.operating_points[class_name].threshold
                                if class_name in card.operating_points else None)}
    points[class_name] = point
    write_site_points(card, {"model": card.key, "sha256": card.sha256, "points": points})
    AuditLog().record_event("site_operating_point", card.name, card.version, card.sha256,
                            {"class": class_name, **point})
    return point


def clear_site_operating_points(entry: Any) -> None:
    """Go back to the card's operating points (recorded in the audit log)."""
    from medviewer.inference.audit import AuditLog
    from medviewer.inference.site_points import write_site_points

    card = entry.card
    write_site_points(card, {"model": card.key, "sha256": card.sha256, "points": {}})
    AuditLog().record_event("site_operating_point_cleared", card.name, card.version,
                            card.sha256, {})


# ---------------------------------------------------------------- in words


def _figure(share: dict[str, Any]) -> str:
    if share.get("value") is None:
        return "n/a"
    low, high = share["interval"]
    return f"{share['value']:.3f} [{low:.3f}-{high:.3f}]"


def report_lines(report: ValidationReport) -> list[str]:
    """The report as plain sentences and rows, for the command line and the dialog."""
    model = report.model
    lines = [f"Local validation of {model['name']} {model['version']} "
             f"({model['sha256'][:12]}…){' from ' + report.source if report.source else ''}: "
             f"{report.read} of {report.images} images read; "
             + ", ".join(f"{k} {v}" for k, v in report.class_counts.items()) + "."]
    for name, figures in report.findings.items():
        auroc = figures["auroc"]
        if auroc.get("value") is not None:
            lines.append(f"{name}: AUROC {auroc['value']:.3f} [{auroc['interval'][0]:.3f}-"
                         f"{auroc['interval'][1]:.3f}] ({figures['positives']} with, "
                         f"{figures['negatives']} without).")
        else:
            lines.append(f"{name}: no AUROC ({auroc.get('note', '')}).")
        for key, words in (("at_card_point", "the card's point"), ("at_user_point", "your point")):
            at = figures.get(key)
            if at:
                lines.append(f"  at {words} {at['threshold']:.3f}: sensitivity "
                             f"{_figure(at['sensitivity'])}, specificity "
                             f"{_figure(at['specificity'])}, PPV {_figure(at['ppv'])}, "
                             f"NPV {_figure(at['npv'])}.")
    calibration = report.calibration
    if calibration.get("ece") is not None:
        lines.append(f"Calibration: ECE {calibration['ece']:.3f}, Brier score "
                     f"{calibration['brier']:.3f}"
                     f"{'' if calibration.get('calibrated') else ' (the model is not calibrated)'}.")
    ood = report.ood
    if ood.get("available"):
        lines.append(f"Unusual images for this model: {ood['unusual']} of {report.read} "
                     f"({(ood['fraction_unusual'] or 0):.1%}).")
    else:
        lines.append("No out-of-distribution check is available for this model.")
    if report.scope.get("checked"):
        lines.append(f"Outside the model's intended use: "
                     f"{report.scope['outside_intended_use']} of {report.read}.")
    if report.unreadable:
        lines.append(f"Could not read {len(report.unreadable)} image"
                     f"{'s' if len(report.unreadable) != 1 else ''}:")
        lines.extend(f"  {item['reason']}" for item in report.unreadable[:50])
    return lines
