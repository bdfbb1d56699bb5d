"""Applying the profile to one pydicom Dataset, in place, at every depth of its sequences.

What each action does here:

* X: the element is deleted. Z: it stays with a zero-length value, except Patient's Name
  and Patient ID, which get the patient's pseudonym (Z allows a dummy value, and a
  pseudonym keeps a patient's files together). D: a dummy value of its VR (a sequence gets
  one empty item, which drops e.g. an SR's content in the Basic Profile).
* U: every UID value is replaced by ``ProjectKey.uid`` (the same original always gives the
  same new UID, so references between files still match); a sequence with U (X/Z/U*) stays
  and its items are de-identified like the rest.
* K: kept; a kept sequence's items are still walked.
* C: dates (DA, DT) move by the patient's whole-day shift, times stay (a whole-day shift
  leaves them right), binary values that cannot be cleaned (a binary timestamp) are
  emptied; text loses every name, ID, date, accession number and institution
  this file's own header holds (case-insensitive), the best a program can do with free
  text; a sequence is walked, then cleaned the same way.

Attributes the table does not name are kept (their sequences walked); private attributes
(odd groups) are removed unless the profile keeps them; group lengths are removed (pydicom
recomputes nothing, and they would be wrong). An overlay whose data is removed loses its
whole group: an overlay without data is broken.

Elements whose action is K and that are not sequences are never converted from their raw
bytes, so the cost per file stays close to a plain read and write.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

from medviewer import __version__
from medviewer.dicom.deid.keys import ProjectKey
from medviewer.dicom.deid.profile import Profile

PATIENT_NAME, PATIENT_ID = 0x00100010, 0x00100020
PRIVATE_NAME = "Private attributes"
TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "PN"})
DUMMY_TEXT = {"PN": "ANONYMOUS", "DA": "19000101", "TM": "000000", "DT": "19000101000000",
              "AS": "000D", "IS": "0", "DS": "0"}
DUMMY_NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "AT"})
BYTES_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})
# File meta elements that name the sending or receiving system, or carry private data.
META_TAGS_REMOVED = (0x00020016, 0x00020017, 0x00020018, 0x00020100, 0x00020102)
IMPLEMENTATION_VERSION = "MEDVIEWER_" + __version__[:6]
# Header values whose text is taken out of cleaned descriptions.
IDENTIFYING_KEYWORDS = (
    "PatientName", "PatientID", "OtherPatientIDs", "OtherPatientNames", "PatientBirthName",
    "PatientMotherBirthName", "PatientBirthDate", "PatientAddress", "PatientTelephoneNumbers",
    "MedicalRecordLocator", "AccessionNumber", "StudyID", "InstitutionName",
    "InstitutionAddress", "InstitutionalDepartmentName", "ReferringPhysicianName",
    "PerformingPhysicianName", "OperatorsName", "NameOfPhysiciansReadingStudy",
    "PhysiciansOfRecord", "StationName", "DeviceSerialNumber", "StudyDate", "SeriesDate",
    "AcquisitionDate", "ContentDate",
)
MIN_IDENTIFIER_LENGTH = 3


@dataclass
class DatasetOutcome:
    """What de-identifying one dataset did."""

    changes: Counter = field(default_factory=Counter)  # (attribute name, action) -> count
    patient_identity: str = ""  # what the pseudonym stands for (Patient ID, else name|birth)
    patient_name: str = ""
    patient_pseudonym: str = ""
    date_shift_days: int | None = None
    uids: dict[str, str] = field(default_factory=dict)  # original -> new


def patient_identity(ds: Dataset) -> str:
    """The original patient a dataset belongs to: Patient ID, else name and birth date."""
    patient_id = _text(ds, "PatientID")
    if patient_id:
        return patient_id
    name, birth = _text(ds, "PatientName"), _text(ds, "PatientBirthDate")
    return f"{name}|{birth}" if name or birth else ""


def _text(ds: Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - a malformed value identifies nothing we can use
        return ""
    if value is None:
        return ""
    if isinstance(value, (list, MultiValue)):
        return "\\".join(str(v) for v in value).strip()
    return str(value).strip()


class _Walker:
    def __init__(self, profile: Profile, key: ProjectKey, outcome: DatasetOutcome,
                 identifiers: re.Pattern | None) -> None:
        self.actions = profile.actions()
        self.repeating = profile.repeating_actions()
        self.private_action = profile.private_action()
        self.keep_private = profile.keep_private
        self.key = key
        self.outcome = outcome
        self.identifiers = identifiers

    # -- the walk
    def clean(self, ds: Dataset) -> None:
        creators = self._private_creators(ds)
        overlays = {int(t) >> 16 for t in ds.keys()
                    if (int(t) >> 16) & 0xFF01 == 0x6000 and int(t) & 0xFFFF == 0x3000
                    and self._table_entry(int(t)) is not None
                    and self._table_entry(int(t))[0] == "X"}
        for tag in list(ds.keys()):
            number = int(tag)
            group = number >> 16
            if group & 1:
                self._private(ds, number, creators)
                continue
            if number & 0xFFFF == 0 and group != 0x0002:
                del ds[number]  # a group length
                continue
            entry = self._table_entry(number)
            if entry is None:
                if group in overlays:
                    del ds[number]
                elif _is_sequence(ds, number):
                    self._walk_items(ds, number)
                continue
            self._apply(ds, number, *entry)

    def _table_entry(self, number: int) -> tuple[str, str] | None:
        entry = self.actions.get(number)
        if entry is not None:
            return entry
        for mask, value, action, name in self.repeating:
            if number & mask == value:
                return action, name
        return None

    def _walk_items(self, ds: Dataset, number: int) -> None:
        for item in ds[number].value or ():
            self.clean(item)

    def _apply(self, ds: Dataset, number: int, action: str, name: str) -> None:
        if action == "X":
            del ds[number]
        elif action == "K":
            if _is_sequence(ds, number):
                self._walk_items(ds, number)
            return  # kept: not a change
        elif action == "Z":
            self._zero(ds, number)
            if number in (PATIENT_NAME, PATIENT_ID):
                action = "P"  # Z filled with the patient's pseudonym
        elif action == "D":
            self._dummy(ds, number)
        elif action == "U":
            self._replace_uids(ds, number)
        elif action == "C":
            action = self._clean_value(ds, number)
        self.outcome.changes[(name, action)] += 1

    # -- actions
    def _zero(self, ds: Dataset, number: int) -> None:
        element = ds[number]
        if number in (PATIENT_NAME, PATIENT_ID):
            element.value = self.outcome.patient_pseudonym
        elif element.VR == "SQ":
            element.value = Sequence()
        elif element.VR in BYTES_VRS:
            element.value = b""
        elif element.VR in DUMMY_NUMBER_VRS:
            element.value = None
        else:
            element.value = ""

    def _dummy(self, ds: Dataset, number: int) -> None:
        element = ds[number]
        vr = element.VR
        if vr == "SQ":
            element.value = Sequence([Dataset()])
        elif vr == "UI":
            element.value = self.key.uid(str(element.value or ""))
        elif vr in DUMMY_NUMBER_VRS:
            element.value = 0
        elif vr in BYTES_VRS:
            element.value = b"\x00\x00"
        else:
            element.value = DUMMY_TEXT.get(vr, "REMOVED")

    def _replace_uids(self, ds: Dataset, number: int) -> None:
        element = ds[number]
        if element.VR == "SQ":
            self._walk_items(ds, number)
            return
        value = element.value
        if value in (None, ""):
            return
        if isinstance(value, (list, MultiValue)):
            element.value = [self._uid(str(v)) for v in value]
        else:
            element.value = self._uid(str(value))

    def _uid(self, original: str) -> str:
        original = original.strip().rstrip("\x00")
        new = self.key.uid(original)
        self.outcome.uids[original] = new
        return new

    def _clean_value(self, ds: Dataset, number: int) -> str:
        """C: returns the action really taken ('Z' when a date could not be read)."""
        element = ds[number]
        vr = element.VR
        if vr == "SQ":
            for item in element.value or ():
                self.clean(item)
                self._scrub_items_text(item)
            return "C"
        if vr in ("DA", "DT"):
            shift = self.outcome.date_shift_days or 0
            try:
                element.value = _map_values(element.value, lambda v: _shift(v, vr, shift))
            except ValueError:
                element.value = ""
                return "Z"
            return "C"
        if vr in TEXT_VRS:
            element.value = _map_values(element.value, self._scrub)
            return "C"
        if vr in BYTES_VRS or vr in DUMMY_NUMBER_VRS:  # e.g. a binary timestamp: no safe shift
            self._zero(ds, number)
            return "Z"
        return "C"

    def _scrub(self, text: object) -> str:
        value = str(text)
        if self.identifiers is None:
            return value
        return self.identifiers.sub("*", value)

    def _scrub_items_text(self, item: Dataset) -> None:
        for element in item:
            if element.VR in TEXT_VRS and element.value not in (None, ""):
                element.value = _map_values(element.value, self._scrub)
            elif element.VR == "SQ":
                for inner in element.value or ():
                    self._scrub_items_text(inner)

    # -- private attributes
    @staticmethod
    def _private_creators(ds: Dataset) -> dict[tuple[int, int], str]:
        creators = {}
        for tag in ds.keys():
            number = int(tag)
            if (number >> 16) & 1 and 0x0010 <= number & 0xFFFF <= 0x00FF:
                creators[(number >> 16, number & 0xFF)] = _text_of(ds, number)
        return creators

    def _private(self, ds: Dataset, number: int, creators: dict[tuple[int, int], str]) -> None:
        group, element = number >> 16, number & 0xFFFF
        if self.private_action == "X" and not self._kept_private(group, element, creators):
            del ds[number]
            self.outcome.changes[(PRIVATE_NAME, "X")] += 1
        elif _is_sequence(ds, number):
            self._walk_items(ds, number)

    def _kept_private(self, group: int, element: int,
                      creators: dict[tuple[int, int], str]) -> bool:
        if not self.keep_private:
            return False
        if 0x0010 <= element <= 0x00FF:  # a creator: kept when any of its block is
            creator = creators.get((group, element & 0xFF), "")
            return any(k.creator == creator and k.group == group for k in self.keep_private)
        block = (element >> 8) & 0xFF
        creator = creators.get((group, block))
        return creator is not None and any(
            k.creator == creator and k.group == group and k.element == element & 0xFF
            for k in self.keep_private)


def _text_of(ds: Dataset, number: int) -> str:
    try:
        return str(ds[number].value or "").strip()
    except Exception:  # noqa: BLE001 - an unreadable creator matches nothing
        return ""


def _is_sequence(ds: Dataset, number: int) -> bool:
    raw = ds.get_item(number, keep_deferred=True)
    vr = getattr(raw, "VR", None)
    if vr is None:
        try:
            vr = dictionary_VR(number)
        except KeyError:
            return False
    return vr == "SQ"


def _map_values(value: object, function) -> object:
    if value in (None, ""):
        return value
    if isinstance(value, (list, MultiValue)):
        return [function(v) for v in value]
    return function(value)


def _shift(value: object, vr: str, days: int) -> str:
    """A DA or DT value moved by whole days; ValueError when it is not a full date."""
    text = str(value).strip()
    if not text:
        return text
    head, rest = text[:8], text[8:]
    if len(head) != 8 or not head.isdigit() or (vr == "DA" and rest):
        raise ValueError(text)
    moved = date(int(head[:4]), int(head[4:6]), int(head[6:])) + timedelta(days=days)
    return moved.strftime("%Y%m%d") + rest


def _identifier_pattern(ds: Dataset) -> re.Pattern | None:
    found: set[str] = set()
    for keyword in IDENTIFYING_KEYWORDS:
        text = _text(ds, keyword)
        if not text:
            continue
        for value in text.split("\\"):
            value = value.strip()
            found.add(value)
            if keyword.endswith("Name") or keyword in ("OperatorsName", "PhysiciansOfRecord"):
                found.update(re.split(r"[\^= ,]+", value))
            if keyword.endswith("Date") and len(value) == 8 and value.isdigit():
                y, m, d = value[:4], value[4:6], value[6:]
                found.update({f"{y}-{m}-{d}", f"{d}.{m}.{y}", f"{d}/{m}/{y}", f"{m}/{d}/{y}",
                              f"{y}/{m}/{d}"})
    words = sorted((w for w in found if len(w) >= MIN_IDENTIFIER_LENGTH), key=len, reverse=True)
    if not words:
        return None
    return re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)


def deidentify_dataset(ds: Dataset, profile: Profile, key: ProjectKey,
                       *, pixels_cleaned: bool = False) -> DatasetOutcome:
    """De-identify ``ds`` in place (its file meta too) and say what changed."""
    outcome = DatasetOutcome()
    outcome.patient_identity = patient_identity(ds)
    outcome.patient_name = _text(ds, "PatientName")
    outcome.patient_pseudonym = key.patient_id(outcome.patient_identity)
    if profile.shifts_dates:
        outcome.date_shift_days = key.date_shift_days(outcome.patient_identity)
    identifiers = _identifier_pattern(ds) if "clean-descriptors" in profile.options or \
        "retain-patient-characteristics" in profile.options else None
    _Walker(profile, key, outcome, identifiers).clean(ds)
    _record_method(ds, profile, pixels_cleaned)
    _clean_file_meta(ds)
    return outcome


def _record_method(ds: Dataset, profile: Profile, pixels_cleaned: bool) -> None:
    """Patient Identity Removed, the method in words and as CID 7050 codes."""
    codes = profile.method_codes()
    if pixels_cleaned:
        from medviewer.dicom.deid.profile import CLEAN_PIXEL_CODE

        codes.append(CLEAN_PIXEL_CODE)
        ds.BurnedInAnnotation = "NO"
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = [f"MedViewer {__version__}"[:64]] + [m[:64] for _, m in codes]
    items = []
    for value, meaning in codes:
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(items)
    ds.LongitudinalTemporalInformationModified = \
        "MODIFIED" if profile.shifts_dates else "REMOVED"


def _clean_file_meta(ds: Dataset) -> None:
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        return
    for number in META_TAGS_REMOVED:
        if number in meta:
            del meta[number]
    if "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
