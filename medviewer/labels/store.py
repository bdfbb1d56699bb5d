"""The label store: one SQLite file that keeps every label a reader commits.

Durability comes first, because labels are clinical work:

* WAL journal with ``synchronous=FULL``: a method that writes returns only after its one
  transaction committed and the WAL was fsynced; when it raises, nothing of the action was
  written. The GUI calls one method per user action and shows "saved" after it returns.
* Every action appends to the history (``actions`` + ``changes``; triggers make both tables
  append-only), so any label can be traced (who, when, old -> new) and the last action of a
  reader can be undone.
* At start-up ``PRAGMA quick_check`` runs; a damaged file raises :class:`DamagedStoreError`
  whose sentence points at :meth:`LabelStore.recover` (copy aside, salvage, rebuild).
* The schema carries a version (``PRAGMA user_version``); an older file is backed up and then
  migrated in one transaction (see :mod:`medviewer.labels.schema`).

Images are identified by their SOP Instance UID, or ``sha256:<hex>`` of the file for plain
PNG/JPEG images (and DICOM files without a SOP Instance UID); the path is only a hint. Labels
are per reader: each reader has at most one decision (a set of classes) per image and label
set. Region coordinates are in the original, un-rotated stored pixel grid (see
docs/labels-format.md).

:class:`LabelStore` is the one object callers use. It is composed of parts that each own
one responsibility and state their contract: ``connection`` (opening, the transaction,
error sentences), ``unit_of_work`` (one action = one transaction, its rows' before/after
states and its history record; every write goes through it), ``label_sets``, ``images``,
``decisions``, ``notes``, ``regions``, ``measurements`` (each a collaborator with its
row kind) and ``history`` (undo/redo over any row kind, reading the history). This module
wires them together, delegates to them and writes an import (decisions and regions as one
action).
Every name callers import from here is re-exported (``__all__``).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medviewer.labels.connection import BUSY_TIMEOUT_MS, StoreConnection
from medviewer.labels.decisions import Decisions
from medviewer.labels.errors import UnknownLabelSetError
from medviewer.labels.history import EDIT_KINDS, History
from medviewer.labels.images import Images, upsert_image
from medviewer.labels.label_sets import LabelSets, find_label_set
from medviewer.labels.measurements import KEEP, Measurements
from medviewer.labels.notes import Notes
from medviewer.labels.regions import Regions
from medviewer.labels.row_kinds import row_kinds
from medviewer.labels.unit_of_work import Actions
from medviewer.labels.values import (
    HASH_PREFIX,
    MAX_NAME_LENGTH,
    MEASUREMENT_KINDS,
    SHAPES,
    SOURCES,
    SPACING_SOURCES,
    Ellipse,
    Geometry,
    HistoryEntry,
    ImageLabel,
    ImageRef,
    ImportResult,
    LabelEntry,
    LabelSet,
    Measurement,
    Polygon,
    Rectangle,
    Region,
    RegionEntry,
    UndoResult,
    check_classes,
    check_name,
    check_region_geometry,
    check_source,
    is_ai_reader,
    now_iso,
)
from medviewer.paths import DEFAULT_STORE_NAME, default_store_path

if TYPE_CHECKING:
    from medviewer.labels.recovery import RecoveryReport

# What other modules import from here.
__all__ = [
    "BUSY_TIMEOUT_MS", "DEFAULT_STORE_NAME", "EDIT_KINDS", "HASH_PREFIX", "MAX_NAME_LENGTH",
    "MEASUREMENT_KINDS", "SHAPES", "SOURCES", "SPACING_SOURCES", "Ellipse", "Geometry",
    "HistoryEntry", "ImageLabel", "ImageRef", "ImportResult", "LabelEntry", "LabelSet",
    "LabelStore", "Measurement", "Polygon", "Rectangle", "Region", "RegionEntry", "UndoResult",
    "check_region_geometry", "default_store_path", "is_ai_reader", "now_iso",
]


# ---------------------------------------------------------------- the store


class LabelStore:
    """A label store file; every writing method is one committed transaction.

    ``reader`` is who is labelling (default: ``settings.reader_name``): labels without an
    explicit reader belong to them, and every action is recorded with them as its actor.
    Safe to share between threads (one connection behind a lock).
    """

    def __init__(self, path: str | os.PathLike | None = None, reader: str | None = None,
                 *, check: bool = True) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        if reader is None:
            from medviewer.settings import load_settings

            reader = load_settings().reader_name
        reader = check_name("reader name", reader)
        self._db = StoreConnection(self.path, check=check)
        self._actions = Actions(self._db, reader, find_label_set)
        self._label_sets = LabelSets(self._db, self._actions)
        self._images = Images(self._db)
        self._decisions = Decisions(self._db, self._actions)
        self._notes = Notes(self._actions)
        self._regions = Regions(self._db, self._actions)
        self._measurements = Measurements(self._db, self._actions)
        self._history = History(self._db, self._actions, row_kinds())

    @property
    def reader(self) -> str:
        return self._actions.actor

    @reader.setter
    def reader(self, name: str) -> None:
        """Act as another reader from now on (the panel's reader name changed)."""
        self._actions.actor = check_name("reader name", name)

    # -- opening, checking, closing, recovering

    @staticmethod
    def recover(path: str | os.PathLike | None = None) -> RecoveryReport:
        """Set a damaged store aside (kept, timestamped) and rebuild it from readable rows."""
        from medviewer.labels.recovery import recover

        return recover(Path(path) if path is not None else default_store_path())

    def check(self, full: bool = False) -> list[str]:
        """SQLite's own check: an empty list when the file is sound."""
        return self._db.check(full)

    @property
    def schema_version(self) -> int:
        return self._db.schema_version

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "LabelStore":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _reader(self, reader: str | None) -> str:
        return self.reader if reader is None else check_name("reader name", reader)

    # -- label sets

    def create_label_set(self, name: str, classes: Sequence[str], *, multi_label: bool = False,
                         description: str = "") -> LabelSet:
        return self._label_sets.create_label_set(name, classes, multi_label=multi_label,
                                                 description=description)

    def add_classes(self, label_set: str, classes: Sequence[str]) -> LabelSet:
        """Append classes to a label set's list (existing ones are left as they are)."""
        return self._label_sets.add_classes(label_set, classes)

    def label_set(self, name: str) -> LabelSet:
        return self._label_sets.label_set(name)

    def label_sets(self) -> list[LabelSet]:
        return self._label_sets.label_sets()

    # -- image labels: one method per user action

    def set_label(self, label_set: str, image: ImageRef, classes: str | Sequence[str], *,
                  reader: str | None = None, source: str = "manual", note: str | None = None,
                  ai_classes: Sequence[str] | None = None) -> ImageLabel:
        """Make ``classes`` the reader's decision on the image (replacing any earlier one).

        Returns after the transaction committed. Setting the same decision again writes
        nothing and returns the stored label.
        """
        return self._decisions.set_label(label_set, image, classes, reader=self._reader(reader),
                                         source=source, note=note, ai_classes=ai_classes)

    def toggle_class(self, label_set: str, image: ImageRef, class_name: str, *,
                     reader: str | None = None, source: str = "manual") -> ImageLabel | None:
        """Add the class to the reader's decision, or take it away if present.

        In a single-label set, toggling another class replaces the current one. Returns the
        decision after the change (None when no class is left), after the commit.
        """
        return self._decisions.toggle_class(label_set, image, class_name,
                                            reader=self._reader(reader), source=source)

    def clear_label(self, label_set: str, image: ImageRef | str, *,
                    reader: str | None = None) -> bool:
        """Remove the reader's decision on the image; False when there was none."""
        key = image.key if isinstance(image, ImageRef) else image
        return self._decisions.clear_label(label_set, key, reader=self._reader(reader))

    def set_note(self, label_set: str, image: ImageRef | str, note: str | None, *,
                 reader: str | None = None) -> ImageLabel:
        """Change the note on the reader's existing decision."""
        key = image.key if isinstance(image, ImageRef) else image
        return self._notes.set_note(label_set, key, note, reader=self._reader(reader))

    # -- reading labels

    def current_labels(self, label_set: str, image_keys: Iterable[str] | None = None, *,
                       reader: str | None = None) -> list[ImageLabel]:
        """Current decisions in a label set: of the given images (all when None), all readers
        unless ``reader`` is given. Ordered by image key, then reader."""
        return self._decisions.current_labels(label_set, image_keys, reader=reader)

    def label_for(self, label_set: str, image_key: str,
                  reader: str | None = None) -> ImageLabel | None:
        """The reader's (default: this store's reader) current decision on one image."""
        found = self.current_labels(label_set, [image_key], reader=self._reader(reader))
        return found[0] if found else None

    def decisions(self, label_set: str) -> dict[str, dict[str, tuple[str, ...]]]:
        """{image key: {reader: classes}} for the whole label set (agreement, consensus)."""
        return self._decisions.decisions(label_set)

    def images(self, image_keys: Iterable[str] | None = None) -> dict[str, ImageRef]:
        """What the store knows about images (path hint, patient id, size), by key."""
        return self._images.images(image_keys)

    def counts(self) -> dict[str, dict[str, int]]:
        """Per label set: images labelled, decisions, readers and regions."""
        def query(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
            result = {}
            for set_id, name in conn.execute("SELECT id, name FROM label_sets ORDER BY name"):
                images, decisions, readers = conn.execute(
                    "SELECT count(DISTINCT image_key), count(*), count(DISTINCT reader) "
                    "FROM image_labels WHERE label_set_id = ?", (set_id,)).fetchone()
                regions, region_images = conn.execute(
                    "SELECT count(*), count(DISTINCT image_key) FROM regions "
                    "WHERE label_set_id = ?", (set_id,)).fetchone()
                result[name] = {"images": images, "decisions": decisions, "readers": readers,
                                "regions": regions, "region_images": region_images}
            return result

        return self._db.read(query)

    # -- regions

    def add_region(self, label_set: str, image: ImageRef, class_name: str, geometry: Geometry,
                   *, frame: int = 0, reader: str | None = None, source: str = "manual",
                   note: str | None = None) -> Region:
        return self._regions.add_region(label_set, image, class_name, geometry, frame=frame,
                                        reader=self._reader(reader), source=source, note=note)

    def update_region(self, region_id: int, *, class_name: str | None = None,
                      geometry: Geometry | None = None, note: str | None = None,
                      source: str | None = None) -> Region:
        """Move/resize a region or change its class, note or source (None = keep)."""
        return self._regions.update_region(region_id, class_name=class_name,
                                           geometry=geometry, note=note, source=source)

    def delete_region(self, region_id: int) -> None:
        self._regions.delete_region(region_id)

    def regions(self, label_set: str, image_key: str | None = None, *,
                reader: str | None = None) -> list[Region]:
        return self._regions.regions(label_set, image_key, reader=reader)

    # -- measurements and annotations (a reader's, on an image; in no label set)

    def add_measurement(self, image: ImageRef, kind: str, points: Sequence[Sequence[float]],
                        *, frame: int = 0, pixel_spacing: Sequence[float] | None = None,
                        spacing_source: str = "none", label: str | None = None,
                        text: str | None = None, values: Mapping[str, Any] | None = None,
                        reader: str | None = None) -> Measurement:
        """Keep a measurement (``kind`` in ``MEASUREMENT_KINDS``) of the reader (default:
        this store's) on the image; ``points`` are (column, row) image pixels,
        ``pixel_spacing`` (row, column) mm from ``spacing_source``, ``values`` what was
        computed (e.g. ``{"length_mm": 41.2}``). One undoable action."""
        return self._measurements.add_measurement(
            image, kind, points, reader=self._reader(reader), frame=frame,
            pixel_spacing=pixel_spacing, spacing_source=spacing_source, label=label,
            text=text, values=values)

    def update_measurement(self, measurement_id: int, *,
                           points: Sequence[Sequence[float]] | None = None,
                           pixel_spacing: Sequence[float] | None = KEEP,
                           spacing_source: str | None = None, label: str | None = None,
                           text: str | None = None,
                           values: Mapping[str, Any] | None = None) -> Measurement:
        """Move a measurement or change its label, text, values, or pixel spacing (given
        with its source). None keeps a field; an empty label removes it. New points or a
        new spacing need the ``values`` computed for them. One undoable action."""
        return self._measurements.update_measurement(
            measurement_id, points=points, pixel_spacing=pixel_spacing,
            spacing_source=spacing_source, label=label, text=text, values=values)

    def delete_measurement(self, measurement_id: int) -> None:
        self._measurements.delete_measurement(measurement_id)

    def measurements(self, image_key: str | None = None, *,
                     reader: str | None = None) -> list[Measurement]:
        """Measurements on one image (all when None), all readers unless ``reader``."""
        return self._measurements.measurements(image_key, reader=reader)

    # -- history, undo and redo

    def undo(self, reader: str | None = None, label_set: str | None = None, *,
             row_kind: str | None = None) -> UndoResult | None:
        """Undo the last not-yet-undone action of ``reader`` (default: this store's reader),
        optionally only among actions in one label set and/or that changed one kind of row
        (``"image_label"``, ``"region"``, ``"measurement"``: an image view undoes only
        measurements). None when there is nothing to undo.

        Raises :class:`UndoConflictError` (and changes nothing) when something the action
        wrote was changed since by someone else.
        """
        return self._history.undo(self._reader(reader), label_set, row_kind=row_kind)

    def redo(self, reader: str | None = None, label_set: str | None = None, *,
             row_kind: str | None = None) -> UndoResult | None:
        """Re-apply what the last undo of ``reader`` took back (itself undoable; the same
        filters as :meth:`undo`). None when
        there is nothing to redo: no undo yet, every undo redone, or a new edit by ``reader``
        since the undo (as in any editor, a new edit ends the redo chain).

        Raises :class:`UndoConflictError` (and changes nothing) when something the undo
        restored was changed since by someone else.
        """
        return self._history.redo(self._reader(reader), label_set, row_kind=row_kind)

    def history(self, label_set: str | None = None, image_key: str | None = None, *,
                reader: str | None = None, limit: int | None = None,
                in_label_set: bool = False) -> list[HistoryEntry]:
        """Changes, newest first; filter by label set, image and/or the label's reader;
        ``in_label_set``: only changes in a label set (no measurement)."""
        return self._history.history(label_set, image_key, reader=reader, limit=limit,
                                     in_label_set=in_label_set)

    # -- bulk import (one action, one transaction)

    def import_labels(self, label_set: str, labels: Sequence[LabelEntry] = (),
                      regions: Sequence[RegionEntry] = (), *,
                      classes: Sequence[str] | None = None, multi_label: bool = False,
                      description: str = "", detail: dict | None = None) -> ImportResult:
        """Write imported decisions and regions as one action (one undo step).

        The label set is created with ``classes`` if it does not exist; ``classes`` not yet in
        an existing set are appended. Each entry replaces that reader's decision on the image.
        Entries must already be validated (see :mod:`medviewer.labels.io`); an invalid one
        aborts the whole import and nothing is written.
        """
        with self._actions.begin("import", detail=detail) as work:
            created = False
            added: tuple[str, ...] = ()
            try:
                current_set = find_label_set(work.conn, label_set)
            except UnknownLabelSetError:
                if not classes:
                    raise
                current_set = self._label_sets.insert(
                    work, check_name("label set name", label_set), check_classes(classes),
                    multi_label, description)
                created = True
            if classes and not created:
                added = tuple(c for c in check_classes(classes)
                              if c not in current_set.classes)
                if added:
                    current_set = self._label_sets.append(work, current_set, added)
            work.label_set = current_set
            action = work.action_id  # an import is recorded even when it changes nothing
            written = unchanged = 0
            for entry in labels:
                reader = check_name("reader name", entry.reader)
                check_source(entry.source)
                ordered = current_set.ordered(entry.classes)
                ai = current_set.ordered(entry.ai_classes, what="AI suggestion") \
                    if entry.ai_classes is not None else None
                upsert_image(work.conn, entry.image)
                _, changed = self._decisions.decide(work, current_set, entry.image.key, reader,
                                                    ordered, entry.source, entry.note, ai)
                written += changed
                unchanged += not changed
            for region in regions:
                self._regions.add(work, current_set, region.image,
                                  check_name("reader name", region.reader), region.class_name,
                                  region.geometry, region.frame, region.source, region.note)
        return ImportResult(action, written, unchanged, len(regions), created, added)
