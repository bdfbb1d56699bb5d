"""Plain PNG/JPEG X-rays as single-image studies.

Such a file gets a synthetic header (no patient data: the study is named after nothing but
the file's content hash) so the rest of the app treats it exactly like a DICOM instance.
Grey and RGB images of 8 or 16 bits are read with Pillow; JPEGs Pillow cannot read (12- and
16-bit, lossless) fall back to libjpeg. An 8-bit image is shown as stored (its header carries
the identity window); deeper images get the data's full range like any DICOM image.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from medviewer.dicom.image_geometry import MAX_FRAME_PIXELS
from medviewer.dicom.instance import Instance, file_cache_key, pixel_cache
from medviewer.dicom.load_errors import LoadError, log_library_text
from medviewer.files import open_regular, os_error_reason

log = logging.getLogger(__name__)

PLAIN_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N"})


def is_plain_image(path: Path) -> bool:
    return path.suffix.lower() in PLAIN_IMAGE_SUFFIXES


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open_regular(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class _ImageInfo:
    width: int
    height: int
    colour: bool
    bits: int  # 8 or 16
    via_libjpeg: bool


# The refusal for an image no decoder reads; what the decoders said goes to the log.
_UNDECODABLE = "the image cannot be decoded: the file is damaged or in a form this viewer " \
               "does not read"


def _probe(path: Path, is_jpeg: bool) -> _ImageInfo:
    """Size, colour and depth without decoding the pixels."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            mode = image.mode
        bits = 16 if mode.startswith("I") else 8
        return _ImageInfo(width, height, mode not in _GREY_MODES, bits, False)
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for broken files
        log_library_text(path, "reading its size with Pillow", exc)
    if is_jpeg:
        try:
            from libjpeg import get_parameters

            params = get_parameters(str(path))
        except Exception as exc:  # noqa: BLE001 - libjpeg raises RuntimeError and more
            log_library_text(path, "reading its size with libjpeg", exc)
            raise LoadError(path, _UNDECODABLE) from None
        components = int(params.get("nr_components", 0))
        if components not in (1, 3):
            raise LoadError(path, f"it is a JPEG with {components} colour components, which "
                                  "is not a grey or RGB image")
        bits = 8 if int(params.get("precision", 8)) <= 8 else 16
        return _ImageInfo(int(params["columns"]), int(params["rows"]), components == 3, bits,
                          True)
    raise LoadError(path, _UNDECODABLE)


def _decode(path: Path, via_libjpeg: bool) -> np.ndarray:
    """Grey (rows, cols) uint8/uint16 or RGB (rows, cols, 3); grey stored as RGB becomes grey."""
    if via_libjpeg:
        try:
            from libjpeg import decode

            array = np.asarray(decode(str(path)))
        except Exception as exc:  # noqa: BLE001
            log_library_text(path, "decoding it with libjpeg", exc)
            raise LoadError(path, _UNDECODABLE) from None
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[..., 0]
        if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
            raise LoadError(path, f"the decoded JPEG has an unexpected shape {array.shape}")
    else:
        from PIL import Image

        try:
            with Image.open(path) as image:
                image.load()
                mode = image.mode
                if mode.startswith("I"):
                    array = np.asarray(image)
                    if array.dtype != np.uint16 and array.size and array.min() >= 0 \
                            and array.max() <= 65535:
                        array = array.astype(np.uint16)
                elif mode in _GREY_MODES:
                    array = np.asarray(image.convert("L"))
                else:
                    array = np.asarray(image.convert("RGB"))
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types for broken files
            log_library_text(path, "decoding it with Pillow", exc)
            raise LoadError(path, _UNDECODABLE) from None
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("="))
    # Many X-ray PNG/JPEGs are stored as RGB with three equal channels: treat them as grey.
    if array.ndim == 3 and np.array_equal(array[..., 0], array[..., 1]) \
            and np.array_equal(array[..., 1], array[..., 2]):
        return np.ascontiguousarray(array[..., 0])
    return np.ascontiguousarray(array)


SYNTHETIC_STUDY = "Imported image"  # the study description of every plain image's header


def is_synthetic_header(header: Any) -> bool:
    """Whether a header is the stand-in made for a PNG/JPEG (it names no real patient)."""
    try:
        return (header.get("StudyDescription") == SYNTHETIC_STUDY
                and str(header.get("PatientID", "")).startswith("IMG-"))
    except Exception:  # noqa: BLE001 - a damaged header is not ours
        return False


def _synthetic_header(path: Path, digest: str, info: _ImageInfo) -> Dataset:
    header = Dataset()
    header.SOPInstanceUID = generate_uid(entropy_srcs=[digest, "instance"])
    header.StudyInstanceUID = generate_uid(entropy_srcs=[digest, "study"])
    header.SeriesInstanceUID = generate_uid(entropy_srcs=[digest, "series"])
    header.PatientID = f"IMG-{digest[:12]}"
    header.PatientName = "Imported^Image"
    header.StudyDescription = SYNTHETIC_STUDY
    header.SeriesDescription = path.suffix.lstrip(".").upper()
    header.Modality = "OT"
    header.Rows, header.Columns = info.height, info.width
    header.SamplesPerPixel = 3 if info.colour else 1
    header.PhotometricInterpretation = "RGB" if info.colour else "MONOCHROME2"
    header.BitsAllocated = info.bits
    header.BitsStored = info.bits
    header.HighBit = info.bits - 1
    header.PixelRepresentation = 0
    if info.bits == 8:
        # An 8-bit image is already a display image: its default window shows it as stored.
        header.WindowCenter = 128
        header.WindowWidth = 256
        header.WindowCenterWidthExplanation = "As stored"
    return header


def open_plain_image(path: str | os.PathLike) -> Instance:
    path = Path(path)
    try:
        with open_regular(path, "rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise LoadError(path, os_error_reason(exc)) from None
    if not head:
        raise LoadError(path, "the file is empty")
    is_jpeg = head.startswith(_JPEG_MAGIC)
    if not (head.startswith(_PNG_MAGIC) or is_jpeg):
        raise LoadError(path, "it is named like a PNG/JPEG image but is not one")
    info = _probe(path, is_jpeg)
    if info.width <= 0 or info.height <= 0 or info.width * info.height > MAX_FRAME_PIXELS:
        raise LoadError(path, f"its size {info.width} x {info.height} pixels is not one the "
                              "viewer can display")
    digest = content_hash(path)
    header = _synthetic_header(path, digest, info)

    def load(frame: int) -> np.ndarray:
        array = _decode(path, info.via_libjpeg)
        if array.shape[:2] != (info.height, info.width):
            raise LoadError(path, f"the decoded image is {array.shape[1]} x {array.shape[0]} "
                                  f"pixels, not the {info.width} x {info.height} it declares")
        return array

    cache_key = file_cache_key(path)
    instance = PlainImageInstance(path, header, load, cache_key, content_hash=digest)
    # Another Instance of this file (a thumbnail, a prefetch) may have decoded it already.
    cached = pixel_cache.get((*cache_key, "stored", 0))
    if cached is not None:
        _fit_header(header, cached)
    return instance


class PlainImageInstance(Instance):
    """A PNG/JPEG whose header learns from every frame it hands out, decoded or cached.

    Only decoding tells whether an RGB file is really grey; the frame may come from the
    shared pixel cache (filled by another Instance of the same file) without load() running.
    """

    def stored_frame(self, frame: int = 0) -> np.ndarray:
        array = super().stored_frame(frame)
        _fit_header(self.header, array)
        return array


def _fit_header(header: Dataset, array: np.ndarray) -> None:
    """Put what only decoding tells into the synthetic header."""
    if array.ndim == 2 and header.SamplesPerPixel == 3:
        # Grey stored as RGB: from now on the header says grey.
        header.SamplesPerPixel = 1
        header.PhotometricInterpretation = "MONOCHROME2"
    if array.dtype == np.uint8 and header.BitsAllocated != 8:
        header.BitsAllocated = header.BitsStored = 8
        header.HighBit = 7
    if array.ndim == 2 and array.dtype == np.uint8 and "WindowCenter" not in header:
        header.WindowCenter, header.WindowWidth = 128, 256
        header.WindowCenterWidthExplanation = "As stored"
