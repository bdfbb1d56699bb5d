"""The pyqtgraph drawing surface of the image view, imported only when first needed.

pyqtgraph takes about half a second to import, so :class:`medviewer.gui.image_view.ImageView`
builds this canvas after the main window has painted (or when an image or an overlay first
needs it), instead of at start-up.

What each mouse button's drag does is the view's *mouse mapping* (``drag_actions``, one of
``medviewer.settings.DRAG_ACTIONS`` per button); while a measurement tool is
chosen the left button draws with it whatever the mapping says.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPointF, Qt, Signal

from medviewer.gui.lazy import import_pyqtgraph

pg = import_pyqtgraph()

ZOOM_PER_PIXEL = 1.01  # a zoom drag scales by this per screen pixel (down = out)


class ImageViewBox(pg.ViewBox):
    """ViewBox whose drags, clicks and wheel follow the image view's mouse mapping."""

    window_dragged = Signal(float, float, bool)  # dx, dy screen pixels since press; finished
    tool_dragged = Signal(QPointF, QPointF, bool)  # scene start, scene now, finished
    tool_clicked = Signal(QPointF)  # scene position of a left click while a tool is chosen
    wheel_frames = Signal(int)  # +1 / -1: the wheel asks for the next / previous frame
    context_requested = Signal(QPointF, QPointF)  # scene position, screen position

    def __init__(self) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False, defaultPadding=0.02)
        self.tool_active = False
        self.drag_actions: dict[Qt.MouseButton, str] = {
            Qt.MouseButton.LeftButton: "window_level",
            Qt.MouseButton.MiddleButton: "pan",
            Qt.MouseButton.RightButton: "zoom",
        }
        self.wheel_action = "frames"
        self.can_scroll_frames = False  # set by the view: the image has several frames

    def drag_action(self, button: Qt.MouseButton) -> str:
        if button == Qt.MouseButton.LeftButton and self.tool_active:
            return "tool"
        action = self.drag_actions.get(button, "pan")
        return "pan" if action == "tool" else action  # "tool" with no tool chosen pans

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 - Qt naming
        action = self.drag_action(ev.button())
        ev.accept()
        if action == "window_level":
            delta = ev.screenPos() - ev.buttonDownScreenPos(ev.button())
            self.window_dragged.emit(delta.x(), delta.y(), ev.isFinish())
        elif action == "tool":
            self.tool_dragged.emit(ev.buttonDownScenePos(ev.button()), ev.scenePos(),
                                   ev.isFinish())
        elif action == "zoom":
            self._zoom_drag(ev)
        else:
            self._pan_drag(ev)

    def _view_delta(self, start: QPointF, end: QPointF) -> QPointF:
        inverse, _ = self.childGroup.transform().inverted()
        return inverse.map(end) - inverse.map(start)

    def _pan_drag(self, ev) -> None:
        shift = self._view_delta(ev.pos(), ev.lastPos())  # the view moves against the mouse
        self._resetTarget()
        self.translateBy(x=shift.x(), y=shift.y())
        self.sigRangeChangedManually.emit(self.state["mouseEnabled"])

    def _zoom_drag(self, ev) -> None:
        dy = (ev.screenPos() - ev.lastScreenPos()).y()
        scale = ZOOM_PER_PIXEL ** dy  # drag up: below 1, the view shrinks: zoom in
        inverse, _ = self.childGroup.transform().inverted()
        center = inverse.map(ev.buttonDownPos(ev.button()))
        self._resetTarget()
        self.scaleBy(x=scale, y=scale, center=center)
        self.sigRangeChangedManually.emit(self.state["mouseEnabled"])

    def mouseClickEvent(self, ev):  # noqa: N802 - Qt naming
        if ev.button() == Qt.MouseButton.RightButton:
            ev.accept()
            self.context_requested.emit(ev.scenePos(), ev.screenPos())
        elif ev.button() == Qt.MouseButton.LeftButton and self.tool_active:
            ev.accept()
            self.tool_clicked.emit(ev.scenePos())
        else:
            super().mouseClickEvent(ev)

    def wheelEvent(self, ev, axis=None):  # noqa: N802 - Qt naming
        if self.wheel_action == "frames" and self.can_scroll_frames:
            ev.accept()
            self.wheel_frames.emit(-1 if ev.delta() > 0 else 1)  # away from you: previous
            return
        super().wheelEvent(ev, axis)


class LeaveWatcher(QObject):
    """Calls back when the mouse leaves the watched widget (to clear the cursor readout)."""

    def __init__(self, callback, parent: QObject) -> None:
        super().__init__(parent)
        self._callback = callback

    def eventFilter(self, watched, event):  # noqa: N802 - Qt naming
        if event.type() == QEvent.Type.Leave:
            self._callback()
        return False


class ImageGraphicsView(pg.GraphicsView):
    """GraphicsView that lets its owner paint over the scene in viewport pixels (the corner
    text), in the same paint as the image."""

    def __init__(self) -> None:
        super().__init__(background="k")
        self.foreground_painter = None  # callable(painter, width, height)

    def drawForeground(self, painter, rect):  # noqa: N802 - Qt naming
        super().drawForeground(painter, rect)
        if self.foreground_painter is not None:
            painter.save()
            painter.resetTransform()
            viewport = self.viewport()
            self.foreground_painter(painter, viewport.width(), viewport.height())
            painter.restore()


def make_canvas():
    """(graphics view, view box, image item), wired together; black background."""
    graphics_view = ImageGraphicsView()
    graphics_view.setObjectName("imageGraphicsView")
    graphics_view.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    view_box = ImageViewBox()
    graphics_view.setCentralItem(view_box)
    image_item = pg.ImageItem(axisOrder="row-major")
    view_box.addItem(image_item)
    graphics_view.viewport().setMouseTracking(True)
    # Files dropped on the image go to whoever holds the view (the main window, the grid).
    graphics_view.setAcceptDrops(False)
    graphics_view.viewport().setAcceptDrops(False)
    return graphics_view, view_box, image_item


def make_text_item(colour, anchor=(0, 1)):
    """A label that stays upright and unscaled whatever the view's rotation and zoom."""
    return pg.TextItem(color=colour, fill=pg.mkBrush(0, 0, 0, 160), anchor=anchor)
