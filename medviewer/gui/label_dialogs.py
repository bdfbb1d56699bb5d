"""The label panel's dialogs: a new label set, the reader name, the label store file; and
what the import and export dialogs share (``TransferContext``, the result styles).

They only collect input; the panel connects their signals and does the work (on the store
thread), so the new label set dialog closes only once the store created the set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QInputDialog, QLabel,
    QLineEdit, QPlainTextEdit, QVBoxLayout, QWidget,
)

if TYPE_CHECKING:
    from medviewer.app.labelling import Labelling
    from medviewer.gui.label_store_client import StoreClient
    from medviewer.gui.shell import Shell

ERROR_STYLE = "color: #ff6b6b;"  # the store's one-sentence errors, here and in the panel
SUCCESS_STYLE = "color: #7ddc7d;"


class NewLabelSetDialog(QDialog):
    """Name, classes (one per line or comma-separated) and single/multi-label."""

    submitted = Signal(str, list, bool)  # name, classes, multi_label

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New label set")
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("e.g. pneumonia")
        self.classes_edit = QPlainTextEdit()
        self.classes_edit.setPlaceholderText("One class per line (or separated by commas),\n"
                                             "in the order of the keys 1, 2, 3…")
        self.classes_edit.setTabChangesFocus(True)
        self.multi_check = QCheckBox("Multi-label: an image may have several classes")
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(ERROR_STYLE)
        self.error_label.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Create")
        buttons.accepted.connect(self._submit)
        buttons.rejected.connect(self.reject)
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        form = QFormLayout()
        form.addRow("Name", self.name_edit)
        form.addRow("Classes", self.classes_edit)
        hint = QLabel("Keys 1–9 label with the classes in this order.")
        hint.setEnabled(False)
        form.addRow("", hint)
        form.addRow("", self.multi_check)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error_label)
        layout.addWidget(buttons)
        self.resize(440, 320)

    def classes(self) -> list[str]:
        text = self.classes_edit.toPlainText().replace(",", "\n")
        return [line.strip() for line in text.splitlines() if line.strip()]

    def _submit(self) -> None:
        self.error_label.hide()
        self.ok_button.setEnabled(False)  # until the store replies
        self.submitted.emit(self.name_edit.text(), self.classes(), self.multi_check.isChecked())

    def show_error(self, sentence: str) -> None:
        self.ok_button.setEnabled(True)
        self.error_label.setText(sentence)
        self.error_label.show()


def reader_dialog(parent: QWidget, reader: str) -> QInputDialog:
    """Asks for the reader name, prefilled with the current one (not opened yet)."""
    dialog = QInputDialog(parent)
    dialog.setWindowTitle("Reader")
    dialog.setLabelText("Your name as a reader (labels are saved under it):")
    dialog.setTextValue(reader)
    return dialog


def store_file_dialog(parent: QWidget, folder: Path) -> QFileDialog:
    """Chooses a label store file, new or existing (not opened yet)."""
    dialog = QFileDialog(parent, "Label store", str(folder),
                         "Label stores (*.sqlite);;All files (*)")
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dialog.setOption(QFileDialog.Option.DontConfirmOverwrite, True)
    dialog.setDefaultSuffix("sqlite")
    return dialog


@dataclass(frozen=True)
class TransferContext:
    """What the import and export dialogs use: the session's labelling state, the store
    thread writes go through, the shell, and how to show what an import changed."""

    labelling: Labelling
    client: StoreClient
    shell: Shell
    reload: Callable[[str | None], None]  # re-read the store, choosing this label set
