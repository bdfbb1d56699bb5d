"""The image view's workers: opening a file (the latest request wins) and decoding the frames
of a multi-frame image ahead of cine. Jobs follow medviewer.jobs; JobWorker runs them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from medviewer.errors import UserError
from medviewer.gui.lazy import LazyModule
from medviewer.gui.workers import JobWorker
from medviewer.jobs import CancelFlag, Progress

if TYPE_CHECKING:
    from medviewer.dicom.reader import Instance
else:
    reader = LazyModule("medviewer.dicom.reader")


def load_for_display(path: Path, cancel: CancelFlag):
    """Job: open the file and decode its first frame, so the GUI thread only maps VOI.

    Returns (instance, None), or (instance, sentence) when the header is readable but the
    pixels are not, so the tags can still be shown. The display shutter and overlay planes
    are read here too (a large overlay is a read from the file).
    """
    instance = reader.open_instance(path)
    yield Progress(0, 1, "Decoding")
    cancel.raise_if_cancelled()
    try:
        instance.modality_frame(0)
    except UserError as exc:
        return instance, str(exc)
    instance.display_shutter()
    instance.overlay_planes()
    return instance, None


def prefetch_frames(instance: Instance, first: int, cancel: CancelFlag):
    """Job: decode every frame of a multi-frame image into the pixel cache for smooth cine."""
    n = instance.n_frames
    order = list(range(first, n)) + list(range(0, first))
    for done, index in enumerate(order):
        cancel.raise_if_cancelled()
        instance.modality_frame(index)
        yield Progress(done + 1, n, "Decoding frames")
    return n


class ViewLoader(QObject):
    loaded = Signal(object)  # Instance whose first frame decoded
    header_only = Signal(object, str)  # Instance, sentence: the header reads, the pixels not
    failed = Signal(str)  # one sentence: nothing could be read

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._loader: JobWorker | None = None
        self._prefetcher: JobWorker | None = None
        self._workers: set[JobWorker] = set()

    @property
    def loading(self) -> bool:
        return self._loader is not None

    def open(self, path: Path) -> JobWorker:
        """Open ``path`` on a worker; an earlier request still running is cancelled."""
        self.cancel()
        worker = JobWorker(lambda cancel: load_for_display(path, cancel), "opening the image")
        worker.finished.connect(self._on_loaded)
        worker.failed.connect(self._on_failed)
        self._start(worker)
        self._loader = worker
        return worker

    def cancel(self) -> None:
        if self._loader is not None:
            self._loader.cancel()
            self._loader = None

    def prefetch(self, instance: Instance, first: int) -> None:
        self.cancel_prefetch()
        worker = JobWorker(lambda cancel: prefetch_frames(instance, first, cancel),
                           "decoding frames")
        self._start(worker)
        self._prefetcher = worker

    def cancel_prefetch(self) -> None:
        if self._prefetcher is not None:
            self._prefetcher.cancel()
            self._prefetcher = None

    def wait(self, timeout_ms: int = 10_000) -> None:
        """Join every worker started here (close handlers, tests)."""
        for worker in list(self._workers):
            worker.wait(timeout_ms)

    def _start(self, worker: JobWorker) -> None:
        self._workers.add(worker)
        worker.ended.connect(lambda: self._workers.discard(worker))
        worker.start()

    def _on_loaded(self, result: tuple[Instance, str | None]) -> None:
        if self.sender() is not self._loader:
            return  # superseded by a newer request
        self._loader = None
        instance, error = result
        if error is None:
            self.loaded.emit(instance)
        else:
            self.header_only.emit(instance, error)

    def _on_failed(self, message: str) -> None:
        if self.sender() is not self._loader:
            return
        self._loader = None
        self.failed.emit(message)
