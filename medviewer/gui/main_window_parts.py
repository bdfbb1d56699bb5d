"""Parts of the main window that are widgets of their own: the problems list, the keyboard
shortcut list, and the filter that hides an empty menu."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog, QDialogButtonBox, QHBoxLayout, QHeaderView, QListWidget, QListWidgetItem,
    QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)


class MenuVisibility(QObject):
    """Keeps a menu hidden while it holds no actions, so placeholder menus never show empty."""

    def eventFilter(self, menu, event):  # noqa: N802 - Qt naming
        if event.type() in (QEvent.Type.ActionAdded, QEvent.Type.ActionRemoved):
            # Qt updates menu.actions() before sending either event.
            menu.menuAction().setVisible(any(not a.isSeparator() for a in menu.actions()))
        return False


class ProblemsPanel(QWidget):
    """Every file that could not be opened, one sentence each; never modal."""

    changed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setObjectName("problemList")
        self.list.setWordWrap(True)
        self.list.setAlternatingRowColors(True)
        clear = QPushButton("Clear list")
        clear.clicked.connect(self.clear)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(clear)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self._seen: set[tuple[str, str]] = set()

    def add(self, path: str, sentence: str) -> bool:
        key = (str(path), sentence)
        if key in self._seen:
            return False
        self._seen.add(key)
        item = QListWidgetItem(sentence)
        item.setToolTip(str(path))
        self.list.addItem(item)
        self.changed.emit(self.count())
        return True

    def count(self) -> int:
        return self.list.count()

    def sentences(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def clear(self) -> None:
        self.list.clear()
        self._seen.clear()
        self.changed.emit(0)


class ShortcutsDialog(QDialog):
    """Help > Keyboard shortcuts: built from the live actions and the mouse mapping in use,
    so it never goes stale."""

    def __init__(self, actions: list[QAction], parent: QWidget | None = None,
                 skip: tuple[QAction, ...] = (),
                 gestures: list[tuple[str, str]] | tuple = ()) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        rows: list[tuple[str, str]] = []
        seen: set[str] = set()
        for action in actions:
            if action in skip:
                continue
            keys = ", ".join(k.toString(QKeySequence.SequenceFormat.NativeText)
                             for k in action.shortcuts())
            text = action.text().replace("&", "").rstrip(".…")
            if keys and text not in seen:
                seen.add(text)
                rows.append((text, keys))
        rows.append(("W/L presets", "Ctrl+1 … Ctrl+9, in the order of View > Window/level"))
        rows.extend(gestures)
        self.table = QTableWidget(len(rows), 2)
        self.table.setHorizontalHeaderLabels(["Action", "Keys / mouse"])
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for row, (text, keys) in enumerate(rows):
            self.table.setItem(row, 0, QTableWidgetItem(text))
            self.table.setItem(row, 1, QTableWidgetItem(keys))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(660, 760)

    def rows(self) -> list[tuple[str, str]]:
        return [(self.table.item(r, 0).text(), self.table.item(r, 1).text())
                for r in range(self.table.rowCount())]
