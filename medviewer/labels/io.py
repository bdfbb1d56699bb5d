"""Import of labels: CSV, MedViewer JSON and COCO-style JSON for regions (export is
``labels/export.py``).

Formats are documented in docs/labels-format.md. Imports are two steps so nothing is
imported by surprise: ``validate_*`` reads the file, resolves every path to its image key
(by reading headers) and returns an :class:`ImportPlan` listing each problem row; then
``apply_import(store, plan, accept_partial=...)`` writes the good rows in one transaction,
refusing when there are problems unless the caller accepted a partial import. CSV cells that
an export neutralised (``medviewer/csv_safety.py``) are restored, so a round trip is
lossless.

Imports are bounded in memory whatever the file's size: a CSV is read row by row, a plan
keeps the first ``MAX_PROBLEMS_KEPT`` problems and counts the rest, and only the rows to
import are held.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medviewer import csv_safety
from medviewer.errors import UserError
from medviewer.files import open_regular, os_error_reason
from medviewer.jobs import CancelFlag, Progress, run_to_end
from medviewer.labels.errors import (ImportRejectedError, InvalidLabelError,
                                     UnknownLabelSetError)
from medviewer.labels.export import JSON_FORMAT, JSON_FORMAT_VERSION
from medviewer.labels.store import (
    HASH_PREFIX,
    SOURCES,
    Ellipse,
    ImageRef,
    ImportResult,
    LabelEntry,
    LabelStore,
    Polygon,
    Rectangle,
    RegionEntry,
    check_region_geometry,
)
from medviewer.labels.values import check_classes

log = logging.getLogger(__name__)

_PROGRESS_EVERY = 25
# A plan keeps this many problems (the first rows') and counts the others.
MAX_PROBLEMS_KEPT = 1000
# Resolved paths that failed, remembered so repeated rows do not read a file again.
_FAILED_PATHS_KEPT = 10_000
# JSON is read whole; larger files must be split (or exported as CSV, which streams).
MAX_JSON_IMPORT_BYTES = 512 * 1024**2


# ---------------------------------------------------------------- import


@dataclass(frozen=True)
class ImportProblem:
    row: int
    reason: str
    where: str = "row"

    def __str__(self) -> str:
        return f"{self.where} {self.row}: {self.reason}"


@dataclass
class ImportPlan:
    """What an import would write, and every problem found; nothing is written yet."""

    source: Path
    label_set: str
    classes: tuple[str, ...]
    multi_label: bool
    creates_label_set: bool
    new_classes: tuple[str, ...]
    rows_total: int = 0
    labels: list[LabelEntry] = field(default_factory=list)
    regions: list[RegionEntry] = field(default_factory=list)
    # The first MAX_PROBLEMS_KEPT problems; problem_count counts them all (one per row).
    problems: list[ImportProblem] = field(default_factory=list)
    problem_count: int = 0

    @property
    def rows_ok(self) -> int:
        return self.rows_total - self.problem_count

    @property
    def problems_not_kept(self) -> int:
        return self.problem_count - len(self.problems)

    def add_problem(self, row: int, reason: str, where: str = "row") -> None:
        """Count a problem row; only the first MAX_PROBLEMS_KEPT keep their sentence."""
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append(ImportProblem(row, reason, where))

    def as_dict(self) -> dict:
        return {"source": str(self.source), "label_set": self.label_set,
                "classes": list(self.classes), "multi_label": self.multi_label,
                "creates_label_set": self.creates_label_set,
                "new_classes": list(self.new_classes), "rows_total": self.rows_total,
                "rows_ok": self.rows_ok, "labels": len(self.labels),
                "regions": len(self.regions), "problem_count": self.problem_count,
                "problems": [{"where": p.where, "row": p.row, "reason": p.reason}
                             for p in sorted(self.problems, key=lambda p: p.row)],
                "problems_not_listed": self.problems_not_kept}


def _target_set(store: LabelStore, label_set: str, classes: list[str] | None,
                multi_label: bool, source: Path) -> ImportPlan:
    try:
        existing = store.label_set(label_set)
    except UnknownLabelSetError:
        if not classes:
            raise UserError(f"There is no label set named '{label_set}' to import {source} "
                            f"into; give its classes (--classes a,b) to create it.") from None
        names = tuple(check_classes(classes))
        return ImportPlan(source, label_set, names, multi_label, True, names)
    extra = tuple(c for c in check_classes(classes) if c not in existing.classes) \
        if classes else ()
    return ImportPlan(source, label_set, existing.classes + extra, existing.multi_label,
                      False, extra)


class _Resolver:
    """Path -> ImageRef through the file's header, once per path."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._found: dict[str, ImageRef] = {}
        self._failed: dict[str, str] = {}  # bounded: millions of bad rows must not pile up

    def __call__(self, text: str) -> ImageRef | str:
        """The image, or a reason why not (a str)."""
        from medviewer.dicom.reader import LoadError
        from medviewer.labels.identity import resolve_image

        path = Path(os.path.expanduser(text))
        if not path.is_absolute():
            path = self.base / path
        key = str(path)
        known = self._found.get(key) or self._failed.get(key)
        if known is not None:
            return known
        try:
            os.stat(path)  # the cheap answer for the usual bad row: a missing file
            found = resolve_image(path)
        except LoadError as exc:
            reason = exc.reason
        except OSError as exc:  # missing, or the name itself is unusable (too long...)
            reason = os_error_reason(exc)
        else:
            self._found[key] = found
            return found
        result = (f"the file {text} does not exist" if reason == "it does not exist"
                  else f"the file {text} cannot be read ({reason})")
        if len(self._failed) >= _FAILED_PATHS_KEPT:
            self._failed.clear()
        self._failed[key] = result
        return result


class _CsvRows:
    """A CSV file's rows, read one at a time, numbered as a spreadsheet shows them (the
    header is row 1), cells restored (see csv_safety); ``fraction_read`` for progress."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._binary = open_regular(path, "rb")
        except FileNotFoundError:
            raise UserError(f"Cannot import {path}: the file does not exist.") from None
        except OSError as exc:
            raise UserError(f"Cannot import {path}: {os_error_reason(exc)}.") from None
        self.size = os.fstat(self._binary.fileno()).st_size
        self._text = io.TextIOWrapper(self._binary, encoding="utf-8-sig", newline="")

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        number = 0
        rows = csv_safety.restored_rows(self._text)
        try:
            for number, row in enumerate(rows, start=1):
                yield number, row
        except UnicodeDecodeError:
            raise UserError(f"Cannot import {self.path}: it is not UTF-8 text (after row "
                            f"{number}).") from None
        except csv.Error as exc:
            log.info("CSV parser on %s: %s", self.path, exc)
            raise UserError(f"Cannot import {self.path}: row {number + 1} is not valid CSV "
                            f"(an unclosed quote, a NUL byte or a cell over "
                            f"{csv.field_size_limit()} characters).") from None
        except OSError as exc:
            raise UserError(f"Cannot import {self.path}: {os_error_reason(exc)}.") from None

    @property
    def fraction_read(self) -> float:
        try:
            return min(1.0, self._binary.tell() / self.size) if self.size else 1.0
        except (OSError, ValueError):
            return 0.0

    def close(self) -> None:
        self._text.close()


def validate_csv_job(store: LabelStore, path: str | os.PathLike, label_set: str, *,
                     classes: list[str] | None = None, multi_label: bool = False,
                     reader: str | None = None, cancel: CancelFlag | None = None
                     ) -> Generator[Progress, None, ImportPlan]:
    """Check a CSV (columns path,label[,reader], header optional) against the label set.

    A job: yields Progress while it reads headers and returns the :class:`ImportPlan`.
    """
    source = Path(path)
    plan = _target_set(store, label_set, classes, multi_label, source)
    default_reader = reader or store.reader
    rows = _CsvRows(source)
    columns = {"path": 0, "label": 1, "reader": 2}
    resolve = _Resolver(source.parent)
    groups: dict[tuple[str, str], list[tuple[int, str, str, str | None]]] = {}
    images: dict[str, ImageRef] = {}

    def cell(row: list[str], name: str) -> str:
        index = columns.get(name)
        return row[index].strip() if index is not None and index < len(row) else ""

    try:
        for number, row in rows:
            if number == 1 and [c.strip().lower() for c in row[:2]] == ["path", "label"]:
                columns = {name.strip().lower(): i for i, name in enumerate(row)}
                continue
            if not any(c.strip() for c in row):
                continue
            if cancel is not None:
                cancel.raise_if_cancelled()
            if plan.rows_total % _PROGRESS_EVERY == 0:
                fraction = rows.fraction_read
                estimate = round(plan.rows_total / fraction) if fraction > 0 else None
                yield Progress(plan.rows_total, max(estimate or 0, plan.rows_total) or None,
                               f"Checking {source.name}")
            plan.rows_total += 1
            path_text, label = cell(row, "path"), cell(row, "label")
            row_reader = cell(row, "reader") or default_reader
            row_source = cell(row, "source") or "imported"
            note = cell(row, "note") or None
            if not path_text and not cell(row, "image_key"):
                plan.add_problem(number, "the path is empty")
                continue
            if not label:
                plan.add_problem(number, "the label is empty")
                continue
            if label not in plan.classes:
                plan.add_problem(number, f"unknown class '{label}' (classes: "
                                         f"{', '.join(plan.classes)})")
                continue
            if row_source not in SOURCES:
                plan.add_problem(number, f"unknown source '{row_source}'")
                continue
            if "\n" in row_reader or len(row_reader) > 200:
                plan.add_problem(number, "the reader name is not a single short line")
                continue
            image = resolve(path_text) if path_text else "no path given"
            if isinstance(image, str):
                key = cell(row, "image_key")
                if not key:
                    plan.add_problem(number, image)
                    continue
                # Rows exported elsewhere carry the key: the path is then only a hint.
                image = ImageRef(key, path=path_text or None,
                                 patient_id=cell(row, "patient_id") or None)
            images.setdefault(image.key, image)
            groups.setdefault((image.key, row_reader), []).append((number, label, row_source,
                                                                   note))
    finally:
        rows.close()
    yield Progress(plan.rows_total, plan.rows_total, f"Checked {source.name}")

    for (key, row_reader), entries in groups.items():
        chosen = list(dict.fromkeys(label for _, label, _, _ in entries))
        numbers = [n for n, _, _, _ in entries]
        if len(chosen) > 1 and not plan.multi_label:
            for number in numbers:
                plan.add_problem(number, f"reader '{row_reader}' gives this image "
                                         f"{len(chosen)} classes ({', '.join(chosen)}) in "
                                         f"single-label set '{plan.label_set}' (rows "
                                         f"{', '.join(map(str, numbers))})")
            continue
        sources = list(dict.fromkeys(s for _, _, s, _ in entries))
        notes = [n for _, _, _, n in entries if n]
        ordered = tuple(c for c in plan.classes if c in chosen)
        plan.labels.append(LabelEntry(images[key], row_reader, ordered,
                                      sources[0] if len(sources) == 1 else "imported",
                                      "; ".join(dict.fromkeys(notes)) or None))
    return plan


def validate_json_job(store: LabelStore, path: str | os.PathLike,
                      label_set: str | None = None, *, classes: list[str] | None = None,
                      reader: str | None = None, cancel: CancelFlag | None = None
                      ) -> Generator[Progress, None, ImportPlan]:
    """Check a MedViewer JSON export (problems per image: 'image 3: ...') or a COCO file
    (problems per annotation; see validate_coco_document)."""
    source = Path(path)
    try:
        with open_regular(source, "rb") as handle:
            if os.fstat(handle.fileno()).st_size > MAX_JSON_IMPORT_BYTES:
                raise UserError(f"Cannot import {source}: at over "
                                f"{MAX_JSON_IMPORT_BYTES // 1024**2} MB it is too large to "
                                "import as JSON; split it, or import a CSV, which is read "
                                "row by row.")
            document = json.loads(handle.read().decode("utf-8"))
    except FileNotFoundError:
        raise UserError(f"Cannot import {source}: the file does not exist.") from None
    except OSError as exc:
        raise UserError(f"Cannot import {source}: {os_error_reason(exc)}.") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        log.info("JSON parser on %s: %s", source, exc)
        raise UserError(f"Cannot import {source}: it is not readable JSON (it is cut short, "
                        "not UTF-8 text, or not JSON at all).") from None
    if isinstance(document, dict) and "format" not in document \
            and {"images", "annotations", "categories"} <= document.keys():
        return (yield from validate_coco_document(store, source, document, label_set,
                                                  classes=classes, reader=reader,
                                                  cancel=cancel))
    if not isinstance(document, dict) or document.get("format") != JSON_FORMAT:
        raise UserError(f"Cannot import {source}: it is neither a MedViewer labels JSON file "
                        f"(no \"format\": \"{JSON_FORMAT}\") nor a COCO file (images, "
                        f"annotations and categories).")
    if document.get("version", 0) > JSON_FORMAT_VERSION:
        raise UserError(f"Cannot import {source}: it was written by a newer MedViewer "
                        f"(format version {document.get('version')}).")
    declared = document.get("label_set") or {}
    name = label_set or declared.get("name")
    if not name:
        raise UserError(f"Cannot import {source}: it names no label set; give one.")
    wanted_classes = list(classes or []) + [c for c in declared.get("classes", [])
                                            if c not in (classes or [])]
    plan = _target_set(store, name, wanted_classes or None,
                       bool(declared.get("multi_label", False)), source)
    yield from _check_each(document.get("images") or [], "image",
                           lambda entry: _json_image(entry, plan), plan, cancel)
    return plan


def _check_each(entries: list, where: str, check, plan: ImportPlan,
                cancel: CancelFlag | None) -> Generator[Progress, None, None]:
    """Run ``check(entry) -> (labels, regions)`` on every entry, in the plan; a ValueError
    becomes that entry's problem ('image 3: ...'). Yields progress; honours ``cancel``."""
    plan.rows_total = len(entries)
    name = plan.source.name
    for number, entry in enumerate(entries, start=1):
        if cancel is not None:
            cancel.raise_if_cancelled()
        if number % _PROGRESS_EVERY == 1:
            yield Progress(number - 1, plan.rows_total, f"Checking {name}")
        try:
            labels, regions = check(entry)
        except ValueError as exc:
            plan.add_problem(number, str(exc), where=where)
            continue
        plan.labels += labels
        plan.regions += regions
    yield Progress(plan.rows_total, plan.rows_total, f"Checked {name}")


def _json_image(entry: Any, plan: ImportPlan) -> tuple[list[LabelEntry], list[RegionEntry]]:
    if not isinstance(entry, dict):
        raise ValueError("it is not an object")
    key = entry.get("image_key") or entry.get("sop_instance_uid") or (
        HASH_PREFIX + entry["content_hash"] if entry.get("content_hash") else None)
    if not key or not isinstance(key, str):
        raise ValueError("it has no image_key")
    image = ImageRef(key, path=entry.get("path"), patient_id=entry.get("patient_id"),
                     width=_int_or_none(entry.get("width")),
                     height=_int_or_none(entry.get("height")))
    labels, regions = [], []
    for label in entry.get("labels") or []:
        reader = str(label.get("reader") or "").strip()
        if not reader:
            raise ValueError("a label has no reader")
        chosen = label.get("classes") or []
        unknown = [c for c in chosen if c not in plan.classes]
        if unknown:
            raise ValueError(f"unknown class '{unknown[0]}' (classes: "
                             f"{', '.join(plan.classes)})")
        if not chosen:
            raise ValueError(f"the label of reader '{reader}' has no class")
        if len(chosen) > 1 and not plan.multi_label:
            raise ValueError(f"reader '{reader}' gives {len(chosen)} classes in single-label "
                             f"set '{plan.label_set}'")
        source = label.get("source") or "imported"
        if source not in SOURCES:
            raise ValueError(f"unknown source '{source}'")
        ai = label.get("ai_classes")
        if ai is not None and any(c not in plan.classes for c in ai):
            raise ValueError("an AI suggestion names an unknown class")
        labels.append(LabelEntry(image, reader, tuple(c for c in plan.classes if c in chosen),
                                 source, label.get("note"),
                                 tuple(ai) if ai is not None else None))
    for region in entry.get("regions") or []:
        reader = str(region.get("reader") or "").strip()
        class_name = region.get("class")
        if not reader:
            raise ValueError("a region has no reader")
        if class_name not in plan.classes:
            raise ValueError(f"unknown region class '{class_name}'")
        source = region.get("source") or "imported"
        if source not in SOURCES:
            raise ValueError(f"unknown source '{source}'")
        try:
            shape = region.get("shape", "rectangle")
            if shape == "polygon":
                geometry: Any = Polygon(tuple(tuple(p) for p in region["points"]))
            elif shape in ("rectangle", "ellipse"):
                box = [float(region[k]) for k in ("x", "y", "width", "height")]
                geometry = (Ellipse if shape == "ellipse" else Rectangle)(*box)
            else:
                raise ValueError(f"unknown region shape '{shape}'")
            frame = int(region.get("frame", 0))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"a region's geometry is incomplete ({exc})") from None
        _check_region(geometry, frame, image)
        regions.append(RegionEntry(image, reader, class_name, geometry, frame, source,
                                   region.get("note")))
    return labels, regions


def _check_region(geometry: Any, frame: int, image: ImageRef) -> None:
    """The store's own check, run while planning so a bad region is one problem row."""
    size = (image.width, image.height) if image.width and image.height else None
    try:
        check_region_geometry(geometry, frame, size)
    except InvalidLabelError as exc:
        raise ValueError(str(exc).rstrip(".")) from None


def validate_coco_document(store: LabelStore, source: Path, document: dict,
                           label_set: str | None = None, *,
                           classes: list[str] | None = None, reader: str | None = None,
                           cancel: CancelFlag | None = None
                           ) -> Generator[Progress, None, ImportPlan]:
    """Plan regions from a COCO object-detection file; problems per annotation.

    Categories become classes. An image is found by MedViewer's keys where the file carries
    them (our own export), otherwise by ``file_name`` relative to the COCO file. A region's
    shape is ``attributes.shape`` when given, else the polygon of its segmentation (one
    region per polygon part), else its ``bbox`` as a rectangle (so RLE masks come in as
    their boxes). Reader, frame, source and note come from ``attributes`` when present.
    """
    categories = {c.get("id"): str(c.get("name") or "").strip()
                  for c in document.get("categories") or [] if isinstance(c, dict)}
    supercategories = {c.get("supercategory") for c in document.get("categories") or []
                       if isinstance(c, dict)}
    name = label_set or (supercategories.pop() if len(supercategories) == 1 else None)
    if not name:
        raise UserError(f"Importing {source} needs the name of a label set to import into: "
                        f"its categories do not share one supercategory.")
    wanted = list(classes or []) + [c for c in categories.values()
                                    if c and c not in (classes or [])]
    plan = _target_set(store, name, wanted or None, False, source)
    resolve = _Resolver(source.parent)
    images: dict[Any, ImageRef | str] = {}
    for entry in document.get("images") or []:
        if isinstance(entry, dict) and "id" in entry:
            images[entry["id"]] = _coco_image(entry, resolve)
    default_reader = reader or store.reader
    yield from _check_each(
        document.get("annotations") or [], "annotation",
        lambda annotation: ([], _coco_regions(annotation, images, categories, plan,
                                              default_reader)), plan, cancel)
    return plan


def _coco_image(entry: dict, resolve: _Resolver) -> ImageRef | str:
    width, height = _int_or_none(entry.get("width")), _int_or_none(entry.get("height"))
    file_name = str(entry.get("file_name") or "")
    key = entry.get("image_key") or entry.get("sop_instance_uid") or (
        HASH_PREFIX + entry["content_hash"] if entry.get("content_hash") else None)
    if key:
        return ImageRef(str(key), path=file_name or None, width=width, height=height)
    if not file_name:
        return f"image id {entry['id']} has neither a file_name nor an image_key"
    return resolve(file_name)


def _coco_regions(annotation: Any, images: dict, categories: dict, plan: ImportPlan,
                  default_reader: str) -> list[RegionEntry]:
    if not isinstance(annotation, dict):
        raise ValueError("it is not an object")
    if annotation.get("image_id") not in images:
        raise ValueError(f"its image_id {annotation.get('image_id')} is not in the file's "
                         f"images")
    image = images[annotation["image_id"]]
    if isinstance(image, str):
        raise ValueError(image)
    class_name = categories.get(annotation.get("category_id"))
    if class_name not in plan.classes:
        raise ValueError(f"unknown category_id {annotation.get('category_id')}")
    attributes = annotation.get("attributes") or {}
    reader = str(attributes.get("reader") or default_reader).strip()
    source = attributes.get("source") or "imported"
    if source not in SOURCES:
        raise ValueError(f"unknown source '{source}'")
    try:
        frame = int(attributes.get("frame", 0))
        shapes = _coco_shapes(annotation, attributes.get("shape"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"its geometry is incomplete or not numbers ({exc})") from None
    for geometry in shapes:
        _check_region(geometry, frame, image)
    return [RegionEntry(image, reader, class_name, geometry, frame, source,
                        attributes.get("note")) for geometry in shapes]


def _coco_shapes(annotation: dict, shape: str | None) -> list[Any]:
    if shape in ("rectangle", "ellipse"):
        box = [float(v) for v in annotation["bbox"]]
        return [(Ellipse if shape == "ellipse" else Rectangle)(*box)]
    if shape not in (None, "polygon"):
        raise ValueError(f"unknown region shape '{shape}'")
    parts = annotation.get("segmentation")
    if isinstance(parts, list) and parts:
        return [Polygon(tuple((float(part[i]), float(part[i + 1]))
                              for i in range(0, len(part) - 1, 2))) for part in parts]
    x, y, width, height = (float(v) for v in annotation["bbox"])
    return [Rectangle(x, y, width, height)]


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def import_kind(path: Path) -> str:
    """'csv' or 'json' from the file name (MedViewer JSON and COCO are told apart by
    content while validating); one sentence for any other file."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise UserError(f"Cannot import {path}: only .csv and .json files can be imported.")
    return suffix[1:]


def validate_file_job(store: LabelStore, path: Path, label_set: str | None, *,
                      classes: list[str] | None = None, multi_label: bool = False,
                      reader: str | None = None, cancel: CancelFlag | None = None
                      ) -> Generator[Progress, None, ImportPlan]:
    """Check any importable file: CSV (needs ``label_set``), MedViewer JSON or COCO."""
    if import_kind(path) == "csv":
        if not label_set:
            raise UserError(f"Importing {path} needs the name of a label set to import into.")
        return (yield from validate_csv_job(store, path, label_set, classes=classes,
                                            multi_label=multi_label, reader=reader,
                                            cancel=cancel))
    return (yield from validate_json_job(store, path, label_set, classes=classes,
                                         reader=reader, cancel=cancel))


def validate_csv(store: LabelStore, path: str | os.PathLike, label_set: str,
                 **options: Any) -> ImportPlan:
    return run_to_end(validate_csv_job(store, path, label_set, **options))


def validate_json(store: LabelStore, path: str | os.PathLike, label_set: str | None = None,
                  **options: Any) -> ImportPlan:
    return run_to_end(validate_json_job(store, path, label_set, **options))


def apply_import(store: LabelStore, plan: ImportPlan, *,
                 accept_partial: bool = False) -> ImportResult:
    """Write a validated plan in one transaction (one undo step).

    With problems in the plan this raises :class:`ImportRejectedError` (nothing written)
    unless ``accept_partial`` is true; then only the problem rows are left out.
    """
    if plan.problems and not accept_partial:
        first = min(plan.problems, key=lambda p: p.row)
        raise ImportRejectedError(
            f"{plan.problem_count} of {plan.rows_total} {first.where}s in {plan.source} "
            f"have problems (first: {first}); nothing was imported: fix them, or accept a "
            f"partial import (--yes) to import the other {plan.rows_ok}.")
    if not plan.labels and not plan.regions and not plan.creates_label_set \
            and not plan.new_classes:
        return ImportResult(None, 0, 0, 0)
    result = store.import_labels(
        plan.label_set, plan.labels, plan.regions,
        classes=plan.classes if plan.creates_label_set else plan.new_classes or None,
        multi_label=plan.multi_label,
        detail={"file": plan.source.name, "rows": plan.rows_total,
                "rows_left_out": plan.problem_count})
    log.info("Imported %d labels and %d regions into label set %s (%d rows left out)",
             result.labels_written, result.regions_written, plan.label_set,
             plan.problem_count)
    return result
