"""The output folder as a DICOM File-set: where each file goes, and the DICOMDIR.

:class:`FileSetLayout` gives each de-identified instance its place in the standard layout
``PT000000/ST000000/SE000000/IM000000`` (PS3.10 8.2: up to eight upper-case letters and
digits per component) as it arrives, and remembers the PATIENT > STUDY > SERIES > leaf
directory records it needs (PS3.3 F.5, the Basic Directory IOD). :meth:`FileSetLayout.write`
writes the DICOMDIR once at the end: each record is encoded once by pydicom, and the
offsets that link the records (next record at the same level, first record of the level
below, both counted from the first byte of the file) are computed from the records'
encoded lengths and written around them here.

pydicom's ``FileSet`` could do this, but it re-reads the DICOMDIR it writes and copies every
record, which cost more than de-identifying the files themselves.

The Basic Profile empties Study Date, Study Time and Study ID, which a STUDY record must
have (Type 1): the record (only) gets placeholders (19000101, 000000, a study number from
the de-identified Study Instance UID).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

from medviewer.dicom.catalog import MEDIA_STORAGE_DIRECTORY_UID
from medviewer.dicom.deid import raw
from medviewer.dicom.deid.dataset import IMPLEMENTATION_VERSION

PLACEHOLDER_DATE, PLACEHOLDER_TIME = "19000101", "000000"
LEVEL_PREFIXES = ("PT", "ST", "SE")
MAX_PER_LEVEL = 1_000_000  # six digits per component
# The prefix of a leaf's file name by its record type (pydicom's names where it has one).
LEAF_PREFIXES = {"IMAGE": "IM", "RT DOSE": "RD", "RT STRUCTURE SET": "RS", "RT PLAN": "RP",
                 "RT TREAT RECORD": "RX", "PRESENTATION": "PR", "WAVEFORM": "WV",
                 "SR DOCUMENT": "SR", "KEY OBJECT DOC": "KY", "SPECTROSCOPY": "SP",
                 "RAW DATA": "RW", "REGISTRATION": "RG", "FIDUCIAL": "FD", "ENCAP DOC": "ED",
                 "MEASUREMENT": "MX", "SURFACE": "SF", "SURFACE SCAN": "SS", "TRACT": "TR",
                 "PLAN": "PL", "RADIOTHERAPY": "RT"}
# Encoded sizes (explicit VR little endian): item header; the two offsets and the in-use
# flag in front of each record's own elements; the root's elements in front of the record
# sequence. The flag is retired, but validators of older editions still ask for it.
ITEM_HEADER = 8
RECORD_LINKS = 12 + 10 + 12
IN_USE = 0xFFFF
ROOT_ELEMENTS = 8 + 12 + 12 + 10 + 12


@dataclass
class _Node:
    record: Record
    name: str  # this level's component of the File ID
    children: dict[str, _Node] = field(default_factory=dict)
    next_index: int = 0
    encoded: bytes = b""
    offset: int = 0

    def child_name(self, prefix: str) -> str:
        if self.next_index >= MAX_PER_LEVEL:
            raise ValueError(f"more than {MAX_PER_LEVEL} entries at one level of a File-set")
        name = f"{prefix}{self.next_index:06d}"
        self.next_index += 1
        return name


class FileSetLayout:
    """The File IDs and directory records of a File-set being written."""

    def __init__(self) -> None:
        self._root = _Node({}, "")
        self._keys: dict[tuple[str, ...], tuple[str, str, str, str]] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, ds: Dataset) -> tuple[str, ...]:
        """Place a de-identified instance: its File ID (the path's components)."""
        sop_uid = raw.text(ds, SOP_INSTANCE_UID)
        if not sop_uid:
            raise ValueError("it has no SOP Instance UID, which its DICOMDIR record needs")
        fields = _Fields(ds)
        study_uid, series_uid = raw.text(ds, STUDY_UID), raw.text(ds, SERIES_UID)
        patient_id = raw.text(ds, PATIENT_ID) or "ANONYMOUS"
        keys = (patient_id, study_uid, series_uid, sop_uid)
        builders = (lambda: _patient_record(ds, fields, patient_id),
                    lambda: _study_record(ds, fields, study_uid),
                    lambda: _series_record(ds, fields, series_uid))
        node, path = self._root, []
        for key, prefix, build in zip(keys[:3], LEVEL_PREFIXES, builders):
            child = node.children.get(key)
            if child is None:
                child = _Node(build(), node.child_name(prefix))
                node.children[key] = child
            node = child
            path.append(node.name)
        leaf_type, record = _leaf_record(ds, fields, sop_uid)
        leaf = _Node(record, node.child_name(LEAF_PREFIXES.get(leaf_type, "IM")))
        path.append(leaf.name)
        file_id = tuple(path)
        if isinstance(record, dict):
            record[REFERENCED_FILE_ID] = ("CS", fields.encode("\\".join(file_id), "CS"))
        else:
            record.ReferencedFileID = list(file_id)
        node.children[sop_uid] = leaf
        self._keys[file_id] = keys
        return file_id

    def remove(self, file_id: tuple[str, ...]) -> None:
        """Forget an instance whose file could not be written (and parents left empty)."""
        keys = self._keys.pop(file_id)
        chain = [self._root]
        for key in keys:
            chain.append(chain[-1].children[key])
        for parent, key, child in zip(reversed(chain[:-1]), reversed(keys), reversed(chain[1:])):
            if child.children:
                break
            del parent.children[key]

    def file_ids(self) -> list[tuple[str, ...]]:
        return list(self._keys)

    # ------------------------------------------------------------ the DICOMDIR

    def encode(self) -> bytes:
        """The whole DICOMDIR file."""
        prefix = _preamble_and_meta()
        order: list[_Node] = []
        _depth_first(self._root, order)
        for node in order:
            node.encoded = _encode_record(node.record)
        position = len(prefix) + ROOT_ELEMENTS
        for node in order:
            node.offset = position
            position += ITEM_HEADER + RECORD_LINKS + len(node.encoded)
        patients = list(self._root.children.values())
        first = patients[0].offset if patients else 0
        last = patients[-1].offset if patients else 0
        records_length = position - len(prefix) - ROOT_ELEMENTS
        parts = [prefix,
                 _short(0x00041130, b"CS", b""),  # File-set ID: none (Type 2)
                 _short(0x00041200, b"UL", struct.pack("<I", first)),
                 _short(0x00041202, b"UL", struct.pack("<I", last)),
                 _short(0x00041212, b"US", struct.pack("<H", 0)),  # consistent
                 struct.pack("<HH2sHI", 0x0004, 0x1220, b"SQ", 0, records_length)]
        _append_records(self._root, parts)
        data = b"".join(parts)
        assert len(data) == position, "a DICOMDIR offset would be wrong"
        return data

    def write(self, path: Path) -> None:
        with open(path, "xb") as handle:
            handle.write(self.encode())


def _depth_first(node: _Node, order: list[_Node]) -> None:
    for child in node.children.values():
        order.append(child)
        _depth_first(child, order)


def _append_records(node: _Node, parts: list[bytes]) -> None:
    children = list(node.children.values())
    for index, child in enumerate(children):
        following = children[index + 1].offset if index + 1 < len(children) else 0
        lower = next(iter(child.children.values())).offset if child.children else 0
        parts.append(struct.pack("<HHI", 0xFFFE, 0xE000, RECORD_LINKS + len(child.encoded)))
        parts.append(_short(0x00041400, b"UL", struct.pack("<I", following)))
        parts.append(_short(0x00041410, b"US", struct.pack("<H", IN_USE)))
        parts.append(_short(0x00041420, b"UL", struct.pack("<I", lower)))
        parts.append(child.encoded)
        _append_records(child, parts)


def _short(tag: int, vr: bytes, value: bytes) -> bytes:
    """An explicit VR little endian element with a 2-byte length."""
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr, len(value)) + value


def _preamble_and_meta() -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MEDIA_STORAGE_DIRECTORY_UID
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    buffer = DicomBytesIO()
    buffer.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buffer, meta, enforce_standard=True)
    return buffer.getvalue()


def _encode_record(record: Record) -> bytes:
    """A record's own elements (from Directory Record Type on), explicit VR little endian."""
    if isinstance(record, dict):
        return b"".join(_element(tag, vr, value) for tag, (vr, value) in sorted(record.items()))
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_dataset(buffer, record)
    return buffer.getvalue()


def _element(tag: int, vr: str, value: bytes) -> bytes:
    """An element of a VR with a 2-byte length (every one a record of ours holds)."""
    return _short(tag, vr.encode("ascii"), value[:MAX_SHORT_VALUE])


# ---------------------------------------------------------------- the records
#
# A record is a dict {tag: (VR, encoded value)}: the values are few and short, and encoding
# them here costs a fraction of building and writing a pydicom Dataset for each. Leaves
# other than images (SR documents, RT plans...) come from pydicom's record makers as
# Datasets, which pydicom encodes.

SPECIFIC_CHARACTER_SET, PATIENT_NAME, PATIENT_ID = 0x00080005, 0x00100010, 0x00100020
STUDY_DATE, STUDY_TIME, ACCESSION_NUMBER = 0x00080020, 0x00080030, 0x00080050
STUDY_DESCRIPTION, STUDY_UID, STUDY_ID = 0x00081030, 0x0020000D, 0x00200010
MODALITY, SERIES_UID, SERIES_NUMBER = 0x00080060, 0x0020000E, 0x00200011
SOP_CLASS_UID, SOP_INSTANCE_UID, INSTANCE_NUMBER = 0x00080016, 0x00080018, 0x00200013
RECORD_TYPE, REFERENCED_FILE_ID = 0x00041430, 0x00041500
REFERENCED_CLASS, REFERENCED_INSTANCE, REFERENCED_SYNTAX = 0x00041510, 0x00041511, 0x00041512
MAX_SHORT_VALUE = 0xFFFE

Record = dict[int, tuple[str, bytes]] | Dataset


class _Fields:
    """Encodes one instance's values for its records, in its character set."""

    def __init__(self, ds: Dataset) -> None:
        self.charset = raw.text(ds, SPECIFIC_CHARACTER_SET)
        self._encodings: list[str] | None = None

    def encode(self, text: str, vr: str) -> bytes:
        try:
            value = text.encode("ascii")
        except UnicodeEncodeError:
            value = self._encode_other(text, vr)
        return raw.padded(value, vr)

    def _encode_other(self, text: str, vr: str) -> bytes:
        from pydicom.charset import convert_encodings, encode_string
        from pydicom.valuerep import PersonName

        if self._encodings is None:
            self._encodings = convert_encodings(self.charset.split("\\") if self.charset
                                                else None)
        if vr == "PN":
            return PersonName(text).encode(self._encodings)
        return encode_string(text, self._encodings)

    def record(self, kind: str, values: dict[int, tuple[str, str]]) -> dict:
        record = {RECORD_TYPE: ("CS", self.encode(kind, "CS"))}
        if self.charset:
            record[SPECIFIC_CHARACTER_SET] = ("CS", self.encode(self.charset, "CS"))
        for tag, (vr, text) in values.items():
            record[tag] = (vr, self.encode(text, vr))
        return record


def _patient_record(ds: Dataset, fields: _Fields, patient_id: str) -> dict:
    return fields.record("PATIENT", {PATIENT_ID: ("LO", patient_id),
                                     PATIENT_NAME: ("PN", raw.text(ds, PATIENT_NAME))})


def _study_record(ds: Dataset, fields: _Fields, study_uid: str) -> dict:
    study_id = raw.text(ds, STUDY_ID) or "S" + study_uid.replace(".", "")[-7:]
    return fields.record("STUDY", {
        STUDY_DATE: ("DA", raw.text(ds, STUDY_DATE) or PLACEHOLDER_DATE),
        STUDY_TIME: ("TM", raw.text(ds, STUDY_TIME) or PLACEHOLDER_TIME),
        STUDY_ID: ("SH", study_id), STUDY_UID: ("UI", study_uid),
        ACCESSION_NUMBER: ("SH", raw.text(ds, ACCESSION_NUMBER)),
        STUDY_DESCRIPTION: ("LO", raw.text(ds, STUDY_DESCRIPTION))})


def _series_record(ds: Dataset, fields: _Fields, series_uid: str) -> dict:
    return fields.record("SERIES", {
        MODALITY: ("CS", raw.text(ds, MODALITY) or "OT"), SERIES_UID: ("UI", series_uid),
        SERIES_NUMBER: ("IS", raw.text(ds, SERIES_NUMBER).split("\\")[0] or "0")})


def _leaf_type(ds: Dataset) -> str:
    from pydicom import fileset

    finder = getattr(fileset, "_four_level_record_type", None)
    try:
        return finder(ds) if finder is not None else "IMAGE"
    except Exception:  # noqa: BLE001 - an odd object: list it as an image
        return "IMAGE"


def _leaf_record(ds: Dataset, fields: _Fields, sop_uid: str) -> tuple[str, Record]:
    """(record type, record) for the instance itself, with its references."""
    from pydicom.fileset import DIRECTORY_RECORDERS

    leaf_type = _leaf_type(ds)
    instance_number = raw.text(ds, INSTANCE_NUMBER).split("\\")[0] or "0"
    references = {REFERENCED_CLASS: ("UI", raw.text(ds, SOP_CLASS_UID)),
                  REFERENCED_INSTANCE: ("UI", sop_uid),
                  REFERENCED_SYNTAX: ("UI", str(ds.file_meta.TransferSyntaxUID))}
    if leaf_type != "IMAGE":  # other record kinds need more of the header
        proxy = Dataset()  # a copy of the element table: ds itself stays as it is
        proxy.update(ds)
        proxy.InstanceNumber = instance_number
        try:
            leaf = DIRECTORY_RECORDERS[leaf_type](proxy)
        except (KeyError, ValueError, AttributeError, TypeError):
            leaf = None
        if leaf is not None:
            leaf.DirectoryRecordType = leaf_type
            if fields.charset:
                leaf.SpecificCharacterSet = fields.charset.split("\\")
            for tag, (vr, text) in references.items():
                leaf.add_new(tag, vr, text)
            return leaf_type, leaf
    return "IMAGE", fields.record("IMAGE", {**references,
                                            INSTANCE_NUMBER: ("IS", instance_number)})
