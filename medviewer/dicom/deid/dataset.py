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
  emptied, except an overlay's or curve's data (Clean Graphics), which is kept and makes
  the file a burned-in suspect (``pixels``); text is cleaned by ``text`` (this file's own
  identifying values, and what looks like a name, date, ID or UID); a sequence's items are
  de-identified, then what the table does not name in them is cleaned too: text, and dates
  and times as the profile treats dates (kept, shifted, or a dummy value), which is what
  cleaning a structured report's content (or an acquisition context) means here.

Attributes the table does not name are kept (their sequences walked); private attributes
(odd groups) are removed unless kept: by ``--keep-private`` (as they are) or, with Retain
Safe Private, when ``private`` knows them to be safe (then cleaned: UIDs replaced, text
cleaned); group lengths are removed (pydicom recomputes nothing, and they would be wrong).
An overlay whose data is removed loses its whole group: an overlay without data is broken.

Values are changed in their encoded form where the character set cannot matter (``raw``:
UIDs, dates, empty and dummy values, numbers), so pydicom converts only the few values
that need it (names, free text) and writes every other element by copying its bytes: the
cost per file stays close to a plain read and write.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass, field
from datetime import date, timedelta

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

from medviewer import __version__
from medviewer.dicom.deid import raw
from medviewer.dicom.deid.keys import ProjectKey
from medviewer.dicom.deid.private import SafeBlocks, safe_blocks
from medviewer.dicom.deid.profile import CLEAN_PIXEL_CODE, Profile
from medviewer.dicom.deid.text import TextCleaner, text_cleaner

PATIENT_NAME, PATIENT_ID = 0x00100010, 0x00100020
PRIVATE_NAME = "Private attributes"
TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "PN"})
DUMMY_TEXT = {"PN": "ANONYMOUS", "DA": "19000101", "TM": "000000", "DT": "19000101000000",
              "AS": "000D", "IS": "0", "DS": "0"}
DUMMY_NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "AT"})
BYTES_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})
# The file meta a de-identified file keeps (the rest is the sender's).
MEDIA_STORAGE_CLASS, MEDIA_STORAGE_INSTANCE, TRANSFER_SYNTAX = 0x00020002, 0x00020003, 0x00020010
IMPLEMENTATION_CLASS, IMPLEMENTATION_VERSION_NAME = 0x00020012, 0x00020013
SOP_CLASS_UID, SOP_INSTANCE_UID = 0x00080016, 0x00080018
IMPLEMENTATION_VERSION = "MEDVIEWER_" + __version__[:6]
# Where the method is recorded (PS3.15 E.1.1 step 6).
PATIENT_IDENTITY_REMOVED, DEIDENTIFICATION_METHOD = 0x00120062, 0x00120063
METHOD_CODE_SEQUENCE = 0x00120064
BURNED_IN_ANNOTATION, LONGITUDINAL_TEMPORAL_MODIFIED = 0x00280301, 0x00280303
# How a masked rectangle is written in De-identification Method (one value each, <= 64).
MASKED_PREFIX = "Pixels masked (x,y,w,h): "

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
                 cleaner: TextCleaner | None, safe: SafeBlocks) -> None:
        self.profile = profile
        self.actions = profile.actions()
        self.repeating = profile.repeating_actions()
        self.private_action = profile.private_action()
        self.safe = safe
        self.key = key
        self.outcome = outcome
        self.cleaner = cleaner

    # -- the walk
    def clean(self, ds: Dataset) -> None:
        tags = list(ds.keys())
        overlays = self._removed_overlays(tags)
        creators = None
        for tag in tags:
            number = int(tag)
            group = number >> 16
            if group & 1:
                if creators is None:  # read only when some private tags may stay
                    creators = self._private_creators(ds) if self.safe.blocks else {}
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

    def _removed_overlays(self, tags: list) -> set[int]:
        """Groups of the overlays whose data the profile removes (the rest of each goes)."""
        groups = {int(t) >> 16 for t in tags if int(t) & 0xFF01FFFF == 0x60003000}
        return {g for g in groups if (self._table_entry((g << 16) | 0x3000) or ("",))[0] == "X"}

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
            self.outcome.changes[(name, action)] += 1
            return
        element = raw.raw_element(ds, number)
        taken = self._apply_raw(ds, element, number, action) if element is not None else None
        if taken is None:
            taken = self._apply_converted(ds, number, action)
        if taken != "K":
            self.outcome.changes[(name, taken)] += 1

    def _apply_raw(self, ds: Dataset, element, number: int, action: str) -> str | None:
        """The action on the encoded value; the action taken, or None when the value must be
        converted first (text in a character set, sequences to walk, an unknown VR)."""
        vr = raw.raw_vr(element)
        if vr is None or vr == "SQ" and action in ("K", "U", "C"):
            return None
        if action == "K":
            return "K"
        if action == "Z":
            if number in (PATIENT_NAME, PATIENT_ID):
                value = raw.encode_text([self.outcome.patient_pseudonym])
                if value is None:
                    return None
                raw.replace(ds, element, value)
                return "P"  # Z filled with the patient's pseudonym
            raw.replace(ds, element, b"")
            return "Z"
        if action == "D":
            if vr == "SQ":
                raw.replace(ds, element, raw.ONE_EMPTY_ITEM)
            elif vr == "UI":
                original = "\\".join(raw.ascii_values(element))
                raw.replace(ds, element, self.key.uid(original).encode("ascii"))
            elif vr in DUMMY_NUMBER_VRS:
                raw.replace(ds, element, raw.dummy_number(vr))
            elif vr in BYTES_VRS:
                raw.replace(ds, element, b"\x00\x00")
            else:
                raw.replace(ds, element, DUMMY_TEXT.get(vr, "REMOVED").encode("ascii"))
            return "D"
        if action == "U":
            if vr != "UI":
                return None
            if element.value:
                values = [self._uid(v) for v in raw.ascii_values(element)]
                raw.replace(ds, element, "\\".join(values).encode("ascii"))
            return "U"
        if action == "C":
            if vr in ("DA", "DT"):
                shift = self.outcome.date_shift_days or 0
                try:
                    values = [_shift(v, vr, shift) for v in raw.ascii_values(element)]
                except ValueError:
                    raw.replace(ds, element, b"")
                    return "Z"
                raw.replace(ds, element, "\\".join(values).encode("ascii"))
                return "C"
            if vr == "TM":
                return "C"  # a whole-day shift leaves times as they are
            if vr in BYTES_VRS or vr in DUMMY_NUMBER_VRS:
                if _is_graphics(number):
                    return "C"  # an overlay's or curve's data: kept, checked like pixels
                raw.replace(ds, element, b"")  # a binary timestamp: no safe shift
                return "Z"
        return None

    def _apply_converted(self, ds: Dataset, number: int, action: str) -> str:
        """The action through pydicom's converted value; returns the action taken."""
        if action == "K":
            if _is_sequence(ds, number):
                self._walk_items(ds, number)
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
        return action

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
                self._clean_free_values(item)
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
        if vr in BYTES_VRS or vr in DUMMY_NUMBER_VRS:
            if _is_graphics(number):
                return "C"  # an overlay's or curve's data: kept, checked like pixels
            self._zero(ds, number)  # e.g. a binary timestamp: no safe shift
            return "Z"
        return "C"

    def _scrub(self, text: object) -> str:
        value = str(text)
        if self.cleaner is None:
            return value
        return self.cleaner.clean(value)

    def _clean_free_values(self, item: Dataset) -> None:
        """In an item of a cleaned sequence, after the table's actions: what the table does
        not name is cleaned too (free text; dates and times as the profile treats dates),
        at every depth. A structured report's TEXT, DATE and PNAME values are such."""
        for tag in list(item.keys()):
            number = int(tag)
            if number >> 16 & 1:
                continue  # private: the walk removed or kept it
            entry = self._table_entry(number)
            if _is_sequence(item, number):
                if entry is None or entry[0] in ("K", "U"):  # a C sequence was cleaned
                    for inner in item[number].value or ():
                        self._clean_free_values(inner)
                continue
            if entry is not None:
                continue
            element = item[number]
            if element.value in (None, ""):
                continue
            if element.VR in TEXT_VRS:
                element.value = _map_values(element.value, self._scrub)
            elif element.VR in ("DA", "DT", "TM"):
                self._clean_free_date(element)

    def _clean_free_date(self, element) -> None:
        vr = element.VR
        if self.profile.keeps_dates or vr == "TM" and self.profile.shifts_dates:
            return
        if self.profile.shifts_dates:
            shift = self.outcome.date_shift_days or 0
            try:
                element.value = _map_values(element.value, lambda v: _shift(v, vr, shift))
                return
            except ValueError:
                pass
        element.value = DUMMY_TEXT[vr]

    # -- private attributes
    @staticmethod
    def _private_creators(ds: Dataset) -> dict[tuple[int, int], str]:
        creators = {}
        for tag in ds.keys():  # noqa: SIM118 - iterating a Dataset converts its elements
            number = int(tag)
            if (number >> 16) & 1 and 0x0010 <= number & 0xFFFF <= 0x00FF:
                creators[(number >> 16, number & 0xFF)] = _text_of(ds, number)
        return creators

    def _private(self, ds: Dataset, number: int, creators: dict[tuple[int, int], str]) -> None:
        group, element = number >> 16, number & 0xFFFF
        if self.private_action in ("X", "C") and \
                not self._kept_private(group, element, creators):
            del ds[number]
            self.outcome.changes[(PRIVATE_NAME, "X")] += 1
        elif self.private_action == "C" and element > 0xFF:
            self._clean_private(ds, number)  # Retain Safe Private: kept, and cleaned
        elif _is_sequence(ds, number):
            self._walk_items(ds, number)

    def _clean_private(self, ds: Dataset, number: int) -> None:
        """A safe private attribute is kept with its UIDs replaced (as every other UID,
        unless the profile keeps UIDs), its text cleaned and its items de-identified."""
        element = ds[number]
        if element.VR == "SQ":
            for item in element.value or ():
                self.clean(item)
                self._clean_free_values(item)
        elif element.VR == "UI" and "retain-uids" not in self.profile.options:
            self._replace_uids(ds, number)
        elif element.VR in TEXT_VRS and element.value not in (None, ""):
            element.value = _map_values(element.value, self._scrub)
        self.outcome.changes[(PRIVATE_NAME, "C")] += 1

    def _kept_private(self, group: int, element: int,
                      creators: dict[tuple[int, int], str]) -> bool:
        if not self.safe.blocks:
            return False
        if 0x0010 <= element <= 0x00FF:  # a creator: kept when any of its block may be
            creator = creators.get((group, element & 0xFF))
            return creator is not None and self.safe.keeps_block(group, creator)
        creator = creators.get((group, (element >> 8) & 0xFF))
        return creator is not None and self.safe.keeps(group, creator, element & 0xFF)


def _text_of(ds: Dataset, number: int) -> str:
    try:
        return str(ds[number].value or "").strip()
    except Exception:  # noqa: BLE001 - an unreadable creator matches nothing
        return ""


def _is_graphics(number: int) -> bool:
    """An element of a curve (50xx) or overlay (60xx) group."""
    return (number >> 24) in (0x50, 0x60) and not (number >> 16) & 1


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


def deidentify_dataset(ds: Dataset, profile: Profile, key: ProjectKey,
                       *, masked_regions: SequenceOf[str] = ()) -> DatasetOutcome:
    """De-identify ``ds`` in place (its file meta too) and say what changed.

    ``masked_regions``: the rectangles ('x,y,w,h') just blacked out in its pixels; with
    them, or with an earlier record of cleaned pixels in ``ds``, the output says its pixels
    were cleaned and where (see :func:`recorded_pixel_cleaning`).
    """
    outcome = DatasetOutcome()
    outcome.patient_identity = patient_identity(ds)
    outcome.patient_name = _text(ds, "PatientName")
    outcome.patient_pseudonym = key.patient_id(outcome.patient_identity)
    if profile.shifts_dates:
        outcome.date_shift_days = key.date_shift_days(outcome.patient_identity)
    earlier = recorded_pixel_cleaning(ds)
    cleaner = text_cleaner(ds, profile) if profile.cleans_text else None
    safe = safe_blocks(ds, profile.keeps_safe_private, profile.keep_private)
    _Walker(profile, key, outcome, cleaner, safe).clean(ds)
    cleaned = None
    if masked_regions or earlier is not None:
        cleaned = tuple(dict.fromkeys([*(earlier or ()),
                                       *(MASKED_PREFIX + r for r in masked_regions)]))
    _record_method(ds, profile, cleaned)
    _clean_file_meta(ds)
    return outcome


def recorded_codes(ds: Dataset) -> set[tuple[str, str]]:
    """(coding scheme, code value) of the De-identification Method Code Sequence in ``ds``
    (what an earlier de-identification says it did)."""
    if METHOD_CODE_SEQUENCE not in ds:
        return set()
    try:
        return {(str(item.get("CodingSchemeDesignator", "")).strip(),
                 str(item.get("CodeValue", "")).strip())
                for item in ds[METHOD_CODE_SEQUENCE].value or ()}
    except Exception:  # noqa: BLE001 - a record that cannot be read records nothing
        return set()


def recorded_pixel_cleaning(ds: Dataset) -> tuple[str, ...] | None:
    """The regions an earlier de-identification blacked out, when ``ds`` records that its
    pixels were cleaned (Burned In Annotation NO and the Clean Pixel Data Option's code, as
    PS3.15 asks a de-identifier to record it); None when it does not."""
    if raw.text(ds, BURNED_IN_ANNOTATION).upper() != "NO" or \
            ("DCM", CLEAN_PIXEL_CODE[0]) not in recorded_codes(ds):
        return None
    methods = raw.text(ds, DEIDENTIFICATION_METHOD).split("\\")
    return tuple(m.strip() for m in methods if m.strip().startswith(MASKED_PREFIX))


def _record_method(ds: Dataset, profile: Profile, cleaned: tuple[str, ...] | None) -> None:
    """Patient Identity Removed, the method in words and as CID 7050 codes; with
    ``cleaned`` (the masked rectangles, maybe none listed), that the pixels were cleaned."""
    codes = tuple(profile.method_codes())
    described = [f"MedViewer {__version__}"[:64]] + [m[:64] for _, m in codes]
    if cleaned is not None:
        codes += (CLEAN_PIXEL_CODE,)
        described += [CLEAN_PIXEL_CODE[1], *(text[:64] for text in cleaned)]
        _set_text(ds, BURNED_IN_ANNOTATION, "CS", ["NO"])
    _set_text(ds, PATIENT_IDENTITY_REMOVED, "CS", ["YES"])
    _set_text(ds, DEIDENTIFICATION_METHOD, "LO", described)
    encoding = raw.dataset_encoding(ds)
    if encoding is not None:
        raw.add_encoded(ds, METHOD_CODE_SEQUENCE, "SQ", _encoded_codes(codes, encoding[0]))
    else:
        ds.DeidentificationMethodCodeSequence = _code_sequence(codes)
    _set_text(ds, LONGITUDINAL_TEMPORAL_MODIFIED, "CS",
              ["MODIFIED" if profile.shifts_dates else
               "UNMODIFIED" if profile.keeps_dates else "REMOVED"])


def _set_text(ds: Dataset, tag: int, vr: str, values: list[str]) -> None:
    if not raw.add_text(ds, tag, vr, values):
        ds.add_new(tag, vr, values if len(values) > 1 else values[0])


def _code_sequence(codes: tuple[tuple[str, str], ...]) -> Sequence:
    items = []
    for value, meaning in codes:
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        items.append(item)
    return Sequence(items)


@functools.lru_cache(maxsize=64)
def _encoded_codes(codes: tuple[tuple[str, str], ...], implicit_vr: bool) -> bytes:
    """The code sequence's value, encoded once per set of codes (every file gets the same)."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_sequence_item

    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, implicit_vr
    for item in _code_sequence(codes):
        write_sequence_item(buffer, item, ["iso8859"])
    return buffer.getvalue()


def _clean_file_meta(ds: Dataset) -> None:
    """The file meta is replaced (PS3.15 E.1.1, step 7): it keeps what reading the file needs
    (SOP class and instance, transfer syntax) and names MedViewer as the writer; what the
    sender put there (AE titles, presentation addresses, private data) goes. The preamble,
    free for applications to fill (e.g. a TIFF header naming the patient), is blanked."""
    if hasattr(ds, "preamble"):
        ds.preamble = b"\x00" * 128
    old = getattr(ds, "file_meta", None)
    if old is None:
        return
    meta = FileMetaDataset()
    meta.set_original_encoding(False, True, None)  # file meta: explicit VR little endian
    meta.FileMetaInformationVersion = b"\x00\x01"
    for tag, vr, text in (
            (MEDIA_STORAGE_CLASS, "UI", raw.text(ds, SOP_CLASS_UID) or
             raw.text(old, MEDIA_STORAGE_CLASS)),
            (MEDIA_STORAGE_INSTANCE, "UI", raw.text(ds, SOP_INSTANCE_UID)),
            (TRANSFER_SYNTAX, "UI", raw.text(old, TRANSFER_SYNTAX)),
            (IMPLEMENTATION_CLASS, "UI", PYDICOM_IMPLEMENTATION_UID),
            (IMPLEMENTATION_VERSION_NAME, "SH", IMPLEMENTATION_VERSION)):
        if text and not raw.add_text(meta, tag, vr, [text]):
            meta.add_new(tag, vr, text)
    ds.file_meta = meta
