"""The image view's measurements: the chosen tool, the measurements shown, calibration.

:class:`MeasurementController` belongs to one :class:`~medviewer.gui.image_view.ImageView`.
It turns the canvas's tool drags and clicks into points (``gui/measurement_layer.py``),
computes each measurement's values with ``medviewer.app.measurements`` (the file's pixel
spacing, or this image's calibration; ROI statistics on the frame in modality units), draws
it, and tells the view's signals: ``measurement_added`` for each new one and
``measurements_changed`` whenever the list changes, also when a new image clears it, so
nothing (a status bar, a label store) keeps showing a measurement that is gone.

Measurements belong to a frame: only the current frame's are shown. A calibration belongs
to the image (its path) for the rest of the session and re-measures what is on it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QInputDialog, QLineEdit

from medviewer.errors import UserError
from medviewer.gui.lazy import LazyModule
from medviewer.gui.view_tools import TOOLS

if TYPE_CHECKING:
    from medviewer.app import measurements
    from medviewer.app.measurements import Measurement
    from medviewer.dicom.pixels import Spacing
    from medviewer.gui import measurement_layer
    from medviewer.gui.view_host import MeasuringView
else:
    measurements = LazyModule("medviewer.app.measurements")
    measurement_layer = LazyModule("medviewer.gui.measurement_layer")

log = logging.getLogger(__name__)

PICK_TOLERANCE_SCREEN_PX = 8.0  # a right click this close to a measurement picks it


class ShownMeasurement:
    """A measurement on the image: its record (plain data) and its graphic."""

    def __init__(self, record: Measurement, graphic: Any, length_unit: str = "mm") -> None:
        self.record = record
        self.graphic = graphic
        self.length_unit = length_unit  # the unit its text shows lengths and areas in

    @property
    def items(self) -> list[Any]:
        return self.graphic.items

    @property
    def kind(self) -> str:
        return self.record.kind

    @property
    def points(self) -> tuple[tuple[float, float], ...]:
        return self.record.points

    @property
    def length_mm(self) -> float | None:
        return self.record.values.get("length_mm")

    def label(self) -> str:
        """The text beside it on the image ('12.3 mm (Pixel Spacing)')."""
        return self.record.text(self.length_unit)

    def summary(self) -> str:
        """One line for a status bar ('Distance 12.3 mm (Pixel Spacing)')."""
        return self.record.summary(self.length_unit)


class MeasurementController(QObject):
    """An image view's measurements (``ImageView.measures``): the API the label store and
    the main window use; points are image coordinates (x = column, y = row)."""

    def __init__(self, view: MeasuringView) -> None:
        super().__init__(view)
        self._view = view
        self.shown: list[ShownMeasurement] = []
        self.tool: str | None = None
        self._layer: Any = None  # MeasurementLayer, made with the canvas
        self._calibrations: dict[str, Spacing] = {}  # image path -> calibrated spacing
        self.pending_dialog: QInputDialog | None = None  # a question about to complete a tool
        self._spacing_text: tuple[tuple, str] | None = None
        self.length_unit = "mm"  # lengths and areas are shown in it (stored in mm)
        view.view_changed.connect(self._fit_captions)

    def _fit_captions(self) -> None:
        """Each caption on screen and, where it can, clear of the captions placed before
        it and of the other measurements' shapes."""
        outlines = [shown.graphic.outline_on_screen() for shown in self.shown]
        taken: list = []
        for index, shown in enumerate(self.shown):
            avoid = [rect for other, rect in enumerate(outlines)
                     if other != index and rect is not None]
            rect = shown.graphic.fit_caption(taken, avoid)
            if rect is not None:
                taken.append(rect)

    # ------------------------------------------------------------ the tool
    @property
    def layer(self):
        if self._layer is None:
            self._layer = measurement_layer.MeasurementLayer(self._view, self._preview_text)
            self._layer.completed.connect(self._on_completed)
            self._layer.set_tool(self.tool)
        return self._layer

    def set_tool(self, name: str | None) -> None:
        self.tool = name if name in TOOLS else None
        if self._layer is not None:
            self._layer.set_tool(self.tool)

    def drag(self, start: tuple[float, float], now: tuple[float, float], finished: bool) -> None:
        self.layer.drag(start, now, finished)

    def click(self, point: tuple[float, float]) -> None:
        self.layer.click(point)

    def hover(self, point: tuple[float, float]) -> None:
        if self._layer is not None and self._layer.drawing:
            self._layer.hover(point)

    def cancel_drawing(self) -> None:
        if self._layer is not None:
            self._layer.cancel()
            self._layer.clear_probe()

    def _on_completed(self, tool: str, points: tuple) -> None:
        if tool == "calibrate":
            self._ask("Calibrate", "Known length of the line you drew, in mm:", "number",
                      lambda mm: self._calibrate_or_say(points, mm))
        elif tool == "text":
            self._ask("Text note", "Note:", "text",
                      lambda text: text.strip() and self.add("text", points, label=text.strip()))
        else:
            try:
                self.add(TOOLS[tool].kind, points)
            except UserError as exc:
                self._view.show_message(str(exc))

    def _ask(self, title: str, prompt: str, kind: str, done) -> None:
        """A non-blocking question: ``done(answer)`` runs when it is accepted."""
        dialog = QInputDialog(self._view)
        dialog.setWindowTitle(title)
        dialog.setLabelText(prompt)
        if kind == "number":
            dialog.setInputMode(QInputDialog.InputMode.DoubleInput)
            dialog.setDoubleRange(0.001, 100_000.0)
            dialog.setDoubleDecimals(2)
            dialog.setDoubleValue(10.0)
            dialog.doubleValueSelected.connect(done)
        else:
            dialog.setInputMode(QInputDialog.InputMode.TextInput)
            dialog.setTextEchoMode(QLineEdit.EchoMode.Normal)
            dialog.textValueSelected.connect(done)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.finished.connect(lambda _result: setattr(self, "pending_dialog", None))
        self.pending_dialog = dialog
        dialog.open()

    def _preview_text(self, tool: str, points: tuple) -> str:
        view = self._view
        if view.instance is None:
            return ""
        if tool == "probe":
            return view.pixel_readout(*points[0]) if points else ""
        if tool == "calibrate":
            return f"{measurements.length(*points[:2]):.1f} px" if len(points) >= 2 else ""
        kind = TOOLS[tool].kind
        if len(points) != measurements.POINTS_PER_KIND.get(kind, 0):
            return ""  # e.g. an angle's first arm: nothing to say yet
        try:
            return self._measure(kind, points).text(self.length_unit)
        except UserError:
            return ""

    # ------------------------------------------------------------ measuring
    def image_key(self) -> str:
        return str(self._view.instance.path) if self._view.instance is not None else ""

    def spacing(self, frame: int | None = None) -> Spacing | None:
        """The calibration for this image, else the file's pixel spacing for the frame
        (the current one unless said)."""
        view = self._view
        if view.instance is None:
            return None
        calibrated = self._calibrations.get(self.image_key())
        if calibrated is not None:
            return calibrated
        try:
            return view.instance.pixel_spacing(view.frame if frame is None else frame)
        except UserError:
            return None

    def _measure(self, kind: str, points, label: str = "", frame: int | None = None):
        view = self._view
        assert view.instance is not None
        frame = view.frame if frame is None else frame
        values = view.instance.modality_frame(frame) if kind in measurements.ROI_KINDS else None
        return measurements.measure(kind, points, frame=frame, spacing=self.spacing(frame),
                                    values=values, unit=view.instance.modality_unit, label=label)

    def add(self, kind: str, points, label: str = "") -> ShownMeasurement:
        """Measure on the current frame, draw it and tell the view's signals."""
        instance = self._view.instance
        if instance is None:
            raise UserError("There is no image to measure on.")
        # A drag that ran off the image ends at its edge: a measurement (and the label
        # store, which refuses points outside the image) belongs to the image.
        points = measurements.within_image(kind, points, instance.columns, instance.rows)
        shown = self._show(self._measure(kind, points, label))
        self._view.measurement_added.emit(shown)
        self._changed()
        return shown

    def _show(self, record: Measurement, fit: bool = True) -> ShownMeasurement:
        graphic = measurement_layer.MeasurementGraphic(self._view, record.kind)
        graphic.place(record.points, record.text(self.length_unit))
        graphic.set_visible(record.frame == self._view.frame)
        shown = ShownMeasurement(record, graphic, self.length_unit)
        self.shown.append(shown)
        if fit:
            self._fit_captions()
        return shown

    def remove(self, shown: ShownMeasurement) -> None:
        if shown in self.shown:
            self.shown.remove(shown)
            shown.graphic.remove()
            self._fit_captions()
            self._changed()

    def clear(self, announce: bool = True) -> None:
        had = bool(self.shown)
        for shown in self.shown:
            shown.graphic.remove()
        self.shown.clear()
        if had and announce:
            self._changed()

    def records(self) -> list[Measurement]:
        return [shown.record for shown in self.shown]

    def set_records(self, records) -> None:
        """Show these measurements (e.g. read back from the label store) instead of the
        current ones; records from other frames are kept and shown on their frame."""
        self.clear(announce=False)
        for record in records:
            self._show(record, fit=False)
        self._fit_captions()  # once for all, not once per record
        self._changed()

    def set_length_unit(self, unit: str) -> None:
        """Show lengths and areas in ``unit`` (``app.measurements.LENGTH_UNITS``) from now
        on, the measurements on screen included; what is stored does not change."""
        if unit == self.length_unit:
            return  # before the check: start-up does not load the measurement math
        if unit not in measurements.LENGTH_UNITS:
            raise ValueError(f"unknown length unit {unit!r}")
        self.length_unit = unit
        for shown in self.shown:
            shown.length_unit = unit
            shown.graphic.place(shown.record.points, shown.record.text(unit))
        self._fit_captions()

    def on_frame_changed(self) -> None:
        for shown in self.shown:
            shown.graphic.set_visible(shown.record.frame == self._view.frame)
        self._fit_captions()

    def on_image_changed(self) -> None:
        self.cancel_drawing()
        self.clear()

    def _changed(self) -> None:
        self._view.measurements_changed.emit(self.records())

    def nearest(self, x: float, y: float) -> ShownMeasurement | None:
        """The measurement on this frame nearest ``point``, within a few screen pixels."""
        view = self._view
        tolerance = PICK_TOLERANCE_SCREEN_PX / max(view.zoom_percent() / 100.0, 1e-6)
        candidates = [(shown.graphic.distance_to((x, y)), index) for index, shown in
                      enumerate(self.shown) if shown.record.frame == view.frame]
        if not candidates:
            return None
        distance, index = min(candidates)
        return self.shown[index] if distance <= tolerance else None

    # ------------------------------------------------------------ calibration
    def _calibrate_or_say(self, points, known_mm: float) -> None:
        try:
            self.calibrate(points[0], points[1], known_mm)
        except UserError as exc:
            self._view.show_message(str(exc))

    def calibrate(self, start: tuple[float, float], end: tuple[float, float],
                  known_mm: float) -> Spacing:
        """From now on this image measures with the spacing that makes start-end known_mm."""
        view = self._view
        if view.instance is None:
            raise UserError("There is no image to calibrate.")
        spacing = measurements.calibrated_spacing(start, end, known_mm, view.pixel_aspect())
        self._calibrations[self.image_key()] = spacing
        self._remeasure_all()
        return spacing

    def clear_calibration(self) -> None:
        """Back to the file's pixel spacing (or none) for this image."""
        if self._calibrations.pop(self.image_key(), None) is not None:
            self._remeasure_all()

    def _remeasure_all(self) -> None:
        view = self._view
        assert view.instance is not None
        for shown in self.shown:
            record = shown.record
            values = None
            if record.kind in measurements.ROI_KINDS:
                try:
                    values = view.instance.modality_frame(record.frame)
                except UserError:
                    pass  # a frame that no longer decodes keeps its area only
            shown.record = measurements.remeasure(record, spacing=self.spacing(record.frame),
                                                  values=values,
                                                  unit=view.instance.modality_unit)
            shown.graphic.place(shown.record.points, shown.record.text(self.length_unit))
        self._fit_captions()
        if self.shown:
            self._changed()
        view.spacing_changed.emit()

    @property
    def is_calibrated(self) -> bool:
        return self.image_key() in self._calibrations

    def spacing_text(self) -> str:
        """Where lengths come from, for the corner text ('' when nowhere); remembered per
        image, frame and calibration, since the corner text asks on every zoom step."""
        view = self._view
        key = (view.instance, view.frame, self._calibrations.get(self.image_key()))
        if self._spacing_text is not None and self._spacing_text[0] == key:
            return self._spacing_text[1]
        spacing = self.spacing()
        if spacing is None:
            text = ""
        elif spacing.attribute == "calibrated":
            text = f"calibrated ({spacing.col_mm:.3g} mm/pixel)"
        else:
            text = spacing.source
        self._spacing_text = (key, text)
        return text
