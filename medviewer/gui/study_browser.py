"""The study browser: Patient > Study > Series > Instance, with thumbnails made on a worker.

Plain PNG/JPEG images have no patient, study or series of their own (each gets a synthetic
one), so they are shown one row per folder with the images under it, by file name.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import QStyle, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from medviewer.app.browse_order import FolderGroup, display_groups
from medviewer.dicom.display_text import dicom_date, person_name
from medviewer.errors import UserError
from medviewer.gui.lazy import LazyModule
from medviewer.gui.path_mime import PATHS_MIME, mime_for_paths
from medviewer.gui.workers import JobWorker
from medviewer.jobs import CancelFlag

if TYPE_CHECKING:
    import numpy as np

    from medviewer.dicom.catalog import (
        Catalog, InstanceRecord, PatientNode, SeriesNode, StudyNode,
    )
else:  # numpy and pydicom load on first use (on the thumbnail worker), after the window is shown
    np = LazyModule("numpy")
    reader = LazyModule("medviewer.dicom.reader")
    images = LazyModule("medviewer.dicom.images")

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = 64
INSERT_BUDGET_S = 0.02  # GUI-thread time per slice of rows inserted into the tree
_RECORD_ROLE = Qt.ItemDataRole.UserRole + 1
_KIND_ROLE = Qt.ItemDataRole.UserRole + 2
_NODE_ROLE = Qt.ItemDataRole.UserRole + 3  # the PatientNode / StudyNode of the row
_TEXT_ROLE = Qt.ItemDataRole.UserRole + 4  # the row's text before key image marks
KEY_IMAGE_MARK = "★"


# ---------------------------------------------------------------- the thumbnail job (Qt-free)


@dataclass(frozen=True)
class ThumbnailReady:
    path: Path
    image: np.ndarray  # uint8 grey (h, w) or RGB (h, w, 3), longest side <= the size asked


@dataclass(frozen=True)
class ThumbnailFailed:
    path: Path
    reason: str  # the one-sentence LoadError


def shrink(image: np.ndarray, size: int) -> np.ndarray:
    """Area-average an 8-bit image so its longest side is at most ``size`` pixels."""
    step = max(1, math.ceil(max(image.shape[0], image.shape[1]) / size))
    if step == 1:
        return np.ascontiguousarray(image)
    rows, cols = image.shape[0] // step * step, image.shape[1] // step * step
    cropped = image[:rows, :cols].astype(np.float32)
    blocks = cropped.reshape(rows // step, step, cols // step, step, *image.shape[2:])
    return np.rint(blocks.mean(axis=(1, 3))).astype(np.uint8)


def make_thumbnails(paths: list[Path], size: int, cancel: CancelFlag):
    """Job: one small display image per file (first frame, the file's own VOI).

    Yields ThumbnailReady or ThumbnailFailed for every path, checks ``cancel`` between files.
    """
    for path in paths:
        cancel.raise_if_cancelled()
        try:
            instance = reader.open_instance(path)
            image = instance.display_frame(0)
        except UserError as exc:
            yield ThumbnailFailed(path, str(exc))
            continue
        yield ThumbnailReady(path, shrink(image, size))
    return len(paths)


def array_to_pixmap(image: np.ndarray) -> QPixmap:
    """An 8-bit grey or RGB array as a QPixmap (copied, so the array may go away)."""
    image = np.ascontiguousarray(image)
    height, width = image.shape[:2]
    if image.ndim == 2:
        qimage = QImage(image.data, width, height, width, QImage.Format.Format_Grayscale8)
    else:
        qimage = QImage(image.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(qimage.copy())


# ---------------------------------------------------------------- text


def patient_text(patient: PatientNode) -> str:
    bits = [person_name(patient.name)]
    if patient.patient_id:
        bits.append(f"ID {patient.patient_id}")
    if patient.sex:
        bits.append(patient.sex)
    if patient.birth_date:
        bits.append(f"born {dicom_date(patient.birth_date)}")
    return " · ".join(bits)


def study_text(study: StudyNode) -> str:
    bits = [dicom_date(study.date) or "(no date)", study.description or "Study"]
    if study.accession_number:
        bits.append(f"Acc {study.accession_number}")
    return " · ".join(bits)


def series_text(series: SeriesNode) -> str:
    number = f"#{series.number} " if series.number is not None else ""
    n = len(series.instances)
    count = f"{n} image" + ("" if n == 1 else "s")
    description = f" {series.description}" if series.description else ""
    return f"{number}{series.modality or '??'}{description} · {count}"


def folder_text(folder: Path, count: int) -> str:
    return f"{folder.name or str(folder)} · {count} image" + ("" if count == 1 else "s")


def plain_image_text(record: InstanceRecord) -> str:
    text = record.path.name
    if record.rows and record.columns:
        text += f"\n{record.columns} × {record.rows}"
    return text


class _StudyTree(QTreeWidget):
    """The tree; a dragged patient, study, series or image carries its images' paths, in
    the tree's order, so dropping a series on a viewport shows that series."""

    def __init__(self) -> None:
        super().__init__()
        self.setDragEnabled(True)
        self.setDragDropMode(QTreeWidget.DragDropMode.DragOnly)

    def mimeTypes(self) -> list[str]:  # noqa: N802 - Qt naming
        return [PATHS_MIME, "text/uri-list"]

    def mimeData(self, items):  # noqa: N802 - Qt naming
        return mime_for_paths(paths_under(items))


def paths_under(items) -> list[Path]:
    """The images of these rows and the rows under them, in the tree's order, once each."""
    paths: dict[Path, None] = {}  # ordered, and a look-up per row rather than a scan
    for item in items:
        stack = [item]
        while stack:
            node = stack.pop()
            record = node.data(0, _RECORD_ROLE)
            if record is not None:
                paths.setdefault(record.path)
            stack.extend(node.child(i) for i in reversed(range(node.childCount())))
    return list(paths)


def instance_text(record: InstanceRecord, index: int) -> str:
    number = record.instance_number if record.instance_number is not None else index + 1
    text = f"Image {number}"
    if record.n_frames > 1:
        text += f" · {record.n_frames} frames"
    if record.rows and record.columns:
        text += f"\n{record.columns} × {record.rows}"
    return text


# ---------------------------------------------------------------- the widget


class StudyBrowser(QWidget):
    """Tree of what was opened; selecting an image (or a series: its first image) opens it."""

    instance_selected = Signal(object)  # InstanceRecord
    thumbnail_failed = Signal(str, str)  # path, one-sentence reason
    thumbnails_done = Signal()  # every thumbnail job has ended
    rows_inserted = Signal()  # every catalog added so far is in the tree
    menu_requested = Signal(object, object)  # the row (QTreeWidgetItem), global QPoint

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree = _StudyTree()
        self.tree.setObjectName("studyTree")
        self.tree.setHeaderHidden(True)
        self.tree.setIconSize(QSize(THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        self.tree.setUniformRowHeights(False)
        self.tree.setAnimated(False)
        self.tree.currentItemChanged.connect(self._on_current_changed)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._on_menu_requested)
        self._key_images: set[Path] = set()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tree)
        self._items_by_path: dict[Path, QTreeWidgetItem] = {}
        self._series_items: dict[Path, QTreeWidgetItem] = {}  # first instance path -> series
        self._folder_items: dict[Path, QTreeWidgetItem] = {}  # rows of plain-image folders
        self._workers: set[JobWorker] = set()
        # Catalogs whose rows are still being inserted: (patients left, paths to thumbnail).
        self._pending: list[tuple[list, list[Path]]] = []
        self._pending_paths: set[Path] = set()
        self._insert_timer = QTimer(self)
        self._insert_timer.setSingleShot(True)
        self._insert_timer.setInterval(0)
        self._insert_timer.timeout.connect(self._insert_slice)
        self._placeholder_icon = self._blank_icon()
        self._failed_icon = self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)

    @staticmethod
    def _blank_icon() -> QIcon:
        pixmap = QPixmap(THUMBNAIL_SIZE, THUMBNAIL_SIZE)
        pixmap.fill(Qt.GlobalColor.black)
        return QIcon(pixmap)

    # -- content
    def add_catalog(self, catalog: Catalog) -> list[InstanceRecord]:
        """Add a catalog's patients to the tree; returns the new records in the tree's order.

        Files already in the tree (a folder opened twice) are not added again. Rows are
        inserted in slices of a few milliseconds per event-loop turn, so a folder of thousands
        of files never freezes the window; the first slice goes in at once. Thumbnails start
        when a catalog's rows are all in.
        """
        def is_new(record: InstanceRecord) -> bool:
            return record.path not in self._items_by_path \
                and record.path not in self._pending_paths

        patients = display_groups(catalog, is_new)
        added = [record for _, new in patients for record in new]  # in the tree's order
        self._pending_paths.update(record.path for record in added)
        if added:
            self._pending.append((patients, [record.path for record in added]))
            self._insert_slice()
        return added

    def _insert_slice(self) -> None:
        """Insert rows until the time budget is spent; reschedule while work remains."""
        deadline = time.monotonic() + INSERT_BUDGET_S
        while self._pending:
            patients, paths = self._pending[0]
            batch: list[QTreeWidgetItem] = []
            while patients and (not batch or time.monotonic() < deadline):
                patient, new = patients.pop(0)
                if isinstance(patient, FolderGroup):
                    item = self._folder_item(patient)
                    if item.treeWidget() is None:
                        batch.append(item)
                else:
                    batch.append(self._patient_item(patient, {r.path for r in new}))
            self.tree.addTopLevelItems(batch)
            for patient_item in batch:
                self._expand_subtree(patient_item)
            if patients:
                break
            self._pending.pop(0)
            self._start_thumbnails(paths)
        if self._pending:
            self._insert_timer.start()
        else:
            if self._key_images:
                self._show_key_marks()
            self.rows_inserted.emit()

    def _patient_item(self, patient: PatientNode, new: set[Path]) -> QTreeWidgetItem:
        patient_item = self._node_item(None, "patient", patient_text(patient))
        patient_item.setData(0, _NODE_ROLE, patient)
        for study in patient.studies:
            study_item = self._node_item(None, "study", study_text(study))
            study_item.setData(0, _NODE_ROLE, study)
            for series in study.series:
                if not any(record.path in new for record in series.instances):
                    continue
                series_item = self._node_item(study_item, "series", series_text(series))
                series_item.setIcon(0, self._placeholder_icon)
                first = None
                for index, record in enumerate(series.instances):
                    if record.path not in new:
                        continue
                    item = self._node_item(series_item, "instance",
                                           instance_text(record, index), str(record.path))
                    item.setData(0, _RECORD_ROLE, record)
                    item.setIcon(0, self._placeholder_icon)
                    self._items_by_path[record.path] = item
                    self._pending_paths.discard(record.path)
                    first = first or record.path
                self._series_items[first] = series_item
            if study_item.childCount():
                patient_item.addChild(study_item)
        return patient_item

    def _folder_item(self, group: FolderGroup) -> QTreeWidgetItem:
        """The folder's row (made once; images opened later join it) with the new images."""
        folder_item = self._folder_items.get(group.folder)
        if folder_item is None:
            folder_item = self._node_item(None, "series", "", str(group.folder))
            folder_item.setIcon(0, self._placeholder_icon)
            self._folder_items[group.folder] = folder_item
            self._series_items[group.records[0].path] = folder_item
        for record in group.records:
            item = self._node_item(folder_item, "instance", plain_image_text(record),
                                   str(record.path))
            item.setData(0, _RECORD_ROLE, record)
            item.setIcon(0, self._placeholder_icon)
            self._items_by_path[record.path] = item
            self._pending_paths.discard(record.path)
        folder_item.setText(0, folder_text(group.folder, folder_item.childCount()))
        folder_item.setData(0, _TEXT_ROLE, folder_item.text(0))
        return folder_item

    @property
    def is_busy(self) -> bool:
        """Rows still being inserted or thumbnails still being made."""
        return bool(self._pending) or bool(self._workers)

    @staticmethod
    def _node_item(parent: QTreeWidgetItem | None, kind: str, text: str,
                   tooltip: str | None = None) -> QTreeWidgetItem:
        item = QTreeWidgetItem([text]) if parent is None else QTreeWidgetItem(parent, [text])
        item.setData(0, _KIND_ROLE, kind)
        item.setToolTip(0, text if tooltip is None else tooltip)
        return item

    @staticmethod
    def _expand_subtree(item: QTreeWidgetItem) -> None:
        """Open patients, studies and series (instance rows have no children)."""
        stack = [item]
        while stack:
            node = stack.pop()
            node.setExpanded(True)
            if node.data(0, _KIND_ROLE) != "series":
                stack.extend(node.child(i) for i in range(node.childCount()))

    # -- what a row is (the right-click menu asks)
    @staticmethod
    def kind_of(item: QTreeWidgetItem) -> str:
        """'patient', 'study', 'series' (a plain-image folder row too) or 'instance'."""
        return item.data(0, _KIND_ROLE)

    @staticmethod
    def node_of(item: QTreeWidgetItem):
        """The PatientNode or StudyNode of a patient or study row (else None)."""
        return item.data(0, _NODE_ROLE)

    @staticmethod
    def record_of(item: QTreeWidgetItem) -> InstanceRecord | None:
        return item.data(0, _RECORD_ROLE)

    @staticmethod
    def paths_of(item: QTreeWidgetItem) -> list[Path]:
        """The images of a row and the rows under it, in the tree's order."""
        return paths_under([item])

    @staticmethod
    def ancestor(item: QTreeWidgetItem, kind: str) -> QTreeWidgetItem | None:
        """The row itself or the nearest row above it of ``kind``."""
        while item is not None and item.data(0, _KIND_ROLE) != kind:
            item = item.parent()
        return item

    def _on_menu_requested(self, position) -> None:
        item = self.tree.itemAt(position)
        if item is not None:
            self.menu_requested.emit(item, self.tree.viewport().mapToGlobal(position))

    # -- closing part of what is open
    def remove_paths(self, paths: set[Path]) -> None:
        """Take these images' rows out (a closed study or series); rows left empty go too.
        No other row is selected (and so opened) in their place."""
        self.tree.blockSignals(True)  # Qt moves the current row as rows go: not a choice
        try:
            self._remove_rows(paths)
            current = self.tree.currentItem()
            if current is not None and not paths_under([current]):
                self.tree.setCurrentItem(None)
        finally:
            self.tree.blockSignals(False)
        for folder, item in self._folder_items.items():
            item.setData(0, _TEXT_ROLE, folder_text(folder, item.childCount()))
        self._pending_paths.difference_update(paths)
        self._key_images.difference_update(paths)
        self._show_key_marks()

    def _remove_rows(self, paths: set[Path]) -> None:
        for path in [p for p in self._items_by_path if p in paths]:
            item = self._items_by_path.pop(path)
            while item is not None:
                parent = item.parent()
                owner = parent if parent is not None else self.tree.invisibleRootItem()
                if item.childCount() == 0 or item.data(0, _RECORD_ROLE) is not None:
                    owner.removeChild(item)
                    self._forget_group(item)
                    item = parent
                else:
                    break

    def _forget_group(self, item: QTreeWidgetItem) -> None:
        """A series or folder row that left the tree: its thumbnail target goes with it."""
        for first, series_item in list(self._series_items.items()):
            if series_item is item:
                del self._series_items[first]
        for folder, folder_item in list(self._folder_items.items()):
            if folder_item is item:
                del self._folder_items[folder]

    # -- key images
    def set_key_images(self, paths: set[Path]) -> None:
        """Mark these images' rows ★, and each study (or plain-image folder) row with how
        many of its images are key images (★2 in front of its text)."""
        self._key_images = set(paths)
        self._show_key_marks()

    @property
    def key_images(self) -> set[Path]:
        return set(self._key_images)

    def _show_key_marks(self) -> None:
        for index in range(self.tree.topLevelItemCount()):
            self._mark(self.tree.topLevelItem(index))

    def _mark(self, item: QTreeWidgetItem) -> int:
        """Mark a row and the rows under it; returns the key images under it."""
        base = item.data(0, _TEXT_ROLE)
        if base is None:
            base = item.text(0)
            item.setData(0, _TEXT_ROLE, base)
        record = item.data(0, _RECORD_ROLE)
        if record is not None:
            flagged = int(record.path in self._key_images)
            text = f"{KEY_IMAGE_MARK} {base}" if flagged else base
        else:
            flagged = sum(self._mark(item.child(i)) for i in range(item.childCount()))
            grouping = item.data(0, _KIND_ROLE) == "study" or (
                item.parent() is None and item.data(0, _KIND_ROLE) == "series")
            # In front: a study row's text is long and the tree cuts its end off.
            text = f"{KEY_IMAGE_MARK}{flagged}  {base}" if grouping and flagged else base
        if item.text(0) != text:
            item.setText(0, text)
        return flagged

    def clear(self) -> None:
        self._insert_timer.stop()
        self._pending.clear()
        self._pending_paths.clear()
        self.cancel_thumbnails()
        self.tree.clear()
        self._items_by_path.clear()
        self._series_items.clear()
        self._folder_items.clear()
        self._key_images.clear()

    def records(self) -> list[InstanceRecord]:
        return [item.data(0, _RECORD_ROLE) for item in self._items_by_path.values()]

    def item_for(self, path: Path) -> QTreeWidgetItem | None:
        return self._items_by_path.get(Path(path))

    def select_path(self, path: Path) -> bool:
        item = self.item_for(path)
        if item is None:
            return False
        self.tree.setCurrentItem(item)
        self.tree.scrollToItem(item)
        return True

    def select_first(self) -> bool:
        if not self._items_by_path:
            return False
        self.tree.setCurrentItem(next(iter(self._items_by_path.values())))
        return True

    def _on_current_changed(self, current: QTreeWidgetItem | None, _previous) -> None:
        if current is None:
            return
        kind = current.data(0, _KIND_ROLE)
        if kind == "series" and current.childCount():
            current = current.child(0)
            kind = "instance"
        if kind == "instance":
            self.instance_selected.emit(current.data(0, _RECORD_ROLE))

    # -- thumbnails
    def _start_thumbnails(self, paths: list[Path]) -> None:
        worker = JobWorker(lambda cancel: make_thumbnails(paths, THUMBNAIL_SIZE, cancel),
                           "making thumbnails")
        worker.event.connect(self._on_thumbnail_event)
        self._workers.add(worker)
        worker.ended.connect(lambda: self._on_worker_ended(worker))
        worker.start()

    def _on_worker_ended(self, worker: JobWorker) -> None:
        self._workers.discard(worker)
        if not self._workers:
            self.thumbnails_done.emit()

    def _on_thumbnail_event(self, event) -> None:
        item = self._items_by_path.get(event.path)
        if item is None:
            return  # the tree was cleared meanwhile
        if isinstance(event, ThumbnailReady):
            icon = QIcon(array_to_pixmap(event.image))
            item.setIcon(0, icon)
            series_item = self._series_items.get(event.path)
            if series_item is not None:
                series_item.setIcon(0, icon)
        elif isinstance(event, ThumbnailFailed):
            item.setIcon(0, self._failed_icon)
            item.setToolTip(0, event.reason)
            series_item = self._series_items.get(event.path)
            if series_item is not None:
                series_item.setIcon(0, self._failed_icon)
            self.thumbnail_failed.emit(str(event.path), event.reason)

    @property
    def thumbnails_running(self) -> bool:
        return bool(self._workers)

    def cancel_thumbnails(self) -> None:
        for worker in list(self._workers):
            worker.cancel()

    def wait_for_workers(self, timeout_ms: int = 10_000) -> None:
        """Cancel and join the thumbnail jobs; their queued outcomes then go nowhere (the
        browser may be deleted before the event loop delivers them)."""
        for worker in list(self._workers):
            worker.wait(timeout_ms)
            worker.event.disconnect()
            worker.ended.disconnect()
        self._workers.clear()
