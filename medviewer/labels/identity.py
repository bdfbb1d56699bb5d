"""From a file path to the key labels are stored under (SOP Instance UID or content hash)."""

from __future__ import annotations

import os
from pathlib import Path

from medviewer.labels.store import ImageRef


def resolve_image(path: str | os.PathLike) -> ImageRef:
    """Read the file's header (not its pixels) and return its :class:`ImageRef`.

    DICOM files are keyed by SOP Instance UID, PNG/JPEG images (and DICOM files without a
    UID) by the SHA-256 of their content. Raises ``medviewer.dicom.reader.LoadError`` (a
    UserError naming the file) when the file cannot be opened.
    """
    from medviewer.dicom.reader import open_instance

    resolved = Path(path).resolve()
    return ImageRef.from_instance(open_instance(resolved))
