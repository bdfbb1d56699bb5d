"""The reading room's viewport grid: 1x1, 1x2, 2x1 or 2x2 image views, one of them active,
with window/level, zoom/pan and frame scrolling synchronised between them on request.

Each cell (:class:`Viewport`) is an :class:`~medviewer.gui.image_view.ImageView` in a frame
drawn bright when it is the active one; a click in a cell makes it active. Dropping files
or folders on a cell (file URLs, or :data:`PATHS_MIME` from inside the app) shows them
there: one file is shown as it is; several files, or a folder (indexed on a worker, in the
study browser's order), become the cell's series, stepped through with the frame keys and
the wheel when an image has a single frame.

Synchronising follows the active view only (what the reader is working on), and each kind
can be switched on or off:

- window/level: the same window in modality units on every grey-scale view;
- zoom/pan: the same size on screen (per mm when both images have a pixel spacing, else
  per pixel) and the same relative point in the middle;
- frames: the others move by as many frames (or series images) as the active one did.

Keyboard shortcuts belong to the active view: the others' actions answer only when the
focus is inside them (which makes them active first), so no key is ever ambiguous.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, QRectF, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QColor, QPainter, QPen
from PySide6.QtWidgets import QFrame, QGridLayout, QVBoxLayout, QWidget

from medviewer.gui.image_view import ImageView
from medviewer.gui.lazy import LazyModule
from medviewer.gui.path_mime import (
    PATHS_MIME, accept_path_drag, mime_for_paths, paths_from_mime, take_dropped_paths,
)
from medviewer.gui.workers import JobWorker

if TYPE_CHECKING:
    from medviewer.app import priors
    from medviewer.dicom import pixels
    from medviewer.dicom.catalog import Catalog
else:
    priors = LazyModule("medviewer.app.priors")
    pixels = LazyModule("medviewer.dicom.pixels")
    catalog_module = LazyModule("medviewer.dicom.catalog")

log = logging.getLogger(__name__)

__all__ = ["LAYOUTS", "PATHS_MIME", "Viewport", "ViewportGrid", "mime_for_paths",
           "paths_from_mime"]

LAYOUTS = {"1x1": (1, 1), "1x2": (1, 2), "2x1": (2, 1), "2x2": (2, 2)}  # rows x columns
SYNC_KINDS = ("window", "pan_zoom", "frames")
# The frame around each viewport: bright for the active one. Painted by the viewport itself:
# a style sheet on the grid made Qt polish every widget inside it (the image canvas too)
# through the style-sheet engine, about 80 ms more CPU before the first image at start-up.
ACTIVE_COLOUR = QColor("#3d8ee0")
INACTIVE_COLOUR = QColor("#303030")
BORDER_PX = 2


# ---------------------------------------------------------------- drag and drop


def _index_paths(paths: list[Path], cancel):
    """Job: every image under the dropped paths, in the study browser's order."""
    from medviewer.app.browse_order import display_order

    images: list[Path] = []
    for path in paths:
        if path.is_file() and path.name.upper() != "DICOMDIR":
            images.append(path)
            continue
        catalog = yield from catalog_module.index_path(path, cancel=cancel)
        images.extend(record.path for record in display_order(catalog))
    return images


# ---------------------------------------------------------------- one cell


class Viewport(QFrame):
    """One cell: an image view, its series (if one was dropped here) and the active frame."""

    activated = Signal(object)  # this Viewport
    paths_dropped = Signal(object, list)  # this Viewport, [Path]
    files_dropped = Signal(object, list)  # this Viewport, [Path] from another program

    def __init__(self, view: ImageView | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("viewport")
        self.setProperty("active", False)
        self.view = view if view is not None else ImageView()
        self.series: list[Path] = []  # the images stepped through (empty: just the one shown)
        self.setAcceptDrops(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(BORDER_PX, BORDER_PX, BORDER_PX, BORDER_PX)
        layout.addWidget(self.view)
        self._watcher = _PressWatcher(lambda: self.activated.emit(self), self)
        self.view.installEventFilter(self._watcher)
        self.view.image_shown.connect(lambda _i: self._watch_canvas())

    def _watch_canvas(self) -> None:
        viewport = self.view.graphics_view.viewport()
        if not viewport.property("watchedByGrid"):
            viewport.installEventFilter(self._watcher)
            viewport.setProperty("watchedByGrid", True)

    def set_active(self, active: bool) -> None:
        if self.property("active") != bool(active):
            self.setProperty("active", bool(active))
            self.update()

    def paintEvent(self, event):  # noqa: N802 - Qt naming
        painter = QPainter(self)
        pen = QPen(ACTIVE_COLOUR if self.is_active else INACTIVE_COLOUR, BORDER_PX)
        pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
        painter.setPen(pen)
        half = BORDER_PX / 2
        painter.drawRect(QRectF(self.rect()).adjusted(half, half, -half, -half))

    @property
    def is_active(self) -> bool:
        return bool(self.property("active"))

    # -- a series
    def show_series(self, images: Sequence[Path], index: int = 0) -> None:
        self.series = list(images)
        self.view.image_stepper = self.step_series if len(self.series) > 1 else None
        if self.series:
            self.view.open_path(self.series[min(max(index, 0), len(self.series) - 1)])

    @property
    def series_index(self) -> int:
        shown = self.view.requested_path
        return self.series.index(shown) if shown in self.series else -1

    def step_series(self, step: int) -> bool:
        """Show the series image ``step`` away (no wrapping); False at either end."""
        index = self.series_index
        if index < 0:
            return False
        target = min(max(index + step, 0), len(self.series) - 1)
        if target == index:
            return False
        self.view.open_path(self.series[target])
        return True

    # -- drops
    def dragEnterEvent(self, event):  # noqa: N802 - Qt naming
        accept_path_drag(event)

    def dragMoveEvent(self, event):  # noqa: N802 - Qt naming
        accept_path_drag(event)

    def dropEvent(self, event):  # noqa: N802 - Qt naming
        paths = take_dropped_paths(event)
        if not paths:
            return
        self.activated.emit(self)
        if event.mimeData().hasFormat(PATHS_MIME):  # from the app: a series, an image
            self.paths_dropped.emit(self, paths)
        else:
            self.files_dropped.emit(self, paths)


class _PressWatcher(QObject):
    def __init__(self, callback: Callable[[], None], parent: QObject) -> None:
        super().__init__(parent)
        self._callback = callback

    def eventFilter(self, watched, event):  # noqa: N802 - Qt naming
        if event.type() in (QEvent.Type.MouseButtonPress, QEvent.Type.FocusIn):
            self._callback()
        return False


# ---------------------------------------------------------------- the grid


class ViewportGrid(QWidget):
    """Up to four viewports in a layout; the first one's view is the window's main view."""

    active_changed = Signal(object)  # the ImageView now active
    layout_changed = Signal(str)  # "1x1", "1x2", "2x1" or "2x2"
    message = Signal(str)  # one sentence for the status bar (e.g. no prior found)
    prior_missing = Signal(str)  # the patient ID whose earlier study is not open here
    view_added = Signal(object)  # an ImageView the grid just made (a larger layout)

    def __init__(self, first_view: ImageView | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(0)
        self.viewports: list[Viewport] = []
        self._layout = "1x1"
        self._active: Viewport | None = None
        self._syncing = False
        self._positions: dict[int, tuple[object, int]] = {}  # id(view) -> _position(view)
        self._indexers: set[JobWorker] = set()
        self.sync = {kind: True for kind in SYNC_KINDS}
        # Who knows the open catalogs (the main window); compare-with-prior asks it.
        self.catalogs_provider: Callable[[], Sequence[Catalog]] = lambda: []
        # Files dropped from another program (not a drag inside the app): by default shown
        # like any drop; a window may open them (index them into its browser) instead.
        self.open_dropped_files: Callable[[ImageView, list[Path]], object] = self.show_paths
        self._add_viewport(first_view)
        self._build_actions()
        self.set_layout("1x1")
        self.set_active(self.viewports[0].view)

    # ------------------------------------------------------------ views
    @property
    def primary_view(self) -> ImageView:
        """The first viewport's view: the one the main window's panels work with."""
        return self.viewports[0].view

    @property
    def active_view(self) -> ImageView:
        assert self._active is not None
        return self._active.view

    @property
    def layout_name(self) -> str:
        return self._layout

    def visible_viewports(self) -> list[Viewport]:
        rows, columns = LAYOUTS[self._layout]
        return self.viewports[: rows * columns]

    def views(self) -> list[ImageView]:
        """The views on screen, row by row."""
        return [viewport.view for viewport in self.visible_viewports()]

    def viewport_of(self, view: ImageView) -> Viewport:
        return next(v for v in self.viewports if v.view is view)

    def _add_viewport(self, view: ImageView | None = None) -> Viewport:
        viewport = Viewport(view, self)
        viewport.activated.connect(lambda v: self.set_active(v.view))
        viewport.paths_dropped.connect(lambda v, paths: self.show_paths(v.view, paths))
        viewport.files_dropped.connect(lambda v, paths: self.open_dropped_files(v.view, paths))
        view = viewport.view
        view.window_changed.connect(lambda voi, v=view: self._sync_window(v, voi))
        view.pan_zoom_changed.connect(lambda v=view: self._sync_pan_zoom(v))
        view.frame_changed.connect(lambda index, _n, v=view: self._on_position(v, index))
        view.image_shown.connect(lambda _i, v=view: self._on_position(v, None))
        view.context_menu_about_to_show.connect(self._add_menu_items)
        # W/L presets are new actions for each image: route their keys (Ctrl+1...) too.
        view.presets_changed.connect(
            lambda v=view: self._route_shortcuts(v, self._active is not None
                                                 and v is self._active.view))
        self.viewports.append(viewport)
        self.view_added.emit(view)
        return viewport

    def set_layout(self, name: str) -> None:
        """Show 1x1, 1x2, 2x1 or 2x2 viewports; views hidden by a smaller layout keep
        their images and come back as they were."""
        if name not in LAYOUTS:
            raise ValueError(f"unknown layout {name!r} (one of {', '.join(LAYOUTS)})")
        rows, columns = LAYOUTS[name]
        while len(self.viewports) < rows * columns:
            self._add_viewport()
        for viewport in self.viewports:
            self._grid.removeWidget(viewport)
            viewport.hide()
        for index, viewport in enumerate(self.viewports[: rows * columns]):
            self._grid.addWidget(viewport, index // columns, index % columns)
            viewport.show()
        for row in range(2):
            self._grid.setRowStretch(row, 1 if row < rows else 0)
        for column in range(2):
            self._grid.setColumnStretch(column, 1 if column < columns else 0)
        self._layout = name
        self.actions_by_name[f"layout_{name}"].setChecked(True)
        if self._active is not None and self._active not in self.visible_viewports():
            self.set_active(self.viewports[0].view)
        self.layout_changed.emit(name)

    def set_active(self, view: ImageView) -> None:
        viewport = self.viewport_of(view)
        if viewport is self._active:
            return
        self._active = viewport
        for other in self.viewports:
            other.set_active(other is viewport)
            self._route_shortcuts(other.view, other is viewport)
        self.active_changed.emit(view)

    @staticmethod
    def _route_shortcuts(view: ImageView, active: bool) -> None:
        """Window-wide keys for the active view; the others' only while focused."""
        focus_only = Qt.ShortcutContext.WidgetWithChildrenShortcut
        for action in view.actions():
            if action.property("gridContext") is None:
                action.setProperty("gridContext", int(action.shortcutContext().value))
            own = Qt.ShortcutContext(action.property("gridContext"))
            action.setShortcutContext(own if active else focus_only)

    # ------------------------------------------------------------ showing images
    def show_paths(self, view: ImageView, paths: Sequence[Path]) -> JobWorker | None:
        """Show dropped paths in ``view``: one file as it is; several files or a folder as a
        series (a folder is indexed on a worker first)."""
        paths = [Path(p) for p in paths]
        viewport = self.viewport_of(view)
        if len(paths) == 1 and paths[0].is_file() and paths[0].name.upper() != "DICOMDIR":
            viewport.show_series([])
            view.open_path(paths[0])
            return None
        if all(p.is_file() for p in paths):
            viewport.show_series(paths)
            return None
        worker = JobWorker(lambda cancel: _index_paths(paths, cancel), "indexing a dropped folder")
        worker.finished.connect(lambda images, v=viewport: self._on_indexed(v, images))
        worker.failed.connect(lambda sentence, v=view: v.show_message(sentence))
        self._indexers.add(worker)
        worker.ended.connect(lambda w=worker: self._indexers.discard(w))
        worker.start()
        return worker

    def _on_indexed(self, viewport: Viewport, images: list[Path]) -> None:
        if not images:
            viewport.view.show_message("Nothing in what was dropped could be shown as an image.")
            return
        viewport.show_series(images)

    def show_beside(self, path: str | Path) -> ImageView:
        """Show ``path`` in the viewport after the active one (1x1 becomes 1x2)."""
        if self._layout == "1x1":
            self.set_layout("1x2")
        visible = self.visible_viewports()
        index = visible.index(self._active) if self._active in visible else 0
        target = visible[(index + 1) % len(visible)]
        target.show_series([])
        target.view.open_path(path)
        return target.view

    def compare_with_prior(self) -> ImageView | None:
        """Put the same patient's most recent earlier study (from the open catalogs) beside
        the active image; says so in one sentence when there is none."""
        view = self.active_view
        if view.instance is None:
            self.message.emit("Open an image first: its prior is looked for among the open "
                              "studies.")
            return None
        return self.compare_with_prior_of(priors.StudyKey.from_header(view.instance.header))

    def compare_with_prior_of(self, key: priors.StudyKey) -> ImageView | None:
        """Put the prior of the study ``key`` beside the active view (see above)."""
        prior = priors.find_prior(self.catalogs_provider(), key)
        if prior is None:
            self.message.emit(f"No earlier study of patient {key.patient_id or '(no ID)'} is "
                              "open.")
            self.prior_missing.emit(key.patient_id)
            return None
        self.message.emit(f"Prior study of {prior.study.date[:4]}-{prior.study.date[4:6]}-"
                          f"{prior.study.date[6:]} shown beside the current image.")
        return self.show_beside(prior.image.path)

    def wait_for_workers(self, timeout_ms: int = 10_000) -> None:
        for worker in list(self._indexers):
            worker.cancel()
            worker.wait(timeout_ms)
        for viewport in self.viewports:
            viewport.view.wait_for_workers(timeout_ms)

    # ------------------------------------------------------------ synchronising
    @contextmanager
    def _applying(self):
        self._syncing = True
        try:
            yield
        finally:
            self._syncing = False

    def _followers(self, source: ImageView) -> list[ImageView]:
        if self._syncing or self._active is None or source is not self._active.view:
            return []
        return [view for view in self.views() if view is not source and view.instance]

    def set_sync(self, kind: str, on: bool) -> None:
        if kind not in SYNC_KINDS:
            raise ValueError(f"unknown sync kind {kind!r}")
        self.actions_by_name[f"sync_{kind}"].setChecked(bool(on))

    def _sync_window(self, source: ImageView, voi) -> None:
        followers = self._followers(source)
        if not self.sync["window"] or not followers or not isinstance(voi, pixels.Window):
            return
        with self._applying():
            for view in followers:
                if not view.instance.is_colour:
                    view.set_window(voi.center, voi.width, voi.function)

    def _sync_pan_zoom(self, source: ImageView) -> None:
        followers = self._followers(source)
        if not self.sync["pan_zoom"] or not followers:
            return
        geometry = source.view_geometry()
        with self._applying():
            for view in followers:
                view.set_view_geometry(geometry)

    def _position(self, view: ImageView) -> tuple[object, int]:
        """(what is being scrolled through, where in it): the frames of a multi-frame
        image, else the viewport's series, else the image alone."""
        viewport = self.viewport_of(view)
        if view.frame_count > 1:
            return view.instance, view.frame
        if viewport.series_index >= 0:
            return tuple(viewport.series), viewport.series_index
        return view.instance, 0

    def _on_position(self, view: ImageView, _frame: int | None) -> None:
        """Frame sync: the active view moved by some frames or series images; the others
        move as far. A new image (not a step through the same frames or series) moves
        nobody."""
        previous = self._positions.get(id(view))
        now = self._positions[id(view)] = self._position(view)
        if previous is None or previous[0] != now[0]:
            return
        step = now[1] - previous[1]
        followers = self._followers(view)
        if not step or not self.sync["frames"] or not followers:
            return
        with self._applying():
            for other in followers:
                if other.frame_count > 1:
                    other.set_frame(min(max(other.frame + step, 0), other.frame_count - 1))
                else:
                    self.viewport_of(other).step_series(step)

    # ------------------------------------------------------------ actions and menus
    def _build_actions(self) -> None:
        self.actions_by_name: dict[str, QAction] = {}
        layouts = QActionGroup(self)
        for name in LAYOUTS:
            action = QAction(f"Layout {name.replace('x', ' × ')}", self)
            action.setCheckable(True)
            action.triggered.connect(lambda _c=False, n=name: self.set_layout(n))
            layouts.addAction(action)
            self.actions_by_name[f"layout_{name}"] = action
        titles = {"window": "Sync window/level", "pan_zoom": "Sync zoom and pan",
                  "frames": "Sync frame scrolling"}
        for kind in SYNC_KINDS:
            action = QAction(titles[kind], self)
            action.setCheckable(True)
            action.setChecked(True)
            action.toggled.connect(lambda on, k=kind: self.sync.__setitem__(k, on))
            self.actions_by_name[f"sync_{kind}"] = action
        prior = QAction("Compare with &prior", self)
        prior.setToolTip("Show the same patient's most recent earlier study beside this image")
        prior.triggered.connect(lambda _c=False: self.compare_with_prior())
        self.actions_by_name["compare_prior"] = prior

    def _add_menu_items(self, menu) -> None:
        menu.addSeparator()
        layout = menu.addMenu("&Layout")
        layout.addActions([self.actions_by_name[f"layout_{n}"] for n in LAYOUTS])
        layout.addSeparator()
        layout.addActions([self.actions_by_name[f"sync_{k}"] for k in SYNC_KINDS])
        menu.addAction(self.actions_by_name["compare_prior"])
