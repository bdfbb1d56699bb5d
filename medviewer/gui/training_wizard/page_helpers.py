"""What the wizard's pages share: small widget helpers, the page base class, and the few
things a page asks of the wizard that hosts it (:class:`WizardHost`)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QLabel, QTableWidget,
                               QTableWidgetItem, QWidget, QWizardPage)

from medviewer.jobs import CancelFlag

SPLIT_TITLES = {"train": "Train", "val": "Validation", "test": "Test"}
# The pages' ids, in order (here so a page can name the next one without importing the wizard).
PAGE_DATA, PAGE_MODEL, PAGE_SETTINGS, PAGE_TRAIN, PAGE_EVALUATE, PAGE_EXPORT = range(6)


class WizardHost(Protocol):
    """The wizard as its pages see it: its jobs, the pages' choices and the other pages.

    The pages read each other's state through it (the data page reads the seed on the
    settings page, the export page the thresholds chosen on the evaluate page); the page
    attributes are typed loosely so no page module imports another.
    """

    tools: Any  # medviewer.app.training.ToolsInfo, None until PyTorch has loaded
    data_page: Any
    model_page: Any
    settings_page: Any
    train_page: Any
    evaluate_page: Any
    export_page: Any
    model_registered: Any  # Signal(ModelEntry)
    tools_ready: Any  # Signal(), once ``tools`` is set

    def start_job(self, purpose: str, factory: Callable[[CancelFlag], Generator],
                  description: str, *, on_event: Callable | None = None,
                  on_finished: Callable | None = None, on_failed: Callable | None = None,
                  on_cancelled: Callable | None = None) -> Any: ...

    def is_running(self, purpose: str) -> bool: ...

    def cancel(self, purpose: str) -> None: ...

    def choices(self) -> dict: ...

    def current_run_dir(self) -> Path | None: ...

    def current_checkpoint(self) -> Path | None: ...


def note(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def set_error(label: QLabel, sentence: str) -> None:
    label.setStyleSheet("color: #ff8080;" if sentence else "")
    label.setText(sentence)


def read_only_table(rows: int, columns: int) -> QTableWidget:
    table = QTableWidget(rows, columns)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
    return table


def fit_height(table: QTableWidget) -> None:
    """Make a small table exactly as tall as its rows, so no empty grid shows below them."""
    table.resizeRowsToContents()
    height = table.horizontalHeader().height() + 2 * table.frameWidth()
    height += sum(table.rowHeight(row) for row in range(table.rowCount()))
    table.setFixedHeight(height)
    table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)


def narrow(widget: QWidget, width: int = 150) -> QWidget:
    widget.setMaximumWidth(width)
    return widget


def cell(text: str, bold: bool = False) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    if bold:
        font = item.font()
        font.setBold(True)
        item.setFont(font)
    return item


class WizardPage(QWizardPage):
    def __init__(self, wizard: WizardHost, title: str, subtitle: str) -> None:
        super().__init__()
        self.owner = wizard
        self.setTitle(title)
        self.setSubTitle(subtitle)
