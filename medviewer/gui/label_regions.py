"""Region labels of the label panel: region mode, the region list, shapes on the image view.

R toggles region mode; a left drag draws a rectangle (or ellipse) of the region class (the
number keys choose it in region mode); a click selects a region, Delete removes it. A drawn
region shows dashed grey "(saving…)" until the store's ``add_region`` returned, then in its
class colour; a failed write takes it off the image again.

:class:`RegionEditor` is owned by the :class:`~medviewer.gui.label_panel.LabelPanel` and knows
it only through :class:`RegionOwner`: which label set, reader and image are current, which
image an action may apply to, and its store calls (``write`` reports every write the one
way the panel reports writes). The panel tells the editor when the label set or the image
changes (:meth:`RegionEditor.use_classes`, :meth:`~RegionEditor.image_shown`, ...) and owns
the keys (R, Delete, the number keys).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QComboBox, QHBoxLayout, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout,
)

from medviewer.gui.lazy import LazyModule
from medviewer.gui.widgets import bold_label, window_action

if TYPE_CHECKING:
    from medviewer.gui.image_view import ImageView
    from medviewer.gui.region_items import RegionDraft, RegionLayer
    from medviewer.gui.shell import Shell
    from medviewer.labels import store as store_module
    from medviewer.labels.store import ImageRef, LabelSet, LabelStore, Region
else:  # the store (sqlite3) and pyqtgraph load on first use, not at start-up
    store_module = LazyModule("medviewer.labels.store")
    region_items = LazyModule("medviewer.gui.region_items")


class RegionOwner(Protocol):
    """What :class:`RegionEditor` uses of the panel that owns it."""

    shell: Shell
    view: ImageView
    label_set: LabelSet | None
    reader: str
    current_path: Path | None
    current_key: str | None

    @property
    def store_path(self) -> Path: ...

    def target_image(self, doing: str) -> ImageRef | None:
        """The image on screen if an action may apply to it now, else None (and why, shown)."""

    def write(self, call: Callable[[LabelStore], Any], saved: Callable[[Any], str | None], *,
              image_key: str | None = None, failed: Callable[[], None] | None = None,
              nothing_done: str | None = None) -> None: ...

    def read(self, call: Callable[[LabelStore], Any], done: Callable[[Any], None]) -> None: ...

    def show_status(self, text: str) -> None: ...


class RegionEditor:
    """The region widgets and actions, this image's committed regions and their shapes."""

    def __init__(self, owner: RegionOwner) -> None:
        self.owner = owner
        self.view = owner.view
        self._regions: dict[int, Region] = {}  # the current image's, committed
        self._tokens = 0
        self._class_index = 0
        self._layer: RegionLayer | None = None

        self.region_button = QPushButton("Draw regions (R)")
        self.region_button.setCheckable(True)
        self.region_button.setToolTip("Region mode: left-drag on the image draws a region of "
                                      "the region class; the number keys choose that class; "
                                      "click a region to select it, Delete removes it")
        self.shape_combo = QComboBox()
        self.shape_combo.addItem("Rectangle", "rectangle")
        self.shape_combo.addItem("Ellipse", "ellipse")
        self.region_class_combo = QComboBox()
        self.region_class_combo.setObjectName("regionClassCombo")
        self.region_class_combo.setToolTip("Class of the next region (number keys in region "
                                           "mode); also changes the selected region's class")
        self.region_list = QListWidget()
        self.region_list.setObjectName("regionList")
        self.region_list.setMaximumHeight(110)
        self.delete_region_button = QPushButton("Delete region (Del)")

        window = owner.shell.dialog_parent()
        self.region_action = QAction("Draw &regions", window)
        self.region_action.setCheckable(True)
        self.region_action.toggled.connect(self.set_region_mode)
        window.addAction(self.region_action)
        self.delete_region_action = window_action(window, "&Delete selected region",
                                                  self.delete_selected_region)

        self.region_button.toggled.connect(self.region_action.setChecked)
        self.shape_combo.currentIndexChanged.connect(self._on_shape_changed)
        self.region_class_combo.activated.connect(self.set_region_class)
        self.region_list.currentItemChanged.connect(self._on_list_changed)
        self.delete_region_button.clicked.connect(self.delete_selected_region)
        self.view.frame_changed.connect(lambda _i, _n: self.show())
        self.view.actions_by_name["measure"].toggled.connect(
            lambda on: on and self.region_action.setChecked(False))

    def add_to(self, layout: QVBoxLayout) -> None:
        """Put the heading, the mode row, the list and the delete button in the panel."""
        row = QHBoxLayout()
        row.addWidget(self.region_button)
        row.addWidget(self.shape_combo)
        row.addWidget(self.region_class_combo, 1)
        layout.addWidget(bold_label("Regions"))
        layout.addLayout(row)
        layout.addWidget(self.region_list)
        layout.addWidget(self.delete_region_button)

    # ------------------------------------------------------------ what the panel tells it
    def use_classes(self, classes: tuple[str, ...], keyed: int) -> None:
        """A label set was chosen: the class combo lists its classes (the first ``keyed`` with
        their number key), the first one chosen; the previous set's regions are forgotten."""
        self._regions.clear()
        self._class_index = 0
        self.region_class_combo.clear()
        for index, class_name in enumerate(classes):
            key = f"{index + 1}  " if index < keyed else ""
            self.region_class_combo.addItem(f"{key}{class_name}")
        if classes:
            self.region_class_combo.setCurrentIndex(0)

    def image_shown(self) -> None:
        """Another image is on screen: drop the previous one's regions (and unsaved drafts)."""
        if self._layer is not None:
            self._layer.clear()
            self._layer.sync_image()
        self._regions.clear()
        self.load()

    def image_gone(self) -> None:
        self._regions.clear()
        self.show()

    @property
    def drawing(self) -> bool:
        """Region mode: a left drag draws, the number keys choose the region class."""
        return self.region_action.isChecked()

    def regions_on_screen(self) -> dict[int, Region]:
        return dict(self._regions)

    # ------------------------------------------------------------ mode and class
    @property
    def region_layer(self) -> RegionLayer:
        if self._layer is None:
            layer = region_items.RegionLayer(self.view)
            layer.drawn.connect(self._on_drawn)
            layer.selection_changed.connect(self._on_selected)
            layer.set_shape(self.shape_combo.currentData())
            layer.sync_image()
            self._layer = layer
        return self._layer

    def set_region_mode(self, on: bool) -> None:
        on = bool(on) and self.owner.label_set is not None
        if self.region_action.isChecked() != on:
            self.region_action.setChecked(on)
            return
        if self.region_button.isChecked() != on:
            self.region_button.blockSignals(True)
            self.region_button.setChecked(on)
            self.region_button.blockSignals(False)
        if on:
            self.view.set_measuring(False)
        if on or self._layer is not None:
            self.region_layer.set_drawing(on)
        self.refresh()

    def set_region_class(self, index: int) -> None:
        """The class of the next region, and of the selected one (a store write)."""
        label_set = self.owner.label_set
        if label_set is None or not 0 <= index < len(label_set.classes):
            return
        self._class_index = index
        self.region_class_combo.setCurrentIndex(index)
        selected = self._layer.selected if self._layer is not None else None
        if selected is not None and selected in self._regions:
            class_name = label_set.classes[index]
            if self._regions[selected].class_name != class_name:
                self._update_class(selected, class_name)

    def _on_shape_changed(self, _index: int) -> None:
        if self._layer is not None:
            self._layer.set_shape(self.shape_combo.currentData())

    # ------------------------------------------------------------ reading and showing
    def load(self) -> None:
        """Read the reader's regions on the image on screen (store thread)."""
        owner = self.owner
        key, label_set, reader = owner.current_key, owner.label_set, owner.reader
        if key is None or label_set is None or not owner.store_path.exists():
            self._regions.clear()
            self.show()
            return
        name = label_set.name

        def done(regions: list[Region]) -> None:
            if owner.current_key == key and owner.label_set is not None \
                    and owner.label_set.name == name and owner.reader == reader:
                self._regions = {r.id: r for r in regions}
                self.show()

        owner.read(lambda store: store.regions(name, key, reader=reader), done)

    def show(self) -> None:
        """Put the committed regions of this image and frame on the view (and the list)."""
        if not self._regions and (self._layer is None or not self._layer.handles()):
            if self.region_list.count():
                self.refresh()
            return
        layer = self.region_layer
        frame = self.view.frame
        shown = {rid: r for rid, r in self._regions.items() if r.frame == frame}
        pending = [h for h in layer.handles() if isinstance(h, str)]
        layer.keep_only(list(shown) + pending)
        for region in shown.values():
            layer.show_region(region.id, region.shape, _region_rect(region),
                              self._caption(region.class_name),
                              self._class_colour(region.class_name))
        self.refresh()

    def refresh(self) -> None:
        """The list (this frame's regions), the delete controls and the draw button."""
        owner = self.owner
        selected = self._layer.selected if self._layer is not None else None
        self.region_list.blockSignals(True)
        self.region_list.clear()
        frame = self.view.frame
        for region in sorted(self._regions.values(), key=lambda r: r.id):
            if region.frame != frame:
                continue
            g = region.geometry
            item = QListWidgetItem(f"{self._caption(region.class_name)} · {region.shape}"
                                   f" {g.width:.0f}×{g.height:.0f} at ({g.x:.0f}, {g.y:.0f})")
            item.setData(Qt.ItemDataRole.UserRole, region.id)
            self.region_list.addItem(item)
            if region.id == selected:
                self.region_list.setCurrentItem(item)
        self.region_list.blockSignals(False)
        self.region_list.setVisible(self.region_list.count() > 0)
        self.delete_region_action.setEnabled(selected is not None)
        self.delete_region_button.setEnabled(selected is not None)
        self.region_button.setEnabled(owner.label_set is not None
                                      and owner.current_path is not None)

    def _caption(self, class_name: str) -> str:
        label_set = self.owner.label_set
        if label_set is None or class_name not in label_set.classes:
            return class_name
        return f"{label_set.classes.index(class_name) + 1} {class_name}"

    def _class_colour(self, class_name: str):
        label_set = self.owner.label_set
        index = label_set.classes.index(class_name) \
            if label_set is not None and class_name in label_set.classes else 0
        return region_items.class_colour(index)

    # ------------------------------------------------------------ writes
    def _on_drawn(self, draft: RegionDraft) -> None:
        owner = self.owner
        image = owner.target_image("draw a region")
        if image is None or owner.label_set is None:
            return
        set_name, reader = owner.label_set.name, owner.reader
        class_name = owner.label_set.classes[self._class_index]
        self._tokens += 1
        token = f"pending-{self._tokens}"
        self.region_layer.show_pending(token, draft, self._caption(class_name))
        key = image.key
        geometry_type = store_module.Ellipse if draft.shape == "ellipse" \
            else store_module.Rectangle
        geometry = geometry_type(draft.x, draft.y, draft.width, draft.height)

        def drop_draft() -> None:
            if self._layer is not None:
                self._layer.remove(token)

        def saved(region: Region) -> str:
            drop_draft()
            if owner.current_key == key and region.reader == owner.reader:
                self._regions[region.id] = region
                self.show()
            return f"✓ Region saved: {region.class_name} at {_clock()}."

        owner.write(lambda store: store.add_region(set_name, image, class_name, geometry,
                                                   frame=draft.frame, reader=reader),
                    saved, image_key=key, failed=drop_draft)

    def _update_class(self, region_id: int, class_name: str) -> None:
        def saved(region: Region) -> None:
            if region.id in self._regions:
                self._regions[region.id] = region
                self.show()

        self.owner.write(lambda store: store.update_region(region_id, class_name=class_name),
                         saved)

    def delete_selected_region(self) -> None:
        layer = self._layer
        region_id = layer.selected if layer is not None else None
        if region_id is None or region_id not in self._regions:
            self.owner.show_status("Select a region first (click it on the image).")
            return
        key = self._regions[region_id].image_key
        layer.set_state(region_id, "deleting")

        def delete(store: LabelStore) -> int:
            store.delete_region(region_id)
            return region_id  # what the panel's committed signal carries

        def saved(_region_id: int) -> str:
            self._regions.pop(region_id, None)
            if self._layer is not None:
                self._layer.remove(region_id)
            self.show()
            return f"✓ Region deleted at {_clock()}."

        def failed() -> None:
            if self._layer is not None:
                self._layer.set_state(region_id, "saved")

        self.owner.write(delete, saved, image_key=key, failed=failed)

    # ------------------------------------------------------------ selection
    def _on_selected(self, region_id: int | None) -> None:
        for row in range(self.region_list.count()):
            item = self.region_list.item(row)
            if item.data(Qt.ItemDataRole.UserRole) == region_id:
                self.region_list.blockSignals(True)
                self.region_list.setCurrentItem(item)
                self.region_list.blockSignals(False)
        label_set = self.owner.label_set
        if region_id is None:
            self.region_list.clearSelection()
        elif region_id in self._regions and label_set is not None:
            class_name = self._regions[region_id].class_name
            if class_name in label_set.classes:
                self._class_index = label_set.classes.index(class_name)
                self.region_class_combo.setCurrentIndex(self._class_index)
        self.delete_region_action.setEnabled(region_id is not None)
        self.delete_region_button.setEnabled(region_id is not None)

    def _on_list_changed(self, current: QListWidgetItem | None, _previous) -> None:
        if current is not None:
            self.region_layer.select(current.data(Qt.ItemDataRole.UserRole))


def _region_rect(region: Region) -> QRectF:
    g = region.geometry
    return QRectF(g.x, g.y, g.width, g.height)


def _clock() -> str:
    return datetime.now().strftime("%H:%M:%S")
