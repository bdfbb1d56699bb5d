"""The saliency overlay of the AI's reads: which class's map, CAM or occlusion, colours,
opacity, and the jobs that make the maps.

:class:`AiSaliency` is owned by :class:`~medviewer.gui.results_panel.AiReader` (whose read it
explains and whose worker tracking it shares). Which class is shown is the one rule in
``app/ai_reading.overlay_class_index``: the reader's choice, else the decision's class to
explain (the most probable flagged finding), else none: an image with nothing flagged gets
no map unless the reader picks a class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QMenu

from medviewer.app.ai_reading import (
    ImageRead, Painter, cam_map_job, occlusion_map_job, occlusion_passes, overlay_class_index,
)
from medviewer.gui.overlay import OverlayMap, SaliencyOverlay, saliency_rgba
from medviewer.gui.workers import JobWorker
from medviewer.jobs import Progress

if TYPE_CHECKING:
    import numpy as np

    from medviewer.app.ai_reading import AiState
    from medviewer.gui.image_view import ImageView
    from medviewer.gui.results_view import ResultsPanel


class SaliencyHost(Protocol):
    """What the saliency uses of the AI reader that owns it (results_panel.AiReader)."""

    state: AiState
    panel: ResultsPanel
    view: ImageView
    model: Any  # the loaded ModelSession, or None
    read: ImageRead | None
    opacity_save_timer: Any  # QTimer: saves the opacity a moment after the slider stops

    def status(self, sentence: str, ms: int = 10_000) -> None: ...

    def start(self, worker: JobWorker) -> JobWorker: ...


class AiSaliency(QObject):
    """The overlay on the image, its controls in the results panel, and its jobs."""

    shown = Signal(object)  # OverlayMap now on the image

    def __init__(self, reader: SaliencyHost, opacity: float, show_by_default: bool) -> None:
        super().__init__(reader)  # type: ignore[arg-type] - the reader is a QObject
        self.reader = reader
        self.overlay = SaliencyOverlay(reader.view, opacity)
        self._occlusion_wanted = False  # the user asked for occlusion maps on this model
        self._worker: JobWorker | None = None
        self._show_by_default = show_by_default

    def add_actions(self, menu: QMenu) -> None:
        self.overlay_action = menu.addAction("Show &saliency overlay")
        self.overlay_action.setCheckable(True)
        self.overlay_action.setChecked(self._show_by_default)
        self.overlay_action.setShortcut(QKeySequence("O"))
        self.overlay_action.toggled.connect(self.set_overlay_enabled)

    def connect_panel(self) -> None:
        panel = self.reader.panel
        panel.overlay_check.setChecked(self.overlay_action.isChecked())
        panel.overlay_check.toggled.connect(self.overlay_action.setChecked)
        panel.class_combo.currentIndexChanged.connect(self._on_class_chosen)
        panel.compute_button.clicked.connect(self.compute_occlusion)
        panel.saliency_cancel.clicked.connect(self.cancel)
        panel.opacity_slider.valueChanged.connect(self._on_opacity_slider)
        panel.colour_combo.currentTextChanged.connect(self.overlay.set_colour_map)
        panel.opacity_slider.setValue(round(self.overlay.opacity * 100))
        panel.opacity_value.setText(f"{panel.opacity_slider.value()} %")

    # ------------------------------------------------------------ what the reader tells it
    def model_changed(self) -> None:
        """Another model: its maps and the reader's wish for occlusion maps are gone."""
        self._occlusion_wanted = False
        self.overlay.clear()

    def stop_jobs(self) -> None:
        """The shown image changed: a map being made for the old one is dropped."""
        if self._worker is not None:
            self._worker.cancel()
        self._worker = None
        self.reader.panel.set_saliency_progress(None, running=False)

    def show_read(self, read: ImageRead) -> None:
        """A read is shown: the class box follows the rule; its map is shown, made, or not."""
        panel = self.reader.panel
        index = self.class_index(read)
        panel.class_combo.blockSignals(True)
        panel.class_combo.setCurrentIndex(index)
        panel.class_combo.blockSignals(False)
        self.update_controls()
        if index < 0:  # nothing flagged and no class chosen: no map is shown silently
            self.overlay.clear()
        elif read.cam is not None and index in read.maps:
            self._show_cam(index)
        elif read.cam is not None:
            self._start_cam_map(index)
        elif self._occlusion_wanted and self.overlay_action.isChecked():
            self.compute_occlusion()

    def frame_changed(self, index: int) -> None:
        if self.reader.read is not None and self.overlay.map is not None:
            # The map belongs to the frame that was read; another frame needs its own read.
            self.overlay.set_enabled(self.overlay_action.isChecked()
                                     and index == self.overlay.map.frame)

    # ------------------------------------------------------------ maps
    def painter(self) -> tuple[str, Painter]:
        """How the read jobs colour a map: the overlay's colour map, by name."""
        name = self.overlay.colour_map
        return name, lambda values: saliency_rgba(values, name)

    # ------------------------------------------------------------ saliency
    def class_index(self, read: ImageRead) -> int:
        return overlay_class_index(read.prediction, self.reader.state.chosen_class)

    def update_controls(self) -> None:
        panel = self.reader.panel
        model = self.reader.model
        if model is None:
            panel.method_label.setText("No model loaded.")
            panel.compute_button.hide()
            return
        if model.has_cam:
            panel.method_label.setText("Class activation map, from the same forward pass "
                                       "as the result.")
            panel.compute_button.hide()
            return
        instance = self.reader.view.instance
        if instance is None:
            panel.method_label.setText("Occlusion: this model has no activation-map output.")
            panel.compute_button.hide()
            return
        passes = occlusion_passes(instance.rows, instance.columns, model.card)
        cost = ""
        if self.reader.read is not None and self.reader.read.prediction.inference_ms > 0:
            cost = f", about {passes * self.reader.read.prediction.inference_ms / 1000.0:.1f} s"
        panel.method_label.setText(f"Occlusion (the model has no activation-map output): "
                                   f"{passes} forward passes{cost}.")
        panel.compute_button.setVisible(self.reader.read is not None)

    def _on_class_chosen(self, index: int) -> None:
        if index < 0 or self.reader.read is None:
            return
        self.reader.state.chosen_class = self.reader.panel.class_combo.itemText(index)
        if self.reader.read.cam is not None:
            if index in self.reader.read.maps:
                self._show_cam(index)
            else:
                self._start_cam_map(index)
        elif self._occlusion_wanted or self.overlay.map is not None:
            self.compute_occlusion()

    def _start_cam_map(self, index: int) -> None:
        read = self.reader.read
        assert read is not None
        if self._worker is not None:
            self._worker.cancel()
        painter = self.painter()
        worker = JobWorker(lambda cancel: cam_map_job(read, index, painter, cancel),
                           "mapping the activation map")
        worker.finished.connect(
            lambda result, w=worker, r=read: self._on_cam_map(w, r, result))
        worker.failed.connect(self._on_failed)
        self._worker = worker
        self.reader.start(worker)

    def _on_cam_map(self, worker: JobWorker, read: ImageRead, index: int) -> None:
        if worker is not self._worker:
            return
        self._worker = None
        if read is self.reader.read and self.reader.panel.class_combo.currentIndex() == index:
            self._show_cam(index)

    def _show_cam(self, index: int) -> None:
        read = self.reader.read
        assert read is not None
        colours, picture = read.pictures.get(index, ("", None))
        self._show_map(read.maps[index], "cam", index, read.frame, picture, colours)

    def compute_occlusion(self) -> JobWorker | None:
        """Occlusion map for the chosen class on a worker, with progress and Cancel."""
        read, model = self.reader.read, self.reader.model
        if read is None or model is None:
            self.reader.status("Run the AI on an image first.")
            return None
        index = self.reader.panel.class_combo.currentIndex()
        if index < 0:  # nothing flagged: the reader picks the class to explain
            self.reader.panel.method_label.setText("Nothing is flagged: choose the class whose "
                                            "evidence you want to see.")
            return None
        self._occlusion_wanted = True
        if self._worker is not None:
            self._worker.cancel()
        instance, frame, painter = read.instance, read.frame, self.painter()
        worker = JobWorker(
            lambda cancel: occlusion_map_job(model, instance, frame, index, painter, cancel),
            "computing the occlusion map", progress_per_second=8)
        worker.event.connect(self._on_event)
        worker.finished.connect(
            lambda result, w=worker, r=read: self._on_occlusion(w, r, result))
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(lambda: self._on_cancelled(worker))
        self._worker = worker
        self.reader.panel.set_saliency_progress(None, running=True)
        return self.reader.start(worker)

    def _on_event(self, event: Any) -> None:
        if self.sender() is self._worker and isinstance(event, Progress):
            self.reader.panel.set_saliency_progress(event, running=True)

    def _on_occlusion(self, worker: JobWorker, read: ImageRead,
                      made: tuple[Any, np.ndarray, str]) -> None:
        result, picture, colours = made
        if worker is not self._worker:
            return
        self._worker = None
        self.reader.panel.set_saliency_progress(None, running=False)
        if read is not self.reader.read:
            return
        self.reader.panel.method_label.setText(
            f"Occlusion: {result.forward_passes} forward passes in {result.seconds:.1f} s.")
        self._show_map(result.values, "occlusion", result.class_index, read.frame, picture,
                       colours)

    def _on_failed(self, sentence: str) -> None:
        if self.sender() is not self._worker:
            return
        self._worker = None
        self.reader.panel.set_saliency_progress(None, running=False)
        self.reader.panel.method_label.setText(sentence)
        self.reader.status(sentence)

    def _on_cancelled(self, worker: JobWorker) -> None:
        if worker is self._worker:  # not a job replaced by the one now running
            self._worker = None
            self.reader.panel.set_saliency_progress(None, running=False)

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None
            self._occlusion_wanted = False  # until asked again
            self.reader.panel.set_saliency_progress(None, running=False)
            self.update_controls()
            self.reader.status("Saliency map cancelled.")

    @property
    def running(self) -> bool:
        return self._worker is not None and self._worker.is_running()

    def _show_map(self, values: np.ndarray, method: str, index: int, frame: int,
                  picture: np.ndarray | None = None, colours: str = "") -> None:
        read = self.reader.read
        if read is None or self.reader.view.instance is not read.instance:
            return
        overlay_map = OverlayMap(values, method, read.prediction.scores[index].name, frame,
                                 picture, colours)
        self.overlay.set_map(overlay_map)
        self.overlay.set_enabled(self.overlay_action.isChecked()
                                 and self.reader.view.frame == frame)
        self.shown.emit(overlay_map)

    def set_overlay_enabled(self, on: bool) -> None:
        """Models > Show saliency overlay (O); for occlusion models this computes the map."""
        if self.reader.panel.overlay_check.isChecked() != bool(on):
            self.reader.panel.overlay_check.blockSignals(True)
            self.reader.panel.overlay_check.setChecked(bool(on))
            self.reader.panel.overlay_check.blockSignals(False)
        self.overlay.set_enabled(bool(on))
        read = self.reader.read
        if on and read is not None and read.cam is None and self.overlay.map is None \
                and not self.running:
            self.compute_occlusion()

    def _on_opacity_slider(self, value: int) -> None:
        self.overlay.set_opacity(value / 100.0)
        self.reader.opacity_save_timer.start()
