"""A folder, a file or a DICOMDIR -> Patient > Study > Series > Instance, with a cached index.

``index_path`` is a job generator (see ``medviewer.jobs``): it yields Progress events and
returns a :class:`Catalog`. Re-indexing a folder reuses the cache in the user cache dir for
files whose size and modification time are unchanged.

What gets indexed:

* a folder: every file below it (recursively). Files whose suffix says they are plainly
  something else (``.txt``, ``.xml``, ``.zip``, raw JPEG 2000 codestreams, ...) are counted
  in :attr:`Catalog.ignored`; every other regular file is read as DICOM (or as a PNG/JPEG
  X-ray) and either becomes an instance or an entry in :attr:`Catalog.errors`. A DICOMDIR met
  on the way is checked: references that escape its folder or point at missing files are
  errors.
* a DICOMDIR file: the files its directory records reference, and nothing else.
* a single DICOM, PNG or JPEG file.

One rule for symbolic links, in a folder and in a DICOMDIR alike: a link is followed only
while it stays inside the opened folder; one leading outside is listed as an error and not
opened, unless the caller asks for links to be followed (``follow_links``), which also
follows linked folders (each real folder once, so a loop ends).

Only headers are read (``stop_before_pixels``), never pixel data. Records of unchanged
files come from the folder's index cache (``dicom/index_cache.py``).
"""

from __future__ import annotations

import json
import logging
import os
import stat as stat_module
import struct
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from medviewer.dicom import images
from medviewer.dicom.index_cache import FileStamp, IndexCache
from medviewer.dicom.reader import LoadError, read_header
from medviewer.files import os_error_reason
from medviewer.jobs import CancelFlag, JobCancelled, Progress

log = logging.getLogger(__name__)


@dataclass
class InstanceRecord:
    """What the browser needs about one file, read from its header only."""

    path: Path
    sop_instance_uid: str
    instance_number: int | None = None
    n_frames: int = 1
    rows: int = 0
    columns: int = 0
    modality: str = ""
    photometric: str = ""
    content_hash: str | None = None  # set for non-DICOM images
    sop_class_uid: str = ""
    transfer_syntax: str = ""  # UID; empty for non-DICOM images and ACR-NEMA files


@dataclass
class SeriesNode:
    uid: str
    number: int | None = None
    description: str = ""
    modality: str = ""
    instances: list[InstanceRecord] = field(default_factory=list)


@dataclass
class StudyNode:
    uid: str
    date: str = ""  # DICOM DA, YYYYMMDD
    description: str = ""
    accession_number: str = ""
    series: list[SeriesNode] = field(default_factory=list)
    time: str = ""  # DICOM TM, HHMMSS.FFFFFF (orders studies of one day, e.g. for priors)


@dataclass
class PatientNode:
    patient_id: str
    name: str = ""
    birth_date: str = ""
    sex: str = ""
    studies: list[StudyNode] = field(default_factory=list)
    issuer: str = ""  # Issuer of Patient ID: the same ID from two issuers is two patients


@dataclass
class FileError:
    path: Path
    reason: str  # the LoadError sentence


@dataclass
class Catalog:
    root: Path
    patients: list[PatientNode] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
    from_cache: int = 0  # how many records came from the cache unchanged
    # Files skipped because their suffix says they are not images (.txt, .xml, .zip, ...).
    ignored: list[Path] = field(default_factory=list)

    def instances(self) -> list[InstanceRecord]:
        return [inst for p in self.patients for st in p.studies for se in st.series
                for inst in se.instances]

    @property
    def could_open(self) -> bool:
        """Whether at least one image was read: only then is the path worth remembering
        (File > Recent); otherwise :attr:`errors` says what failed."""
        return any(se.instances for p in self.patients for st in p.studies for se in st.series)


# ---------------------------------------------------------------- what to read

PROGRESS_EVERY = 50
MEDIA_STORAGE_DIRECTORY_UID = "1.2.840.10008.1.3.10"

# Suffixes of files that commonly sit beside DICOM files but are never images we can show.
# Anything else (no suffix, .dcm, .ima, unknown) is read, and listed as an error if it fails.
IGNORED_SUFFIXES = frozenset({
    ".txt", ".xml", ".zip", ".gz", ".tgz", ".tar", ".bz2", ".xz", ".7z", ".rar",
    ".md", ".rst", ".json", ".csv", ".tsv", ".htm", ".html", ".pdf", ".doc", ".docx",
    ".xls", ".xlsx", ".ini", ".cfg", ".log", ".inf", ".exe", ".dll", ".bat", ".sh",
    ".py", ".pyc", ".yaml", ".yml", ".toml", ".db", ".sqlite", ".lock",
    # raw codestreams without a DICOM wrapper
    ".j2k", ".j2c", ".jp2", ".jpx", ".jls",
    ".onnx", ".pt", ".pth", ".npy", ".npz",
})
IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini", "license", "licence", "readme",
                           "copying", "notice"})


def is_ignored_file(name: str) -> bool:
    """Whether a file name plainly belongs to something other than an image."""
    lower = name.lower()
    if lower.startswith("."):  # hidden files: .DS_Store, editor swap files, ...
        return True
    suffix = os.path.splitext(lower)[1]
    return suffix in IGNORED_SUFFIXES or lower in IGNORED_NAMES


def _is_dicomdir_name(name: str) -> bool:
    return name.upper() == "DICOMDIR"


# ---------------------------------------------------------------- header -> record


def _text(ds: Dataset, keyword: str) -> str:
    """A value as text through pydicom (character sets, odd encodings): the slow, sure path."""
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - a malformed value must not lose the whole file
        return ""
    if value is None:
        return ""
    try:
        return str(value).strip()
    except Exception:  # noqa: BLE001 - e.g. undecodable character sets
        return ""


def _int_or_none(ds: Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return None
        return int(float(value))
    except Exception:  # noqa: BLE001 - IS values such as '1.5.' or 'abc'
        return None


def _int_from_text(text: str) -> int | None:
    first = text.split("\\", 1)[0].strip()
    if not first:
        return None
    try:
        return int(float(first))
    except (ValueError, OverflowError):
        return None


# How each catalog field is read from its raw bytes: "ascii" for VRs whose characters are
# always ASCII (UI, CS, DA), "text" for those the file's character set may change (PN, LO,
# SH), "is" for Integer Strings and "us" for binary unsigned shorts.
_FIELDS: tuple[tuple[str, str, int, str], ...] = (
    ("patient_id", "PatientID", 0x00100020, "text"),
    ("issuer", "IssuerOfPatientID", 0x00100021, "text"),
    ("patient_name", "PatientName", 0x00100010, "text"),
    ("birth_date", "PatientBirthDate", 0x00100030, "ascii"),
    ("sex", "PatientSex", 0x00100040, "ascii"),
    ("study_uid", "StudyInstanceUID", 0x0020000D, "ascii"),
    ("study_date", "StudyDate", 0x00080020, "ascii"),
    ("study_time", "StudyTime", 0x00080030, "ascii"),
    ("study_description", "StudyDescription", 0x00081030, "text"),
    ("accession_number", "AccessionNumber", 0x00080050, "text"),
    ("series_uid", "SeriesInstanceUID", 0x0020000E, "ascii"),
    ("series_number", "SeriesNumber", 0x00200011, "is"),
    ("series_description", "SeriesDescription", 0x0008103E, "text"),
    ("modality", "Modality", 0x00080060, "ascii"),
    ("sop_instance_uid", "SOPInstanceUID", 0x00080018, "ascii"),
    ("sop_class_uid", "SOPClassUID", 0x00080016, "ascii"),
    ("instance_number", "InstanceNumber", 0x00200013, "is"),
    ("n_frames", "NumberOfFrames", 0x00280008, "is"),
    ("rows", "Rows", 0x00280010, "us"),
    ("columns", "Columns", 0x00280011, "us"),
    ("photometric", "PhotometricInterpretation", 0x00280004, "ascii"),
)
_SLOW = object()  # "decode this one through pydicom"


def _fast_value(ds: Dataset, tag: int, kind: str) -> Any:
    """The value straight from the element's raw bytes, None when absent, or _SLOW.

    Converting values through pydicom costs more than parsing the header did; the fields
    the catalog needs are simple enough to read directly, and anything unusual (a character
    set escape, a deferred or already-converted value, an odd VR) takes the pydicom path.
    """
    element = ds.get_item(tag, keep_deferred=True)
    if element is None:
        return None
    if not isinstance(element, RawDataElement) or not isinstance(element.value, bytes):
        return _SLOW
    raw = element.value
    if kind == "us":
        if len(raw) != 2 or element.VR not in (None, "US", "UN", "OW", "OB"):
            return _SLOW
        return struct.unpack("<H" if element.is_little_endian else ">H", raw)[0]
    if not raw.isascii() or b"\x1b" in raw:  # ISO 2022 escapes or non-ASCII text
        return _SLOW
    text = raw.decode("ascii").strip(" \x00")
    if kind == "is":
        return _int_from_text(text)
    return text


def _record_from_header(ds: Dataset, content_hash: str | None = None) -> dict[str, Any]:
    """The fields the catalog keeps for one instance, as plain JSON-able values."""
    record: dict[str, Any] = {"kind": "instance"}
    for name, keyword, tag, kind in _FIELDS:
        try:
            value = _fast_value(ds, tag, kind)
        except Exception:  # noqa: BLE001 - let pydicom judge the odd element
            value = _SLOW
        if value is _SLOW:
            value = _int_or_none(ds, keyword) if kind in ("is", "us") else _text(ds, keyword)
        if value is None and kind not in ("is", "us"):
            value = ""
        record[name] = value
    record["n_frames"] = max(1, record["n_frames"] or 1)
    record["rows"] = max(0, record["rows"] or 0)
    record["columns"] = max(0, record["columns"] or 0)
    meta = getattr(ds, "file_meta", None)
    record["transfer_syntax"] = _text(meta, "TransferSyntaxUID") if meta is not None else ""
    if not record["sop_class_uid"] and meta is not None:
        record["sop_class_uid"] = _text(meta, "MediaStorageSOPClassUID")
    record["content_hash"] = content_hash
    return record


def _is_dicomdir_header(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    if meta is not None and _text(meta, "MediaStorageSOPClassUID") == MEDIA_STORAGE_DIRECTORY_UID:
        return True
    return "DirectoryRecordSequence" in ds


def _error_record(error: LoadError) -> dict[str, Any]:
    return {"kind": "error", "reason": str(error)}


# ---------------------------------------------------------------- DICOMDIR references


def _dicomdir_references(ds: Dataset) -> tuple[list[str], list[str], int]:
    """(safe relative references, refused references as written, unreadable records) from
    a DICOMDIR header.

    A reference is refused when it is absolute, climbs with '..', or smuggles a path
    separator or drive into one component: such a record must never open a file outside
    the DICOMDIR's folder. A record that is not a dataset, or whose Referenced File ID is
    not text (a number, a sequence, bytes that are not ASCII), is counted as unreadable.
    """
    safe: list[str] = []
    refused: list[str] = []
    unreadable = 0
    seen: set[str] = set()
    try:
        records = ds.get("DirectoryRecordSequence")
    except Exception:  # noqa: BLE001 - a malformed sequence: nothing can be referenced
        records = None
    if records is not None and not isinstance(records, (list, Sequence)):
        return safe, refused, 1
    for record in records or []:
        if not isinstance(record, Dataset):
            unreadable += 1
            continue
        try:
            value = record.get("ReferencedFileID")
        except Exception:  # noqa: BLE001 - a malformed record: nothing to open
            unreadable += 1
            continue
        if value is None or value == "":
            continue
        components = _file_id_components(value)
        if components is None:
            unreadable += 1
            continue
        written = "\\".join(components)
        bad = (not components
               or any(c.strip() in ("", ".", "..") for c in components)
               or any("/" in c or "\\" in c or ":" in c or "\x00" in c for c in components))
        if bad:
            refused.append(written)
            continue
        relative = "/".join(c.strip() for c in components)
        if relative not in seen:
            seen.add(relative)
            safe.append(relative)
    return safe, refused, unreadable


def _file_id_components(value: Any) -> list[str] | None:
    """A Referenced File ID's components (one per folder level), or None when it is not
    text."""
    if isinstance(value, bytes):  # kept raw (an odd VR): ASCII text split at backslashes
        if not value.isascii():
            return None
        return value.decode("ascii").strip(" \x00").split("\\")
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple, MultiValue)) and all(isinstance(c, str) for c in value):
        return list(value)
    return None


def _find_case_insensitive(folder: Path, relative: str,
                           listings: dict[Path, dict[str, str] | None]) -> Path | None:
    """The file a DICOMDIR reference names, tolerating the case changes CD copies make.

    ``listings`` caches folder contents across the references of one DICOMDIR.
    """
    exact = folder / relative
    if exact.is_file():
        return exact
    current = folder
    for component in PurePosixPath(relative).parts:
        if current not in listings:
            try:
                listings[current] = {name.upper(): name for name in os.listdir(current)}
            except OSError:
                listings[current] = None
        names = listings[current]
        actual = names.get(component.upper()) if names is not None else None
        if actual is None:
            return None
        current = current / actual
    return current if current.is_file() else None


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` (following symlinks) stays within ``folder`` (already resolved)."""
    try:
        return path.resolve().is_relative_to(folder)
    except (OSError, RuntimeError):
        return False


@dataclass
class _DicomdirCheck:
    """What one DICOMDIR references: files that exist, and errors for the rest."""

    files: list[Path]
    errors: list[FileError]


def _check_dicomdir(dicomdir: Path, record: dict[str, Any],
                    scanned: set[str] | None = None, prefix: str = "",
                    follow_links: bool = False) -> _DicomdirCheck:
    """Check a DICOMDIR's references: refused ones, missing ones, links leading outside
    (allowed with ``follow_links``).

    ``scanned``: in a folder scan, the relative paths already found (``prefix`` + reference);
    those exist and are indexed by the scan itself, so only the others are looked up.
    """
    folder = dicomdir.parent.resolve()
    files: list[Path] = []
    errors: list[FileError] = []
    listings: dict[Path, dict[str, str] | None] = {}
    unreadable = record.get("unreadable", 0)
    if unreadable:
        records = "a directory record" if unreadable == 1 else f"{unreadable} directory records"
        error = LoadError(dicomdir, f"{records} could not be read (a Referenced File ID that "
                                    "is not text), so the files they name are not listed")
        errors.append(FileError(dicomdir, str(error)))
    for written in record.get("refused", []):
        error = LoadError(dicomdir, f"a directory record refers to '{written}', which lies "
                                    "outside the DICOMDIR's folder, so it was not opened")
        errors.append(FileError(dicomdir, str(error)))
    for relative in record.get("refs", []):
        if scanned is not None and prefix + relative in scanned:
            continue
        found = _find_case_insensitive(folder, relative, listings)
        if found is None:
            missing = folder / relative
            error = LoadError(missing, f"the file is missing although {dicomdir} lists it")
            errors.append(FileError(missing, str(error)))
        elif scanned is not None:
            continue  # found under another case: the folder scan has it already
        elif not follow_links and not _inside(found, folder):
            error = LoadError(dicomdir, f"a directory record refers to '{relative}', a link that "
                                        "leads outside the DICOMDIR's folder, so it was not opened")
            errors.append(FileError(dicomdir, str(error)))
        else:
            files.append(found)
    return _DicomdirCheck(files, errors)


# ---------------------------------------------------------------- reading one file


UNEXPECTED_FAILURE = ("it could not be read because of an unexpected error, whose details are "
                      "in the log file")


def read_record(path: Path) -> dict[str, Any]:
    """Read one file's header into a catalog record (instance, DICOMDIR or error)."""
    try:
        if images.is_plain_image(path):
            instance = images.open_plain_image(path)
            return _record_from_header(instance.header, instance.content_hash)
        ds = read_header(path)
        if _is_dicomdir_header(ds):
            refs, refused, unreadable = _dicomdir_references(ds)
            return {"kind": "dicomdir", "refs": refs, "refused": refused,
                    "unreadable": unreadable}
        return _record_from_header(ds)
    except LoadError as exc:
        return _error_record(exc)
    except Exception as exc:  # noqa: BLE001 - one odd file must never stop a folder
        # Its traceback is for the log file; the folder's error list has the sentence.
        log.info("unexpected %s while indexing %s", type(exc).__name__, path, exc_info=True)
        return _error_record(LoadError(path, UNEXPECTED_FAILURE))


# ---------------------------------------------------------------- scanning


class _FileEntry(NamedTuple):
    path: str  # absolute
    relative: str  # POSIX form, relative to the indexed folder (the cache key)
    stamp: FileStamp


def _relative_to(path: str, root: str) -> str:
    """``path`` relative to ``root`` with '/' separators (plain strings: pathlib is slow here)."""
    relative = path[len(root.rstrip(os.sep)) + 1:]
    return relative if os.sep == "/" else relative.replace(os.sep, "/")


@dataclass
class _Scan:
    files: list[_FileEntry] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)


def _scan_folder(root: Path, cancel: CancelFlag | None,
                 follow_links: bool = False) -> Generator[Progress, None, _Scan]:
    """Every regular file below ``root`` (resolved) with its stamp (one stat each), sorted.

    Links are followed while they stay inside ``root``; one leading outside is an error
    entry unless ``follow_links``. Linked folders are followed only with ``follow_links``,
    each real folder once, so a link loop cannot trap the scan.
    """
    scan = _Scan()
    root_text = str(root)
    inside_prefix = root_text.rstrip(os.sep) + os.sep
    pending = [root_text]
    visited_folders = {os.path.realpath(root_text)}
    seen_entries = 0
    while pending:
        folder = pending.pop()
        if cancel is not None:
            cancel.raise_if_cancelled()
        try:
            with os.scandir(folder) as entries:
                listing = list(entries)
        except OSError as exc:
            error = LoadError(folder, f"the folder cannot be read ({os_error_reason(exc)})")
            scan.errors.append(FileError(Path(folder), str(error)))
            continue
        for entry in listing:
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                    continue
                if entry.is_symlink():
                    target = os.path.realpath(entry.path)
                    inside = target == root_text or target.startswith(inside_prefix)
                    if not (follow_links or inside):
                        kind = "folder" if os.path.isdir(target) else "file"
                        error = LoadError(entry.path, f"it is a link to a {kind} outside the "
                                                      "opened folder, so it was not followed")
                        scan.errors.append(FileError(Path(entry.path), str(error)))
                        continue
                    if entry.is_dir():  # a linked folder
                        if follow_links and target not in visited_folders:
                            visited_folders.add(target)
                            pending.append(entry.path)
                        continue
                if is_ignored_file(entry.name):
                    scan.ignored.append(Path(entry.path))
                    continue
                info = entry.stat()  # follows a file link that stays inside
            except OSError as exc:
                error = LoadError(entry.path, os_error_reason(exc))
                scan.errors.append(FileError(Path(entry.path), str(error)))
                continue
            if not stat_module.S_ISREG(info.st_mode):
                continue  # sockets, fifos, devices
            scan.files.append(_FileEntry(entry.path, _relative_to(entry.path, root_text),
                                         FileStamp(info.st_size, info.st_mtime_ns)))
        seen_entries += len(listing)
        if seen_entries >= 2000:
            seen_entries = 0
            yield Progress(0, None, f"Looking for files... {len(scan.files)} found")
    scan.files.sort()
    scan.ignored.sort()
    return scan


def _entry(path: Path, root: Path) -> _FileEntry | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return _FileEntry(str(path), _relative_to(str(path), str(root)),
                      FileStamp(info.st_size, info.st_mtime_ns))


# ---------------------------------------------------------------- building the tree


def _sort_key_number(number: int | None) -> tuple[int, int]:
    return (0, number) if number is not None else (1, 0)


def build_catalog(root: Path, records: list[tuple[Path, dict[str, Any]]]) -> Catalog:
    """Group instance records into Patient > Study > Series > Instance, sorted for display."""
    catalog = Catalog(root=root)
    patients: dict[tuple[str, str], PatientNode] = {}
    studies: dict[tuple[tuple[str, str], str], StudyNode] = {}
    series_nodes: dict[tuple[tuple[str, str], str, str], SeriesNode] = {}
    for path, rec in records:
        patient_key = (rec.get("patient_id", ""), rec.get("patient_name", ""),
                       rec.get("issuer", ""))
        patient = patients.get(patient_key)
        if patient is None:
            patient = PatientNode(patient_id=patient_key[0], name=patient_key[1],
                                  birth_date=rec.get("birth_date", ""), sex=rec.get("sex", ""),
                                  issuer=patient_key[2])
            patients[patient_key] = patient
            catalog.patients.append(patient)
        study_key = (patient_key, rec.get("study_uid", ""))
        study = studies.get(study_key)
        if study is None:
            study = StudyNode(uid=study_key[1], date=rec.get("study_date", ""),
                              description=rec.get("study_description", ""),
                              accession_number=rec.get("accession_number", ""),
                              time=rec.get("study_time", ""))
            studies[study_key] = study
            patient.studies.append(study)
        series_key = (patient_key, study_key[1], rec.get("series_uid", ""))
        series = series_nodes.get(series_key)
        if series is None:
            series = SeriesNode(uid=series_key[2], number=rec.get("series_number"),
                                description=rec.get("series_description", ""),
                                modality=rec.get("modality", ""))
            series_nodes[series_key] = series
            study.series.append(series)
        series.instances.append(InstanceRecord(
            path=path,
            sop_instance_uid=rec.get("sop_instance_uid", ""),
            instance_number=rec.get("instance_number"),
            n_frames=rec.get("n_frames", 1),
            rows=rec.get("rows", 0),
            columns=rec.get("columns", 0),
            modality=rec.get("modality", ""),
            photometric=rec.get("photometric", ""),
            content_hash=rec.get("content_hash"),
            sop_class_uid=rec.get("sop_class_uid", ""),
            transfer_syntax=rec.get("transfer_syntax", ""),
        ))
    catalog.patients.sort(key=lambda p: (p.name.upper(), p.patient_id))
    for patient in catalog.patients:
        patient.studies.sort(key=lambda s: (s.date or "99999999", s.time, s.uid))
        for study in patient.studies:
            study.series.sort(key=lambda s: (_sort_key_number(s.number), s.uid))
            for series in study.series:
                series.instances.sort(
                    key=lambda i: (_sort_key_number(i.instance_number), str(i.path)))
    return catalog


# ---------------------------------------------------------------- the job


def index_path(path: Path, cancel: CancelFlag | None = None,
               cache_dir: Path | None = None,
               follow_links: bool = False) -> Generator[Progress, None, Catalog]:
    """Index a folder (recursively), a DICOMDIR, or one DICOM / PNG / JPEG file.

    Yields Progress every ``PROGRESS_EVERY`` files and at the end; checks ``cancel`` between
    files (raising JobCancelled); returns the Catalog. Files that fail are listed in
    ``Catalog.errors`` with their one-sentence reason. ``cache_dir`` overrides where the
    index caches live (default: ``paths.user_cache_dir() / 'index'``). ``follow_links``
    follows links out of the opened folder (see the module's rule).

    Raises LoadError when ``path`` does not exist or cannot be looked at.
    """
    path = Path(path)
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except OSError as exc:  # a name too long, a path through a file...
        raise LoadError(path, os_error_reason(exc)) from None
    if not exists:
        raise LoadError(path, "it does not exist")
    yield Progress(0, None, "Looking for files...")
    if is_dir:
        root = path.resolve()
        scan = yield from _scan_folder(root, cancel, follow_links)
        cache = IndexCache(root, cache_dir)
        try:
            reader = _CachedReader(cache)
            catalog = yield from _index_files(root, scan.files, cancel, reader, full_folder=True,
                                              follow_links=follow_links)
        finally:
            cache.close()
        catalog.errors[:0] = scan.errors
        catalog.ignored = scan.ignored
        return catalog
    resolved = path.resolve()
    if _is_dicomdir_name(resolved.name):
        return (yield from _index_dicomdir(resolved, cancel, cache_dir, follow_links))
    # A single file: cheap enough to read without a cache.
    record = read_record(resolved)
    if record["kind"] == "dicomdir":  # a DICOMDIR under another name
        return (yield from _index_dicomdir(resolved, cancel, cache_dir, follow_links))
    catalog = _assemble(resolved, [(str(resolved), record)])
    yield Progress(1, 1, "Indexed 1 file")
    return catalog


def _index_dicomdir(dicomdir: Path, cancel: CancelFlag | None, cache_dir: Path | None,
                    follow_links: bool) -> Generator[Progress, None, Catalog]:
    """The DICOMDIR and the files it references (found through the cache when unchanged)."""
    folder = dicomdir.parent
    own = _entry(dicomdir, folder)
    if own is None:
        raise LoadError(dicomdir, "the file cannot be read")
    cache = IndexCache(folder, cache_dir)
    try:
        reader = _CachedReader(cache)
        record = reader.record(own)
        files = [own]
        if record.get("kind") == "dicomdir":
            for referenced in _check_dicomdir(dicomdir, record,
                                              follow_links=follow_links).files:
                entry = _entry(referenced, folder)
                if entry is not None:
                    files.append(entry)
        catalog = yield from _index_files(folder, files, cancel, reader, full_folder=False,
                                          follow_links=follow_links)
    finally:
        cache.close()
    catalog.root = dicomdir
    return catalog


class _CachedReader:
    """Hands out each file's record from the cache when its stamp is unchanged, else reads it,
    remembering what to write back."""

    def __init__(self, cache: IndexCache) -> None:
        self.cache = cache
        self.cached = cache.load()
        self.upserts: dict[str, tuple[FileStamp, dict[str, Any]]] = {}
        self.results: dict[str, dict[str, Any]] = {}
        self.from_cache = 0

    def record(self, entry: _FileEntry) -> dict[str, Any]:
        known = self.results.get(entry.relative)
        if known is not None:
            return known
        record = None
        hit = self.cached.get(entry.relative)
        if hit is not None and hit[0] == entry.stamp:
            try:
                record = json.loads(hit[1])
            except ValueError:
                record = None  # a damaged row: read the file again
            if not isinstance(record, dict) or "kind" not in record:
                record = None
            else:
                self.from_cache += 1
        if record is None:
            record = read_record(Path(entry.path))
            self.upserts[entry.relative] = (entry.stamp, record)
        self.results[entry.relative] = record
        return record

    def save(self, deletes: Iterable[str] = ()) -> None:
        self.cache.save([(rel, stamp, record) for rel, (stamp, record) in self.upserts.items()],
                        deletes)


def _index_files(root: Path, files: list[_FileEntry], cancel: CancelFlag | None,
                 reader: _CachedReader, full_folder: bool,
                 follow_links: bool = False) -> Generator[Progress, None, Catalog]:
    """Read (or take from the cache) every file's record, then build the catalog.

    ``full_folder``: ``files`` is everything below ``root``, so cache entries for files not
    in it belong to deleted files and are dropped, and DICOMDIRs among them are checked
    against what the scan found.
    """
    records: list[tuple[str, dict[str, Any]]] = []
    total = len(files)
    try:
        for done, entry in enumerate(files, start=1):
            if cancel is not None:
                cancel.raise_if_cancelled()
            records.append((entry.path, reader.record(entry)))
            if done % PROGRESS_EVERY == 0 and done < total:
                yield Progress(done, total, f"Indexed {done} of {total} files")
    except JobCancelled:
        reader.save()  # keep the work already done for the next attempt
        raise
    scanned = {entry.relative for entry in files} if full_folder else None
    reader.save(set(reader.cached) - scanned if scanned is not None else ())
    catalog = _assemble(root, records, scanned, follow_links)
    catalog.from_cache = reader.from_cache
    yield Progress(total, total, f"Indexed {total} files")
    return catalog


def _assemble(root: Path, records: list[tuple[str, dict[str, Any]]],
              scanned: set[str] | None = None, follow_links: bool = False) -> Catalog:
    instances = [(Path(p), r) for p, r in records if r.get("kind") == "instance"]
    catalog = build_catalog(root, instances)
    root_text = str(root)
    for file_path, record in records:
        kind = record.get("kind")
        if kind == "error":
            catalog.errors.append(FileError(Path(file_path), record.get("reason", "")))
        elif kind == "dicomdir":
            prefix = ""
            if scanned is not None:
                parent = _relative_to(os.path.dirname(file_path), root_text)
                prefix = f"{parent}/" if parent else ""
            check = _check_dicomdir(Path(file_path), record, scanned, prefix, follow_links)
            catalog.errors.extend(check.errors)
    return catalog
