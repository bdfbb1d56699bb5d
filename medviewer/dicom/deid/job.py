"""De-identifying files, folders and DICOMDIRs into a new folder with its own DICOMDIR.

``deidentify_job(request, cancel)`` is a job generator (``medviewer.jobs``): it yields
Progress per file, checks the cancel flag between files and returns a :class:`DeidResult`
(what was written, one sentence per refused file, what changed per attribute).

The inputs are only read. Everything is written into a hidden folder beside the output and
renamed into place at the end, so the output folder either appears complete or not at all
(a cancel or a failure leaves nothing behind). Each file is written once, straight to its
place in the standard layout (``PT000000/ST000000/SE000000/IM000000``, chosen by
:class:`~medviewer.dicom.deid.fileset.FileSetLayout`), and the DICOMDIR is written last.

With a key file, a mapping from pseudonyms back to the originals is written to the user's
data folder (``deid-mappings/``, owner-only, 0600), never into the output.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from medviewer import csv_safety
from medviewer.dicom.catalog import (
    MEDIA_STORAGE_DIRECTORY_UID,
    index_path,
    is_ignored_file,
)
from medviewer.dicom.deid import raw
from medviewer.dicom.deid.dataset import DatasetOutcome, deidentify_dataset
from medviewer.dicom.deid.fileset import FileSetLayout
from medviewer.dicom.deid.keys import ProjectKey, load_or_create_key
from medviewer.dicom.deid.pixels import PixelMask, apply_mask, burned_in_reason
from medviewer.dicom.deid.profile import Profile
from medviewer.dicom.load_errors import LoadError, as_load_error
from medviewer.errors import UserError
from medviewer.files import open_regular
from medviewer.jobs import CancelFlag, JobCancelled, Progress

log = logging.getLogger(__name__)

ACTION_WORDS = {"X": "removed", "Z": "emptied", "P": "pseudonym", "D": "dummy value", "U": "UID replaced",
                "C": "cleaned", "K": "kept"}
MAPPING_FOLDER = "deid-mappings"
SOP_CLASS_UID, SOP_INSTANCE_UID, MODALITY = 0x00080016, 0x00080018, 0x00080060
PIXEL_DATA = 0x7FE00010
# The uncompressed transfer syntaxes: (implicit VR, little endian) of their datasets.
PLAIN_SYNTAXES = {ImplicitVRLittleEndian: (True, True), ExplicitVRLittleEndian: (False, True),
                   ExplicitVRBigEndian: (False, False)}


class RefusedFile(UserError):
    """A file left out of a de-identified output; ``str()`` is the sentence saying why."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason.rstrip(".")
        super().__init__(f"{self.path} was not de-identified: {self.reason}.")


@dataclass
class DeidRequest:
    inputs: Sequence[Path]
    output: Path
    profile: Profile = field(default_factory=Profile)
    key_file: Path | None = None
    confirm_burned_in: bool = False
    mask: PixelMask | None = None
    mapping_dir: Path | None = None  # default: the user data folder's deid-mappings/


@dataclass
class DeidResult:
    output: Path | None  # None when nothing could be written
    written: int = 0
    refused: list[RefusedFile] = field(default_factory=list)
    skipped_dicomdirs: int = 0
    masked: int = 0
    patients: int = 0
    changes: Counter = field(default_factory=Counter)  # (attribute name, action) -> files
    key_file: Path | None = None
    key_created: bool = False
    mapping_file: Path | None = None
    dicomdir: Path | None = None
    profile_options: tuple[str, ...] = ()

    def changes_by_attribute(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for (name, action), count in sorted(self.changes.items()):
            table.setdefault(name, {})[ACTION_WORDS.get(action, action)] = count
        return table

    def to_json(self) -> dict:
        return {"output": str(self.output) if self.output else None, "written": self.written,
                "refused": [{"path": str(r.path), "reason": str(r)} for r in self.refused],
                "skipped_dicomdirs": self.skipped_dicomdirs, "masked": self.masked,
                "patients": self.patients, "options": list(self.profile_options),
                "changes": self.changes_by_attribute(),
                "key_file": str(self.key_file) if self.key_file else None,
                "key_created": self.key_created,
                "mapping_file": str(self.mapping_file) if self.mapping_file else None,
                "dicomdir": str(self.dicomdir) if self.dicomdir else None}


# ---------------------------------------------------------------- one file


def read_dataset(path: Path) -> Dataset:
    """The whole file (pixels included) through pydicom, or a LoadError sentence."""
    with as_load_error(path, "reading it"), open_regular(path) as handle:  # never a FIFO
        return pydicom.dcmread(handle)


def is_dicomdir(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    return (meta is not None and str(meta.get("MediaStorageSOPClassUID", "")) ==
            MEDIA_STORAGE_DIRECTORY_UID) or "DirectoryRecordSequence" in ds


def deidentify_file(path: Path, ds: Dataset, profile: Profile, key: ProjectKey, *,
                    confirm_burned_in: bool = False,
                    mask: PixelMask | None = None) -> tuple[DatasetOutcome, bool]:
    """De-identify a read file's dataset in place; returns (outcome, whether it was masked).

    Raises :class:`RefusedFile` for a file that must not go out as it is.
    """
    for tag, what in ((SOP_CLASS_UID, "SOP Class"), (SOP_INSTANCE_UID, "SOP Instance")):
        if not raw.text(ds, tag):
            raise RefusedFile(path, f"it has no {what} UID, so it is not a DICOM object that "
                                    f"can be shared")
    if "PixelData" not in ds and "EncapsulatedDocument" not in ds and \
            not raw.text(ds, MODALITY) and "SeriesInstanceUID" not in ds:
        raise RefusedFile(path, "it is not an image or other composite object")
    masked = ()
    reason = burned_in_reason(ds, keeps_graphics=profile.keeps_graphics)
    if reason is not None:
        if mask is not None and mask.fits(ds):
            with as_load_error(path, "masking its pixels"):
                apply_mask(ds, mask)
            masked = tuple(rect.describe() for rect in mask.rectangles)
        elif not confirm_burned_in:
            raise RefusedFile(path, f"{reason}; confirm that its pixels hold no identity, or "
                                    f"mask them, to include it")
    if not hasattr(ds, "file_meta"):
        ds.file_meta = pydicom.dataset.FileMetaDataset()
    return deidentify_dataset(ds, profile, key, masked_regions=masked), bool(masked)


def write_dataset(ds: Dataset, target: Path) -> None:
    """Write ``ds`` to ``target`` atomically (a temporary file beside it, then a rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        ds.save_as(temp, enforce_file_format=True)
        os.chmod(temp, 0o666 & ~_umask())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_new_file(ds: Dataset, target: Path) -> None:
    """Write ``ds`` as the new file ``target``, in a folder that is itself being built (and
    renamed into place when complete): no temporary file; a partial file is removed.

    The file meta was rebuilt by the de-identification, so the file is written here as
    pydicom's ``dcmwrite`` would, without its copy and re-checks of the meta and dataset;
    a transfer syntax this does not cover (deflate, private) goes through ``dcmwrite``.
    """
    syntax = ds.file_meta.get("TransferSyntaxUID")
    encoding = _direct_encoding(syntax) if syntax is not None else None
    direct = encoding is not None and not any(tag >> 16 in (0x0000, 0x0002)
                                              for tag in ds.keys())  # noqa: SIM118 - tags
    try:
        with open(target, "xb") as handle:
            if not direct:
                ds.save_as(handle, enforce_file_format=True)
                return
            _fit_pixel_data(ds, syntax)
            file = DicomFileLike(handle)
            file.write(b"\x00" * 128 + b"DICM")  # the preamble: blank
            meta = raw.encode_file_meta(ds.file_meta)
            if meta is not None:
                file.write(meta)
            else:
                file.is_implicit_VR, file.is_little_endian = False, True
                write_file_meta_info(file, ds.file_meta, enforce_standard=True)
            file.is_implicit_VR, file.is_little_endian = encoding
            raw.write_elements(file, ds)
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def _fit_pixel_data(ds: Dataset, syntax: UID) -> None:
    """What dcmwrite does to pixel data: undefined length exactly when encapsulated, an even
    length (a value still encoded as read that already fits is left as it is)."""
    element = ds.get_item(PIXEL_DATA, keep_deferred=True)
    if element is None:
        return
    if type(element) is RawDataElement and element.value is not None and \
            (element.length == raw.UNDEFINED_LENGTH) == syntax.is_compressed and \
            len(element.value) % 2 == 0:
        return
    ds[PIXEL_DATA].is_undefined_length = syntax.is_compressed


def _direct_encoding(syntax: UID) -> tuple[bool, bool] | None:
    """(implicit VR, little endian) of the dataset for write_new_file, None: use dcmwrite."""
    if syntax in PLAIN_SYNTAXES:
        return PLAIN_SYNTAXES[syntax]
    if syntax.is_transfer_syntax and not syntax.is_private and not syntax.is_deflated:
        return False, True  # encapsulated pixel data: the dataset is explicit little endian
    return None


@functools.cache
def _umask() -> int:
    from medviewer.paths import new_file_mode

    return 0o666 & ~new_file_mode()


# ---------------------------------------------------------------- finding the files


def input_files(inputs: Iterable[Path], cancel: CancelFlag | None = None
                ) -> Generator[Progress, None, list[Path]]:
    """Every file named, below a folder named, or referenced by a DICOMDIR named."""
    found: list[Path] = []
    for item in inputs:
        item = Path(item)
        if not item.exists():
            raise UserError(f"The input {item} does not exist.")
        if item.is_dir():
            for folder, dirs, files in os.walk(item):
                dirs.sort()
                if cancel is not None:
                    cancel.raise_if_cancelled()
                found += [Path(folder) / name for name in sorted(files)
                          if not is_ignored_file(name)]
            yield Progress(0, None, f"Found {len(found)} files")
        elif item.name.upper() == "DICOMDIR":
            catalog = yield from index_path(item, cancel)
            found += [inst.path for inst in catalog.instances()]
        else:
            found.append(item)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return unique


def _check_output(output: Path, inputs: Sequence[Path]) -> None:
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise UserError(f"The output folder {output} is not empty; choose a new or empty "
                        f"folder (de-identification never writes over files).")
    resolved = output.resolve()
    for item in inputs:
        source = Path(item).resolve()
        folder = source if source.is_dir() else source.parent
        if resolved == folder or resolved.is_relative_to(folder) and source.is_dir():
            raise UserError(f"The output folder {output} lies inside the input {item}; "
                            f"choose a folder outside it.")


class _Output:
    """The File-set being built in the staging folder."""

    def __init__(self, staging: Path) -> None:
        self.staging = staging
        self.layout = FileSetLayout()
        self.uids: set[str] = set()
        self.folders: set[Path] = set()

    def write(self, ds: Dataset, path: Path) -> None:
        """Write a de-identified file to its place in the File-set."""
        uid = raw.text(ds, SOP_INSTANCE_UID)
        if uid in self.uids:
            raise RefusedFile(path, "another input file has the same SOP Instance UID "
                                    "(a copy of the same image)")
        try:
            file_id = self.layout.add(ds)
        except ValueError as exc:
            raise RefusedFile(path, str(exc)) from None
        target = self.staging.joinpath(*file_id)
        try:
            if target.parent not in self.folders:
                target.parent.mkdir(parents=True, exist_ok=True)
                self.folders.add(target.parent)
            write_new_file(ds, target)
        except BaseException:
            self.layout.remove(file_id)
            raise
        self.uids.add(uid)


def _mapping_path(mapping_dir: Path | None) -> Path:
    if mapping_dir is None:
        from medviewer.paths import user_data_dir

        mapping_dir = user_data_dir() / MAPPING_FOLDER
    mapping_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return mapping_dir / f"deid-{stamp}.csv"


def write_mapping(mapping_dir: Path | None, rows: Iterable[Sequence[str]]) -> Path:
    """A private CSV (0600) of pseudonym -> original, in the user's data folder."""
    path = _mapping_path(mapping_dir)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
        writer = csv_safety.writer(handle)
        writer.writerow(["kind", "pseudonym", "original", "detail"])
        writer.writerows(rows)
        handle.flush()
        os.fsync(handle.fileno())
    return path


def mapping_rows(outcomes: Iterable[DatasetOutcome], paths: Iterable[Path]
                 ) -> list[tuple[str, str, str, str]]:
    rows: dict[tuple, tuple[str, str, str, str]] = {}
    for outcome, path in zip(outcomes, paths):
        rows[("patient", outcome.patient_pseudonym)] = (
            "patient", outcome.patient_pseudonym, outcome.patient_identity,
            outcome.patient_name)
        for original, new in outcome.uids.items():
            rows[("uid", new)] = ("uid", new, original, str(path))
    return list(rows.values())


def open_key(key_file: Path | None) -> tuple[ProjectKey, bool]:
    if key_file is None:
        return ProjectKey.ephemeral(), False
    return load_or_create_key(key_file)


def deidentify_job(request: DeidRequest, cancel: CancelFlag | None = None
                   ) -> Generator[Progress, None, DeidResult]:
    output = Path(request.output).expanduser()
    _check_output(output, request.inputs)
    key, created = open_key(request.key_file)
    result = DeidResult(None, key_file=key.path, key_created=created,
                        profile_options=tuple(sorted(request.profile.options)))
    yield Progress(0, None, "Looking for files...")
    files = yield from input_files(request.inputs, cancel)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.partial-"))
    built = _Output(staging)
    outcomes: list[DatasetOutcome] = []
    written_paths: list[Path] = []
    patients: set[str] = set()
    try:
        total = len(files)
        for done, path in enumerate(files, start=1):
            if cancel is not None:
                cancel.raise_if_cancelled()
            try:
                ds = read_dataset(path)
                if is_dicomdir(ds):
                    result.skipped_dicomdirs += 1
                    continue
                outcome, masked = deidentify_file(
                    path, ds, request.profile, key, confirm_burned_in=request.confirm_burned_in,
                    mask=request.mask)
                built.write(ds, path)
            except RefusedFile as refused:
                result.refused.append(refused)
                continue
            except LoadError as exc:
                result.refused.append(RefusedFile(path, exc.reason))
                continue
            except (ValueError, TypeError, AttributeError, KeyError, OSError) as exc:
                log.warning("de-identifying %s failed", path, exc_info=True)
                result.refused.append(RefusedFile(path, f"it could not be written "
                                                        f"({type(exc).__name__}: {exc})"))
                continue
            result.written += 1
            result.masked += int(masked)
            result.changes.update({change: 1 for change in outcome.changes})
            patients.add(outcome.patient_pseudonym)
            if key.persistent:
                outcomes.append(outcome)
                written_paths.append(path)
            yield Progress(done, total, f"De-identified {done} of {total} files")
        result.patients = len(patients)
        if result.written:
            yield Progress(total, total, "Writing the DICOMDIR...")
            built.layout.write(staging / "DICOMDIR")
            staging.chmod(0o777 & ~_umask())
            if output.exists():
                output.rmdir()
            os.replace(staging, output)
            result.output = output
            result.dicomdir = output / "DICOMDIR"
        else:
            shutil.rmtree(staging, ignore_errors=True)
    except (JobCancelled, Exception):
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if outcomes:
        result.mapping_file = write_mapping(request.mapping_dir,
                                            mapping_rows(outcomes, written_paths))
    return result
