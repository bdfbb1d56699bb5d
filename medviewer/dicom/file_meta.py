"""The Part 10 file header (preamble, "DICM", file meta group) encoded directly, for a data
set that is already encoded: a de-identified copy, an instance a PACS sent.

pydicom's writer validates and copies the whole meta group for every file, which costs more
than writing the rest; these few elements are fixed in form (explicit VR little endian,
ASCII values), so they are packed here.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

PREAMBLE = b"\x00" * 128 + b"DICM"  # a blank preamble: it may otherwise carry a TIFF header
MEDIA_STORAGE_SOP_CLASS_UID = 0x00020002
MEDIA_STORAGE_SOP_INSTANCE_UID = 0x00020003
TRANSFER_SYNTAX_UID = 0x00020010
IMPLEMENTATION_CLASS_UID = 0x00020012
IMPLEMENTATION_VERSION_NAME = 0x00020013
SOURCE_APPLICATION_ENTITY_TITLE = 0x00020016
# The elements written here (after the group length and the version), with their VRs.
ELEMENT_VRS = {MEDIA_STORAGE_SOP_CLASS_UID: "UI", MEDIA_STORAGE_SOP_INSTANCE_UID: "UI",
               TRANSFER_SYNTAX_UID: "UI", IMPLEMENTATION_CLASS_UID: "UI",
               IMPLEMENTATION_VERSION_NAME: "SH", SOURCE_APPLICATION_ENTITY_TITLE: "AE"}
REQUIRED = (MEDIA_STORAGE_SOP_CLASS_UID, MEDIA_STORAGE_SOP_INSTANCE_UID, TRANSFER_SYNTAX_UID,
            IMPLEMENTATION_CLASS_UID)
MAX_LENGTHS = {"UI": 64, "SH": 16, "AE": 16}


def encode_file_meta(values: Mapping[int, str]) -> bytes | None:
    """The file meta group with its group length and version, holding ``values`` (tag ->
    text) in tag order; None when a value is missing, not ASCII, too long, or names an
    element not written here (the caller then uses pydicom's writer, which checks it)."""
    if any(tag not in ELEMENT_VRS for tag in values) or \
            any(not values.get(tag) for tag in REQUIRED):
        return None
    body = [struct.pack("<HH2sHI", 0x0002, 0x0001, b"OB", 0, 2), b"\x00\x01"]
    for tag in sorted(values):
        vr = ELEMENT_VRS[tag]
        text = values[tag].strip() if vr != "UI" else values[tag].strip("\x00 ")
        if not text:
            continue  # an empty optional element is left out
        try:
            value = text.encode("ascii")
        except UnicodeEncodeError:
            return None
        if len(value) > MAX_LENGTHS[vr]:
            return None
        if len(value) % 2:
            value += b"\x00" if vr == "UI" else b" "
        body.append(struct.pack("<HH2sH", 0x0002, tag & 0xFFFF, vr.encode(), len(value)))
        body.append(value)
    data = b"".join(body)
    return struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(data)) + data
