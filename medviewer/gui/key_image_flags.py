"""Key images in the window: flag the image on screen (K), see the flags in the study
browser (★ on the image, the count on its study), list a study's key images.

The flags live in ``app/key_images.py``'s :class:`KeyImageStore` (a small JSON file). Every
read and write of it runs on a worker, one at a time in the order asked (the GUI thread never
waits on the disk); :attr:`KeyImageFlags.flags` is what the file held after the last one.
An image is matched to its flags by its study (the study row's Study Instance UID) and its
key in the label store (``session.labelling.key_for``), so no file is opened to mark rows.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from medviewer.gui.workers import JobWorker

if TYPE_CHECKING:
    from medviewer.app.key_images import KeyImage, KeyImageStore
    from medviewer.app.session import Session

log = logging.getLogger(__name__)


def _toggle_job(store: KeyImageStore, target: Any, frame: int, reader: str, cancel):
    """Job: flag or unflag an image (an Instance, or a path to open); returns (flagged now,
    its study, every flag)."""
    from medviewer.app.key_images import key_image_ref
    from medviewer.dicom.reader import open_instance

    cancel.raise_if_cancelled()
    instance = open_instance(target) if isinstance(target, Path) else target
    study, image = key_image_ref(instance)
    flagged = store.toggle(study, image, frame, reader=reader)
    return flagged, study, store.all_flags()
    yield  # a generator: the one job protocol


def _read_job(store: KeyImageStore, cancel):
    cancel.raise_if_cancelled()
    return None, "", store.all_flags()
    yield


class KeyImageFlags(QObject):
    """The window's key images (see the module docstring)."""

    changed = Signal()  # :attr:`flags` changed

    def __init__(self, session: Session, say: Callable[[str], None],
                 store: KeyImageStore | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._say = say
        self._store = store
        self.flags: dict[str, list[KeyImage]] = {}
        self._jobs: deque[tuple[Callable, str]] = deque()
        self._worker: JobWorker | None = None
        self._read = False

    @property
    def store(self) -> KeyImageStore:
        if self._store is None:  # the module (and its file) only when key images are used
            from medviewer.app.key_images import KeyImageStore

            self._store = KeyImageStore()
        return self._store

    # ------------------------------------------------------------ asking
    def reload(self) -> None:
        """Read the flags (once studies are open: the browser's marks need them)."""
        self._queue(lambda cancel: _read_job(self.store, cancel), "")

    def ensure_read(self) -> None:
        if not self._read:
            self._read = True
            self.reload()

    def toggle(self, target: Any, frame: int = 0) -> None:
        """Flag or unflag an image: an open Instance (the view's) or a file's path."""
        reader = self.session.settings.reader_name
        name = Path(target if isinstance(target, Path) else target.path).name
        self._queue(lambda cancel: _toggle_job(self.store, target, frame, reader, cancel), name)

    def _queue(self, factory: Callable, name: str) -> None:
        self._jobs.append((factory, name))
        if self._worker is None:
            self._next()

    def _next(self) -> None:
        if not self._jobs:
            return
        factory, name = self._jobs.popleft()
        worker = JobWorker(factory, "reading or saving key images")
        worker.finished.connect(lambda result, n=name: self._done(result, n))
        worker.failed.connect(self._say)
        worker.ended.connect(self._ended)
        self._worker = worker
        worker.start()

    def _ended(self) -> None:
        self._worker = None
        self._next()

    def _done(self, result: tuple, name: str) -> None:
        flagged, study, flags = result
        self.flags = flags
        for notice in self.store.notices:
            self._say(notice)
        self.store.notices.clear()
        if name:
            count = len(flags.get(study, []))
            self._say(f"{name} is a key image of its study now ({count} in the study)."
                      if flagged else f"{name} is no longer a key image ({count} left in "
                                      f"its study).")
        self.changed.emit()

    @property
    def busy(self) -> bool:
        return self._worker is not None or bool(self._jobs)

    def wait(self, timeout_ms: int = 10_000) -> None:
        """Drop what has not started and join the running job (closing the window)."""
        self._jobs.clear()
        if self._worker is not None:
            self._worker.wait(timeout_ms)

    # ------------------------------------------------------------ what is flagged
    def flagged_paths(self) -> set[Path]:
        """The open images that are key images (any of their frames)."""
        return {path for paths in self.by_study().values() for path in paths}

    def by_study(self) -> dict[str, list[Path]]:
        """Study UID -> its open key images, in the order they were flagged."""
        wanted = {study: {flag.image: i for i, flag in enumerate(flags)}
                  for study, flags in self.flags.items()}
        found: dict[str, list[tuple[int, Path]]] = {}
        key_for = self.session.labelling.key_for
        for catalog in self.session.catalogs:
            for patient in catalog.patients:
                for study in patient.studies:
                    order = wanted.get(study.uid)
                    if not order:
                        continue
                    for series in study.series:
                        for record in series.instances:
                            key = key_for(record.path)
                            if key in order:
                                found.setdefault(study.uid, []).append((order[key],
                                                                        Path(record.path)))
        return {study: [path for _, path in sorted(pairs)] for study, pairs in found.items()}
