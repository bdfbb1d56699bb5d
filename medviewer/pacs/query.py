"""What a search asks for and what it finds, independent of the protocol (DIMSE or DICOMweb).

A search goes to the study level; its rows are grouped into patients for display, and a
study's series are fetched when asked for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from medviewer.pacs.errors import PacsError

_DATE = r"(\d{4})-?(\d{2})-?(\d{2})"
_RANGE = re.compile(rf"^(?:{_DATE})?\s*(-|\.\.)\s*(?:{_DATE})?$")
_ONE_DATE = re.compile(rf"^{_DATE}$")


def _date(y: str, m: str, d: str, text: str) -> date:
    try:
        return date(int(y), int(m), int(d))
    except ValueError:
        raise PacsError(f"'{text}' is not a date (use YYYYMMDD or YYYY-MM-DD).") from None


def parse_date_range(text: str) -> tuple[date | None, date | None]:
    """``FROM-TO`` with YYYYMMDD or YYYY-MM-DD dates, either end open; or one date."""
    text = text.strip()
    one = _ONE_DATE.match(text)
    if one:
        day = _date(*one.groups(), text)
        return day, day
    match = _RANGE.match(text)
    if not match or (match.group(1) is None and match.group(5) is None):
        raise PacsError(f"'{text}' is not a date range (use FROM-TO, e.g. "
                        f"20240101-20240630; either end may be left out).")
    start = _date(*match.group(1, 2, 3), text) if match.group(1) else None
    end = _date(*match.group(5, 6, 7), text) if match.group(5) else None
    if start and end and start > end:
        raise PacsError(f"The date range '{text}' ends before it starts.")
    return start, end


@dataclass(frozen=True)
class StudyQuery:
    """Search keys; empty ones match everything. Names may use * and ? wildcards."""

    patient_id: str = ""
    patient_name: str = ""
    date_from: date | None = None
    date_to: date | None = None
    modality: str = ""
    accession: str = ""
    study_uid: str = ""

    def date_range(self) -> str:
        """The DICOM range matching form: '20240101-20240630', '20240101-', '-20240630'."""
        if self.date_from is None and self.date_to is None:
            return ""
        start = self.date_from.strftime("%Y%m%d") if self.date_from else ""
        end = self.date_to.strftime("%Y%m%d") if self.date_to else ""
        return start if start == end else f"{start}-{end}"


def name_pattern(name: str) -> str:
    """A typed patient name matches as a prefix unless it already has wildcards."""
    name = name.strip()
    return name if not name or any(c in name for c in "*?") else name + "*"


@dataclass(frozen=True)
class SeriesRow:
    study_uid: str
    series_uid: str
    modality: str = ""
    number: int | None = None
    description: str = ""
    instances: int | None = None


@dataclass(frozen=True)
class StudyRow:
    study_uid: str
    patient_id: str = ""
    patient_name: str = ""
    birth_date: str = ""
    date: str = ""  # YYYYMMDD as the server gave it
    time: str = ""
    description: str = ""
    accession: str = ""
    modalities: tuple[str, ...] = ()
    series_count: int | None = None
    instance_count: int | None = None

    def to_dict(self) -> dict:
        return {"study_uid": self.study_uid, "patient_id": self.patient_id,
                "patient_name": self.patient_name, "birth_date": self.birth_date,
                "date": self.date, "time": self.time, "description": self.description,
                "accession": self.accession, "modalities": list(self.modalities),
                "series": self.series_count, "instances": self.instance_count}


@dataclass
class PatientRow:
    patient_id: str
    patient_name: str
    birth_date: str = ""
    studies: list[StudyRow] = field(default_factory=list)


def group_by_patient(studies: Iterable[StudyRow]) -> list[PatientRow]:
    """Studies grouped by patient ID (and name), newest study first within a patient."""
    patients: dict[tuple[str, str], PatientRow] = {}
    for study in studies:
        key = (study.patient_id, study.patient_name)
        row = patients.setdefault(key, PatientRow(study.patient_id, study.patient_name,
                                                  study.birth_date))
        row.studies.append(study)
    for row in patients.values():
        row.studies.sort(key=lambda s: (s.date, s.time), reverse=True)
    return sorted(patients.values(), key=lambda p: (p.patient_name.lower(), p.patient_id))


def as_int(value) -> int | None:
    try:
        return int(str(value).strip()) if value not in (None, "") else None
    except ValueError:
        return None
