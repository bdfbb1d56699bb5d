"""Guarded opening of DICOM files: a header now, pixels lazily, or one clear LoadError.

``open_instance(path)`` parses the header once, up to (not including) the pixel data, and
notes where the pixel data lies in the file; no pixel byte is read. A frame decodes on first
use straight from its own bytes in the file (the header is never parsed again), and decoded
frames live in a process-wide cache bounded by a memory budget. Every failure a file can
cause becomes a :class:`LoadError` naming the file and the reason.

This module is the public entry; the work is done by ``header`` (parsing),
``image_geometry`` (checking the image attributes), ``frames`` (decoding), ``images``
(PNG/JPEG files), ``instance`` (the :class:`Instance` and the pixel cache) and
``load_errors`` (turning failures into LoadError).
"""

from __future__ import annotations

import os
from pathlib import Path

from medviewer.dicom import images
from medviewer.dicom.frames import PixelSource
from medviewer.dicom.header import parse_file, read_header
from medviewer.dicom.image_geometry import MAX_FRAME_PIXELS, read_image_geometry
from medviewer.dicom.instance import (FrameLoader, Instance, PixelCache, file_cache_key,
                                      pixel_cache)
from medviewer.dicom.load_errors import LoadError

# Names other modules import from here.
__all__ = ["MAX_FRAME_PIXELS", "Instance", "LoadError", "PixelCache", "open_instance",
           "pixel_cache", "read_header"]


def open_instance(path: str | os.PathLike) -> Instance:
    """Open a DICOM file (or a PNG/JPEG X-ray) without decoding its pixels."""
    path = Path(path)
    if images.is_plain_image(path):
        return images.open_plain_image(path)
    parsed = parse_file(path)
    header = parsed.header
    load_frame: FrameLoader | None = None
    if parsed.location is not None:
        geometry = read_image_geometry(path, header, parsed.location.keyword)
        source = PixelSource(path, header, parsed.transfer_syntax, parsed.location, geometry,
                              parsed.inflated)
        load_frame = source.decode
    return Instance(path, header, load_frame, file_cache_key(path))
