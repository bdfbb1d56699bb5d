"""The de-identification profile: which options are on, and the one action per attribute.

``Profile.action_for(tag)`` turns Table E.1-1 (``table_e1_1``) into a single action letter
for the chosen options:

* An option column that is on and gives an action for the attribute overrides the Basic
  Profile (PS3.15 E.3). When two options that are on disagree, the more protective action
  wins (X, then Z, D, U, C, K).
* The combined codes take the action that keeps the object valid whatever the attribute's
  type in its IOD, since the IOD is not known here: X/Z -> Z (present, empty), X/D, Z/D and
  X/Z/D -> D (a dummy value), X/Z/U* -> U (the sequence stays, its UIDs are replaced and its
  items are de-identified like the rest).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field

from medviewer.dicom.deid.table_e1_1 import TableRow, table_rows
from medviewer.errors import UserError

# The options a user can choose, as (name, the table's column, CID 7050 code, code meaning),
# in the order the dialog shows them.
OPTIONS: dict[str, tuple[str, str, str]] = {
    "retain-modified-dates": ("retain_long_modified_dates", "113107",
                              "Retain Longitudinal Temporal Information Modified Dates Option"),
    "retain-full-dates": ("retain_long_full_dates", "113106",
                          "Retain Longitudinal Temporal Information Full Dates Option"),
    "retain-patient-characteristics": ("retain_patient_characteristics", "113108",
                                       "Retain Patient Characteristics Option"),
    "retain-device-identity": ("retain_device_identity", "113109",
                               "Retain Device Identity Option"),
    "retain-institution-identity": ("retain_institution_identity", "113112",
                                    "Retain Institution Identity Option"),
    "clean-descriptors": ("clean_descriptors", "113105", "Clean Descriptors Option"),
    "clean-structured-content": ("clean_structured_content", "113104",
                                 "Clean Structured Content Option"),
    "clean-graphics": ("clean_graphics", "113103", "Clean Graphics Option"),
    "retain-safe-private": ("retain_safe_private", "113111", "Retain Safe Private Option"),
    "retain-uids": ("retain_uids", "113110", "Retain UIDs Option"),
}
OPTION_TITLES = {
    "retain-modified-dates": "Keep the time between dates (every date of a patient shifted "
                             "by the same number of days)",
    "retain-full-dates": "Keep dates and times as they are (they can help identify a "
                         "patient)",
    "retain-patient-characteristics": "Keep patient characteristics (sex, age, size, weight, "
                                      "ethnic group, smoking and pregnancy status)",
    "retain-device-identity": "Keep device identity (station, serial numbers, detector IDs)",
    "retain-institution-identity": "Keep the institution (name, address, department, "
                                   "clinical trial site)",
    "clean-descriptors": "Keep descriptions (study, series, protocol, comments) with names, "
                         "IDs, dates and UIDs taken out",
    "clean-structured-content": "Keep structured reports' content and acquisition context, "
                                "with names, IDs, dates and UIDs taken out",
    "clean-graphics": "Keep overlays, curves and graphic annotations (their text cleaned; "
                      "files with overlays then need a check, like burned-in text)",
    "retain-safe-private": "Keep private attributes known to be safe (PS3.15's list, or "
                           "blocks the file declares safe)",
    "retain-uids": "Keep the original UIDs (off by default: they can be traced back)",
}
# Options that cannot be chosen together, with the sentence saying why.
EXCLUSIVE = ((frozenset({"retain-modified-dates", "retain-full-dates"}),
              "keep dates as they are or shift them, not both"),)
# Options under which free text is kept and cleaned (some attribute's action becomes C).
TEXT_CLEANING = frozenset({"clean-descriptors", "clean-structured-content", "clean-graphics",
                           "retain-patient-characteristics", "retain-safe-private"})
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
CLEAN_PIXEL_CODE = ("113101", "Clean Pixel Data Option")
PROFILE_NAMES = ("basic",)

COMBINED_CODES = {"X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "D", "X/Z/U*": "U"}
MOST_PROTECTIVE_FIRST = "XZDUCK"


def resolve(row: TableRow, columns: Iterable[str]) -> str:
    """The single action (X, Z, D, U, C or K) for one table row with these option columns."""
    chosen = [row.options[c] for c in columns if c in row.options]
    if chosen:
        return min(chosen, key=MOST_PROTECTIVE_FIRST.index)
    return COMBINED_CODES.get(row.basic, row.basic)


@dataclass(frozen=True)
class PrivateTag:
    """A private attribute kept by request: its block's creator, group and element byte."""

    creator: str
    group: int
    element: int  # the low byte (0x00-0xFF) of the element number within its block

    @classmethod
    def parse(cls, text: str) -> PrivateTag:
        """'CREATOR,GGGG,EE' (hex), e.g. 'SIEMENS MED,0029,10'."""
        parts = [p.strip() for p in text.rsplit(",", 2)]
        try:
            creator, group, element = parts[0], int(parts[1], 16), int(parts[2], 16)
        except (IndexError, ValueError):
            raise UserError(f"The private tag to keep '{text}' is not CREATOR,GGGG,EE "
                            f"(e.g. 'SIEMENS MED,0029,10').") from None
        if not creator or not group & 1 or not 0 <= element <= 0xFF:
            raise UserError(f"The private tag to keep '{text}' needs a creator, an odd group "
                            f"and an element byte 00-FF.")
        return cls(creator, group, element)


@dataclass(frozen=True)
class Profile:
    """The Basic Profile with the chosen options and the private tags to keep."""

    options: frozenset[str] = frozenset()
    keep_private: frozenset[PrivateTag] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.options) - set(OPTIONS))
        if unknown:
            raise UserError(f"The de-identification option '{unknown[0]}' is not one of "
                            f"{', '.join(OPTIONS)}.")
        for together, why in EXCLUSIVE:
            if together <= self.options:
                first, second = sorted(together)
                raise UserError(f"The options {first} and {second} cannot be used together: "
                                f"{why}.")

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(OPTIONS[o][0] for o in sorted(self.options))

    @property
    def shifts_dates(self) -> bool:
        return "retain-modified-dates" in self.options

    @property
    def keeps_dates(self) -> bool:
        return "retain-full-dates" in self.options

    @property
    def cleans_text(self) -> bool:
        """Whether some free text is kept and must be cleaned of identity."""
        return bool(self.options & TEXT_CLEANING)

    @property
    def keeps_graphics(self) -> bool:
        return "clean-graphics" in self.options

    @property
    def keeps_safe_private(self) -> bool:
        return "retain-safe-private" in self.options

    def actions(self) -> dict[int, tuple[str, str]]:
        """{tag: (action, attribute name)} for every fixed tag of the table."""
        return _actions(self.columns)

    def repeating_actions(self) -> tuple[tuple[int, int, str, str], ...]:
        """(mask, value, action, name) for the repeating-group rows (50xx,xxxx; 60xx,...)."""
        return _repeating(self.columns)

    def private_action(self) -> str:
        return resolve(_private_row(), self.columns)

    def method_codes(self) -> list[tuple[str, str]]:
        """CID 7050 codes for what this profile does (the Basic Profile first)."""
        return [BASIC_PROFILE_CODE] + [(OPTIONS[o][1], OPTIONS[o][2])
                                       for o in sorted(self.options)]


@functools.cache
def _actions(columns: tuple[str, ...]) -> dict[int, tuple[str, str]]:
    return {int(row.tag, 16): (resolve(row, columns), row.name) for row in table_rows()
            if "x" not in row.tag and row.tag != "private"}


@functools.cache
def _repeating(columns: tuple[str, ...]) -> tuple[tuple[int, int, str, str], ...]:
    found = []
    for row in table_rows():
        if "x" in row.tag:
            mask = int("".join("0" if c == "x" else "F" for c in row.tag), 16)
            value = int(row.tag.replace("x", "0"), 16)
            found.append((mask, value, resolve(row, columns), row.name))
    return tuple(found)


@functools.cache
def _private_row() -> TableRow:
    return next(row for row in table_rows() if row.tag == "private")
