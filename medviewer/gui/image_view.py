"""The image view: one DICOM/X-ray instance on pyqtgraph, with W/L, orientation, cine and rulers.

Coordinates, for whoever draws on top (saliency overlays, region labels):

- *image coordinates*: x = column, y = row, in image pixels; pixel (row r, col c) covers
  [c, c+1) x [r, r+1). Items made children of :attr:`ImageView.image_item` (see
  :meth:`ImageView.add_image_overlay`) live in these coordinates and follow pan, zoom,
  rotation, flips and pixel aspect exactly, because they share the image item's transform.
- *view coordinates*: the ViewBox's data space, where the oriented image spans
  ``[0, width') x [0, height')``; :meth:`ImageView.image_transform` maps image -> view.
- *scene/widget coordinates*: :meth:`ImageView.map_image_to_scene`,
  :meth:`ImageView.map_scene_to_image` and :meth:`ImageView.map_image_to_widget`.

Display pixels always come from ``Instance.display_frame`` (the DICOM pipeline lives in
``medviewer.dicom``); this module only chooses the VOI, the frame and the geometry.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QColor, QKeySequence, QPainter, QPen, QTransform
from PySide6.QtWidgets import (
    QGraphicsLineItem, QHBoxLayout, QLabel, QSlider, QSpinBox, QStackedWidget, QToolButton,
    QVBoxLayout, QWidget,
)

from medviewer.errors import UserError
from medviewer.gui.lazy import LazyModule
from medviewer.gui.workers import JobWorker
from medviewer.jobs import CancelFlag, Progress

if TYPE_CHECKING:
    import numpy as np

    from medviewer.dicom import pixels
    from medviewer.dicom.reader import Instance
else:  # numpy, pydicom and pyqtgraph load on first use, after the window is shown
    np = LazyModule("numpy")
    pixels = LazyModule("medviewer.dicom.pixels")
    reader = LazyModule("medviewer.dicom.reader")
canvas = LazyModule("medviewer.gui.canvas")

log = logging.getLogger(__name__)

# W/L drag: dragging across this many screen pixels changes width/centre by the data range.
WINDOW_DRAG_PIXELS_PER_RANGE = 500.0
ZOOM_STEP = 1.25
DEFAULT_FPS = 10
MEASURE_COLOUR = QColor(255, 210, 0)

# Common CT windows (centre, width) in HU.
CT_PRESETS = (
    ("CT brain", 40.0, 80.0),
    ("CT subdural", 75.0, 215.0),
    ("CT lung", -600.0, 1500.0),
    ("CT mediastinum", 50.0, 350.0),
    ("CT abdomen", 40.0, 400.0),
    ("CT liver", 60.0, 160.0),
    ("CT bone", 400.0, 1800.0),
)
PROJECTION_MODALITIES = frozenset({"CR", "DX", "MG", "RF", "XA", "DR", "IO", "PX", "OT"})


# ---------------------------------------------------------------- orientation


Matrix = tuple[tuple[int, int], tuple[int, int]]
_IDENTITY: Matrix = ((1, 0), (0, 1))
_ROTATE_RIGHT: Matrix = ((0, -1), (1, 0))
_FLIP_HORIZONTAL: Matrix = ((-1, 0), (0, 1))
_FLIP_VERTICAL: Matrix = ((1, 0), (0, -1))


def _multiply(a: Matrix, b: Matrix) -> Matrix:
    return tuple(tuple(sum(a[i][k] * b[k][j] for k in range(2)) for j in range(2))
                 for i in range(2))  # type: ignore[return-value]


class Orientation:
    """Rotation by quarter turns and flips, as the 2x2 matrix applied to the *displayed* image.

    View y points down (as on screen), so a clockwise quarter turn maps (x, y) to (-y, x).
    Each operation acts on what the user currently sees, whatever was done before.
    ``matrix`` is ((m00, m01), (m10, m11)) with view = matrix . image (about the centre).
    """

    def __init__(self, matrix=None) -> None:
        self.matrix: Matrix = _IDENTITY if matrix is None else tuple(
            tuple(int(v) for v in row) for row in matrix)  # type: ignore[assignment]

    def rotate_right(self) -> None:
        self.matrix = _multiply(_ROTATE_RIGHT, self.matrix)

    def rotate_left(self) -> None:
        rotate_left = ((0, 1), (-1, 0))
        self.matrix = _multiply(rotate_left, self.matrix)

    def flip_horizontal(self) -> None:
        self.matrix = _multiply(_FLIP_HORIZONTAL, self.matrix)

    def flip_vertical(self) -> None:
        self.matrix = _multiply(_FLIP_VERTICAL, self.matrix)

    def reset(self) -> None:
        self.matrix = _IDENTITY

    @property
    def swaps_axes(self) -> bool:
        return self.matrix[0][0] == 0

    @property
    def is_mirrored(self) -> bool:
        (a, b), (c, d) = self.matrix
        return a * d - b * c < 0

    @property
    def quarter_turns_clockwise(self) -> int:
        """Rotation part, after an optional horizontal flip applied first."""
        rotation = _multiply(self.matrix, _FLIP_HORIZONTAL) if self.is_mirrored else self.matrix
        turn = _IDENTITY
        for quarter in range(4):
            if turn == rotation:
                return quarter
            turn = _multiply(_ROTATE_RIGHT, turn)
        raise AssertionError("orientation matrix is not a rotation/flip")

    def apply_to_array(self, array: np.ndarray) -> np.ndarray:
        """The array as it appears on screen (row 0 at the top), e.g. for export or checks."""
        out = np.fliplr(array) if self.is_mirrored else array
        return np.rot90(out, -self.quarter_turns_clockwise, axes=(0, 1))

    def transform(self, width: float, height: float) -> QTransform:
        """Image -> view: orient about the centre, then shift so the result starts at (0, 0)."""
        (m00, m01), (m10, m11) = self.matrix
        out_w, out_h = (height, width) if self.swaps_axes else (width, height)
        cx, cy = width / 2.0, height / 2.0
        dx = out_w / 2.0 - (m00 * cx + m01 * cy)
        dy = out_h / 2.0 - (m10 * cx + m11 * cy)
        # QTransform(m11, m12, m21, m22, dx, dy) maps x' = m11 x + m21 y + dx, y' = m12 x + m22 y + dy
        return QTransform(float(m00), float(m10), float(m01), float(m11), dx, dy)

    def describe(self) -> str:
        parts = []
        turns = self.quarter_turns_clockwise
        if self.is_mirrored:
            parts.append("flipped horizontally")
        if turns:
            parts.append(f"rotated {turns * 90}° clockwise")
        return ", ".join(parts) or "as stored"


# ---------------------------------------------------------------- presets and measurements


@dataclass(frozen=True)
class Preset:
    key: str
    name: str  # menu text
    short: str = ""  # status bar text, before the centre/width

    @property
    def status_name(self) -> str:
        return self.short or self.name


@dataclass
class Measurement:
    """A distance drawn on the image; end points in image coordinates (x = col, y = row)."""

    start: tuple[float, float]
    end: tuple[float, float]
    spacing: pixels.Spacing | None
    items: list[Any] = field(default_factory=list, repr=False)

    @property
    def length_px(self) -> float:
        return math.hypot(self.end[0] - self.start[0], self.end[1] - self.start[1])

    @property
    def length_mm(self) -> float | None:
        if self.spacing is None:
            return None
        dx_mm = (self.end[0] - self.start[0]) * self.spacing.col_mm
        dy_mm = (self.end[1] - self.start[1]) * self.spacing.row_mm
        return math.hypot(dx_mm, dy_mm)

    def label(self) -> str:
        mm = self.length_mm
        if mm is None:
            return f"{self.length_px:.1f} px (no pixel spacing)"
        source = self.spacing.source.split(" (")[0] if self.spacing else ""
        return f"{mm:.1f} mm ({source})"


def _window_of(voi: pixels.Voi | None, data_window: pixels.Window) -> pixels.Window:
    """A linear window equivalent enough to start a W/L drag from."""
    if isinstance(voi, pixels.Window):
        return voi
    if isinstance(voi, pixels.VoiLut):
        n = float(len(voi.table))
        return pixels.Window(voi.first_mapped + n / 2.0, n, "LINEAR", "Custom")
    return data_window


def _percentile_window(values: np.ndarray, low: float, high: float, label: str) -> pixels.Window:
    sample = values[:: max(1, values.shape[0] // 512), :: max(1, values.shape[1] // 512)]
    lo, hi = np.percentile(sample, [low, high])
    width = float(hi - lo)  # at the data's own scale: values 0..0.002 get a 0.002 window
    return pixels.Window(float(lo) / 2.0 + float(hi) / 2.0, width if width > 0 else 1.0,
                         "LINEAR", label)


def _format_value(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return ", ".join(_format_value(v) for v in value.tolist())
    return f"{float(value):.6g}"


def _load_for_display(path: Path, cancel: CancelFlag):
    """Job: open the file and decode its first frame, so the GUI thread only maps VOI.

    Returns (instance, None), or (instance, sentence) when the header is readable but the
    pixels are not, so the tags can still be shown.
    """
    instance = reader.open_instance(path)
    yield Progress(0, 1, "Decoding")
    cancel.raise_if_cancelled()
    try:
        instance.modality_frame(0)
    except UserError as exc:
        return instance, str(exc)
    return instance, None


def _prefetch_frames(instance: Instance, first: int, cancel: CancelFlag):
    """Job: decode every frame of a multi-frame image into the pixel cache for smooth cine."""
    n = instance.n_frames
    order = list(range(first, n)) + list(range(0, first))
    for done, index in enumerate(order):
        cancel.raise_if_cancelled()
        instance.modality_frame(index)
        yield Progress(done + 1, n, "Decoding frames")
    return n


# ---------------------------------------------------------------- the widget


class ImageView(QWidget):
    """Shows one instance; owns its loading/prefetch workers and all image actions."""

    header_loaded = Signal(object)  # Instance whose header is readable (even if pixels fail)
    image_shown = Signal(object)  # Instance, after the first frame is on screen
    load_failed = Signal(str)  # one sentence
    frame_changed = Signal(int, int)  # index, count
    voi_changed = Signal(str)  # description for the status bar
    zoom_changed = Signal(float)  # percent: screen pixels per image pixel x 100
    cursor_moved = Signal(str)  # readout text, "" when the cursor is off the image
    measurement_added = Signal(object)  # Measurement
    view_changed = Signal()  # pan, zoom, orientation or image changed: overlays may re-layout
    presets_changed = Signal()  # the W/L preset actions were rebuilt for a new image

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.instance: Instance | None = None
        self.frame = 0
        self.voi: pixels.Voi | None = None
        self.preset_key = "file"
        self.user_invert = False
        self.orientation = Orientation()
        self.measurements: list[Measurement] = []
        self._data_window: pixels.Window | None = None  # the image's value range
        self._drag_start_window: pixels.Window | None = None
        self._measure_items: list[Any] | None = None
        self._loader: JobWorker | None = None
        self.requested_path: Path | None = None  # the file last asked for by open_path
        self._prefetcher: JobWorker | None = None
        # Optional cache (the label panel's prefetch): path -> an Instance already opened and
        # decoded, or None. open_path shows such an instance at once, with no worker.
        self.instance_source: Callable[[Path], Instance | None] | None = None
        self._workers: set[JobWorker] = set()
        self._displayed: np.ndarray | None = None

        self._canvas: tuple | None = None  # (graphics view, view box, image item), built lazily
        self._build_frame_bar()
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
        self.setAcceptDrops(False)  # the main window handles drops

        self._cine_timer = QTimer(self)
        self._cine_timer.timeout.connect(self._next_frame_cine)
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
        view_box.measuring = self.actions_by_name["measure"].isChecked()
        view_box.window_dragged.connect(self._on_window_drag)
        view_box.measure_dragged.connect(self._on_measure_drag)
        view_box.sigRangeChanged.connect(self._on_range_changed)
        view_box.sigResized.connect(self._on_range_changed)
        graphics_view.scene().sigMouseMoved.connect(self._on_mouse_moved)
        graphics_view.viewport().installEventFilter(
            canvas.LeaveWatcher(lambda: self.cursor_moved.emit(""), self))
        self._stack.addWidget(graphics_view)
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

    def _build_frame_bar(self) -> None:
        self._frame_bar = QWidget()
        self._frame_bar.setObjectName("frameBar")
        self.play_button = QToolButton()
        self.play_button.setCheckable(True)
        self.play_button.setText("▶ Play")
        self.play_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.play_button.toggled.connect(self.set_playing)
        self.frame_slider = QSlider(Qt.Orientation.Horizontal)
        self.frame_slider.setMinimum(0)
        self.frame_slider.valueChanged.connect(self.set_frame)
        self.frame_label = QLabel()
        self.frame_label.setMinimumWidth(90)
        self.fps_spin = QSpinBox()
        self.fps_spin.setRange(1, 60)
        self.fps_spin.setValue(DEFAULT_FPS)
        self.fps_spin.setSuffix(" fps")
        self.fps_spin.setToolTip("Cine speed in frames per second")
        self.fps_spin.valueChanged.connect(self._on_fps_changed)
        layout = QHBoxLayout(self._frame_bar)
        layout.setContentsMargins(6, 3, 6, 3)
        layout.addWidget(self.play_button)
        layout.addWidget(self.frame_slider, 1)
        layout.addWidget(self.frame_label)
        layout.addWidget(self.fps_spin)
        self._frame_bar.hide()

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
        if tip:
            action.setToolTip(tip)
            action.setStatusTip(tip)
        if checkable:
            action.toggled.connect(slot)
        else:
            action.triggered.connect(lambda _checked=False: slot())
        self.addAction(action)
        self.actions_by_name[name] = action
        return action

    def _build_actions(self) -> None:
        self.actions_by_name: dict[str, QAction] = {}
        a = self._action
        a("fit", "&Fit to window", "F", self.fit, tip="Show the whole image")
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
        a("measure", "&Measure distance", "M", self.set_measuring, checkable=True,
          tip="Left-drag on the image to measure a distance")
        a("clear_measurements", "&Clear measurements", "Escape", self.clear_measurements)
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
        self.presets_menu_actions = QActionGroup(self)
        self.presets_menu_actions.setExclusive(True)

    # ------------------------------------------------------------ loading
    def open_path(self, path: str | Path) -> JobWorker | None:
        """Open a file on a worker; ``image_shown`` or ``load_failed`` follows.

        If :attr:`instance_source` already holds the file opened and decoded, it is shown
        before this returns (``image_shown`` has been emitted) and None is returned.
        """
        if self._loader is not None:
            self._loader.cancel()
        self.requested_path = Path(path)
        ready = self.instance_source(Path(path)) if self.instance_source is not None else None
        if ready is not None:
            self._loader = None
            self.show_instance(ready)
            return None
        worker = JobWorker(lambda cancel: _load_for_display(Path(path), cancel),
                           "opening the image")
        worker.finished.connect(self._on_loaded)
        worker.failed.connect(self._on_load_failed)
        self._track(worker)
        self._loader = worker
        worker.start()
        return worker

    def _track(self, worker: JobWorker) -> None:
        self._workers.add(worker)
        worker.ended.connect(lambda: self._workers.discard(worker))

    @property
    def is_loading(self) -> bool:
        return self._loader is not None

    def _on_loaded(self, result: tuple[Instance, str | None]) -> None:
        if self.sender() is not self._loader:
            return  # superseded by a newer request
        self._loader = None
        instance, error = result
        if error is not None:
            # Show nothing rather than the previous image beside this file's tags.
            self.clear()
            self.header_loaded.emit(instance)
            self.show_message(error)
            self.load_failed.emit(error)
            return
        self.show_instance(instance)

    def _on_load_failed(self, message: str) -> None:
        if self.sender() is not self._loader:
            return
        self._loader = None
        self.show_message(message)
        self.load_failed.emit(message)

    def show_instance(self, instance: Instance, frame: int = 0) -> bool:
        """Show an opened instance now (decoding on this thread if not cached)."""
        self.set_playing(False)
        if self._prefetcher is not None:
            self._prefetcher.cancel()
            self._prefetcher = None
        previous = self.instance
        self.instance = instance
        self.frame = min(max(frame, 0), instance.n_frames - 1)
        self.orientation.reset()
        self.user_invert = False
        self.preset_key = "file"
        self.clear_measurements()
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
        self._setup_frames()
        self._rebuild_presets()
        self._update_action_state()
        self.voi_changed.emit(self.voi_description())
        self.frame_changed.emit(self.frame, self.frame_count)
        if instance.n_frames > 1:
            self._start_prefetch()
        self.image_shown.emit(instance)
        return True

    def clear(self) -> None:
        """Show nothing (e.g. when the catalog is closed)."""
        self.set_playing(False)
        if self._loader is not None:
            self._loader.cancel()
            self._loader = None
        self.instance = None
        self.clear_measurements()
        if self._canvas is not None:
            self.image_item.clear()
        self._displayed = None
        self._stack.setCurrentWidget(self._placeholder)
        self._frame_bar.hide()
        self._update_action_state()

    def _start_prefetch(self) -> None:
        instance, first = self.instance, self.frame
        worker = JobWorker(lambda cancel: _prefetch_frames(instance, first, cancel),
                           "decoding frames")
        self._track(worker)
        self._prefetcher = worker
        worker.start()

    def wait_for_workers(self, timeout_ms: int = 10_000) -> None:
        """Cancel and join every worker this view started (close handlers, tests)."""
        self.set_playing(False)
        for worker in list(self._workers):
            worker.wait(timeout_ms)

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
        if self.preset_key == "file":
            # default_voi falls back to the data's range when the file suggests nothing
            name = ("Full range (no window in file)" if self.voi.label == "Full range"
                    else f"From file ({self.voi.label})" if self.voi.label else "From file")
        return f"{name}: {self.voi.describe()}"

    def presets(self) -> list[Preset]:
        """Every W/L choice for the current image, in menu order."""
        if self.instance is None:
            return []
        out = [Preset("file", "From file"), Preset("full", "Full range")]
        if self.instance.is_colour:
            return out
        for i, window in enumerate(self.instance.file_windows(self.frame)):
            out.append(Preset(f"window:{i}", f"{window.label} ({window.describe()})",
                              window.label))
        for i, lut in enumerate(self.instance.voi_luts()):
            out.append(Preset(f"voilut:{i}", f"VOI LUT: {lut.describe()}"))
        out.append(Preset("auto", "Auto (1st-99th percentile)", "Auto 1-99 %"))
        if self.instance.modality == "CT":
            out.extend(Preset(f"ct:{name}", f"{name} (C {c:g} / W {w:g})", name)
                       for name, c, w in CT_PRESETS)
        elif self.instance.modality in PROJECTION_MODALITIES:
            out.append(Preset("contrast", "High contrast (5th-95th percentile)",
                              "High contrast 5-95 %"))
        return out

    def _preset_voi(self, key: str) -> pixels.Voi | None:
        instance = self.instance
        assert instance is not None
        if key == "file":
            return instance.default_voi(self.frame)
        if key == "full":
            if instance.is_colour:
                return pixels.Window(127.5, 256.0, "LINEAR_EXACT", "Full range")
            return instance.full_range_voi(self.frame)
        kind, _, rest = key.partition(":")
        if kind == "window":
            return instance.file_windows(self.frame)[int(rest)]
        if kind == "voilut":
            return instance.voi_luts()[int(rest)]
        if kind == "ct":
            for name, center, width in CT_PRESETS:
                if name == rest:
                    return pixels.Window(center, width, "LINEAR", name)
        values = instance.modality_frame(self.frame)
        if key == "auto":
            return _percentile_window(values, 1, 99, "Auto")
        if key == "contrast":
            return _percentile_window(values, 5, 95, "High contrast")
        raise KeyError(key)

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
        self.voi_changed.emit(self.voi_description())

    def set_window(self, center: float, width: float, function: str = "LINEAR") -> None:
        """Set a custom window in modality units."""
        if self.instance is None:
            return
        self.preset_key = "custom"
        self.voi = pixels.Window(float(center), max(float(width), self._narrowest_width()),
                                 function, "Custom")
        self.refresh()
        self._check_preset_action()
        self.voi_changed.emit(self.voi_description())

    def window_drag_scale(self) -> float:
        """Modality units per screen pixel of right-drag for the current image."""
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
            self._drag_start_window = _window_of(self.voi, self._data_window
                                                 or self._compute_data_window())
        start = self._drag_start_window
        scale = self.window_drag_scale()
        function = start.function if start.function != "SIGMOID" else "LINEAR"
        # Right = wider (less contrast), down = higher centre (darker).
        self.set_window(start.center + dy * scale, start.width + dx * scale, function)
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

    # ------------------------------------------------------------ zoom
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

    def zoom_actual_size(self) -> None:
        """One image pixel per screen pixel (per column pixel for non-square pixels)."""
        if self.instance is None:
            return
        self._sync_view()
        self.view_box.disableAutoRange()
        rect = self.view_box.viewRect()
        center = rect.center()
        width_px = self.view_box.width()
        height_px = self.view_box.height()
        self.view_box.setRange(
            xRange=(center.x() - width_px / 2.0, center.x() + width_px / 2.0),
            yRange=(center.y() - height_px / 2.0, center.y() + height_px / 2.0),
            padding=0.0)

    def zoom_by(self, factor: float) -> None:
        if self.instance is None:
            return
        self._sync_view()
        self.view_box.disableAutoRange()
        self.view_box.scaleBy((1.0 / factor, 1.0 / factor))

    def _on_range_changed(self, *_args) -> None:
        zoom = self.zoom_percent()
        # Nearest-neighbour at non-integer scales draws a visible lattice (and shrinking
        # aliases), so interpolate unless the scale is a whole number or pixels are huge.
        factor = zoom / 100.0
        exact = factor >= 4.0 or (factor >= 0.99 and abs(factor - round(factor)) < 0.01)
        self.graphics_view.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, not exact)
        self.zoom_changed.emit(zoom)
        self.view_changed.emit()

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
        return f"x {col}, y {row}: {_format_value(value)}{self._unit_suffix()}"

    def _unit_suffix(self) -> str:
        assert self.instance is not None
        header = self.instance.header
        if self.instance.modality == "CT":
            return " HU"
        unit = str(header.get("RescaleType", "") or "").strip()
        return f" {unit}" if unit and unit.upper() != "US" else ""

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        if self.instance is None:
            return
        x, y = self.map_scene_to_image(scene_pos)
        self.cursor_moved.emit(self.pixel_readout(x, y))

    # ------------------------------------------------------------ measurement
    def set_measuring(self, on: bool) -> None:
        action = self.actions_by_name["measure"]
        if action.isChecked() != bool(on):
            action.setChecked(bool(on))
            return
        if self._canvas is None:
            return  # applied when the canvas is built
        self.view_box.measuring = bool(on)
        cursor = Qt.CursorShape.CrossCursor if on else Qt.CursorShape.ArrowCursor
        self.graphics_view.viewport().setCursor(cursor)

    def add_measurement(self, start: tuple[float, float], end: tuple[float, float]) -> Measurement:
        """Add a ruler between two points in image coordinates."""
        assert self.instance is not None
        measurement = Measurement(start, end, self.instance.pixel_spacing(self.frame))
        measurement.items = self._make_ruler_items()
        self._place_ruler(measurement.items, start, end, measurement.label())
        self.measurements.append(measurement)
        self.measurement_added.emit(measurement)
        return measurement

    def _make_ruler_items(self) -> list[Any]:
        pen = QPen(MEASURE_COLOUR)
        pen.setWidthF(2.0)
        pen.setCosmetic(True)  # stays 2 screen pixels wide at any zoom
        line = QGraphicsLineItem()
        line.setPen(pen)
        text = canvas.make_text_item(MEASURE_COLOUR)
        for item in (line, text):
            self.add_image_overlay(item)
            item.setZValue(10)
        return [line, text]

    @staticmethod
    def _place_ruler(items: list[Any], start, end, label: str) -> None:
        line, text = items
        line.setLine(start[0], start[1], end[0], end[1])
        text.setText(label)
        text.setPos(QPointF(end[0], end[1]))

    def _on_measure_drag(self, scene_start: QPointF, scene_now: QPointF, finished: bool) -> None:
        if self.instance is None:
            return
        start = self.map_scene_to_image(scene_start)
        end = self.map_scene_to_image(scene_now)
        if self._measure_items is None:
            self._measure_items = self._make_ruler_items()
        preview = Measurement(start, end, self.instance.pixel_spacing(self.frame))
        self._place_ruler(self._measure_items, start, end, preview.label())
        if finished:
            for item in self._measure_items:
                self._remove_item(item)
            self._measure_items = None
            if preview.length_px > 0.5:
                self.add_measurement(start, end)

    def _remove_item(self, item) -> None:
        scene = item.scene()
        item.setParentItem(None)
        if scene is not None:
            scene.removeItem(item)

    def clear_measurements(self) -> None:
        for measurement in self.measurements:
            for item in measurement.items:
                self._remove_item(item)
        self.measurements.clear()

    # ------------------------------------------------------------ frames and cine
    @property
    def frame_count(self) -> int:
        return self.instance.n_frames if self.instance is not None else 0

    def _setup_frames(self) -> None:
        n = self.frame_count
        self.frame_slider.blockSignals(True)
        self.frame_slider.setMaximum(max(n - 1, 0))
        self.frame_slider.setValue(self.frame)
        self.frame_slider.blockSignals(False)
        self._frame_bar.setVisible(n > 1)
        self.fps_spin.setValue(self._file_fps())
        self._update_frame_label()

    def _file_fps(self) -> int:
        assert self.instance is not None
        header = self.instance.header
        for keyword in ("CineRate", "RecommendedDisplayFrameRate"):
            try:
                value = float(header.get(keyword) or 0)
            except (TypeError, ValueError):
                value = 0
            if value > 0:
                return int(min(max(round(value), 1), 60))
        try:
            frame_time_ms = float(header.get("FrameTime") or 0)
        except (TypeError, ValueError):
            frame_time_ms = 0
        if frame_time_ms > 0:
            return int(min(max(round(1000.0 / frame_time_ms), 1), 60))
        return DEFAULT_FPS

    def _update_frame_label(self) -> None:
        self.frame_label.setText(f"Frame {self.frame + 1} / {self.frame_count}")

    def set_frame(self, index: int) -> None:
        if self.instance is None:
            return
        index = min(max(int(index), 0), self.frame_count - 1)
        if index == self.frame and self._displayed is not None:
            return
        self.frame = index
        if self.frame_slider.value() != index:
            self.frame_slider.blockSignals(True)
            self.frame_slider.setValue(index)
            self.frame_slider.blockSignals(False)
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
        self._update_frame_label()
        self.frame_changed.emit(self.frame, self.frame_count)
        self.voi_changed.emit(self.voi_description())

    def step_frame(self, step: int) -> None:
        if self.frame_count > 1:
            self.set_frame((self.frame + step) % self.frame_count)

    def set_playing(self, playing: bool) -> None:
        playing = bool(playing) and self.frame_count > 1
        if self.play_button.isChecked() != playing:
            self.play_button.blockSignals(True)
            self.play_button.setChecked(playing)
            self.play_button.blockSignals(False)
        self.play_button.setText("❚❚ Pause" if playing else "▶ Play")
        if playing:
            self._cine_timer.start(int(1000 / self.fps_spin.value()))
        else:
            self._cine_timer.stop()

    def toggle_playing(self) -> None:
        self.set_playing(not self._cine_timer.isActive())

    @property
    def is_playing(self) -> bool:
        return self._cine_timer.isActive()

    def _on_fps_changed(self, fps: int) -> None:
        if self._cine_timer.isActive():
            self._cine_timer.setInterval(int(1000 / fps))

    def _next_frame_cine(self) -> None:
        self.step_frame(1)

    # ------------------------------------------------------------ actions
    def _update_action_state(self) -> None:
        has_image = self.instance is not None
        multi = self.frame_count > 1
        for name, action in self.actions_by_name.items():
            if name in ("play", "next_frame", "previous_frame", "first_frame", "last_frame"):
                action.setEnabled(multi)
            else:
                action.setEnabled(has_image)
        if not has_image:
            self.set_measuring(False)
        self.actions_by_name["invert"].blockSignals(True)
        self.actions_by_name["invert"].setChecked(self.user_invert)
        self.actions_by_name["invert"].blockSignals(False)
