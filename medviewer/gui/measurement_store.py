"""Measurements kept in the label store: read back when an image is shown, written as the
reader measures, undone and redone like labels, exported from Labels > Export measurements.

:class:`MeasurementStore` watches image views (every viewport of the grid). Every store call
goes through the label panel's :class:`~medviewer.gui.label_store_client.StoreClient`, the
one thread that touches the store, so calls run in the order the reader acted. That order is
what makes the bookkeeping safe: the call that adds a measurement sets its id on that thread,
before the call that later moves or deletes it runs there.

- image shown: ``store.measurements(image)`` (every reader's) replaces what the view shows;
- ``measurements_changed`` on the image the view shows: the records are compared with what
  is stored (the same record object: unchanged; the same kind, points and frame: updated,
  e.g. re-measured after a calibration; new: added; gone: deleted). A new image clearing the
  view is not a deletion: the view then shows another image;
- undo / redo (Ctrl+Alt+Z / Ctrl+Alt+Shift+Z, View > Tools and the right-click menu):
  ``store.undo(reader, row_kind="measurement")``; the views showing the image read it again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMenu, QWidget

from medviewer.gui.lazy import LazyModule

if TYPE_CHECKING:
    from medviewer.app import measurements
    from medviewer.app.measurements import Measurement
    from medviewer.gui.image_view import ImageView
    from medviewer.gui.label_store_client import StoreClient
    from medviewer.gui.shell import Shell
    from medviewer.labels import store as store_module
    from medviewer.labels.store import ImageRef, LabelStore, UndoResult
else:  # the store and the measurement math load on first use, not at start-up
    measurements = LazyModule("medviewer.app.measurements")
    store_module = LazyModule("medviewer.labels.store")

log = logging.getLogger(__name__)

EXPORT_FILTERS = {"CSV (*.csv)": "csv", "JSON (*.json)": "json"}


@dataclass(eq=False)
class _Kept:
    """One measurement on screen and its row in the store (``row_id`` is set on the store
    thread by the call that adds it; None until then, or when adding failed)."""

    record: Measurement
    row_id: int | None = None


@dataclass(eq=False)
class _ImageMeasurements:
    """The measurements of the image one view shows, as the store holds them."""

    instance: Any  # medviewer.dicom.reader.Instance
    ref: ImageRef | None = None  # set on the store thread (identifying may read the file)
    kept: list[_Kept] = field(default_factory=list)

    def image_ref(self) -> ImageRef:  # on the store thread
        if self.ref is None:
            self.ref = store_module.ImageRef.from_instance(self.instance)
        return self.ref


class MeasurementStore(QObject):
    """Keeps the watched views' measurements in the label store (see the module docstring)."""

    stored = Signal()  # a write or read came back (tests wait on it)
    failed = Signal(str)  # a store call's sentence

    def __init__(self, client: StoreClient, shell: Shell, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self.shell = shell
        self._images: dict[ImageView, _ImageMeasurements] = {}
        window: QWidget = shell.dialog_parent()
        self.undo_action = self._window_action(
            window, "&Undo measurement", ["Ctrl+Alt+Z"], self.undo,
            "Take back your last measurement change (on any image)")
        self.redo_action = self._window_action(
            window, "Re&do measurement", ["Ctrl+Alt+Shift+Z"], self.redo,
            "Re-apply the measurement change Undo took back")
        self.export_action = self._window_action(
            window, "Export &measurements…", [], self.show_export_dialog,
            "Write every measurement and note in the label store to CSV or JSON")
        self._export_dialog: QFileDialog | None = None

    @staticmethod
    def _window_action(window: QWidget, text: str, keys: list[str], slot, tip: str) -> QAction:
        action = QAction(text, window)
        action.setShortcuts([QKeySequence(k) for k in keys])
        action.setToolTip(f"{tip} ({', '.join(keys)})" if keys else tip)
        action.setStatusTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        window.addAction(action)
        return action

    # ------------------------------------------------------------ views
    def watch(self, view: ImageView) -> None:
        view.image_shown.connect(lambda instance, v=view: self.load(v, instance))
        view.measurements_changed.connect(lambda records, v=view: self._on_changed(v, records))
        view.load_failed.connect(lambda _sentence, v=view: self._show_kept(v))
        view.context_menu_about_to_show.connect(self._add_menu_items)
        if view.instance is not None:
            self.load(view, view.instance)

    def _add_menu_items(self, menu: QMenu) -> None:
        tools = next((a.menu() for a in menu.actions() if a.menu() is not None
                      and a.text() == "&Tools"), menu)
        tools.addSeparator()
        tools.addActions([self.undo_action, self.redo_action])

    def load(self, view: ImageView, instance: Any) -> None:
        """Show the stored measurements of the image ``view`` now shows (every reader's)."""
        image = self._images[view] = _ImageMeasurements(instance)
        if not self.client.path.exists():
            return  # nothing stored yet; the first measurement creates the store

        def read(store: LabelStore) -> list:
            return store.measurements(image.image_ref().key)

        def done(rows: list) -> None:
            if self._images.get(view) is image:  # the view still shows that image
                made_meanwhile = image.kept
                image.kept = [_Kept(measurements.from_stored(row), row.id) for row in rows]
                image.kept.extend(made_meanwhile)  # their adds are queued after this read
                self._show_kept(view)
            self.stored.emit()

        self.client.call(read, done, self._failed)

    def _show_kept(self, view: ImageView) -> None:
        image = self._images.get(view)
        if image is not None and view.instance is image.instance:
            view.measures.set_records([kept.record for kept in image.kept])

    # ------------------------------------------------------------ writes
    def _on_changed(self, view: ImageView, records: list) -> None:
        image = self._images.get(view)
        if image is None or view.instance is not image.instance:
            return  # the view changed image (or shows none): nothing was deleted
        by_record = {id(kept.record): kept for kept in image.kept}
        gone = [kept for kept in image.kept if not any(kept.record is r for r in records)]
        now: list[_Kept] = []
        for record in records:
            kept = by_record.get(id(record))
            if kept is None:
                kept = next((k for k in gone if measurements.same_geometry(k.record, record)),
                            None)
                if kept is not None:
                    gone.remove(kept)
                    kept.record = record
                    self._write_update(kept)
                else:
                    kept = _Kept(record)
                    self._write_add(image, kept)
            now.append(kept)
        for kept in gone:
            self._write_delete(kept)
        image.kept = now

    def _write_add(self, image: _ImageMeasurements, kept: _Kept) -> None:
        reader, fields = self.client.reader, measurements.store_fields(kept.record)

        def add(store: LabelStore) -> Any:
            row = store.add_measurement(image.image_ref(), reader=reader, **fields)
            kept.row_id = row.id
            return row

        self.client.call(add, lambda _row: self.stored.emit(), self._not_saved)

    def _write_update(self, kept: _Kept) -> None:
        fields = measurements.store_fields(kept.record)
        for fixed in ("kind", "frame"):
            del fields[fixed]

        def update(store: LabelStore) -> Any:
            if kept.row_id is None:
                return None  # its add failed: there is no row to change
            return store.update_measurement(kept.row_id, **fields)

        self.client.call(update, lambda _row: self.stored.emit(), self._not_saved)

    def _write_delete(self, kept: _Kept) -> None:
        def delete(store: LabelStore) -> None:
            if kept.row_id is not None:
                store.delete_measurement(kept.row_id)

        self.client.call(delete, lambda _none: self.stored.emit(), self._not_saved)

    def _failed(self, sentence: str) -> None:
        """A store call failed: its one sentence in the status bar (the view keeps working)."""
        self.shell.show_status(sentence, 15_000)
        self.failed.emit(sentence)

    def _not_saved(self, sentence: str) -> None:
        self._failed(f"The measurement was not saved: {sentence[:1].lower()}{sentence[1:]}")

    # ------------------------------------------------------------ undo and redo
    def undo(self) -> None:
        self._revert("undo")

    def redo(self) -> None:
        self._revert("redo")

    def _revert(self, verb: str) -> None:
        if not self.client.path.exists():
            self.shell.show_status(f"No measurement of yours to {verb}.", 5000)
            return
        reader = self.client.reader

        def act(store: LabelStore) -> UndoResult | None:
            revert = store.undo if verb == "undo" else store.redo
            return revert(reader, row_kind="measurement")

        def done(result: UndoResult | None) -> None:
            self.stored.emit()
            if result is None:
                self.shell.show_status(f"No measurement of yours to {verb}.", 5000)
                return
            keys = set(result.image_keys)
            shown = [(view, image) for view, image in self._images.items()
                     if image.ref is not None and image.ref.key in keys]
            for view, image in shown:
                self.load(view, image.instance)
            where = ", ".join(sorted({Path(image.instance.path).name for _, image in shown})) \
                or "an image not on screen"
            what = "Undone" if verb == "undo" else "Redone"
            self.shell.show_status(f"{what}: a measurement change on {where}.", 5000)

        self.client.call(act, done, self._failed)

    # ------------------------------------------------------------ export
    def show_export_dialog(self) -> QFileDialog:
        """Labels > Export measurements…: a file chooser (CSV or JSON by the filter)."""
        dialog = QFileDialog(self.shell.dialog_parent(), "Export measurements")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setNameFilters(list(EXPORT_FILTERS))
        dialog.selectFile("measurements.csv")
        dialog.filterSelected.connect(lambda name: dialog.setDefaultSuffix(EXPORT_FILTERS[name]))
        dialog.setDefaultSuffix("csv")
        dialog.fileSelected.connect(lambda path: path and self.export(Path(path)))
        self._export_dialog = dialog
        dialog.open()
        return dialog

    def export(self, path: Path) -> None:
        """Write every measurement in the store to ``path`` (.json: JSON, else CSV), on the
        store thread; the outcome is said in the status bar."""
        fmt = "json" if path.suffix.lower() == ".json" else "csv"
        if not self.client.path.exists():
            self.shell.show_status("There are no measurements to export yet.", 8000)
            return

        def write(store: LabelStore) -> int:
            from medviewer.labels.export import MEASUREMENT_EXPORTERS

            return MEASUREMENT_EXPORTERS[fmt](store, path)

        def done(count: int) -> None:
            self.stored.emit()
            self.shell.show_status(f"Wrote {count} measurement{'' if count == 1 else 's'} "
                                   f"to {path}.", 10_000)

        self.client.call(write, done, self._failed)
