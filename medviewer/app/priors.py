"""Compare with prior: the same patient's most recent earlier study among the open catalogs.

The same patient: equal Patient ID, and equal Issuer of Patient ID when both say one (an ID
without an issuer matches an ID with one: many sites never fill it in). Earlier: by Study
Date, then Study Time; a study on the same day counts only when both times are known, since
without them the order is a guess. Studies without a date cannot be ordered and are never
offered. The current study itself (its Study Instance UID) is never its own prior.

Which image of the prior: the first image (in the catalog's order) of the first series with
the current image's modality, else of the first series. Qt-free; PACS priors come later.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medviewer.dicom.catalog import Catalog, InstanceRecord, PatientNode, StudyNode


@dataclass(frozen=True)
class StudyKey:
    """What identifies the shown image's patient and study, and when the study was."""

    patient_id: str
    issuer: str = ""
    study_uid: str = ""
    date: str = ""  # DA, YYYYMMDD
    time: str = ""  # TM
    modality: str = ""

    @classmethod
    def from_header(cls, ds: Any) -> StudyKey:
        def text(keyword: str) -> str:
            try:
                value = ds.get(keyword)
            except Exception:  # noqa: BLE001 - a damaged value counts as absent
                return ""
            return "" if value is None else str(value).strip()

        return cls(text("PatientID"), text("IssuerOfPatientID"), text("StudyInstanceUID"),
                   text("StudyDate"), text("StudyTime"), text("Modality"))


@dataclass(frozen=True)
class PriorStudy:
    """The prior found: its patient and study nodes, and the image to show."""

    patient: PatientNode
    study: StudyNode
    image: InstanceRecord
    catalog_root: Path


def _date(text: str) -> str | None:
    text = text.strip()
    return text if len(text) == 8 and text.isdigit() else None


def _time(text: str) -> str | None:
    """TM as 'HHMMSS.FFFFFF', comparable as text; None when it is not a time."""
    text = text.strip().replace(":", "")
    whole, _, fraction = text.partition(".")
    if len(whole) not in (2, 4, 6) or not whole.isdigit() or (fraction and not fraction.isdigit()):
        return None
    return f"{whole.ljust(6, '0')}.{fraction[:6].ljust(6, '0')}"


def is_earlier(date: str, time: str, than_date: str, than_time: str) -> bool:
    """Whether a study on (date, time) was before one on (than_date, than_time)."""
    first, second = _date(date), _date(than_date)
    if first is None or second is None:
        return False
    if first != second:
        return first < second
    first_time, second_time = _time(time), _time(than_time)
    return first_time is not None and second_time is not None and first_time < second_time


def same_patient(patient_id: str, issuer: str, other_id: str, other_issuer: str) -> bool:
    if not patient_id.strip() or patient_id.strip() != other_id.strip():
        return False
    return not (issuer.strip() and other_issuer.strip()) or issuer.strip() == other_issuer.strip()


def image_to_compare(study: StudyNode, modality: str = "") -> InstanceRecord | None:
    """The first image of the first series with ``modality``, else of the first series."""
    series = [s for s in study.series if s.instances]
    matching = [s for s in series if modality and s.modality == modality]
    chosen = (matching or series)[:1]
    return chosen[0].instances[0] if chosen else None


def find_prior(catalogs: Iterable[Catalog], current: StudyKey) -> PriorStudy | None:
    """The most recent study of ``current``'s patient before ``current``'s study, or None."""
    best: PriorStudy | None = None
    for catalog in catalogs:
        for patient in catalog.patients:
            if not same_patient(current.patient_id, current.issuer, patient.patient_id,
                                patient.issuer):
                continue
            for study in patient.studies:
                if study.uid and study.uid == current.study_uid:
                    continue
                if not is_earlier(study.date, study.time, current.date, current.time):
                    continue
                if best is not None and not is_earlier(best.study.date, best.study.time,
                                                       study.date, study.time):
                    continue
                image = image_to_compare(study, current.modality)
                if image is not None:
                    best = PriorStudy(patient, study, image, catalog.root)
    return best
