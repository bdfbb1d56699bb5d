"""Plain PNG/JPEG X-rays as single-image studies.

Such a file gets a synthetic header (no patient data: the study is named after nothing but
the file's content hash) so the rest of the app treats it exactly like a DICOM instance.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from medviewer.dicom.reader import Instance, LoadError

PLAIN_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"


def is_plain_image(path: Path) -> bool:
    return path.suffix.lower() in PLAIN_IMAGE_SUFFIXES


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _decode(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                return np.asarray(image, dtype=np.uint16 if image.mode != "I" else np.int32)
            if image.mode in ("L", "1", "P") and image.mode != "P":
                return np.asarray(image.convert("L"))
            rgb = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise LoadError(path, f"the image cannot be decoded ({exc})") from None
    # Many X-ray PNG/JPEGs are stored as RGB with three equal channels: treat them as grey.
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
        return np.ascontiguousarray(rgb[..., 0])
    return rgb


def open_plain_image(path: str | os.PathLike) -> Instance:
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise LoadError(path, f"the file cannot be read ({exc.strerror or exc})") from None
    if not (head.startswith(_PNG_MAGIC) or head.startswith(_JPEG_MAGIC)):
        raise LoadError(path, "it is named like a PNG/JPEG image but is not one")
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            mode = image.mode
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for broken files
        raise LoadError(path, f"the image cannot be decoded ({exc})") from None
    digest = content_hash(path)
    header = Dataset()
    header.SOPInstanceUID = generate_uid(entropy_srcs=[digest, "instance"])
    header.StudyInstanceUID = generate_uid(entropy_srcs=[digest, "study"])
    header.SeriesInstanceUID = generate_uid(entropy_srcs=[digest, "series"])
    header.PatientID = f"IMG-{digest[:12]}"
    header.PatientName = "Imported^Image"
    header.StudyDescription = "Imported image"
    header.SeriesDescription = path.suffix.lstrip(".").upper()
    header.Modality = "OT"
    header.Rows, header.Columns = height, width
    colour = mode not in ("L", "1", "I;16", "I;16B", "I;16L", "I")
    header.SamplesPerPixel = 3 if colour else 1
    header.PhotometricInterpretation = "RGB" if colour else "MONOCHROME2"
    header.BitsAllocated = 16 if mode.startswith("I") else 8
    header.BitsStored = header.BitsAllocated
    header.PixelRepresentation = 0

    def load(frame: int) -> np.ndarray:
        array = _decode(path)
        if array.ndim == 2 and header.SamplesPerPixel == 3:
            # Grey stored as RGB: only decoding tells; from now on the header says grey.
            header.SamplesPerPixel = 1
            header.PhotometricInterpretation = "MONOCHROME2"
        return array

    stat = path.stat()
    return Instance(path, header, load, (str(path), stat.st_mtime_ns, stat.st_size),
                    content_hash=digest)
