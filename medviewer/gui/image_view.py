"""The image view: one DICOM/X-ray instance on pyqtgraph, with W/L, orientation, cine,
measurement tools, corner text, the file's display shutter and overlay planes.

Coordinates, for whoever draws on top (saliency overlays, region labels, measurements):

- *image coordinates*: x = column, y = row, in image pixels; pixel (row r, col c) covers
  [c, c+1) x [r, r+1). Items made children of :attr:`ImageView.image_item` (see
  :meth:`ImageView.add_image_overlay`) live in these coordinates and follow pan, zoom,
  rotation, flips and pixel aspect exactly, because they share the image item's transform.
- *view coordinates*: the ViewBox's data space, where the oriented image spans
  ``[0, width') x [0, height')``; :meth:`ImageView.image_transform` maps image -> view.
- *scene/widget coordinates*: :meth:`ImageView.map_image_to_scene`,
  :meth:`ImageView.map_scene_to_image` and :meth:`ImageView.map_image_to_widget`.

Display pixels always come from ``Instance.display_frame`` (the DICOM pipeline lives in
``medviewer.dicom``); this module only chooses the VOI, the frame and the geometry. Its
helpers: ``window_presets`` (W/L presets), ``view_measurements`` and ``measurement_layer``
(tools and measurements), ``display_planes`` (shutter, overlay planes),
``corner_text_overlay``, ``view_menu`` (actions, right-click menu, export) and ``canvas``.

For a viewport grid the view offers what synchronising needs: ``window_changed`` /
:meth:`set_window`, ``pan_zoom_changed`` / :meth:`view_geometry` /
:meth:`set_view_geometry`, and ``frame_changed`` / :meth:`set_frame`.

Why this module is longer than 800 lines: it is the one widget every panel draws on, and
its public API (loading, W/L, geometry, zoom, frames, tools, corner text, planes, sync) is
what they call; each section is thin and the work lives in the helper modules above, so
cutting it further would spread one widget's state over several files.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QPainter, QTransform
from PySide6.QtWidgets import (
    QHBoxLayout, QLabel, QMenu, QStackedWidget, QToolButton, QVBoxLayout,
    QWidget,
)

from medviewer.app import corner_text
from medviewer.errors import UserError
from medviewer.gui import frame_bar, view_loader, view_menu
from medviewer.gui.lazy import LazyModule
from medviewer.gui.orientation import Orientation
from medviewer.gui.view_measurements import MeasurementController, ShownMeasurement
from medviewer.gui.view_tools import TOOLS, MouseMapping
from medviewer.gui.window_presets import Preset, presets_for, preset_voi, window_of
from medviewer.gui.workers import JobWorker

if TYPE_CHECKING:
    import numpy as np

    from medviewer.dicom import pixels
    from medviewer.dicom.reader import Instance
    from medviewer.gui.corner_text_overlay import CornerTextOverlay
    from medviewer.gui.display_planes import DisplayPlanes
else:  # numpy, pydicom and pyqtgraph load on first use, after the window is shown
    np = LazyModule("numpy")
    pixels = LazyModule("medviewer.dicom.pixels")
canvas = LazyModule("medviewer.gui.canvas")
display_planes = LazyModule("medviewer.gui.display_planes")
corner_text_overlay = LazyModule("medviewer.gui.corner_text_overlay")

__all__ = ["ImageView", "Orientation", "Preset", "ShownMeasurement"]

log = logging.getLogger(__name__)

# W/L drag: dragging across this many screen pixels changes width/centre by the data range.
WINDOW_DRAG_PIXELS_PER_RANGE = 500.0
ZOOM_STEP = 1.25
FRAME_ACTIONS = ("play", "next_frame", "previous_frame", "first_frame", "last_frame")


def _format_value(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return ", ".join(_format_value(v) for v in value.tolist())
    return f"{float(value):.6g}"


# ---------------------------------------------------------------- the widget


class ImageView(QWidget):
    """Shows one instance; owns its loading/prefetch workers and all image actions."""

    header_loaded = Signal(object)  # Instance whose header is readable (even if pixels fail)
    image_shown = Signal(object)  # Instance, after the first frame is on screen
    load_failed = Signal(str)  # one sentence
    frame_changed = Signal(int, int)  # index, count
    voi_changed = Signal(str)  # description for the status bar
    window_changed = Signal(object)  # the pixels.Voi now shown (None for colour as stored)
    zoom_changed = Signal(float)  # percent: screen pixels per image pixel x 100
    pan_zoom_changed = Signal()  # the reader panned or zoomed (not a fit on resize)
    cursor_moved = Signal(str)  # readout text, "" when the cursor is off the image
    measurement_added = Signal(object)  # ShownMeasurement (.record, .label(), .summary())
    measurements_changed = Signal(list)  # every Measurement record now on this image
    spacing_changed = Signal()  # a calibration was set or forgotten
    tool_changed = Signal(str)  # the chosen tool's name, "" for none
    view_changed = Signal()  # pan, zoom, orientation or image changed: overlays may re-layout
    presets_changed = Signal()  # the W/L preset actions were rebuilt for a new image
    context_menu_about_to_show = Signal(object)  # the QMenu, so a holder can add its items

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.instance: Instance | None = None
        self.frame = 0
        self.voi: pixels.Voi | None = None
        self.preset_key = "file"
        self.user_invert = False
        self.orientation = Orientation()
        self.mouse_mapping = MouseMapping()
        self._measures = MeasurementController(self)
        self.spacing_changed.connect(lambda: self._refresh_corner_text())
        self._planes: DisplayPlanes | None = None
        self.corner_overlay: CornerTextOverlay | None = None
        self._corner_layout = corner_text.check_layout(corner_text.DEFAULT_LAYOUT)
        self._header_values: dict[str, str] = {}
        self._zoom = 100.0  # the last zoom the view box reported (for the corner text)
        self._data_window: pixels.Window | None = None  # the image's value range
        self._drag_start_window: pixels.Window | None = None
        self._loading = view_loader.ViewLoader(self)
        self._loading.loaded.connect(self.show_instance)
        self._loading.header_only.connect(self._on_header_only)
        self._loading.failed.connect(self._on_load_failed)
        self.requested_path: Path | None = None  # the file last asked for by open_path
        # Optional cache (the label panel's prefetch): path -> an Instance already opened and
        # decoded, or None. open_path shows such an instance at once, with no worker.
        self.instance_source: Callable[[Path], Instance | None] | None = None
        # Optional: a holder showing a series here (the viewport grid) steps through its
        # images when frame keys or the wheel ask for a frame a single-frame image lacks.
        self.image_stepper: Callable[[int], object] | None = None
        self._displayed: np.ndarray | None = None

        self._canvas: tuple | None = None  # (graphics view, view box, image item), built lazily
        self._frame_bar = frame_bar.FrameBar(self.set_frame, self.step_frame, self)
        # The bar's widgets, as the view's own (tests and panels use them).
        self.play_button = self._frame_bar.play_button
        self.frame_slider = self._frame_bar.frame_slider
        self.frame_label = self._frame_bar.frame_label
        self.fps_spin = self._frame_bar.fps_spin
        self._build_actions()

        self._placeholder = QLabel(
            "Open a file (Ctrl+O) or a folder (Ctrl+Shift+O), or drop one here.")
        self._placeholder.setObjectName("imagePlaceholder")
        self._placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._placeholder.setWordWrap(True)
        self._stack = QStackedWidget()
        self._stack.addWidget(self._placeholder)
        # Build the pyqtgraph canvas right after the placeholder first paints.
        self._placeholder.installEventFilter(self)

        self._message = QLabel()
        self._message.setObjectName("imageMessage")
        self._message.setWordWrap(True)
        self._message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close_message = QToolButton()
        close_message.setText("✕")
        close_message.setAutoRaise(True)
        close_message.setToolTip("Dismiss")
        close_message.clicked.connect(self.clear_message)
        self._message_bar = QWidget()
        self._message_bar.setObjectName("imageMessageBar")
        bar_layout = QHBoxLayout(self._message_bar)
        bar_layout.setContentsMargins(8, 4, 4, 4)
        bar_layout.addWidget(self._message, 1)
        bar_layout.addWidget(close_message)
        self._message_bar.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self._message_bar)
        layout.addWidget(self._stack, 1)
        layout.addWidget(self._frame_bar)
        self.setAcceptDrops(False)  # whoever holds the view handles drops
        self._update_action_state()

    # ------------------------------------------------------------ construction
    # -- the pyqtgraph canvas, built on first need
    def eventFilter(self, watched, event):  # noqa: N802 - Qt naming
        if watched is self._placeholder and event.type() == QEvent.Type.Paint:
            self._placeholder.removeEventFilter(self)
            QTimer.singleShot(0, self._ensure_canvas)
        return False

    def _ensure_canvas(self) -> tuple:
        if self._canvas is not None:
            return self._canvas
        graphics_view, view_box, image_item = canvas.make_canvas()
        self._canvas = (graphics_view, view_box, image_item)
        self._apply_mouse_mapping()
        view_box.tool_active = self._measures.tool is not None
        view_box.window_dragged.connect(self._on_window_drag)
        view_box.tool_dragged.connect(self._on_tool_drag)
        view_box.tool_clicked.connect(
            lambda scene: self._measures.click(self.map_scene_to_image(scene)))
        view_box.wheel_frames.connect(self.step_frame)
        view_box.context_requested.connect(self._on_context_requested)
        view_box.sigRangeChanged.connect(self._on_range_changed)
        view_box.sigResized.connect(self._on_range_changed)
        view_box.sigRangeChangedManually.connect(lambda *_a: self.pan_zoom_changed.emit())
        graphics_view.scene().sigMouseMoved.connect(self._on_mouse_moved)
        graphics_view.viewport().installEventFilter(
            canvas.LeaveWatcher(lambda: self.cursor_moved.emit(""), self))
        self.corner_overlay = corner_text_overlay.CornerTextOverlay(graphics_view)
        self.corner_overlay.setVisible(self.actions_by_name["corner_text"].isChecked())
        self._stack.addWidget(graphics_view)
        self._update_tool_cursor()
        return self._canvas

    @property
    def graphics_view(self):
        """The pyqtgraph GraphicsView (a QGraphicsView) the image is drawn in."""
        return self._ensure_canvas()[0]

    @property
    def view_box(self):
        """The pyqtgraph ViewBox: pan/zoom state; its data space is 'view coordinates'."""
        return self._ensure_canvas()[1]

    @property
    def image_item(self):
        """The pyqtgraph ImageItem; its local coordinates are image pixels (x = column)."""
        return self._ensure_canvas()[2]

    @property
    def display_planes(self) -> DisplayPlanes:
        """The file's display shutter and overlay planes on this view."""
        if self._planes is None:  # pydicom loads with it: not before the first image
            self._planes = display_planes.DisplayPlanes(self)
            self._planes.set_overlays_enabled(self.actions_by_name["overlay_planes"].isChecked())
            self._planes.set_shutter_enabled(self.actions_by_name["shutter"].isChecked())
        return self._planes

    def _action(self, name: str, text: str, shortcuts: list[str] | str, slot,
                checkable: bool = False, tip: str = "", image_focus_only: bool = False) -> QAction:
        """An image action; ``image_focus_only`` keeps keys like arrows for lists and trees."""
        action = QAction(text, self)
        if image_focus_only:
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        action.setObjectName(name)
        keys = [shortcuts] if isinstance(shortcuts, str) else shortcuts
        action.setShortcuts([QKeySequence(k) for k in keys if k])
        action.setCheckable(checkable)
        action.setProperty("tip", tip)
        if tip:
            action.setStatusTip(tip)
        if checkable:
            action.toggled.connect(slot)
        else:
            action.triggered.connect(lambda _checked=False: slot())
        # Others move keys (labelling takes R and gives rotate right Shift+R): the tooltip
        # names the keys the action has now, never the ones it had.
        action.changed.connect(lambda a=action: view_menu.refresh_tooltip(a))
        view_menu.refresh_tooltip(action)
        self.addAction(action)
        self.actions_by_name[name] = action
        return action

    def _build_actions(self) -> None:
        self.actions_by_name: dict[str, QAction] = {}
        a = self._action
        a("fit", "&Fit to window", "F", self.fit_by_user, tip="Show the whole image")
        a("actual_size", "&Actual size (1:1)", "1", self.zoom_actual_size,
          tip="One image pixel per screen pixel")
        a("zoom_in", "Zoom &in", ["+", "="], lambda: self.zoom_by(ZOOM_STEP))
        a("zoom_out", "Zoom &out", "-", lambda: self.zoom_by(1.0 / ZOOM_STEP))
        a("invert", "&Invert grey scale", "I", self.set_inverted, checkable=True)
        a("rotate_left", "Rotate &left 90°", "L", self.rotate_left)
        a("rotate_right", "Rotate &right 90°", "R", self.rotate_right)
        a("flip_horizontal", "Flip &horizontal", "H", self.flip_horizontal)
        a("flip_vertical", "Flip &vertical", "V", self.flip_vertical)
        a("reset_view", "Rese&t view", "Ctrl+0", self.reset_view,
          tip="Undo zoom, rotation, flips, inversion and W/L changes")
        view_menu.build_tool_actions(self)
        # Frame keys act when the image has focus (click it), so trees keep their arrow keys.
        a("play", "&Play / pause cine", "Space", self.toggle_playing, image_focus_only=True)
        a("next_frame", "&Next frame", ["Right", "PgDown"], lambda: self.step_frame(1),
          image_focus_only=True)
        a("previous_frame", "Pre&vious frame", ["Left", "PgUp"], lambda: self.step_frame(-1),
          image_focus_only=True)
        a("first_frame", "F&irst frame", "Home", lambda: self.set_frame(0),
          image_focus_only=True)
        a("last_frame", "L&ast frame", "End", lambda: self.set_frame(self.frame_count - 1),
          image_focus_only=True)
        view_menu.build_display_actions(self)
        self.presets_menu_actions = QActionGroup(self)
        self.presets_menu_actions.setExclusive(True)

    def tool_actions(self) -> list[QAction]:
        """The measurement tools' actions, in menu order (one of them, or none, is checked)."""
        return [self.actions_by_name[tool.action_name] for tool in TOOLS.values()]

    # ------------------------------------------------------------ loading
    def open_path(self, path: str | Path) -> JobWorker | None:
        """Open a file on a worker; ``image_shown`` or ``load_failed`` follows.

        If :attr:`instance_source` already holds the file opened and decoded, it is shown
        before this returns (``image_shown`` has been emitted) and None is returned.
        """
        self._loading.cancel()
        self.requested_path = Path(path)
        ready = self.instance_source(Path(path)) if self.instance_source is not None else None
        if ready is not None:
            self.show_instance(ready)
            return None
        return self._loading.open(Path(path))

    @property
    def is_loading(self) -> bool:
        return self._loading.loading

    def _on_header_only(self, instance: Instance, error: str) -> None:
        # Show nothing rather than the previous image beside this file's tags.
        self.clear()
        self.header_loaded.emit(instance)
        self._on_load_failed(error)

    def _on_load_failed(self, message: str) -> None:
        self.show_message(message)
        self.load_failed.emit(message)

    def show_instance(self, instance: Instance, frame: int = 0) -> bool:
        """Show an opened instance now (decoding on this thread if not cached)."""
        self.set_playing(False)
        self._loading.cancel_prefetch()
        previous = self.instance
        self.instance = instance
        self.frame = min(max(frame, 0), instance.n_frames - 1)
        self.orientation.reset()
        self.user_invert = False
        self.preset_key = "file"
        self._measures.on_image_changed()
        try:
            self.voi = instance.default_voi(self.frame)
            self._data_window = self._compute_data_window()
            image = instance.display_frame(self.frame, self.voi, invert=False)
        except UserError as exc:
            self.instance = previous
            self.show_message(str(exc))
            self.load_failed.emit(str(exc))
            return False
        self.clear_message()
        self.header_loaded.emit(instance)
        self._set_image(image)
        self._apply_geometry()
        self._stack.setCurrentWidget(self.graphics_view)
        self.fit()
        self.display_planes.show(instance, self.frame)
        self._header_values = corner_text.header_values(instance.header)
        self._setup_frames()
        self._rebuild_presets()
        self._update_action_state()
        self._emit_window()
        self.frame_changed.emit(self.frame, self.frame_count)
        if instance.n_frames > 1:
            self._loading.prefetch(instance, self.frame)
        self.image_shown.emit(instance)
        return True

    def clear(self) -> None:
        """Show nothing (e.g. when the catalog is closed)."""
        self.set_playing(False)
        self._loading.cancel()
        self.instance = None
        self._measures.on_image_changed()
        if self._canvas is not None:
            self.image_item.clear()
        if self._planes is not None:
            self._planes.clear()
        self._header_values = {}
        self._refresh_corner_text()
        self._displayed = None
        self._stack.setCurrentWidget(self._placeholder)
        self._frame_bar.hide()
        self._update_action_state()

    def wait_for_workers(self, timeout_ms: int = 10_000) -> None:
        """Join every worker this view started (close handlers, tests)."""
        self.set_playing(False)
        self._loading.wait(timeout_ms)

    def closeEvent(self, event):  # noqa: N802 - Qt naming
        self.wait_for_workers()
        super().closeEvent(event)

    # ------------------------------------------------------------ messages
    def show_message(self, text: str) -> None:
        """One sentence above the image, dismissible; the view keeps working."""
        self._message.setText(text)
        self._message_bar.show()

    def clear_message(self) -> None:
        self._message.clear()
        self._message_bar.hide()

    @property
    def message(self) -> str:
        """The sentence shown above the image, '' when none."""
        return "" if self._message_bar.isHidden() else self._message.text()

    # ------------------------------------------------------------ pixels
    def _set_image(self, image: np.ndarray) -> None:
        self._displayed = image
        self.image_item.setImage(image, autoLevels=False, levels=(0, 255))

    def displayed_image(self) -> np.ndarray | None:
        """The 8-bit array in the image item (stored orientation, before rotate/flip)."""
        return self._displayed

    def oriented_image(self) -> np.ndarray | None:
        """The 8-bit array as it appears on screen (rotations and flips applied)."""
        if self._displayed is None:
            return None
        return self.orientation.apply_to_array(self._displayed)

    def refresh(self) -> None:
        """Recompute the 8-bit image for the current frame, VOI and inversion."""
        if self.instance is None:
            return
        try:
            image = self.instance.display_frame(self.frame, self.voi, invert=self.user_invert)
        except UserError as exc:
            self.set_playing(False)
            self.show_message(str(exc))
            self.load_failed.emit(str(exc))
            return
        self._set_image(image)

    def _compute_data_window(self) -> pixels.Window:
        assert self.instance is not None
        if self.instance.is_colour:
            return pixels.Window(127.5, 255.0, "LINEAR", "Full range")
        return self.instance.full_range_voi(self.frame)

    # ------------------------------------------------------------ VOI
    def voi_description(self) -> str:
        """For the status bar: which preset (or Custom) and the window or VOI LUT in use."""
        if self.instance is None:
            return ""
        if self.voi is None:
            return "Colour (as stored)"
        if isinstance(self.voi, pixels.VoiLut):
            return f"VOI LUT: {self.voi.describe()}"
        names = {p.key: p.status_name for p in self.presets()}
        name = names.get(self.preset_key, "Custom")
        if self.preset_key == "file" and self.voi.label == "Full range":
            name = "Full range (no window in file)"  # default_voi fell back to the data
        return f"{name}: {self.voi.describe()}"

    def window_text(self) -> str:
        """The W/L in short, for the corner text: 'C 40 / W 400', 'VOI LUT', ''."""
        if self.voi is None:
            return ""
        if isinstance(self.voi, pixels.VoiLut):
            return f"VOI LUT: {self.voi.describe()}"
        return self.voi.describe()

    def presets(self) -> list[Preset]:
        """Every W/L choice for the current image, in menu order."""
        return [] if self.instance is None else presets_for(self.instance, self.frame)

    def _preset_voi(self, key: str) -> pixels.Voi | None:
        assert self.instance is not None
        return preset_voi(self.instance, self.frame, key)

    def _emit_window(self) -> None:
        self.voi_changed.emit(self.voi_description())
        self.window_changed.emit(self.voi)
        self._refresh_corner_text()

    def apply_preset(self, key: str) -> None:
        if self.instance is None:
            return
        try:
            voi = self._preset_voi(key)
        except (KeyError, IndexError):
            log.warning("Unknown W/L preset %s", key)
            return
        except UserError as exc:
            self.show_message(str(exc))
            return
        self.preset_key = key
        self.voi = voi
        self.refresh()
        self._check_preset_action()
        self._emit_window()

    def set_window(self, center: float, width: float, function: str = "LINEAR") -> None:
        """Set a custom window in modality units."""
        if self.instance is None:
            return
        voi = pixels.Window(float(center), max(float(width), self._narrowest_width()),
                            function, "Custom")
        if self.preset_key == "custom" and voi == self.voi:
            return  # the same window (a synced view on every cine frame): nothing to redraw
        self.preset_key = "custom"
        self.voi = voi
        self.refresh()
        self._check_preset_action()
        self._emit_window()

    def window_drag_scale(self) -> float:
        """Modality units per screen pixel of a W/L drag for the current image."""
        if self._data_window is None:
            return 1.0
        return self._data_window.width / WINDOW_DRAG_PIXELS_PER_RANGE

    def _narrowest_width(self) -> float:
        """The narrowest custom window: 1 for 16-bit data, less at a smaller scale."""
        data = self._data_window
        return pixels.smallest_width(data.width) if data is not None else 1.0

    def _on_window_drag(self, dx: float, dy: float, finished: bool) -> None:
        if self.instance is None:
            return
        if self._drag_start_window is None:
            self._drag_start_window = window_of(self.voi, self._data_window
                                                or self._compute_data_window())
        start = self._drag_start_window
        scale = self.window_drag_scale()
        function = start.function if start.function != "SIGMOID" else "LINEAR"
        # Whole steps of the drag's resolution: 'C 1721 / W 4117', not 'C 1721.12 / ...'.
        step = 10.0 ** math.floor(math.log10(scale)) if scale > 0 else 1.0
        center = round((start.center + dy * scale) / step) * step
        width = round((start.width + dx * scale) / step) * step
        # Right = wider (less contrast), down = higher centre (darker).
        self.set_window(center, width, function)  # no narrower than the data allows
        if finished:
            self._drag_start_window = None

    def _rebuild_presets(self) -> None:
        for action in self.presets_menu_actions.actions():
            self.presets_menu_actions.removeAction(action)
            self.removeAction(action)
            action.deleteLater()
        for index, preset in enumerate(self.presets()):
            action = QAction(preset.name, self)
            action.setCheckable(True)
            action.setData(preset.key)
            if index < 9:
                action.setShortcut(QKeySequence(f"Ctrl+{index + 1}"))
            action.triggered.connect(lambda _c=False, key=preset.key: self.apply_preset(key))
            self.presets_menu_actions.addAction(action)
            self.addAction(action)
        self._check_preset_action()
        self.presets_changed.emit()

    def preset_actions(self) -> list[QAction]:
        return self.presets_menu_actions.actions()

    def _check_preset_action(self) -> None:
        for action in self.presets_menu_actions.actions():
            action.setChecked(action.data() == self.preset_key)

    # ------------------------------------------------------------ invert and orientation
    def set_inverted(self, inverted: bool) -> None:
        inverted = bool(inverted)
        action = self.actions_by_name["invert"]
        if action.isChecked() != inverted:
            action.setChecked(inverted)  # re-enters through toggled
            return
        if inverted == self.user_invert:
            return
        self.user_invert = inverted
        self.refresh()

    def rotate_left(self) -> None:
        self.orientation.rotate_left()
        self._apply_geometry(refit=True)

    def rotate_right(self) -> None:
        self.orientation.rotate_right()
        self._apply_geometry(refit=True)

    def flip_horizontal(self) -> None:
        self.orientation.flip_horizontal()
        self._apply_geometry()

    def flip_vertical(self) -> None:
        self.orientation.flip_vertical()
        self._apply_geometry()

    def reset_view(self) -> None:
        if self.instance is None:
            return
        self.orientation.reset()
        self.set_inverted(False)
        self.apply_preset("file")
        self._apply_geometry()
        self.fit()

    def pixel_aspect(self) -> float:
        """Height of a pixel relative to its width (row spacing / column spacing)."""
        if self.instance is None:
            return 1.0
        spacing = self.instance.pixel_spacing(self.frame)
        if spacing is None or spacing.col_mm <= 0:
            ratio = self.instance.header.get("PixelAspectRatio")
            try:
                return float(ratio[0]) / float(ratio[1]) if ratio else 1.0
            except (TypeError, ValueError, IndexError, ZeroDivisionError):
                return 1.0
        aspect = spacing.row_mm / spacing.col_mm
        return aspect if abs(aspect - 1.0) > 1e-3 else 1.0

    def image_transform(self) -> QTransform:
        """Image coordinates (x = column, y = row) -> view coordinates."""
        if self.instance is None:
            return QTransform()
        width, height = float(self.instance.columns), float(self.instance.rows)
        aspect = self.pixel_aspect()
        scale = QTransform.fromScale(1.0, aspect)
        return scale * self.orientation.transform(width, height * aspect)

    def _apply_geometry(self, refit: bool = False) -> None:
        self.image_item.setTransform(self.image_transform())
        if refit:
            self.fit()
        self.view_changed.emit()

    # ------------------------------------------------------------ coordinates
    def _sync_view(self) -> None:
        """pyqtgraph applies range changes lazily (at paint); mappings need them now."""
        self.view_box.prepareForPaint()

    def map_image_to_scene(self, x: float, y: float) -> QPointF:
        self._sync_view()
        return self.image_item.mapToScene(QPointF(x, y))

    def map_scene_to_image(self, point: QPointF) -> tuple[float, float]:
        self._sync_view()
        mapped = self.image_item.mapFromScene(point)
        return mapped.x(), mapped.y()

    def map_image_to_widget(self, x: float, y: float) -> QPointF:
        """Image coordinates -> coordinates in ``graphics_view.viewport()`` (not rounded)."""
        return self.graphics_view.viewportTransform().map(self.map_image_to_scene(x, y))

    def add_image_overlay(self, item) -> None:
        """Draw ``item`` in image coordinates on top of the image (it follows every transform)."""
        item.setParentItem(self.image_item)
        if item.zValue() <= 0:
            item.setZValue(1)

    # ------------------------------------------------------------ zoom and pan
    def zoom_percent(self) -> float:
        self._sync_view()
        size = self.view_box.viewPixelSize()
        if not size or size[0] <= 0:
            return 100.0
        return 100.0 / size[0]

    def fit(self) -> None:
        """Show the whole image, and keep it fitted on resize until the user pans or zooms."""
        if self.instance is None:
            return
        self.view_box.autoRange(items=[self.image_item], padding=0.02)
        self.view_box.enableAutoRange(self.view_box.XYAxes, True)

    def fit_by_user(self) -> None:
        self.fit()
        self.pan_zoom_changed.emit()  # the others in a synchronised grid follow

    def zoom_actual_size(self) -> None:
        """One image pixel per screen pixel (per column pixel for non-square pixels)."""
        if self.instance is None:
            return
        self._sync_view()
        self._set_zoom(100.0, self.view_box.viewRect().center())
        self.pan_zoom_changed.emit()

    def zoom_by(self, factor: float) -> None:
        if self.instance is None:
            return
        self._sync_view()
        self.view_box.disableAutoRange()
        self.view_box.scaleBy((1.0 / factor, 1.0 / factor))
        self.pan_zoom_changed.emit()

    def _set_zoom(self, percent: float, center: QPointF) -> None:
        """``percent`` zoom with ``center`` (view coordinates) in the middle of the view."""
        self.view_box.disableAutoRange()
        width = self.view_box.width() * 100.0 / percent
        height = self.view_box.height() * 100.0 / percent
        self.view_box.setRange(xRange=(center.x() - width / 2.0, center.x() + width / 2.0),
                               yRange=(center.y() - height / 2.0, center.y() + height / 2.0),
                               padding=0.0)

    def _column_mm(self) -> float | None:
        spacing = self._measures.spacing()
        return spacing.col_mm if spacing is not None and spacing.col_mm > 0 else None

    def view_geometry(self) -> dict[str, Any] | None:
        """Zoom and pan in a form another view can copy whatever its image's size:
        zoom (%), the column spacing in mm (None without one), and the image point in the
        middle of the view as a fraction of the image's width and height."""
        if self.instance is None:
            return None
        self._sync_view()
        inverse, _ = self.image_transform().inverted()
        middle = inverse.map(self.view_box.viewRect().center())
        return {"zoom": self.zoom_percent(), "column_mm": self._column_mm(),
                "center": (middle.x() / max(self.instance.columns, 1),
                           middle.y() / max(self.instance.rows, 1))}

    def set_view_geometry(self, geometry: Mapping[str, Any]) -> None:
        """Copy another view's :meth:`view_geometry`: the same size on screen in mm when both
        images have a pixel spacing, else the same zoom; the same relative point centred."""
        if self.instance is None or not geometry:
            return
        zoom = float(geometry["zoom"])
        mine, theirs = self._column_mm(), geometry.get("column_mm")
        if mine and theirs:
            zoom *= mine / theirs  # screen pixels per mm kept equal
        fx, fy = geometry["center"]
        center = self.image_transform().map(QPointF(fx * self.instance.columns,
                                                    fy * self.instance.rows))
        self._sync_view()
        self._set_zoom(zoom, center)

    def _on_range_changed(self, *_args) -> None:
        zoom = self.zoom_percent()
        # Nearest-neighbour at non-integer scales draws a visible lattice (and shrinking
        # aliases), so interpolate unless the scale is a whole number or pixels are huge.
        factor = zoom / 100.0
        exact = factor >= 4.0 or (factor >= 0.99 and abs(factor - round(factor)) < 0.01)
        self.graphics_view.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, not exact)
        self._zoom = zoom
        self.zoom_changed.emit(zoom)
        self.view_changed.emit()
        self._refresh_corner_text()

    # ------------------------------------------------------------ cursor readout
    def pixel_readout(self, x: float, y: float) -> str:
        """'x, y: value unit' for image coordinates, '' outside the image."""
        if self.instance is None:
            return ""
        col, row = math.floor(x), math.floor(y)
        if not (0 <= col < self.instance.columns and 0 <= row < self.instance.rows):
            return ""
        try:
            values = self.instance.modality_frame(self.frame)
        except UserError:
            return ""
        value = values[row, col]
        if self.instance.is_colour:
            return f"x {col}, y {row}: RGB {_format_value(np.asarray(value))}"
        unit = self.instance.modality_unit
        return f"x {col}, y {row}: {_format_value(value)}{' ' + unit if unit else ''}"

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        if self.instance is None:
            return
        x, y = self.map_scene_to_image(scene_pos)
        self._measures.hover((x, y))
        self.cursor_moved.emit(self.pixel_readout(x, y))

    # ------------------------------------------------------------ tools and measurements
    @property
    def tool(self) -> str | None:
        """The chosen tool's name (see ``gui/view_tools.py``), None when none is."""
        return self._measures.tool

    def set_tool(self, name: str | None) -> None:
        """Choose a tool (its action is checked) or none; left drags follow it."""
        name = name if name in TOOLS else None
        changed = name != self.tool
        if changed:  # the state first: the toggles below come back here as no-ops
            self._measures.set_tool(name)
            if self._canvas is not None:
                self.view_box.tool_active = name is not None
                self._update_tool_cursor()
        for tool in TOOLS.values():
            action = self.actions_by_name[tool.action_name]
            if action.isChecked() != (tool.name == name):
                action.setChecked(tool.name == name)
        if changed:
            self.tool_changed.emit(name or "")

    def _on_tool_toggled(self, name: str, on: bool) -> None:
        if on:
            self.set_tool(name)
        elif self.tool == name and not any(a.isChecked() for a in self.tool_actions()):
            self.set_tool(None)  # unchecked, not switched to another tool

    def set_measuring(self, on: bool) -> None:
        """The distance tool on, or no tool (kept for code that knew only the ruler)."""
        self.set_tool("distance" if on else None)

    def _update_tool_cursor(self) -> None:
        cursor = Qt.CursorShape.CrossCursor if self.tool else Qt.CursorShape.ArrowCursor
        self.graphics_view.viewport().setCursor(cursor)

    def _on_tool_drag(self, scene_start: QPointF, scene_now: QPointF, finished: bool) -> None:
        if self.instance is not None:
            self._measures.drag(self.map_scene_to_image(scene_start),
                                self.map_scene_to_image(scene_now), finished)

    @property
    def measures(self) -> MeasurementController:
        """This view's measurements: ``add``, ``remove``, ``records``, ``set_records`` (the
        label store's), ``nearest``, ``calibrate``, ``clear_calibration``."""
        return self._measures

    @property
    def measurements(self) -> list[ShownMeasurement]:
        """The measurements on this image (every frame), in the order they were made."""
        return list(self._measures.shown)

    def add_measurement(self, start: tuple[float, float], end: tuple[float, float]) -> ShownMeasurement:
        """Add a ruler between two points in image coordinates."""
        return self._measures.add("distance", (start, end))

    def clear_measurements(self) -> None:
        self._measures.cancel_drawing()
        self._measures.clear()

    def clear_calibration(self) -> None:
        self._measures.clear_calibration()

    def set_length_unit(self, unit: str) -> None:
        """Lengths and areas in mm or cm (the ``length_unit`` setting); stored in mm."""
        self._measures.set_length_unit(unit)

    # ------------------------------------------------------------ corner text and planes
    def set_corner_text_visible(self, visible: bool) -> None:
        action = self.actions_by_name["corner_text"]
        if action.isChecked() != bool(visible):
            action.setChecked(bool(visible))  # re-enters through toggled
            return
        if self.corner_overlay is not None:
            self.corner_overlay.setVisible(bool(visible))

    def set_corner_layout(self, layout: Mapping[str, Sequence[str]]) -> None:
        """Which fields go in which corner (``app.corner_text``); UserError if unknown."""
        self._corner_layout = corner_text.check_layout(layout)
        self._refresh_corner_text()

    def corner_lines(self) -> dict[str, list[str]]:
        """What each corner shows now (also while hidden)."""
        if self.instance is None:
            return {corner: [] for corner in corner_text.CORNERS}
        values = dict(self._header_values)
        values.update(corner_text.view_values(self.window_text(), self._zoom,
                                              self._measures.spacing_text(), self.frame,
                                              self.frame_count))
        return corner_text.corner_lines(self._corner_layout, values)

    def _refresh_corner_text(self) -> None:
        if self.corner_overlay is not None:
            self.corner_overlay.set_lines(self.corner_lines())

    def set_overlay_planes_visible(self, visible: bool) -> None:
        action = self.actions_by_name["overlay_planes"]
        if action.isChecked() != bool(visible):
            action.setChecked(bool(visible))
            return
        if self._planes is not None:
            self._planes.set_overlays_enabled(bool(visible))

    def set_shutter_visible(self, visible: bool) -> None:
        action = self.actions_by_name["shutter"]
        if action.isChecked() != bool(visible):
            action.setChecked(bool(visible))
            return
        if self._planes is not None:
            self._planes.set_shutter_enabled(bool(visible))

    # ------------------------------------------------------------ mouse mapping and menu
    def set_mouse_mapping(self, mapping: MouseMapping) -> None:
        """What each button's drag and the wheel do (``MouseMapping.from_settings``)."""
        self.mouse_mapping = mapping
        if self._canvas is not None:
            self._apply_mouse_mapping()

    def _apply_mouse_mapping(self) -> None:
        box, mapping = self._canvas[1], self.mouse_mapping
        box.drag_actions = {Qt.MouseButton.LeftButton: mapping.left,
                            Qt.MouseButton.MiddleButton: mapping.middle,
                            Qt.MouseButton.RightButton: mapping.right}
        box.wheel_action = mapping.wheel
        box.can_scroll_frames = self.frame_count > 1 or self.image_stepper is not None

    def mouse_gestures(self) -> list[tuple[str, str]]:
        """Rows for Help > Keyboard shortcuts: what each button and the wheel do now."""
        return self.mouse_mapping.gestures()

    def build_context_menu(self, image_point: tuple[float, float] | None = None) -> QMenu:
        """The right-click menu at ``image_point``; ``context_menu_about_to_show`` lets the
        holder (the grid) add its items before it is shown."""
        menu = view_menu.context_menu(self, image_point)
        self.context_menu_about_to_show.emit(menu)
        return menu

    def _on_context_requested(self, scene_pos: QPointF, screen_pos: QPointF) -> None:
        if self.instance is None:
            return
        menu = self.build_context_menu(self.map_scene_to_image(scene_pos))
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.popup(screen_pos.toPoint())

    # ------------------------------------------------------------ frames and cine
    @property
    def frame_count(self) -> int:
        return self.instance.n_frames if self.instance is not None else 0

    def _setup_frames(self) -> None:
        n = self.frame_count
        self._frame_bar.set_frames(self.frame, n, frame_bar.file_fps(self.instance.header))
        if self._canvas is not None:
            self.view_box.can_scroll_frames = n > 1 or self.image_stepper is not None

    def set_frame(self, index: int) -> None:
        if self.instance is None:
            return
        index = min(max(int(index), 0), self.frame_count - 1)
        if index == self.frame and self._displayed is not None:
            return
        self.frame = index
        self._frame_bar.show_index(index)
        if self.preset_key != "custom":
            # File windows and data ranges can differ per frame (enhanced multi-frame).
            try:
                self.voi = self._preset_voi(self.preset_key)
                self._data_window = self._compute_data_window()
            except (KeyError, IndexError):
                self.preset_key = "file"
                self.voi = self.instance.default_voi(index)
            except UserError as exc:
                self.set_playing(False)
                self.show_message(str(exc))
                return
        self.refresh()
        self._measures.on_frame_changed()
        self.display_planes.show(self.instance, self.frame)
        self.frame_changed.emit(self.frame, self.frame_count)
        self._emit_window()

    def step_frame(self, step: int) -> None:
        """The next/previous frame (wrapping); on a single frame, the holder's next image."""
        if self.frame_count > 1:
            self.set_frame((self.frame + step) % self.frame_count)
        elif self.image_stepper is not None:
            self.image_stepper(step)

    def set_playing(self, playing: bool) -> None:
        self._frame_bar.set_playing(playing)

    def toggle_playing(self) -> None:
        self.set_playing(not self.is_playing)

    @property
    def is_playing(self) -> bool:
        return self._frame_bar.is_playing

    # ------------------------------------------------------------ actions
    def _update_action_state(self) -> None:
        has_image = self.instance is not None
        multi = self.frame_count > 1
        steps = multi or (has_image and self.image_stepper is not None)
        for name, action in self.actions_by_name.items():
            if name in FRAME_ACTIONS:
                action.setEnabled(multi if name == "play" else steps)
            else:
                action.setEnabled(has_image)
        if not has_image:
            self.set_tool(None)
        self.actions_by_name["invert"].blockSignals(True)
        self.actions_by_name["invert"].setChecked(self.user_invert)
        self.actions_by_name["invert"].blockSignals(False)
