"""The pyqtgraph drawing surface of the image view, imported only when first needed.

pyqtgraph takes about half a second to import, so :class:`medviewer.gui.image_view.ImageView`
builds this canvas after the main window has painted (or when an image or an overlay first
needs it), instead of at start-up.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPointF, Qt, Signal

from medviewer.gui.lazy import import_pyqtgraph

pg = import_pyqtgraph()


class ImageViewBox(pg.ViewBox):
    """ViewBox with right-drag for W/L and left-drag for the ruler (in measure mode).

    Left drag pans and the wheel zooms, as in any pyqtgraph view.
    """

    window_dragged = Signal(float, float, bool)  # dx, dy screen pixels since press; finished
    measure_dragged = Signal(QPointF, QPointF, bool)  # scene start, scene now, finished

    def __init__(self) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False, defaultPadding=0.02)
        self.measuring = False

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 - Qt naming
        if ev.button() == Qt.MouseButton.RightButton:
            ev.accept()
            delta = ev.screenPos() - ev.buttonDownScreenPos(Qt.MouseButton.RightButton)
            self.window_dragged.emit(delta.x(), delta.y(), ev.isFinish())
            return
        if ev.button() == Qt.MouseButton.LeftButton and self.measuring:
            ev.accept()
            self.measure_dragged.emit(ev.buttonDownScenePos(Qt.MouseButton.LeftButton),
                                      ev.scenePos(), ev.isFinish())
            return
        super().mouseDragEvent(ev, axis)


class LeaveWatcher(QObject):
    """Calls back when the mouse leaves the watched widget (to clear the cursor readout)."""

    def __init__(self, callback, parent: QObject) -> None:
        super().__init__(parent)
        self._callback = callback

    def eventFilter(self, watched, event):  # noqa: N802 - Qt naming
        if event.type() == QEvent.Type.Leave:
            self._callback()
        return False


def make_canvas():
    """(graphics view, view box, image item), wired together; black background."""
    graphics_view = pg.GraphicsView(background="k")
    graphics_view.setObjectName("imageGraphicsView")
    graphics_view.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    view_box = ImageViewBox()
    graphics_view.setCentralItem(view_box)
    image_item = pg.ImageItem(axisOrder="row-major")
    view_box.addItem(image_item)
    graphics_view.viewport().setMouseTracking(True)
    # Files dropped on the image go to the main window, which opens them.
    graphics_view.setAcceptDrops(False)
    graphics_view.viewport().setAcceptDrops(False)
    return graphics_view, view_box, image_item


def make_text_item(colour, anchor=(0, 1)):
    """A label that stays upright and unscaled whatever the view's rotation and zoom."""
    return pg.TextItem(color=colour, fill=pg.mkBrush(0, 0, 0, 160), anchor=anchor)
