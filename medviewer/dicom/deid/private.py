"""Which private attributes are safe to keep (the Retain Safe Private Option, PS3.15 E.3.10).

A private attribute is kept under that option when

* it is in PS3.15 Table E.3.10-1 (Safe Private Attributes, below): its creator, odd group
  and element byte within the creator's block;
* the file itself declares it safe in its Private Data Element Characteristics Sequence
  (0008,0300): a block whose Block Identifying Information Status is SAFE, or, for a
  MIXED block, an element listed in its Nonidentifying Private Elements (0008,0304);
* or the user asked to keep it (``--keep-private``).

Every other private attribute is removed (the standard allows removing an attribute the
file recommends another action for). A kept block keeps its Private Creator element.

The table was read from PS3.15 Annex E.3.10 (as converted to text by the public
chsasank/dicom_standard project, source/part15/chapter_E.rst) and written down here as
data: ``group|creator|element bytes``, ``01-16`` meaning every byte from 01 to 16 (hex).
The standard says vendors do not guarantee these to be safe: it is a sample list.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

SAFE_PRIVATE_TABLE = """\
7053|Philips PET Private Group|00 09
00E1|ELSCINT1|21 50
01E1|ELSCINT1|26
01F1|ELSCINT1|01 07 26 27
0019|GEMS_ACQU_01|23 24 27 9E
0043|GEMS_PARM_01|27 39 6F
0045|GEMS_HELIOS_01|01 02
0903|GEIIS PACS|10 11 12
2001|Philips Imaging DD 001|03 04
0019|SIEMENS MR HEADER|0C 0D 0E 27
0025|GEMS_SERS_01|07
7E01|HOLOGIC, Inc.|01 02 10 11 12
0099|NQHeader|01 02 04 05 10 20 21
0199|NQLeft|01-16
0299|NQRight|01-16
2005|Philips MR Imaging DD 001|0D 0E
0119|SIEMENS Ultrasound SC2000|00-09 10-13 21
0129|SIEMENS Ultrasound SC2000|00 02-09 10-12 20-22 29 30
0139|SIEMENS Ultrasound SC2000|01
0149|SIEMENS Ultrasound SC2000|01 02 03
7FD1|SIEMENS Ultrasound SC2000|01 09 10 11
7FD1|SIEMENS SYNGO ULTRA-SOUND TOYON DATA STREAMING|01 09 10 11
"""

CHARACTERISTICS_SEQUENCE = 0x00080300
PRIVATE_GROUP_REFERENCE, PRIVATE_CREATOR_REFERENCE = 0x00080301, 0x00080302
BLOCK_STATUS, NONIDENTIFYING_ELEMENTS = 0x00080303, 0x00080304


def _bytes(text: str) -> set[int]:
    found: set[int] = set()
    for part in text.split():
        first, _, last = part.partition("-")
        found.update(range(int(first, 16), int(last or first, 16) + 1))
    return found


@functools.cache
def safe_private_table() -> dict[tuple[int, str], frozenset[int]]:
    """{(group, creator): element bytes} of Table E.3.10-1."""
    table: dict[tuple[int, str], set[int]] = {}
    for line in SAFE_PRIVATE_TABLE.splitlines():
        group, creator, elements = line.split("|")
        table.setdefault((int(group, 16), creator), set()).update(_bytes(elements))
    return {key: frozenset(value) for key, value in table.items()}


@dataclass(frozen=True)
class SafeBlocks:
    """The private elements one dataset may keep: {(group, creator): element bytes}, where
    None means the whole block."""

    blocks: dict[tuple[int, str], frozenset[int] | None]

    def keeps(self, group: int, creator: str, element_byte: int) -> bool:
        allowed = self.blocks.get((group, creator), frozenset())
        return allowed is None or element_byte in allowed

    def keeps_block(self, group: int, creator: str) -> bool:
        """Whether anything of the block may stay (then its Private Creator stays too)."""
        if (group, creator) not in self.blocks:
            return False
        allowed = self.blocks[(group, creator)]
        return allowed is None or bool(allowed)


def safe_blocks(ds: Dataset, use_table: bool, kept: Iterable) -> SafeBlocks:
    """What ``ds`` may keep: the standard's table (``use_table``), the blocks ``ds``
    declares safe (also only with ``use_table``: it is the same option), and ``kept``
    (PrivateTag entries the user named)."""
    blocks: dict[tuple[int, str], frozenset[int] | None] = {}

    def add(key: tuple[int, str], elements: frozenset[int] | None) -> None:
        if key in blocks and blocks[key] is None:
            return
        blocks[key] = None if elements is None else (blocks.get(key) or frozenset()) | elements

    if use_table:
        for key, elements in safe_private_table().items():
            add(key, elements)
        for key, elements in _declared_safe(ds):
            add(key, elements)
    for tag in kept:
        add((tag.group, tag.creator), frozenset({tag.element}))
    return SafeBlocks(blocks)


def _declared_safe(ds: Dataset) -> list[tuple[tuple[int, str], frozenset[int] | None]]:
    if CHARACTERISTICS_SEQUENCE not in ds:
        return []
    found = []
    try:
        items = ds[CHARACTERISTICS_SEQUENCE].value or ()
        for item in items:
            group = item.get(PRIVATE_GROUP_REFERENCE)
            creator = item.get(PRIVATE_CREATOR_REFERENCE)
            status = item.get(BLOCK_STATUS)
            if group is None or creator is None or status is None:
                continue
            key = (int(group.value), str(creator.value or "").strip())
            status = str(status.value or "").strip().upper()
            if status == "SAFE":
                found.append((key, None))
            elif status == "MIXED" and NONIDENTIFYING_ELEMENTS in item:
                values = item[NONIDENTIFYING_ELEMENTS].value
                values = values if isinstance(values, (list, MultiValue)) else [values]
                found.append((key, frozenset(int(v) & 0xFF for v in values)))
    except (TypeError, ValueError, AttributeError):  # a malformed declaration declares nothing
        return []
    return found
