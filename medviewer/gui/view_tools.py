"""The image view's tools and mouse mapping as plain data (no Qt widgets, no pyqtgraph).

A *tool* decides what a left drag or click on the image does; none chosen, the left button
does what the mouse mapping says. The mapping's names are the settings' names
(``mouse_left_drag`` ... ``mouse_wheel`` in ``medviewer.settings``).
"""

from __future__ import annotations

from dataclasses import dataclass

from medviewer.settings import DRAG_ACTIONS, WHEEL_ACTIONS  # one list, the settings'

DRAG_ACTION_NAMES = {"window_level": "Window/level: right/left = wider/narrower, down/up = "
                                     "higher/lower centre",
                     "pan": "Pan", "zoom": "Zoom: up = in, down = out",
                     "tool": "The chosen tool (pan when none is chosen)"}


@dataclass(frozen=True)
class MouseMapping:
    """What each button's drag and the wheel do; the defaults are the settings' defaults."""

    left: str = "window_level"
    middle: str = "pan"
    right: str = "zoom"
    wheel: str = "frames"

    def __post_init__(self) -> None:
        for button in ("left", "middle", "right"):
            if getattr(self, button) not in DRAG_ACTIONS:
                raise ValueError(f"{button} drag must be one of {', '.join(DRAG_ACTIONS)}, "
                                 f"not {getattr(self, button)!r}")
        if self.wheel not in WHEEL_ACTIONS:
            raise ValueError(f"the wheel must be one of {', '.join(WHEEL_ACTIONS)}, "
                             f"not {self.wheel!r}")

    @classmethod
    def from_settings(cls, settings: object) -> MouseMapping:
        """From a Settings object's mouse_* fields; a field it lacks keeps its default."""
        default = cls()
        values = {button: getattr(settings, f"mouse_{button}_drag", getattr(default, button))
                  for button in ("left", "middle", "right")}
        values["wheel"] = getattr(settings, "mouse_wheel", default.wheel)
        try:
            return cls(**values)
        except ValueError:
            return default

    def gestures(self) -> list[tuple[str, str]]:
        """Rows for Help > Keyboard shortcuts: (gesture, what it does)."""
        wheel = ("Scroll frames (zoom on a single-frame image)" if self.wheel == "frames"
                 else "Zoom about the cursor")
        return [
            ("Left drag", f"{DRAG_ACTION_NAMES[self.left]}; with a tool chosen, the tool"),
            ("Middle drag", DRAG_ACTION_NAMES[self.middle]),
            ("Right drag", DRAG_ACTION_NAMES[self.right]),
            ("Right click", "Menu: tools, W/L presets, export, reset"),
            ("Wheel", wheel),
        ]


@dataclass(frozen=True)
class Tool:
    name: str
    kind: str  # the measurement kind it makes ("" for calibrate and probe)
    steps: tuple[str, ...]  # "drag" or "click", in order
    title: str  # menu text
    key: str = ""
    tip: str = ""

    @property
    def action_name(self) -> str:
        """The view's action for it (distance keeps its historic name, 'measure')."""
        return "measure" if self.name == "distance" else f"tool_{self.name}"


TOOLS: dict[str, Tool] = {tool.name: tool for tool in (
    Tool("distance", "distance", ("drag",), "&Measure distance", "M",
         "Left-drag on the image to measure a distance"),
    Tool("angle", "angle", ("drag", "click"), "Measure &angle", "A",
         "Left-drag the first arm to the vertex, then click the end of the second arm"),
    Tool("cobb", "cobb", ("drag", "drag"), "&Cobb angle", "C",
         "Left-drag along one endplate, then along the other"),
    Tool("rectangle", "rectangle", ("drag",), "Rectangle R&OI", "B",
         "Left-drag a box: mean, SD, min, max and area"),
    Tool("ellipse", "ellipse", ("drag",), "&Ellipse ROI", "E",
         "Left-drag an ellipse's box: mean, SD, min, max and area"),
    Tool("probe", "", ("click",), "Pixel &probe", "X",
         "Press on the image to read the value under the pointer"),
    Tool("text", "text", ("click",), "Te&xt note", "",
         "Click where the note points, then type it"),
    Tool("calibrate", "", ("drag",), "Ca&librate from a known distance…", "",
         "Left-drag over something of known length, then type its length in mm"),
)}
