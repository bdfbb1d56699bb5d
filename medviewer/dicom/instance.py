"""An opened image: :class:`Instance` (a header plus lazily decoded frames) and the
process-wide cache of decoded frames it shares with every other Instance.

A leaf among the reading modules: ``reader`` (DICOM files) and ``images`` (PNG/JPEG) both
build Instances, and neither is imported here, so they need not import each other.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UID

from medviewer.dicom import overlay_planes, pixels, shutters
from medviewer.dicom.header import transfer_syntax_name
from medviewer.dicom.load_errors import LoadError, as_load_error


# ---------------------------------------------------------------- pixel cache


class PixelCache:
    """LRU cache of decoded frames bounded in bytes; shared by every Instance."""

    def __init__(self, budget_bytes: int = 1024**3) -> None:
        self.budget_bytes = budget_bytes
        self._items: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            array = self._items.get(key)
            if array is not None:
                self._items.move_to_end(key)
            return array

    def put(self, key: tuple, array: np.ndarray) -> None:
        if array.nbytes > self.budget_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._items[key] = array
            self._bytes += array.nbytes
            while self._bytes > self.budget_bytes and self._items:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= evicted.nbytes

    def set_budget(self, budget_bytes: int) -> None:
        """A new size limit (the settings' pixel_cache_mb); the oldest frames go to fit it."""
        with self._lock:
            self.budget_bytes = int(budget_bytes)
            while self._bytes > self.budget_bytes and self._items:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= evicted.nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    @property
    def used_bytes(self) -> int:
        return self._bytes


pixel_cache = PixelCache()


# ---------------------------------------------------------------- the Instance


FrameLoader = Callable[[int], np.ndarray]


class Instance:
    """One image object: its header (no pixel data) and lazily decoded frames.

    ``stored_frame`` gives decoded stored values (colour already as RGB), ``modality_frame``
    values in modality units (what the cursor readout shows), ``display_frame`` the 8-bit
    image exactly as shown with a given (or the default) VOI.
    """

    def __init__(self, path: Path, header: Dataset, load_frame: FrameLoader | None,
                 cache_key: tuple, content_hash: str | None = None) -> None:
        self.path = path
        self.header = header
        # SHA-256 of the file for non-DICOM images, which have no real SOP Instance UID.
        self.content_hash = content_hash
        self._load_frame = load_frame
        self._cache_key = cache_key
        self._shutter: shutters.DisplayShutter | None | bool = False  # False: not read yet
        self._overlays: overlay_planes.OverlayPlanes | None = None

    # -- identity and geometry
    @property
    def sop_instance_uid(self) -> str:
        return str(self.header.get("SOPInstanceUID", ""))

    @property
    def has_pixels(self) -> bool:
        return self._load_frame is not None

    @property
    def rows(self) -> int:
        return _int_or(self.header, "Rows", 0)

    @property
    def columns(self) -> int:
        return _int_or(self.header, "Columns", 0)

    @property
    def n_frames(self) -> int:
        return max(1, _int_or(self.header, "NumberOfFrames", 1))

    @property
    def is_colour(self) -> bool:
        return pixels.is_colour(self.header)

    @property
    def modality(self) -> str:
        return str(self.header.get("Modality", "") or "")

    @property
    def transfer_syntax(self) -> str:
        """The transfer syntax's name ('' for plain images and files that do not say)."""
        uid = getattr(self.header, "file_meta", Dataset()).get("TransferSyntaxUID")
        return transfer_syntax_name(uid) if isinstance(uid, UID) else str(uid or "")

    def pixel_spacing(self, frame: int = 0) -> pixels.Spacing | None:
        with as_load_error(self.path, "reading its pixel spacing"):
            return pixels.pixel_spacing(self.header, frame)

    # -- what is drawn over the pixels
    def display_shutter(self) -> shutters.DisplayShutter | None:
        """The file's display shutter (read once), or None when it has none."""
        if self._shutter is False:
            self._shutter = shutters.read_display_shutter(self.header)
        return self._shutter  # type: ignore[return-value]

    def overlay_planes(self) -> overlay_planes.OverlayPlanes:
        """The file's overlay planes (read once; none for most files, found without reading)."""
        if self._overlays is None:
            found = overlay_planes.has_overlay_planes(self.header)
            self._overlays = overlay_planes.read_overlay_planes(self.header) if found \
                else overlay_planes.OverlayPlanes()
        return self._overlays

    @property
    def modality_unit(self) -> str:
        """What follows a modality value for the user ('HU', 'mg/ml', '' when unspecified)."""
        try:
            return pixels.modality_unit(self.header)
        except Exception:  # noqa: BLE001 - a damaged code must not stop a readout
            return ""

    # -- pixels
    def _check_frame(self, frame: int) -> None:
        if not self.has_pixels:
            raise LoadError(self.path, "the file holds no image (no Pixel Data)")
        if not 0 <= frame < self.n_frames:
            raise LoadError(self.path, f"frame {frame + 1} does not exist "
                                       f"(the image has {self.n_frames})")

    def stored_frame(self, frame: int = 0) -> np.ndarray:
        self._check_frame(frame)
        key = (*self._cache_key, "stored", frame)
        array = pixel_cache.get(key)
        if array is None:
            assert self._load_frame is not None
            with as_load_error(self.path, "decoding its pixel data"):
                array = self._load_frame(frame)
            array.setflags(write=False)
            pixel_cache.put(key, array)
        return array

    def modality_frame(self, frame: int = 0) -> np.ndarray:
        """Pixel values in modality units (rescaled / Modality LUT), or RGB for colour."""
        stored = self.stored_frame(frame)
        if self.is_colour:
            return stored
        key = (*self._cache_key, "modality", frame)
        array = pixel_cache.get(key)
        if array is None:
            with as_load_error(self.path, "applying its Modality LUT"):
                array = pixels.modality_lut(stored, self.header, frame)
            if array is not stored:
                array.setflags(write=False)
                pixel_cache.put(key, array)
        return array

    def file_windows(self, frame: int = 0) -> list[pixels.Window]:
        with as_load_error(self.path, "reading its windows"):
            return pixels.file_windows(self.header, frame)

    def voi_luts(self) -> list[pixels.VoiLut]:
        with as_load_error(self.path, "reading its VOI LUTs"):
            return pixels.file_voi_luts(self.header)

    def default_voi(self, frame: int = 0) -> pixels.Voi | None:
        """The file's first window, else its first VOI LUT, else the frame's full range."""
        if self.is_colour:
            return None
        stored = self.stored_frame(frame)
        with as_load_error(self.path, "choosing its window"):
            voi = pixels.default_voi_for_stored(self.header, stored, frame)
        if voi is None:
            values = self.modality_frame(frame)
            with as_load_error(self.path, "choosing its window"):
                voi = pixels.default_voi(self.header, values, frame)
        return voi

    def full_range_voi(self, frame: int = 0) -> pixels.Window:
        stored = self.stored_frame(frame)
        with as_load_error(self.path, "measuring its value range"):
            value_range = None if self.is_colour else \
                pixels.modality_value_range(stored, self.header, frame)
            if value_range is not None:
                return pixels.window_for_range(*value_range)
        values = self.modality_frame(frame)
        with as_load_error(self.path, "measuring its value range"):
            return pixels.full_range_window(values)

    @property
    def inverted(self) -> bool:
        return not self.is_colour and pixels.needs_inversion(self.header)

    def display_frame(self, frame: int = 0, voi: pixels.Voi | None = None,
                      invert: bool = False) -> np.ndarray:
        """The 8-bit image as displayed: grey (rows, cols) or RGB (rows, cols, 3).

        ``invert`` is the user's extra inversion on top of what the file asks for.
        """
        stored = self.stored_frame(frame)
        if self.is_colour:
            with as_load_error(self.path, "rendering its image"):
                window = voi if isinstance(voi, pixels.Window) else None
                out = pixels.colour_to_display(stored, window, pixels.colour_bits(self.header))
                return 255 - out if invert else out
        if voi is None:
            voi = self.default_voi(frame)
        assert voi is not None
        with as_load_error(self.path, "rendering its image"):
            # 8/16-bit data: the whole pipeline as one table lookup (same values, faster).
            image = pixels.display_from_stored(stored, self.header, frame, voi,
                                               self.inverted != invert)
        if image is None:
            values = self.modality_frame(frame)
            with as_load_error(self.path, "rendering its image"):
                step = pixels.modality_step(self.header, stored.dtype, frame)
                image = pixels.to_display(values, voi, self.inverted != invert, step)
        return image


def _int_or(ds: Dataset, keyword: str, default: int) -> int:
    try:
        value = ds.get(keyword, default)
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError, OverflowError):
        return default


def file_cache_key(path: Path) -> tuple:
    """What identifies one version of a file in the pixel cache: path, mtime and size."""
    stat = path.stat()
    return (str(path), stat.st_mtime_ns, stat.st_size)
