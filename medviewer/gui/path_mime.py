"""Files and folders as drag-and-drop data: file URLs for other programs, and the app's own
ordered list (a series keeps its order) for drags between its panels and the image grid."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from PySide6.QtCore import QMimeData, QUrl

log = logging.getLogger(__name__)

PATHS_MIME = "application/x-medviewer-paths"  # a JSON list of file or folder paths


def mime_for_paths(paths: Iterable[str | Path]) -> QMimeData:
    """What a drag of these files/folders carries: file URLs, and the app's own list."""
    paths = [Path(p) for p in paths]
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    data.setData(PATHS_MIME, json.dumps([str(p) for p in paths]).encode("utf-8"))
    return data


def paths_from_mime(data: QMimeData) -> list[Path]:
    """The local paths a drop carries (the app's list first, else file URLs), in order."""
    if data.hasFormat(PATHS_MIME):
        try:
            listed = json.loads(bytes(data.data(PATHS_MIME)).decode("utf-8"))
            if isinstance(listed, list) and all(isinstance(p, str) for p in listed):
                return [Path(p) for p in listed]
        except (ValueError, UnicodeDecodeError):
            log.info("Dropped path list is not readable")
    if data.hasUrls():
        return [Path(url.toLocalFile()) for url in data.urls() if url.isLocalFile()]
    return []


def accept_path_drag(event) -> None:
    """A widget's dragEnterEvent and dragMoveEvent: accept a drag that names files."""
    if paths_from_mime(event.mimeData()):
        event.acceptProposedAction()
    else:
        event.ignore()


def take_dropped_paths(event) -> list[Path]:
    """A widget's dropEvent: the paths dropped, the drop accepted; [] (the drop ignored)
    when it names none."""
    paths = paths_from_mime(event.mimeData())
    if paths:
        event.acceptProposedAction()
    else:
        event.ignore()
    return paths
