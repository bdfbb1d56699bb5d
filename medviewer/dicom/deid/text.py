"""Cleaning free text that a profile keeps (action C on a description, a comment, a report's
text, a graphic's label): what looks like identity is replaced by ``*``.

Two passes, both case-insensitive unless said otherwise:

1. **This file's own values**: the patient's names (and each part of them), IDs, birth
   date, accession number, study ID, the physicians' and operators' names, and the
   institution, station and dates it holds (dates also as 2020-01-15, 15.01.2020,
   15/01/2020, 01/15/2020, 2020/01/15). Exact matches of 3 characters or more.
2. **Patterns** (a heuristic, written for English and DICOM's own forms; it errs toward
   removing):

   * a person's name: a title and the capitalised words after it (``Dr. Smith``,
     ``Mrs Jane Doe``: Dr, Mr, Mrs, Ms, Miss, Prof, Sir, Nurse); the words after a label
     (``name:``, ``patient:``, ``referred by:``, ``physician:``, ``operator:``, ``tech:``,
     ``read by:``, ``signed:``). DICOM's ``Family^Given`` form is not taken for a name:
     scanners write protocols that way (``Head^Routine``); this file's own names are
     removed in any form by the first pass;
   * a date: 8 digits that make a date from 1850 to 2099, day-month-year and
     year-month-day with ``-`` or ``/`` (2- or 4-digit years) or ``.`` (4-digit years, so
     that a version such as 7.0.0.25 stays), and English month names with a day or a year
     (``15 Jan 2020``, ``January 15, 2020``, ``Jan 2020``);
   * an ID: a token (letters and digits, hyphens inside) holding 5 digits or more, unless
     it is a measurement or a size (``1024x1024``); the value after ``MRN``, ``ID``,
     ``No.``, ``#``, ``Acc``, ``accession`` or ``SSN``;
   * a UID: four or more dot-separated numbers from root 0, 1 or 2 (``1.2.840.113619...``),
     or ``2.25.`` and a long number;
   * an age with a sex or unit: ``55F``, ``62 M``, ``45yo``, ``45 years old``.

What an option keeps is not removed: dates with Retain Full Dates, age and sex with Retain
Patient Characteristics, the institution with Retain Institution Identity, station and
serial numbers with Retain Device Identity, UIDs with Retain UIDs. Free text can still name
people this does not recognise (a lone surname, a name written in lower case): read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from medviewer.dicom.deid.profile import Profile

REPLACEMENT = "*"
MIN_IDENTIFIER_LENGTH = 3

# This file's values taken out of cleaned text, by what keeps them.
NAME_KEYWORDS = ("PatientName", "OtherPatientNames", "PatientBirthName",
                 "PatientMotherBirthName", "ReferringPhysicianName", "PerformingPhysicianName",
                 "OperatorsName", "NameOfPhysiciansReadingStudy", "PhysiciansOfRecord",
                 "RequestingPhysician", "ScheduledPerformingPhysicianName")
ID_KEYWORDS = ("PatientID", "OtherPatientIDs", "PatientAddress", "PatientTelephoneNumbers",
               "MedicalRecordLocator", "AccessionNumber", "StudyID", "PatientBirthDate")
INSTITUTION_KEYWORDS = ("InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName")
DEVICE_KEYWORDS = ("StationName", "DeviceSerialNumber")
DATE_KEYWORDS = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")

_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|"
          r"aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_YEAR = r"(?:18[5-9]\d|19\d\d|20\d\d)"
_EIGHT_DIGIT_DATE = _YEAR + r"(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
DATE_PATTERN = re.compile("|".join((
    rf"(?<!\d){_EIGHT_DIGIT_DATE}(?!\d)",
    r"(?<![\d.])\d{1,2}([-/])\d{1,2}\1(?:\d{4}|\d{2})(?!\d)(?!\.\d)",
    r"(?<![\d.])\d{1,2}\.\d{1,2}\.\d{4}(?!\d)(?!\.\d)",  # not 7.0.0.25, a version
    r"(?<![\d.])\d{4}([-./])\d{1,2}\2\d{1,2}(?!\d)(?!\.\d)",
    rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s*{_MONTH}\s*,?\s*(?:\d{{4}}|'?\d{{2}})?\b",
    rf"\b{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:\s*,\s*|\s+)(?:\d{{4}}|'\d{{2}})\b",
    rf"\b{_MONTH}\s+\d{{4}}\b",
)), re.IGNORECASE)
_CAPITALISED = r"[A-Z][\w'\-]*"
# A pattern's group "keep" (a label) stays; the rest of the match is replaced.
NAME_PATTERN = re.compile("|".join((
    rf"\b(?i:dr|mr|mrs|ms|miss|prof|sir|nurse)\b\.?\s+{_CAPITALISED}(?:\s+{_CAPITALISED})?",
    (r"(?P<keep>(?i:\b(?:name|patient|pt|physician|doctor|referred by|referring|referrer|"
     r"operator|technologist|tech|radiologist|read by|reported by|signed(?: by)?)\s*[:=]\s*))"
     r"[^\s,;:]+(?:\s+[^\s,;:]+)?"),
)))
LABELLED_ID_PATTERN = re.compile(
    r"(?P<keep>\b(?:mrn|id|no\.?|nr\.?|acc(?:ession)?(?: number)?|ssn)\s*[:#=]?\s*|#\s*)"
    r"(?=[\w-]*\d)[\w-]{2,}", re.IGNORECASE)
# A UID's root arc is 0, 1 or 2 (ISO/ITU); 2.25.<integer> is the UUID form.
UID_PATTERN = re.compile(r"(?<!\d)(?<!\d\.)(?:[012](?:\.\d+){3,}|2\.25\.\d{10,})"
                         r"(?!\d)(?!\.\d)")
AGE_SEX_PATTERN = re.compile(
    r"\b\d{1,3}\s?(?:[MF]\b|(?i:y/?o\b|yrs?\b|years?(?: old)?\b))")
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9]+(?:[-.][A-Za-z0-9]+)*")
# Tokens with many digits that are not IDs: sizes, measurements, version-like numbers
# (UIDs are the UID pattern's to remove, or to keep with Retain UIDs).
NOT_AN_ID_PATTERN = re.compile(
    r"\d{1,5}(?:x\d{1,5}){1,3}|\d+(?:\.\d+)?[a-z%]{1,4}|\d+\.\d+|\d+(?:\.\d+){2,}",
    re.IGNORECASE)
MIN_ID_DIGITS = 5


def _replace(match: re.Match) -> str:
    return (match.groupdict().get("keep") or "") + REPLACEMENT


def _looks_like_id(match: re.Match) -> str:
    """A token of 5 digits or more is an ID, unless it is a size, a measurement, a dotted
    number or a date (dates are the date pattern's: removed, or kept with full dates)."""
    token = match.group(0)
    if sum(ch.isdigit() for ch in token) < MIN_ID_DIGITS or \
            NOT_AN_ID_PATTERN.fullmatch(token) or DATE_PATTERN.fullmatch(token):
        return token
    return REPLACEMENT


@dataclass(frozen=True)
class TextCleaner:
    """Cleans one file's free text: its own identifying values, then the patterns."""

    known: re.Pattern | None
    patterns: tuple[re.Pattern, ...]

    def clean(self, text: str) -> str:
        if self.known is not None:
            text = self.known.sub(REPLACEMENT, text)
        for pattern in self.patterns:
            text = pattern.sub(_replace, text)
        return TOKEN_PATTERN.sub(_looks_like_id, text)


def text_cleaner(ds: Dataset, profile: Profile) -> TextCleaner:
    """The cleaner for ``ds`` (read before any of its values is changed) under ``profile``."""
    options = profile.options
    keywords = NAME_KEYWORDS + ID_KEYWORDS
    if "retain-institution-identity" not in options:
        keywords += INSTITUTION_KEYWORDS
    if "retain-device-identity" not in options:
        keywords += DEVICE_KEYWORDS
    if not profile.keeps_dates:
        keywords += DATE_KEYWORDS
    patterns = [NAME_PATTERN, LABELLED_ID_PATTERN]
    if not profile.keeps_dates:
        patterns.insert(0, DATE_PATTERN)
    if "retain-uids" not in options:
        patterns.insert(0, UID_PATTERN)  # before dates and IDs take parts of it
    if "retain-patient-characteristics" not in options:
        patterns.append(AGE_SEX_PATTERN)
    return TextCleaner(_known_values(ds, keywords), tuple(patterns))


def _values(ds: Dataset, keyword: str) -> list[str]:
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - a value pydicom cannot read names nobody
        return []
    if value is None or value == "":
        return []
    items = value if isinstance(value, (list, MultiValue)) else [value]
    return [str(item).strip() for item in items if str(item).strip()]


def _known_values(ds: Dataset, keywords: tuple[str, ...]) -> re.Pattern | None:
    found: set[str] = set()
    for keyword in keywords:
        for value in _values(ds, keyword):
            found.add(value)
            if keyword in NAME_KEYWORDS:
                found.update(re.split(r"[\^= ,]+", value))
            if keyword.endswith("Date") and len(value) == 8 and value.isdigit():
                y, m, d = value[:4], value[4:6], value[6:]
                found.update({f"{y}-{m}-{d}", f"{d}.{m}.{y}", f"{d}/{m}/{y}", f"{m}/{d}/{y}",
                              f"{y}/{m}/{d}"})
    words = sorted((w for w in found if len(w) >= MIN_IDENTIFIER_LENGTH), key=len, reverse=True)
    if not words:
        return None
    return re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)
