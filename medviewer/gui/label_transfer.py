"""Labels > Import labels… and Export labels…: what `medviewer labels import|export` does,
in the app. The dialogs are in ``label_import_dialog.py`` and ``label_export_dialog.py``,
their jobs in ``app/label_transfer.py``; :class:`LabelTransfer` owns the dialogs.

Import: a file (CSV, MedViewer JSON or COCO JSON) -> :class:`ImportDialog` (label set,
classes of a new set, reader for rows without one) -> a validation job -> with problems, a
:class:`ProblemsDialog` (nothing is written without consent, as the CLI without ``--yes``)
-> ``apply_import`` -> the panel re-reads label sets, labels and regions.

Export: :class:`ExportDialog` (label set, format, file) -> an export job -> the count and
the path in the status bar.

Where each step runs, and why:

- Validation runs on its own :class:`JobWorker` with its own store connection, not on the
  panel's store thread: it reads the header of (or hashes) every image the file names,
  seconds to minutes for thousands of rows, and on the store thread every key the reader
  pressed meanwhile would wait behind it. It only reads the store (the target label set);
  the store is WAL SQLite, so a second connection reads alongside the store thread's writes.
- The write (``apply_import``) goes through the panel's store thread: it is ordered with the
  reader's own label writes, and the store checks the plan again inside its one transaction
  (one undo step), so a label set changed since validation is never half-written.
- Export reads on its own connection too (a big set on a slow disk must not hold up
  labelling), but starts only once a no-op call on the store thread has returned: every
  label the reader gave before pressing Export is committed, so it is in the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QDialog, QFileDialog

from medviewer.errors import UserError
from medviewer.gui.label_dialogs import TransferContext
from medviewer.gui.label_export_dialog import ExportDialog
from medviewer.gui.label_import_dialog import IMPORT_FILTERS, ImportDialog

if TYPE_CHECKING:
    from medviewer.app.labelling import Labelling
    from medviewer.gui.label_store_client import StoreClient
    from medviewer.gui.shell import Shell


# ---------------------------------------------------------------- the menu actions


class LabelTransfer(QObject):
    """Owns the import and export dialogs (and so their jobs) of one label panel."""

    def __init__(self, labelling: Labelling, client: StoreClient, shell: Shell,
                 reload: Callable[[str | None], None]) -> None:
        super().__init__(client)
        self.context = TransferContext(labelling, client, shell, reload)
        self.import_dialog: ImportDialog | None = None
        self.export_dialog: ExportDialog | None = None
        self.file_dialog: QFileDialog | None = None
        self._finished: list[QDialog] = []  # closed dialogs whose job may still be ending
        self._import_folder: Path | None = None
        self._export_folder: Path | None = None

    def _import_start_folder(self) -> Path:
        if self._import_folder is not None:
            return self._import_folder
        if self.context.labelling.current_path is not None:  # label files often sit by their images
            return self.context.labelling.current_path.parent
        return Path.home()

    def show_import_dialog(self) -> QFileDialog:
        """Labels > Import labels…: choose the file (the options dialog follows)."""
        dialog = QFileDialog(self.context.shell.dialog_parent(), "Import labels",
                             str(self._import_start_folder()))
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptOpen)
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setNameFilters(list(IMPORT_FILTERS))
        dialog.fileSelected.connect(lambda chosen: chosen and self.open_import(Path(chosen)))
        self.file_dialog = dialog
        dialog.open()
        return dialog

    def open_import(self, source: Path) -> ImportDialog | None:
        """The options dialog for one file (shown; None and one sentence if it cannot be
        imported at all)."""
        self._import_folder = Path(source).parent
        if self.import_dialog is not None and self.import_dialog.state in ("checking",
                                                                            "importing"):
            self.import_dialog.raise_()
            self.context.shell.show_status(
                "An import is still running; wait for it to finish.", 8000)
            return None
        try:
            dialog = ImportDialog(self.context, source, self.context.shell.dialog_parent())
        except UserError as exc:
            self.context.shell.show_status(str(exc), 15_000)
            return None
        self._retire(self.import_dialog)
        self.import_dialog = dialog
        dialog.open()
        return dialog

    def show_export_dialog(self) -> ExportDialog:
        """Labels > Export labels…"""
        if self.export_dialog is not None and self.export_dialog.state == "exporting":
            self.export_dialog.raise_()
            return self.export_dialog
        dialog = ExportDialog(self.context, self._export_folder or Path.home(),
                              self.context.shell.dialog_parent())
        dialog.exported.connect(lambda _s: self._remember_export_folder(dialog))
        self._retire(self.export_dialog)
        self.export_dialog = dialog
        dialog.open()
        return dialog

    def _remember_export_folder(self, dialog: ExportDialog) -> None:
        self._export_folder = Path(dialog.path_edit.text().strip()).expanduser().parent

    def _retire(self, dialog: QDialog | None) -> None:
        """Keep an old dialog until its job ended; Qt deletes it with the window otherwise."""
        if dialog is None:
            return
        dialog.close()
        self._finished = [d for d in self._finished if d.worker is not None] + [dialog]

    def shutdown(self, timeout_ms: int = 10_000) -> None:
        """Cancel running checks and exports and wait for them (the window is closing)."""
        for dialog in (*self._finished, self.import_dialog, self.export_dialog):
            if dialog is not None:
                dialog.wait(timeout_ms)

