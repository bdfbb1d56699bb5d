"""Open and decode the images a reader will likely look at next, so N / P show them at once.

:func:`open_ahead` is a plain job generator (Qt-free): it opens each file and decodes its
first frame into the process-wide pixel cache. :class:`Prefetcher` runs it on a
:class:`~medviewer.gui.workers.JobWorker` and keeps the opened instances, most recently
wanted first; :meth:`Prefetcher.ready` is what ``ImageView.instance_source`` calls, so a
prefetched file is shown without a worker round trip.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from medviewer.errors import UserError
from medviewer.gui.lazy import LazyModule
from medviewer.gui.workers import JobWorker
from medviewer.jobs import CancelFlag

if TYPE_CHECKING:
    from medviewer.dicom.reader import Instance
else:  # pydicom loads on the worker, not at start-up
    reader = LazyModule("medviewer.dicom.reader")

log = logging.getLogger(__name__)

# Instances kept ready: the next few, the previous one and the next unlabelled one.
DEFAULT_CAPACITY = 8


@dataclass(frozen=True)
class Prefetched:
    path: Path
    instance: Any  # medviewer.dicom.reader.Instance, header read and frame 0 decoded


def open_ahead(paths: list[Path], cancel: CancelFlag):
    """Job: open each file and decode its first frame; yields :class:`Prefetched` per file.

    Files that fail are skipped silently here: opening them the normal way shows their
    one-sentence reason when the reader actually goes to them.
    """
    done = 0
    for path in paths:
        cancel.raise_if_cancelled()
        try:
            instance = reader.open_instance(path)
            instance.modality_frame(0)
        except UserError:
            continue
        done += 1
        yield Prefetched(path, instance)
    return done


class Prefetcher(QObject):
    """Keeps up to ``capacity`` opened, decoded instances for the paths asked for last."""

    prefetched = Signal(object)  # Path, when an instance became ready

    def __init__(self, capacity: int = DEFAULT_CAPACITY, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.capacity = capacity
        self.enabled = True
        self._ready: OrderedDict[Path, Instance] = OrderedDict()
        self._worker: JobWorker | None = None
        self._workers: set[JobWorker] = set()
        self._queued: list[Path] = []
        self.hits = 0
        self.misses = 0

    def want(self, paths: list[Path]) -> None:
        """Prefetch these files (most wanted first); earlier wishes not repeated are dropped."""
        if not self.enabled:
            return
        wanted = list(dict.fromkeys(Path(p) for p in paths))
        for path in reversed(wanted):  # keep what is still wanted from being evicted
            if path in self._ready:
                self._ready.move_to_end(path)
        missing = [p for p in wanted if p not in self._ready]
        if missing == self._queued and self._worker is not None:
            return
        self._queued = missing
        if self._worker is not None:
            self._worker.cancel()  # stops at its next file; its results so far are kept
            self._worker = None
        if missing:
            self._start(missing)

    def _start(self, paths: list[Path]) -> None:
        worker = JobWorker(lambda cancel: open_ahead(paths, cancel), "prefetching images",
                           progress_per_second=0)
        worker.event.connect(self._on_event)
        worker.ended.connect(lambda: self._on_ended(worker))
        self._workers.add(worker)
        self._worker = worker
        worker.start()

    def _on_event(self, event: object) -> None:
        if isinstance(event, Prefetched):
            self._ready[event.path] = event.instance
            self._ready.move_to_end(event.path)
            while len(self._ready) > self.capacity:
                self._ready.popitem(last=False)
            self.prefetched.emit(event.path)

    def _on_ended(self, worker: JobWorker) -> None:
        self._workers.discard(worker)
        if self._worker is worker:
            self._worker = None
            self._queued = []

    def keep(self, path: Path, instance: Instance) -> None:
        """Keep an instance that was opened elsewhere (the one on screen): going back to it
        then reuses it instead of opening the file again."""
        self._ready[Path(path)] = instance
        self._ready.move_to_end(Path(path))
        while len(self._ready) > self.capacity:
            self._ready.popitem(last=False)

    def ready(self, path: Path) -> Instance | None:
        """The opened, decoded instance of ``path`` if prefetched (it stays cached)."""
        if not self.enabled:
            return None
        instance = self._ready.get(Path(path))
        if instance is None:
            self.misses += 1
            return None
        self.hits += 1
        self._ready.move_to_end(Path(path))
        return instance

    def is_ready(self, path: Path) -> bool:
        return Path(path) in self._ready

    def clear(self) -> None:
        self._ready.clear()
        self._queued = []
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None

    @property
    def busy(self) -> bool:
        return bool(self._workers)

    def wait_for_workers(self, timeout_ms: int = 10_000) -> None:
        for worker in list(self._workers):
            worker.wait(timeout_ms)
