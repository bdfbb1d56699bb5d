"""Changing element values in their encoded form, without pydicom converting them.

pydicom keeps each element it read as a ``RawDataElement`` (the bytes as in the file)
until the value is first used, and writes such an element by copying its bytes. Converting
a value (``ds.PatientID``, ``element.value = ...``) costs far more than the copy, so the
de-identifier reads and replaces values here, on the raw bytes, wherever the value's
encoding does not depend on the character set: UIDs, dates, times, code strings, numbers
and empty or ASCII dummy values. Text that may be in another character set (names,
descriptions) still goes through pydicom.

Only little-endian elements take this path (big endian is retired and rare); everything
else answers ``None`` here and the caller uses pydicom's converted values.

:func:`write_elements` writes a dataset the same way: elements still encoded are copied
behind a header made here, the others go through pydicom's writer.
"""

from __future__ import annotations

import struct
from functools import lru_cache

from pydicom.charset import default_encoding
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import write_data_element, write_dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, tag_in_exception
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from medviewer.dicom import file_meta

# VRs whose values use only the default character repertoire: decoding them as pydicom
# does (ISO 8859-1) needs no Specific Character Set.
ASCII_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI", "UR"})
NUMBER_SIZES = {"US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "AT": 4, "FD": 8, "UV": 8,
                "SV": 8}
ITEM_TAG_LE = b"\xfe\xff\x00\xe0"
ONE_EMPTY_ITEM = ITEM_TAG_LE + b"\x00\x00\x00\x00"  # a sequence value of one empty item
UNDEFINED_LENGTH = 0xFFFFFFFF
SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


@lru_cache(maxsize=4096)
def dictionary_vr(tag: int) -> str | None:
    """The data dictionary's VR, or None when unknown or ambiguous ('US or SS')."""
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return None
    return vr if len(vr) == 2 else None


def raw_element(ds: Dataset, tag: int) -> RawDataElement | None:
    """The element still in its encoded form (little endian), or None.

    None when it is absent, already converted by pydicom, big endian or deferred.
    """
    element = ds.get_item(tag, keep_deferred=True)
    if type(element) is not RawDataElement or not element.is_little_endian:
        return None
    if element.value is None and element.length not in (0, None):
        return None  # deferred: its bytes are still in the file
    return element


def raw_vr(element: RawDataElement) -> str | None:
    """Its VR: as encoded (explicit VR) or from the dictionary (implicit VR)."""
    vr = element.VR
    if vr is None or vr == "UN":
        return dictionary_vr(int(element.tag)) if vr is None else None
    return vr


def ascii_values(element: RawDataElement) -> list[str]:
    """The values of an element of an ASCII VR, as pydicom would decode them, stripped."""
    text = (element.value or b"").decode("latin-1")
    return [value.strip(" \x00\t\r\n") for value in text.split("\\")]


def text(ds: Dataset, tag: int) -> str:
    """An element's value as stripped text, '' when absent; several values joined by '\\'.

    Values of ASCII VRs come straight from their bytes, so reading a UID or a code string
    does not make pydicom convert (and later re-encode) the element.
    """
    element = raw_element(ds, tag)
    if element is not None and raw_vr(element) in ASCII_VRS:
        return "\\".join(ascii_values(element))
    if tag not in ds:
        return ""
    try:
        value = ds[tag].value
    except Exception:  # noqa: BLE001 - a value pydicom cannot read says nothing
        return ""
    if value is None:
        return ""
    if isinstance(value, (list, MultiValue)):
        return "\\".join(str(v) for v in value).strip()
    return str(value).strip()


def padded(value: bytes, vr: str | None) -> bytes:
    """Values have even lengths: UIDs pad with NUL, other text with a space."""
    if len(value) % 2:
        value += b"\x00" if vr == "UI" else b" "
    return value


def replace(ds: Dataset, element: RawDataElement, value: bytes) -> None:
    """Give ``element`` a new encoded value (padded to even length) in ``ds``."""
    vr = element.VR or dictionary_vr(int(element.tag))
    value = padded(value, vr) if vr != "SQ" else value
    ds[element.tag] = element._replace(value=value, length=len(value))


def encode_text(values: list[str]) -> bytes | None:
    """ASCII values joined with backslashes, or None when one of them is not ASCII."""
    try:
        return "\\".join(values).encode("ascii")
    except UnicodeEncodeError:
        return None


def dummy_number(vr: str) -> bytes:
    """A zero of a binary number VR (the same bytes in either byte order)."""
    return b"\x00" * NUMBER_SIZES[vr]


def dataset_encoding(ds: Dataset) -> tuple[bool, bool] | None:
    """(implicit VR, little endian) that new raw elements of ``ds`` must be encoded in."""
    implicit, little = ds.original_encoding
    if implicit is None or little is not True:
        return None
    return implicit, little


def add_text(ds: Dataset, tag: int, vr: str, values: list[str]) -> bool:
    """Set an ASCII text element as encoded bytes; False when that is not possible here
    (the caller then sets it through pydicom)."""
    encoding = dataset_encoding(ds)
    value = encode_text(values)
    if encoding is None or value is None:
        return False
    value = padded(value, vr)
    implicit, little = encoding
    ds[tag] = RawDataElement(BaseTag(tag), None if implicit else vr, len(value), value, 0,
                             implicit, little)
    return True


def add_encoded(ds: Dataset, tag: int, vr: str, value: bytes) -> None:
    """Set an element whose value was encoded for ``dataset_encoding(ds)`` already."""
    implicit, little = ds.original_encoding
    ds[tag] = RawDataElement(BaseTag(tag), None if implicit else vr, len(value), value, 0,
                             implicit, little)


def write_elements(file: DicomFileLike, ds: Dataset) -> None:
    """Write ``ds`` (not its file meta) to ``file``, whose encoding is set: elements still in
    their encoded form and in the file's encoding are copied with a header made here; the
    rest goes through pydicom's element writer. The bytes are what pydicom writes.

    pydicom spends more on its per-element bookkeeping than on copying a value, so this
    keeps writing a de-identified file as cheap as the plain read + write it is compared to.
    """
    if ds.original_encoding != (file.is_implicit_VR, file.is_little_endian) or \
            not file.is_little_endian:
        write_dataset(file, ds)  # pydicom re-encodes every element: nothing to copy
        return
    implicit = file.is_implicit_VR
    encodings = ds.get("SpecificCharacterSet", default_encoding)
    for tag in sorted(ds.keys()):
        if tag & 0xFFFF == 0 and tag >> 16 > 6:
            continue  # retired group lengths are not written (as pydicom)
        element = ds.get_item(tag, keep_deferred=True)
        header = _raw_header(element, implicit) if type(element) is RawDataElement else None
        if header is None:
            with tag_in_exception(tag):
                write_data_element(file, ds.get_item(tag), encodings)
            continue
        file.write(header)
        file.write(element.value)
        if element.length == UNDEFINED_LENGTH:
            file.write(SEQUENCE_DELIMITER)


def _raw_header(element: RawDataElement, implicit: bool) -> bytes | None:
    """The tag and length (and VR) in front of a raw element's bytes, or None when pydicom
    must write it (another encoding, deferred, a value too long for its VR's length)."""
    if element.is_implicit_VR != implicit or not element.is_little_endian:
        return None
    value = element.value
    if value is None:
        return None  # deferred or empty: pydicom converts it (an empty UN gets its VR)
    tag = int(element.tag)
    undefined = element.length == UNDEFINED_LENGTH
    length = UNDEFINED_LENGTH if undefined else len(value)
    if implicit:
        return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, length)
    vr = element.VR
    if vr is None or len(vr) != 2:
        return None
    if vr in EXPLICIT_VR_LENGTH_32:
        return struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF, vr.encode("ascii"), 0, length)
    if undefined or length > 0xFFFF:
        return None  # pydicom turns it into UN
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode("ascii"), length)


def encode_file_meta(meta: Dataset) -> bytes | None:
    """The file meta group (explicit VR little endian, with its group length) holding only
    the elements a de-identified file keeps; None when it holds others or lacks one (then
    pydicom's writer checks and writes it)."""
    tags = [int(tag) for tag in meta.keys()  # noqa: SIM118 - tags, not values
            if int(tag) not in (0x00020000, 0x00020001)]
    return file_meta.encode_file_meta({tag: text(meta, tag) for tag in tags})
