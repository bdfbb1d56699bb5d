"""Plots for the training wizard: live training curves and an ROC curve with a movable point.

:class:`TrainingCurves` collects per-batch and per-epoch figures as they arrive and redraws
on a timer, at most a few times per second, however fast the events come: a small model on
a GPU finishes hundreds of batches per second and redrawing for each would starve the GUI.
:class:`RocPlot` draws one ROC curve and lets the user pick its operating point by clicking
or dragging anywhere on the plot (the point snaps to the nearest point of the curve).
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QMenu, QVBoxLayout, QWidget

from medviewer.gui.lazy import import_pyqtgraph

pg = import_pyqtgraph()

BACKGROUND = (30, 30, 32)
FOREGROUND = (200, 200, 200)
# Colours that stay apart for colour-blind readers (Okabe-Ito) on the dark background.
BATCH_COLOUR = (120, 120, 135)
TRAIN_COLOUR = (86, 180, 233)
VAL_COLOUR = (230, 159, 0)
AUROC_COLOUR = (0, 158, 115)
BEST_COLOUR = (240, 228, 66)
SMOOTHING = 0.9  # exponential moving average of the per-batch loss


def _styled_plot(title: str, left: str, bottom: str,
                 view_box: pg.ViewBox | None = None, grid: bool = False) -> pg.PlotWidget:
    """A plot in the app's dark style. ``grid`` costs: a translucent grid over the whole view
    tripled the repaint time of a training plot (35 of 55 ms on the 2-core machine)."""
    plot = pg.PlotWidget(viewBox=view_box, background=BACKGROUND)
    plot.setTitle(title, color=FOREGROUND, size="11pt")
    item = plot.getPlotItem()
    for axis in ("left", "bottom"):
        item.getAxis(axis).setTextPen(pg.mkPen(FOREGROUND))
        item.getAxis(axis).setPen(pg.mkPen(110, 110, 115))
    plot.setLabel("left", left, color=FOREGROUND)
    plot.setLabel("bottom", bottom, color=FOREGROUND)
    if grid:
        plot.showGrid(x=True, y=True, alpha=0.2)
    plot.setMenuEnabled(False)
    plot.setMinimumSize(260, 200)
    _own_menus(plot, item.ctrlMenu, item.getViewBox().menu)
    return plot


def _own_menus(owner: QWidget, *menus: QMenu | None) -> None:
    """pyqtgraph makes its context menus (and their submenus) without a parent and keeps
    them alive through signal closures, so they outlive the plot as stray top-level
    widgets; owned by the plot, they are deleted with it."""
    pending = [m for m in menus if m is not None]
    while pending:
        menu = pending.pop()
        if menu.parent() is None:
            menu.setParent(owner, menu.windowFlags())
        pending.extend(a.menu() for a in menu.actions() if a.menu() is not None)


def _legend(plot: pg.PlotWidget, bottom: bool = False) -> pg.LegendItem:
    """Top right (losses fall away from it) or bottom right (AUROC rises away from it)."""
    legend = plot.addLegend(offset=(-8, -8 if bottom else 8), labelTextColor=FOREGROUND,
                            brush=pg.mkBrush(30, 30, 32, 200))
    legend.setZValue(10)
    return legend


class TrainingCurves(QWidget):
    """Loss (per batch and per epoch) and validation AUROC (per epoch), redrawn on a timer.

    ``add_batch`` and ``add_epoch`` only store numbers; the plots are redrawn at most
    ``redraws_per_second`` times per second, and only when something changed.
    """

    def __init__(self, parent: QWidget | None = None, redraws_per_second: float = 4.0) -> None:
        super().__init__(parent)
        self.loss_plot = _styled_plot("Loss", "cross-entropy", "epoch")
        self.auroc_plot = _styled_plot("Validation AUROC", "AUROC", "epoch")
        _legend(self.loss_plot)
        _legend(self.auroc_plot, bottom=True)
        self._batch_curve = self.loss_plot.plot(
            pen=pg.mkPen(*BATCH_COLOUR, 110, width=1), name="train, each batch")
        self._smooth_curve = self.loss_plot.plot(
            pen=pg.mkPen(*BATCH_COLOUR, width=2), name="train, smoothed")
        self._train_curve = self.loss_plot.plot(
            pen=pg.mkPen(*TRAIN_COLOUR, width=2), symbol="o", symbolSize=7,
            symbolBrush=TRAIN_COLOUR, symbolPen=None, name="train, epoch")
        self._val_curve = self.loss_plot.plot(
            pen=pg.mkPen(*VAL_COLOUR, width=2), symbol="s", symbolSize=7,
            symbolBrush=VAL_COLOUR, symbolPen=None, name="validation, epoch")
        self._auroc_curve = self.auroc_plot.plot(
            pen=pg.mkPen(*AUROC_COLOUR, width=2), symbol="o", symbolSize=7,
            symbolBrush=AUROC_COLOUR, symbolPen=None, name="validation")
        self._best_point = self.auroc_plot.plot(
            pen=None, symbol="star", symbolSize=16, symbolBrush=BEST_COLOUR, symbolPen=None,
            name="best epoch")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.loss_plot, 3)
        layout.addWidget(self.auroc_plot, 2)

        self.redraw_count = 0
        self._loss_dirty = self._auroc_dirty = False
        self._timer = QTimer(self)
        self._timer.setInterval(max(1, int(1000 / redraws_per_second)))
        self._timer.timeout.connect(self._redraw_if_changed)
        self._timer.start()
        self.clear()

    # -- data in
    def clear(self) -> None:
        self._batch_x: list[float] = []
        self._batch_y: list[float] = []
        self._smooth_y: list[float] = []
        self._epochs: list[int] = []
        self._train_loss: list[float] = []
        self._val_loss: list[float] = []
        self._val_auroc: list[float] = []
        self._best_epoch: int | None = None
        self._loss_top = 0.0
        for plot in (self.loss_plot, self.auroc_plot):
            plot.enableAutoRange(x=True, y=True)
        self._loss_dirty = self._auroc_dirty = True
        self._redraw_if_changed()

    def set_epochs(self, epochs: int) -> None:
        """Fix the epoch axis to 0..epochs: a growing axis would be laid out anew each redraw."""
        for plot in (self.loss_plot, self.auroc_plot):
            plot.setXRange(0, max(1, epochs), padding=0.02)

    def add_batch(self, position: float, loss: float) -> None:
        """``position`` in epochs (epoch 2, batch 5 of 10 is 1.5)."""
        if not math.isfinite(loss):
            return
        previous = self._smooth_y[-1] if self._smooth_y else loss
        self._batch_x.append(position)
        self._batch_y.append(loss)
        self._smooth_y.append(SMOOTHING * previous + (1 - SMOOTHING) * loss)
        self._loss_dirty = True

    def add_epoch(self, epoch: int, train_loss: float, val_loss: float, val_auroc: float,
                  best_epoch: int | None) -> None:
        self._epochs.append(epoch)
        self._train_loss.append(train_loss)
        self._val_loss.append(val_loss)
        self._val_auroc.append(val_auroc)
        self._best_epoch = best_epoch
        self._loss_dirty = self._auroc_dirty = True

    def _grow_loss_axis(self) -> None:
        """0..top, where top only grows: re-laying out the axis on every redraw (autorange on
        a noisy per-batch loss) was the largest part of a redraw."""
        values = [v for series in (self._batch_y, self._train_loss, self._val_loss)
                  for v in series[-256:] if math.isfinite(v)]
        if not values:
            return
        highest = max(values)
        if highest > self._loss_top or self._loss_top == 0.0:
            self._loss_top = max(highest * 1.15, 1e-3)
            self.loss_plot.setYRange(0.0, self._loss_top, padding=0.0)

    # -- read back (tests, status text)
    @property
    def batch_count(self) -> int:
        return len(self._batch_y)

    @property
    def epoch_count(self) -> int:
        return len(self._epochs)

    def plotted_points(self) -> dict[str, int]:
        """How many points each curve shows now (what was drawn, not what was stored)."""
        curves = {"batch": self._batch_curve, "train": self._train_curve,
                  "val": self._val_curve, "auroc": self._auroc_curve}
        out = {}
        for name, curve in curves.items():
            x, _ = curve.getData()
            out[name] = 0 if x is None else len(x)
        return out

    # -- drawing
    def _redraw_if_changed(self) -> None:
        """Only what changed: the AUROC plot changes once per epoch, the loss plot per batch."""
        if not (self._loss_dirty or self._auroc_dirty):
            return
        self.redraw_count += 1
        epochs = np.asarray(self._epochs, dtype=float)
        if self._loss_dirty:
            self._loss_dirty = False
            self._batch_curve.setData(np.asarray(self._batch_x), np.asarray(self._batch_y))
            self._smooth_curve.setData(np.asarray(self._batch_x), np.asarray(self._smooth_y))
            self._train_curve.setData(epochs, np.asarray(self._train_loss))
            self._val_curve.setData(epochs, np.asarray(self._val_loss))
            self._grow_loss_axis()
        if not self._auroc_dirty:
            return
        self._auroc_dirty = False
        auroc = np.asarray(self._val_auroc, dtype=float)
        finite = np.isfinite(auroc)
        self._auroc_curve.setData(epochs[finite], auroc[finite])
        low = min([0.5] + [float(a) - 0.05 for a in auroc[finite]])
        self.auroc_plot.setYRange(max(0.0, low), 1.0, padding=0.02)
        if self._best_epoch in self._epochs:
            index = self._epochs.index(self._best_epoch)
            self._best_point.setData([self._best_epoch], [self._val_auroc[index]])
        else:
            self._best_point.setData([], [])


class _PickingViewBox(pg.ViewBox):
    """A fixed view whose left clicks and drags pick a point instead of panning."""

    def __init__(self, on_pick) -> None:
        super().__init__(enableMenu=False)
        self._on_pick = on_pick
        self.setMouseEnabled(x=False, y=False)

    def mouseClickEvent(self, ev):  # noqa: N802 - pyqtgraph naming
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self._on_pick(self.mapSceneToView(ev.scenePos()))
        else:
            ev.ignore()

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 - pyqtgraph naming
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self._on_pick(self.mapSceneToView(ev.scenePos()))
        else:
            ev.ignore()

    def wheelEvent(self, ev, axis=None):  # noqa: N802 - the ROC view never zooms
        ev.ignore()


class RocPlot(QWidget):
    """One ROC curve (false-positive rate vs sensitivity) with a movable operating point.

    ``point_picked(index)`` is emitted when the user clicks or drags on the plot: the index
    of the curve point nearest the mouse. The owner decides what that means and calls
    :meth:`set_point` (the marker never moves by itself).
    """

    point_picked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._view = _PickingViewBox(self._pick)
        self.plot = _styled_plot("ROC", "sensitivity (true-positive rate)",
                                 "1 − specificity (false-positive rate)", self._view,
                                 grid=True)
        self.plot.setAspectLocked(True)
        self.plot.setXRange(0, 1, padding=0.03)
        self.plot.setYRange(0, 1, padding=0.03)
        self.plot.setMinimumSize(300, 300)
        self.plot.plot([0, 1], [0, 1], pen=pg.mkPen(110, 110, 115, style=Qt.PenStyle.DashLine))
        self._curve = self.plot.plot(pen=pg.mkPen(*TRAIN_COLOUR, width=2))
        self._marker = pg.TargetItem(pos=(0, 0), size=16, movable=False,
                                     pen=pg.mkPen(*BEST_COLOUR, width=2),
                                     brush=pg.mkBrush(*BEST_COLOUR, 90))
        self.plot.addItem(self._marker)
        self._fpr = np.zeros(0)
        self._tpr = np.zeros(0)
        self.point_index: int | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)

    def set_curve(self, fpr: np.ndarray, tpr: np.ndarray, title: str) -> None:
        self._fpr = np.asarray(fpr, dtype=float)
        self._tpr = np.asarray(tpr, dtype=float)
        self._curve.setData(self._fpr, self._tpr)
        self.plot.setTitle(title, color=FOREGROUND, size="11pt")

    def set_point(self, index: int) -> None:
        self.point_index = index
        self._marker.setPos(float(self._fpr[index]), float(self._tpr[index]))

    def marker_position(self) -> tuple[float, float]:
        pos = self._marker.pos()
        return float(pos.x()), float(pos.y())

    def widget_position(self, fpr: float, tpr: float) -> QPointF:
        """Where the point (fpr, tpr) is in the plot widget's coordinates (for tests)."""
        scene = self._view.mapViewToScene(QPointF(fpr, tpr))
        return QPointF(self.plot.mapFromScene(scene))

    def _pick(self, position: QPointF) -> None:
        if self._fpr.size == 0:
            return
        distance = (self._fpr - position.x()) ** 2 + (self._tpr - position.y()) ** 2
        self.point_picked.emit(int(np.argmin(distance)))
