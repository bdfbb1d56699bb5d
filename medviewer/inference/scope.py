"""Is an image inside a model's intended use? A check of the header against the card.

The card's ``intended_scope`` names modalities, body parts, views, a patient age range, a
minimum image size and photometric interpretations. :func:`check_scope` compares an
image's DICOM header with it and returns a sentence per mismatch ("Outside this model's
intended use: CT (this model reads chest CR/DX)."). Only what the header states is judged:
a missing Body Part Examined or Patient's Age is not a reason. A plain PNG/JPEG has no
header, so only its size (and whether it is in colour) is checked; the out-of-distribution
score judges its content.

Qt-free; reads header values only (no pixels).
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from typing import Any

from medviewer.inference.model_card import IntendedScope, ModelCard

_AGE = re.compile(r"^\s*(\d{1,3})\s*([DWMY])\s*$", re.IGNORECASE)
_AGE_UNIT_YEARS = {"D": 1 / 365.25, "W": 7 / 365.25, "M": 1 / 12, "Y": 1.0}
_PREFIX = "Outside this model's intended use: "


@dataclass(frozen=True)
class ScopeCheck:
    """The verdict: ``in_scope`` is None when the card states no intended scope."""

    in_scope: bool | None
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"in_scope": self.in_scope, "scope_reasons": list(self.reasons)}


def scope_summary(scope: IntendedScope) -> str:
    """"chest CR/DX" style words for the sentences (the card's own summary when it has one)."""
    if scope.summary:
        return scope.summary
    words = [part.lower() for part in scope.body_parts[:2]] + ["/".join(scope.modalities)]
    return " ".join(w for w in words if w) or "the images its card describes"


def patient_age_years(header: Any) -> float | None:
    """Patient's Age (e.g. '005Y', '018M'), else Patient's Birth Date to the study's date.

    An age of zero ('000Y') is what de-identification tools commonly write: unknown.
    """
    match = _AGE.match(str(header.get("PatientAge", "") or ""))
    if match and int(match.group(1)) > 0:
        return int(match.group(1)) * _AGE_UNIT_YEARS[match.group(2).upper()]
    born = _date(header.get("PatientBirthDate"))
    taken = next((d for d in (_date(header.get(k)) for k in
                              ("StudyDate", "AcquisitionDate", "ContentDate", "SeriesDate"))
                  if d is not None), None)
    if born is None or taken is None or taken < born:
        return None
    return (taken - born).days / 365.25


def _date(value: Any) -> _dt.date | None:
    text = str(value or "").strip()
    try:
        return _dt.datetime.strptime(text[:8], "%Y%m%d").date() if len(text) >= 8 else None
    except ValueError:
        return None


def _text(header: Any, keyword: str) -> str:
    return str(header.get(keyword, "") or "").strip().upper()


def check_header(header: Any, card: ModelCard, plain_image: bool = False) -> ScopeCheck:
    """Compare a header (a pydicom Dataset or any mapping with ``get``) with the card."""
    scope = card.intended_scope
    if scope is None:
        return ScopeCheck(None)
    reasons: list[str] = []
    reads = scope_summary(scope)
    if not plain_image:
        modality = _text(header, "Modality")
        if scope.modalities and modality and modality not in scope.modalities:
            reasons.append(f"{_PREFIX}{modality} (this model reads {reads}).")
        body_part = _text(header, "BodyPartExamined")
        if scope.body_parts and body_part and body_part not in scope.body_parts:
            reasons.append(f"{_PREFIX}body part {body_part} (this model reads {reads}).")
        view = _text(header, "ViewPosition")
        if scope.views and view and view not in scope.views:
            reasons.append(f"{_PREFIX}{view} view (this model reads "
                           f"{'/'.join(scope.views)} views).")
        age = patient_age_years(header)
        if scope.patient_age_years and age is not None:
            youngest, oldest = scope.patient_age_years
            if not youngest <= age <= oldest:
                shown = f"{age:.0f} years" if age >= 2 else f"{age * 12:.0f} months"
                reasons.append(f"{_PREFIX}a patient aged {shown} (this model was made for "
                               f"ages {youngest:g} to {oldest:g} years).")
    photometric = _text(header, "PhotometricInterpretation")
    if scope.photometric and photometric and photometric not in scope.photometric:
        what = "colour" if photometric.startswith(("RGB", "YBR", "PALETTE")) else photometric
        reasons.append(f"{_PREFIX}{what} pixels (this model reads "
                       f"{'/'.join(scope.photometric)} images).")
    rows, columns = int(header.get("Rows", 0) or 0), int(header.get("Columns", 0) or 0)
    if scope.minimum_size and rows and columns and min(rows, columns) < scope.minimum_size:
        reasons.append(f"{_PREFIX}an image of {columns} x {rows} pixels (this model needs at "
                       f"least {scope.minimum_size} pixels on each side).")
    return ScopeCheck(not reasons, reasons)


def check_scope(instance: Any, card: ModelCard) -> ScopeCheck:
    """The scope check of an opened image (``medviewer.dicom.reader.Instance``)."""
    return check_header(instance.header, card, plain_image=bool(instance.content_hash))
