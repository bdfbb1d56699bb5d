"""The bar under a multi-frame image: play/pause, the frame slider, 'Frame n / N', cine speed;
and the cine timer that steps the view while playing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QSpinBox, QToolButton, QWidget

DEFAULT_FPS = 10


def file_fps(header: Any) -> int:
    """The cine speed the file suggests (Cine Rate, Recommended Display Frame Rate, Frame
    Time), 1..60 frames per second; DEFAULT_FPS when it suggests none."""
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


class FrameBar(QWidget):
    """``set_frame(index)`` is called for the slider; ``step(+1)`` on each cine tick."""

    def __init__(self, set_frame: Callable[[int], None], step: Callable[[int], None],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("frameBar")
        self.play_button = QToolButton()
        self.play_button.setCheckable(True)
        self.play_button.setText("▶ Play")
        self.play_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.play_button.toggled.connect(self.set_playing)
        self.frame_slider = QSlider(Qt.Orientation.Horizontal)
        self.frame_slider.setMinimum(0)
        self.frame_slider.valueChanged.connect(set_frame)
        self.frame_label = QLabel()
        self.frame_label.setMinimumWidth(90)
        self.fps_spin = QSpinBox()
        self.fps_spin.setRange(1, 60)
        self.fps_spin.setValue(DEFAULT_FPS)
        self.fps_spin.setSuffix(" fps")
        self.fps_spin.setToolTip("Cine speed in frames per second")
        self.fps_spin.valueChanged.connect(self._on_fps_changed)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 3, 6, 3)
        layout.addWidget(self.play_button)
        layout.addWidget(self.frame_slider, 1)
        layout.addWidget(self.frame_label)
        layout.addWidget(self.fps_spin)
        self._frames = 0
        self._timer = QTimer(self)
        self._timer.timeout.connect(lambda: step(1))
        self.hide()

    def set_frames(self, index: int, count: int, fps: int) -> None:
        """A new image: ``count`` frames (the bar shows only for more than one)."""
        self._frames = count
        self.frame_slider.blockSignals(True)
        self.frame_slider.setMaximum(max(count - 1, 0))
        self.frame_slider.blockSignals(False)
        self.fps_spin.setValue(fps)
        self.show_index(index)
        self.setVisible(count > 1)

    def show_index(self, index: int) -> None:
        if self.frame_slider.value() != index:
            self.frame_slider.blockSignals(True)
            self.frame_slider.setValue(index)
            self.frame_slider.blockSignals(False)
        self.frame_label.setText(f"Frame {index + 1} / {self._frames}")

    def set_playing(self, playing: bool) -> None:
        playing = bool(playing) and self._frames > 1
        if self.play_button.isChecked() != playing:
            self.play_button.blockSignals(True)
            self.play_button.setChecked(playing)
            self.play_button.blockSignals(False)
        self.play_button.setText("❚❚ Pause" if playing else "▶ Play")
        if playing:
            self._timer.start(int(1000 / self.fps_spin.value()))
        else:
            self._timer.stop()

    @property
    def is_playing(self) -> bool:
        return self._timer.isActive()

    def _on_fps_changed(self, fps: int) -> None:
        if self._timer.isActive():
            self._timer.setInterval(int(1000 / fps))
