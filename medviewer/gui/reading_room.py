"""The reading room in the main window: the viewport grid, the image menus and tool bar that
follow the active viewport, the status fields, and the reader's settings on every view.

:class:`ReadingRoom` is built by the main window (the composition root) around its first
image view, which stays the grid's primary view: the AI, label and region panels work on
it. What the room does:

- the grid (:class:`~medviewer.gui.viewport_grid.ViewportGrid`) is the central widget; its
  layout and sync toggles are kept in the settings and come back at the next start;
- menu and tool bar entries are the *active* view's actions (:class:`ActiveViewActions`):
  clicking another viewport makes its zoom, W/L presets, frames, tools, ... the ones the
  menus show and trigger;
- the status fields (zoom, W/L, frame) and the tag browser show the active view; the pixel
  readout shows whichever view is under the cursor; a new measurement's summary is shown
  until it, or its image, is gone;
- the chosen tool and the corner text / overlay planes / shutter toggles are the same on
  every view (a reader picks a ruler once, not per viewport);
- the mouse mapping, the corner text default and the length unit are applied to every view
  at start, to views the grid adds later, and whenever ``session.events.settings_changed``
  fires (the Preferences dialog saves through ``Session.update_settings``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel, QMenu, QStatusBar, QToolBar, QToolButton, QWidget

from medviewer.gui.image_view import ImageView
from medviewer.gui.view_tools import TOOLS, MouseMapping
from medviewer.gui.viewport_grid import LAYOUTS, SYNC_KINDS, ViewportGrid
from medviewer.gui.widgets import subscribe

if TYPE_CHECKING:
    from medviewer.app.session import Session
    from medviewer.gui.view_measurements import ShownMeasurement
    from medviewer.settings import Settings

log = logging.getLogger(__name__)

# Short texts on the tool bar (menus show the actions' full text).
TOOL_BAR_TEXT = {"fit": "Fit", "actual_size": "1:1", "invert": "Invert",
                 "rotate_left": "⟲ 90°", "rotate_right": "⟳ 90°", "flip_horizontal": "Flip H",
                 "flip_vertical": "Flip V", "reset_view": "Reset", "measure": "Distance",
                 "tool_angle": "Angle", "tool_cobb": "Cobb", "tool_rectangle": "▭ ROI",
                 "tool_ellipse": "◯ ROI", "tool_probe": "Probe", "tool_text": "Note",
                 "corner_text": "Text"}
# View toggles that are one choice for the whole grid, not one per viewport.
SHARED_TOGGLES = ("corner_text", "overlay_planes", "shutter")
# What the grid adds to the mouse (Help > Keyboard shortcuts lists it after the view's).
GRID_GESTURES = (
    ("Click an image", "Make its viewport the active one (menus and keys act on it); give it "
                       "the focus for frame keys"),
    ("Drag a study, series or image from the Studies list onto an image",
     "Show it in that viewport (a series is stepped through with the frame keys)"),
    ("Drop files or folders from another program", "Open them"),
)


class ActiveViewActions:
    """Menu and tool bar entries that are the active view's actions: when another view
    becomes active, each entry is replaced by the same-named action of that view."""

    def __init__(self, view: ImageView) -> None:
        self.view = view
        self._entries: list[tuple[QWidget, str]] = []

    def add(self, container: QWidget, name: str) -> None:
        container.addAction(self.view.actions_by_name[name])
        self._entries.append((container, name))

    def follow(self, view: ImageView) -> None:
        if view is self.view:
            return
        previous, self.view = self.view, view
        for container, name in self._entries:
            old, new = previous.actions_by_name[name], view.actions_by_name[name]
            container.insertAction(old, new)
            container.removeAction(old)


@dataclass
class StatusFields:
    """The main window's status bar and the fields the room keeps up to date."""

    bar: QStatusBar
    readout: QLabel
    zoom: QLabel
    voi: QLabel
    frame: QLabel


class ReadingRoom(QObject):
    """The grid and everything that follows its active view (see the module docstring)."""

    header_changed = Signal(object)  # the active view's Instance (its header), or None

    def __init__(self, session: Session, primary: ImageView, status: StatusFields,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.status = status
        self.grid = ViewportGrid(first_view=primary)
        self.grid.setObjectName("viewportGrid")
        self.grid.catalogs_provider = lambda: self.session.catalogs
        self.actions = ActiveViewActions(primary)
        self.presets_menu: QMenu | None = None
        self.presets_button: QToolButton | None = None
        self._propagating = False
        self._summary: tuple[ImageView, object, str] | None = None  # view, record, text
        self._applied: dict[str, object] = {}
        for viewport in self.grid.viewports:
            self._prepare(viewport.view)
        self.grid.view_added.connect(self._prepare)
        self.grid.active_changed.connect(self._on_active_changed)
        self._restore_grid(session.settings)
        self.apply_settings(session.settings)
        subscribe(self, session.events.settings_changed, self.apply_settings)

    # ------------------------------------------------------------ views
    @property
    def primary_view(self) -> ImageView:
        return self.grid.primary_view

    @property
    def active_view(self) -> ImageView:
        return self.grid.active_view

    def all_views(self) -> list[ImageView]:
        """Every view of the grid, the ones a smaller layout hides included."""
        return [viewport.view for viewport in self.grid.viewports]

    def _prepare(self, view: ImageView) -> None:
        """Connect a view of the grid (at start, or when a larger layout adds it)."""
        for name, text in TOOL_BAR_TEXT.items():
            view.actions_by_name[name].setIconText(text)
        view.cursor_moved.connect(self.status.readout.setText)
        view.zoom_changed.connect(lambda zoom, v=view: self._if_active(v, self._show_zoom))
        view.voi_changed.connect(lambda _text, v=view: self._if_active(v, self._show_voi))
        view.frame_changed.connect(lambda *_a, v=view: self._if_active(v, self._show_frame))
        view.header_loaded.connect(
            lambda instance, v=view: self._if_active(v, lambda: self.header_changed.emit(
                instance)))
        view.presets_changed.connect(lambda v=view: self._if_active(v, self._fill_presets))
        view.measurement_added.connect(lambda shown, v=view: self._show_summary(v, shown))
        view.measurements_changed.connect(
            lambda records, v=view: self._drop_summary_unless(v, records))
        view.tool_changed.connect(lambda name, v=view: self._share_tool(v, name))
        for name in SHARED_TOGGLES:
            view.actions_by_name[name].toggled.connect(
                lambda on, n=name, v=view: self._share_toggle(v, n, on))
        if self._applied:  # a view added later: the settings and shared choices so far
            # Corner text is one of the shared toggles, copied from the active view below;
            # applying the saved default here would switch it for every view.
            self._apply_to(view, self.session.settings, corner_text=False)
            with self._sharing():
                view.set_tool(self.active_view.tool)
                for name in SHARED_TOGGLES:
                    view.actions_by_name[name].setChecked(
                        self.active_view.actions_by_name[name].isChecked())

    def _if_active(self, view: ImageView, show: Callable[[], object]) -> None:
        if view is self.active_view:
            show()

    def _on_active_changed(self, view: ImageView) -> None:
        self.actions.follow(view)
        self._fill_presets()
        self._show_zoom()
        self._show_voi()
        self._show_frame()
        self.header_changed.emit(view.instance)

    # ------------------------------------------------------------ status fields
    def _show_zoom(self) -> None:
        view = self.active_view
        self.status.zoom.setText(f"Zoom {view.zoom_percent():.0f} %"
                                 if view.instance is not None else "")

    def _show_voi(self) -> None:
        self.status.voi.setText(self.active_view.voi_description())

    def _show_frame(self) -> None:
        view = self.active_view
        count = view.frame_count
        self.status.frame.setText(f"Frame {view.frame + 1}/{count}" if count else "")

    def clear_status(self) -> None:
        for label in (self.status.readout, self.status.zoom, self.status.voi,
                      self.status.frame):
            label.clear()

    def _show_summary(self, view: ImageView, shown: ShownMeasurement) -> None:
        text = shown.summary()
        self._summary = (view, shown.record, text)
        self.status.bar.showMessage(text, 30_000)

    def _drop_summary_unless(self, view: ImageView, records: list) -> None:
        """The summary goes when its measurement is gone (deleted, cleared, another image,
        re-measured by a calibration)."""
        if self._summary is None or self._summary[0] is not view:
            return
        if any(record is self._summary[1] for record in records):
            return
        if self.status.bar.currentMessage() == self._summary[2]:
            self.status.bar.clearMessage()
        self._summary = None

    # ------------------------------------------------------------ shared choices
    @contextmanager
    def _sharing(self):
        self._propagating = True
        try:
            yield
        finally:
            self._propagating = False

    def _share_tool(self, source: ImageView, name: str) -> None:
        if self._propagating or source is not self.active_view:
            return  # e.g. another view dropping its tool because its image was closed
        with self._sharing():
            for view in self.all_views():
                if view is not source:
                    view.set_tool(name or None)

    def _share_toggle(self, source: ImageView, name: str, on: bool) -> None:
        if self._propagating:
            return
        with self._sharing():
            for view in self.all_views():
                if view is not source:
                    view.actions_by_name[name].setChecked(on)

    # ------------------------------------------------------------ settings
    def apply_settings(self, settings: Settings) -> None:
        """The mouse mapping, length unit and corner text default on every view; the corner
        text only when its setting changed, so a reader's T is not undone by an unrelated
        setting being saved."""
        corner_changed = self._applied.get("corner_text") != settings.corner_text
        with self._sharing():
            for view in self.all_views():
                self._apply_to(view, settings, corner_changed)
        self._applied = {"corner_text": settings.corner_text}

    @staticmethod
    def _apply_to(view: ImageView, settings: Settings, corner_text: bool) -> None:
        view.set_mouse_mapping(MouseMapping.from_settings(settings))
        view.set_length_unit(settings.length_unit)
        if corner_text:
            view.set_corner_text_visible(settings.corner_text)

    def _restore_grid(self, settings: Settings) -> None:
        """The layout and sync toggles the reader left; changes are saved from now on."""
        self.grid.set_layout(settings.viewport_layout)
        for kind in SYNC_KINDS:
            self.grid.set_sync(kind, getattr(settings, f"sync_{kind}"))
        self.grid.layout_changed.connect(lambda name: self._remember("viewport_layout", name))
        for kind in SYNC_KINDS:
            self.grid.actions_by_name[f"sync_{kind}"].toggled.connect(
                lambda on, k=kind: self._remember(f"sync_{k}", on))

    def _remember(self, name: str, value: object) -> None:
        if getattr(self.session.settings, name) == value:
            return
        problem = self.session.update_settings(**{name: value})
        if problem:
            self.status.bar.showMessage(problem, 10_000)

    # ------------------------------------------------------------ menus and tool bar
    def fill_view_menu(self, menu: QMenu) -> None:
        """The image part of View: zoom, W/L, orientation, tools, what is shown, frames,
        layout and sync, compare with prior."""
        add = self.actions.add
        for name in ("fit", "actual_size", "zoom_in", "zoom_out"):
            add(menu, name)
        menu.addSeparator()
        self.presets_menu = menu.addMenu("&Window/level")
        self.presets_menu.setEnabled(False)
        add(menu, "invert")
        menu.addSeparator()
        for name in ("rotate_left", "rotate_right", "flip_horizontal", "flip_vertical",
                     "reset_view"):
            add(menu, name)
        menu.addSeparator()
        self.tools_menu = menu.addMenu("T&ools")
        self.tools_menu.setObjectName("toolsMenu")
        for tool in TOOLS.values():
            add(self.tools_menu, tool.action_name)
        self.tools_menu.addSeparator()
        for name in ("no_tool", "clear_measurements", "clear_calibration"):
            add(self.tools_menu, name)
        for name in SHARED_TOGGLES:
            add(menu, name)
        frames = menu.addMenu("F&rames")
        for name in ("play", "next_frame", "previous_frame", "first_frame", "last_frame"):
            add(frames, name)
        menu.addSeparator()
        grid_actions = self.grid.actions_by_name
        layout = menu.addMenu("&Layout")
        layout.setObjectName("layoutMenu")
        layout.addActions([grid_actions[f"layout_{name}"] for name in LAYOUTS])
        sync = menu.addMenu("S&ync")
        sync.setObjectName("syncMenu")
        sync.addActions([grid_actions[f"sync_{kind}"] for kind in SYNC_KINDS])
        menu.addAction(grid_actions["compare_prior"])
        menu.addSeparator()

    def fill_export_menu(self, menu: QMenu) -> None:
        for name in ("save_view", "save_image", "copy_view", "copy_image"):
            self.actions.add(menu, name)

    def fill_tool_bar(self, bar: QToolBar) -> None:
        add = self.actions.add
        for name in ("fit", "actual_size"):
            add(bar, name)
        self.presets_button = QToolButton()
        self.presets_button.setText("W/L")
        self.presets_button.setToolTip("Window/level presets of the active image")
        self.presets_button.setMenu(self.presets_menu)
        self.presets_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.presets_button.setEnabled(False)
        bar.addWidget(self.presets_button)
        for name in ("invert", "rotate_left", "rotate_right", "flip_horizontal",
                     "flip_vertical", "reset_view"):
            add(bar, name)
        bar.addSeparator()
        for tool in TOOLS.values():
            if tool.action_name in TOOL_BAR_TEXT:
                add(bar, tool.action_name)
        add(bar, "corner_text")
        bar.addSeparator()
        layout_button = QToolButton()
        layout_button.setObjectName("layoutButton")
        layout_button.setText("Layout")
        layout_button.setToolTip("Viewports (1×1 … 2×2) and what they synchronise")
        layout_menu = QMenu(layout_button)
        grid_actions = self.grid.actions_by_name
        layout_menu.addActions([grid_actions[f"layout_{name}"] for name in LAYOUTS])
        layout_menu.addSeparator()
        layout_menu.addActions([grid_actions[f"sync_{kind}"] for kind in SYNC_KINDS])
        layout_button.setMenu(layout_menu)
        layout_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        bar.addWidget(layout_button)
        prior = grid_actions["compare_prior"]
        prior.setIconText("Prior")
        bar.addAction(prior)

    def _fill_presets(self) -> None:
        if self.presets_menu is None:
            return
        for action in self.presets_menu.actions():  # not clear(): it deletes the actions
            self.presets_menu.removeAction(action)
        actions = self.active_view.preset_actions()
        self.presets_menu.addActions(actions)
        self.presets_menu.setEnabled(bool(actions))
        if self.presets_button is not None:
            self.presets_button.setEnabled(bool(actions))

    def mouse_gestures(self) -> list[tuple[str, str]]:
        """Rows for Help > Keyboard shortcuts: the active view's mapping, then the grid's."""
        return [*self.active_view.mouse_gestures(), *GRID_GESTURES]

    # ------------------------------------------------------------ images
    def clear_views(self, paths: set[Path] | None = None) -> None:
        """Show nothing in the views showing one of ``paths`` (every view when None)."""
        for viewport in self.grid.viewports:
            view = viewport.view
            shown = view.requested_path or (view.instance.path if view.instance else None)
            if paths is None or (shown is not None and Path(shown) in paths):
                viewport.show_series([])
                view.clear()
        if paths is None or self.active_view.instance is None:
            self.clear_status()
            self._fill_presets()
            self.header_changed.emit(self.active_view.instance)

    def wait_for_workers(self, timeout_ms: int = 10_000) -> None:
        self.grid.wait_for_workers(timeout_ms)

