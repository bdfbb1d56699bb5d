"""Window/level presets of the image view: which ones an image offers, their names, their VOI.

Qt-free (numpy and the DICOM pipeline, loaded when first used). Every preset has a name a
reader recognises: the file's own windows by their explanation, or, when the file gives
none, by the usual name of a matching standard window (CT) or by their number; the first
file window is the "From file" entry itself, not listed twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from medviewer.gui.lazy import LazyModule

if TYPE_CHECKING:
    import numpy as np

    from medviewer.dicom import pixels
    from medviewer.dicom.reader import Instance
else:
    np = LazyModule("numpy")
    pixels = LazyModule("medviewer.dicom.pixels")

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


@dataclass(frozen=True)
class Preset:
    key: str
    name: str  # menu text
    short: str = ""  # status bar text, before the centre/width

    @property
    def status_name(self) -> str:
        return self.short or self.name


def window_name(instance: Instance, window: pixels.Window, index: int) -> str:
    """The file window's explanation, else the usual name of a matching CT window, else ''."""
    if window.label and window.label != f"File window {index + 1}":
        return window.label
    if instance.modality == "CT":
        for name, center, width in CT_PRESETS:
            if abs(window.center - center) < 0.5 and abs(window.width - width) < 0.5:
                return name
    return ""


def presets_for(instance: Instance, frame: int) -> list[Preset]:
    """Every W/L choice for an image, in menu order."""
    windows = [] if instance.is_colour else instance.file_windows(frame)
    luts = [] if instance.is_colour or windows else instance.voi_luts()
    if windows:
        name = window_name(instance, windows[0], 0)
        detail = f"{name}, {windows[0].describe()}" if name else windows[0].describe()
        file_preset = Preset("file", f"From file ({detail})", f"From file ({name})" if name
                             else "From file")
    elif luts:
        file_preset = Preset("file", f"From file ({luts[0].describe()})", "From file")
    else:
        file_preset = Preset("file", "From file (none given: full range)", "From file")
    out = [file_preset, Preset("full", "Full range")]
    if instance.is_colour:
        return out
    for i, window in enumerate(windows[1:], start=1):
        name = window_name(instance, window, i) or f"File window {i + 1}"
        out.append(Preset(f"window:{i}", f"{name} ({window.describe()})", name))
    for i, lut in enumerate(instance.voi_luts()):
        out.append(Preset(f"voilut:{i}", f"VOI LUT: {lut.describe()}"))
    out.append(Preset("auto", "Auto (1st-99th percentile)", "Auto 1-99 %"))
    if instance.modality == "CT":
        out.extend(Preset(f"ct:{name}", f"{name} (C {c:g} / W {w:g})", name)
                   for name, c, w in CT_PRESETS)
    elif instance.modality in PROJECTION_MODALITIES:
        out.append(Preset("contrast", "High contrast (5th-95th percentile)",
                          "High contrast 5-95 %"))
    return out


def percentile_window(values: np.ndarray, low: float, high: float, label: str) -> pixels.Window:
    sample = values[:: max(1, values.shape[0] // 512), :: max(1, values.shape[1] // 512)]
    lo, hi = np.percentile(sample, [low, high])
    return pixels.Window((lo + hi) / 2.0, max(float(hi - lo), 1.0), "LINEAR", label)


def preset_voi(instance: Instance, frame: int, key: str) -> pixels.Voi | None:
    """The VOI a preset key stands for on ``frame``; KeyError/IndexError for unknown keys."""
    if key == "file":
        return instance.default_voi(frame)
    if key == "full":
        if instance.is_colour:
            return pixels.Window(127.5, 256.0, "LINEAR_EXACT", "Full range")
        return instance.full_range_voi(frame)
    kind, _, rest = key.partition(":")
    if kind == "window":
        return instance.file_windows(frame)[int(rest)]
    if kind == "voilut":
        return instance.voi_luts()[int(rest)]
    if kind == "ct":
        for name, center, width in CT_PRESETS:
            if name == rest:
                return pixels.Window(center, width, "LINEAR", name)
    values = instance.modality_frame(frame)
    if key == "auto":
        return percentile_window(values, 1, 99, "Auto")
    if key == "contrast":
        return percentile_window(values, 5, 95, "High contrast")
    raise KeyError(key)


def window_of(voi: pixels.Voi | None, data_window: pixels.Window) -> pixels.Window:
    """A linear window equivalent enough to start a W/L drag from."""
    if isinstance(voi, pixels.Window):
        return voi
    if isinstance(voi, pixels.VoiLut):
        n = float(len(voi.table))
        return pixels.Window(voi.first_mapped + n / 2.0, n, "LINEAR", "Custom")
    return data_window
