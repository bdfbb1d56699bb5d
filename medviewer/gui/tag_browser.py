"""The tag browser: every header element, nested sequences expandable, searchable.

It never shows pixel data or any other binary value (only their size), and it never reads a
large deferred value from disk just to show it.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QLabel, QLineEdit, QStyledItemDelegate, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget,
)

from medviewer.gui.lazy import LazyModule

if TYPE_CHECKING:
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset
# pydicom loads when the first header is shown, not at start-up.
_dataelem = LazyModule("pydicom.dataelem")
_datadict = LazyModule("pydicom.datadict")
_multival = LazyModule("pydicom.multival")
_tag = LazyModule("pydicom.tag")

log = logging.getLogger(__name__)

BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN", "OB or OW", "US or OW"})
PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
MAX_VALUE_CHARS = 200
MAX_SHOWN_LENGTH = 64 * 1024  # larger values are described, not read
MAX_SEQUENCE_ITEMS = 100  # per sequence; the rest is summarised in one row

COLUMNS = ("Tag", "Name", "VR", "Value")


def tag_text(tag: int) -> str:
    tag = _tag.Tag(tag)
    return f"({tag.group:04X},{tag.element:04X})"


def _binary_text(length: int | None) -> str:
    return f"<binary data, {length} bytes>" if length is not None else "<binary data>"


def _value_text(element: DataElement) -> str:
    if element.tag in PIXEL_TAGS or element.VR in BINARY_VRS:
        value = element.value
        length = len(value) if isinstance(value, (bytes, bytearray)) else None
        return _binary_text(length)
    value = element.value
    if value is None or value == "":
        return ""
    if isinstance(value, (bytes, bytearray)):
        return _binary_text(len(value))
    if isinstance(value, (_multival.MultiValue, list, tuple)):
        text = "\\".join(str(v) for v in value)
    else:
        text = str(value)
    text = text.replace("\r", " ").replace("\n", " ")
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS] + f"… ({len(text)} characters)"
    return text


def _name_for(tag: int, element: DataElement | None) -> str:
    if element is not None and element.name and not element.name.startswith("Private tag data"):
        return element.name
    if _tag.Tag(tag).is_private:
        return element.name if element is not None else "Private tag"
    try:
        return _datadict.dictionary_description(tag)
    except KeyError:
        return "Unknown tag"


class _ElideDelegate(QStyledItemDelegate):
    """Values keep both ends visible (UIDs differ at the end); other columns cut at the right."""

    def initStyleOption(self, option, index):  # noqa: N802 - Qt naming
        super().initStyleOption(option, index)
        option.textElideMode = (Qt.TextElideMode.ElideMiddle if index.column() == 3
                                else Qt.TextElideMode.ElideRight)


class TagBrowser(QWidget):
    """Shows one dataset's elements; the search box filters by keyword, tag or value."""

    filter_applied = Signal(int)  # number of matching rows

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.search = QLineEdit()
        self.search.setObjectName("tagSearch")
        self.search.setPlaceholderText("Search keyword, tag (0010,0010) or value")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.set_filter)
        self.tree = QTreeWidget()
        self.tree.setObjectName("tagTree")
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setAnimated(False)
        self._delegate = _ElideDelegate(self.tree)
        self.tree.setItemDelegate(self._delegate)
        header = self.tree.header()
        header.setStretchLastSection(True)
        metrics = self.tree.fontMetrics()
        # Room for "(0000,0000)" one sequence level down (sequence > item > element).
        header.resizeSection(0, metrics.horizontalAdvance("(0000,0000)")
                             + 3 * self.tree.indentation() + 10)
        self._name_width = metrics.horizontalAdvance("Referring Physician's Name") + 12
        header.resizeSection(1, self._name_width)
        header.resizeSection(2, metrics.horizontalAdvance("VRW") + 12)
        self.summary = QLabel()
        self.summary.setObjectName("tagSummary")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.search)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.summary)
        self._element_count = 0
        self._pending: tuple[Dataset, Dataset | None] | None = None
        self._in_view = True

    def _fill_pending(self) -> None:
        if self._pending is not None:
            self._fill(*self._pending)

    def resizeEvent(self, event):  # noqa: N802 - Qt naming
        """In a narrow dock the Name column gives way, so values stay visible."""
        super().resizeEvent(event)
        header = self.tree.header()
        free = self.tree.viewport().width() - header.sectionSize(0) - header.sectionSize(2)
        header.resizeSection(1, max(80, min(self._name_width, int(free * 0.5))))

    # -- content
    def set_dataset(self, dataset: Dataset | None, file_meta: Dataset | None = None) -> None:
        """Show a header (and its file meta group, first); None clears the browser.

        While the panel is out of view (its dock a tab behind the label panel),
        the header waits until it is: filling the tree costs a few milliseconds of the GUI
        thread on every image change, for a panel nobody is looking at."""
        if dataset is not None and not self._in_view:
            self._pending = (dataset, file_meta)
            return
        self._fill(dataset, file_meta)

    def set_in_view(self, in_view: bool) -> None:
        """Whether a reader can see the panel (its dock's tab is in front, its window shown)."""
        self._in_view = bool(in_view)
        if self._in_view:
            self._fill_pending()

    def _fill(self, dataset: Dataset | None, file_meta: Dataset | None) -> None:
        self._pending = None
        self.tree.clear()
        self._element_count = 0
        if dataset is None:
            self.summary.clear()
            return
        meta = file_meta if file_meta is not None else getattr(dataset, "file_meta", None)
        if meta:
            self._add_elements(self.tree.invisibleRootItem(), meta)
        self._add_elements(self.tree.invisibleRootItem(), dataset)
        self.set_filter(self.search.text())

    def _add_elements(self, parent: QTreeWidgetItem, dataset: Dataset) -> None:
        for tag in sorted(dataset.keys()):
            self._add_element(parent, dataset, tag)

    def _add_element(self, parent: QTreeWidgetItem, dataset: Dataset, tag) -> None:
        self._element_count += 1
        raw = dataset.get_item(tag)
        vr = getattr(raw, "VR", None) or ""
        length = getattr(raw, "length", None)
        element: DataElement | None = None
        if tag in PIXEL_TAGS:
            value = _binary_text(length if length not in (None, 0xFFFFFFFF) else None)
        elif isinstance(raw, _dataelem.RawDataElement) and length is not None and \
                length != 0xFFFFFFFF and length > MAX_SHOWN_LENGTH:
            # Deferred by the reader: describing it must not pull it from disk.
            value = f"<{length} bytes, not shown>"
            vr = vr or self._dictionary_vr(tag)
        else:
            try:
                element = dataset[tag]
                vr = element.VR
                value = _value_text(element) if vr != "SQ" else ""
            except Exception as exc:  # noqa: BLE001 - a malformed value must not stop the rest
                value = f"<unreadable value: {str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}>"
        name = _name_for(tag, element)
        keyword = _datadict.keyword_for_tag(tag) or ""
        item = QTreeWidgetItem(parent, [tag_text(tag), name, vr, value])
        item.setData(0, Qt.ItemDataRole.UserRole, f"{int(_tag.Tag(tag)):08X} {keyword}")
        if value:
            item.setToolTip(3, value)
        if element is not None and element.VR == "SQ":
            items = list(element.value or [])
            item.setText(3, f"{len(items)} item" + ("" if len(items) == 1 else "s"))
            for index, child in enumerate(items[:MAX_SEQUENCE_ITEMS]):
                child_item = QTreeWidgetItem(item, ["", f"Item {index + 1}", "", ""])
                self._add_elements(child_item, child)
            if len(items) > MAX_SEQUENCE_ITEMS:
                QTreeWidgetItem(item, ["", f"… {len(items) - MAX_SEQUENCE_ITEMS} more items "
                                           "not shown", "", ""])

    @staticmethod
    def _dictionary_vr(tag) -> str:
        try:
            return _datadict.dictionary_VR(tag)
        except KeyError:
            return ""

    # -- search
    def set_filter(self, text: str) -> int:
        """Show rows matching ``text`` (and their parents); returns how many rows matched."""
        self._fill_pending()
        if self.search.text() != text:
            self.search.blockSignals(True)
            self.search.setText(text)
            self.search.blockSignals(False)
        needle = text.strip().lower()
        tag_needle = re.sub(r"[^0-9a-f]", "", needle) if re.fullmatch(
            r"\(?\s*[0-9a-f]{4}\s*[, ]?\s*[0-9a-f]{0,4}\s*\)?", needle) else ""
        matches = 0
        root = self.tree.invisibleRootItem()
        for i in range(root.childCount()):
            matches += self._filter_item(root.child(i), needle, tag_needle)
        if not needle:
            self.tree.collapseAll()
            matches = self._element_count
            self.summary.setText(f"{self._element_count} elements")
        else:
            self.summary.setText(f"{matches} matching" if matches else "No element matches")
        self.filter_applied.emit(matches)
        return matches

    def _filter_item(self, item: QTreeWidgetItem, needle: str, tag_needle: str) -> int:
        """Hide what does not match; returns matches in this subtree."""
        if not needle:
            item.setHidden(False)
            for i in range(item.childCount()):
                self._filter_item(item.child(i), needle, tag_needle)
            return 0
        own = self._matches(item, needle, tag_needle)
        below = 0
        for i in range(item.childCount()):
            below += self._filter_item(item.child(i), needle, tag_needle)
        if own and below == 0:
            # A match shows its whole subtree (e.g. a sequence found by name).
            self._show_subtree(item)
        item.setHidden(not own and below == 0)
        item.setExpanded(below > 0)
        return below + (1 if own else 0)

    def _show_subtree(self, item: QTreeWidgetItem) -> None:
        for i in range(item.childCount()):
            child = item.child(i)
            child.setHidden(False)
            self._show_subtree(child)

    @staticmethod
    def _matches(item: QTreeWidgetItem, needle: str, tag_needle: str) -> bool:
        hidden_key = str(item.data(0, Qt.ItemDataRole.UserRole) or "").lower()
        if tag_needle and hidden_key.startswith(tag_needle):
            return True
        if needle in hidden_key:
            return True
        return any(needle in item.text(column).lower() for column in range(len(COLUMNS)))

    def visible_rows(self) -> list[tuple[str, ...]]:
        """(tag, name, vr, value) of every row not hidden, depth first (for tests/export)."""
        self._fill_pending()
        rows: list[tuple[str, ...]] = []

        def walk(item: QTreeWidgetItem) -> None:
            for i in range(item.childCount()):
                child = item.child(i)
                if child.isHidden():
                    continue
                rows.append(tuple(child.text(c) for c in range(len(COLUMNS))))
                walk(child)

        walk(self.tree.invisibleRootItem())
        return rows
