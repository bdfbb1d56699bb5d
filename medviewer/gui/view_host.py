"""What the image view's parts (overlays, measurements, its menu) use of the view.

The parts are built by ``ImageView`` and hold it; typing them with these protocols instead of
``ImageView`` itself keeps the import graph one way (image_view -> part), so a part can
never start depending on more of the view than it says here.
"""

from __future__ import annotations

from typing import Any, Protocol


class OverlayHost(Protocol):
    """A view that hosts items drawn in its image's pixel grid."""

    def add_image_overlay(self, item: Any) -> None: ...


class DrawingView(OverlayHost, Protocol):
    """A view whose items also place captions in screen space (the measurement items)."""

    graphics_view: Any  # the QGraphicsView the image is drawn in


class ExportedView(Protocol):
    """What exporting the view as a picture reads."""

    instance: Any
    graphics_view: Any
    image_item: Any  # the pyqtgraph ImageItem the overlays are children of
    display_planes: Any  # gui.display_planes.DisplayPlanes (its shutter items stay)
    corner_overlay: Any  # gui.corner_text_overlay.CornerText


class MeasuringView(Protocol):
    """What the measurement layer needs: the shown image and frame, the view's signals and
    its readouts."""

    instance: Any  # medviewer.dicom.reader.Instance, or None
    frame: int
    measurement_added: Any  # Signal(object)
    measurements_changed: Any  # Signal(list)
    spacing_changed: Any  # Signal()
    view_changed: Any  # Signal()

    def show_message(self, text: str) -> None: ...

    def pixel_aspect(self) -> float: ...

    def zoom_percent(self) -> float: ...

    def pixel_readout(self, x: float, y: float) -> str: ...


class ActionView(Protocol):
    """What the view's tool, display and export actions drive."""

    instance: Any
    measures: Any  # gui.view_measurements.ViewMeasurements
    actions_by_name: dict[str, Any]

    def _action(self, name: str, text: str, keys: Any, slot: Any, *args: Any,
                **kwargs: Any) -> Any: ...

    def _on_tool_toggled(self, name: str, on: bool) -> None: ...

    def set_tool(self, name: str | None) -> None: ...

    def tool_actions(self) -> list[Any]: ...

    def preset_actions(self) -> list[Any]: ...

    def show_message(self, text: str) -> None: ...

    def clear_measurements(self) -> None: ...

    def clear_calibration(self) -> None: ...

    def set_corner_text_visible(self, on: bool) -> None: ...

    def set_overlay_planes_visible(self, on: bool) -> None: ...

    def set_shutter_visible(self, on: bool) -> None: ...
