"""Key images: the images a reader flags in a study (for the report, a conference, a prior).

One small JSON file in the user data folder (``key_images.json``), written atomically and
readable by its owner only (it names studies and images of patients). Each change re-reads
the file first, so two windows flagging images do not undo each other's flags.

A study is its Study Instance UID (a plain PNG/JPEG image has the one its synthetic header
derives from its content; a DICOM file without one, its folder: see :func:`key_image_ref`);
an image is the key the label store uses (SOP Instance UID or
``sha256:<hex>`` of a plain image's content) plus a frame number. A damaged file is set aside
beside itself (never overwritten) and the store starts empty, with a notice.

Format (``format`` 1)::

    {"format": 1,
     "studies": {"<study>": [{"image": "<key>", "frame": 0, "reader": "dr.lee",
                              "flagged_at": "2025-01-31T10:00:00.000+00:00", "note": ""}]}}
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medviewer.errors import UserError
from medviewer.paths import user_data_dir, write_atomically

log = logging.getLogger(__name__)

FILE_NAME = "key_images.json"
FORMAT_VERSION = 1
NO_STUDY_UID_PREFIX = "folder:"


class KeyImagesError(UserError):
    """The key images file cannot be read or written; ``str()`` is one sentence."""


@dataclass(frozen=True)
class KeyImage:
    study: str
    image: str  # SOP Instance UID, or 'sha256:<hex>' of a plain image
    frame: int = 0
    reader: str = ""
    flagged_at: str = ""  # ISO 8601, UTC
    note: str = ""

    @property
    def identity(self) -> tuple[str, str, int]:
        return (self.study, self.image, self.frame)


def default_key_images_path() -> Path:
    return user_data_dir() / FILE_NAME


def key_image_ref(instance: Any) -> tuple[str, str]:
    """(study, image) keys of a ``medviewer.dicom.reader.Instance``.

    The study is the Study Instance UID (plain images carry a synthetic one); a file
    without one is keyed by its folder.
    """
    from medviewer.labels.store import ImageRef

    image = ImageRef.from_instance(instance).key
    study = str(instance.header.get("StudyInstanceUID", "") or "").strip()
    if not study:
        study = NO_STUDY_UID_PREFIX + str(Path(instance.path).resolve().parent)
    return study, image


class KeyImageStore:
    """Flags per study, kept in one JSON file; safe to share between threads."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else default_key_images_path()
        self._lock = threading.Lock()
        # Sentences about a damaged file that was set aside (the GUI shows them once).
        self.notices: list[str] = []

    # -- reading
    def for_study(self, study: str) -> list[KeyImage]:
        """The study's key images in the order they were flagged."""
        with self._lock:
            return list(self._read().get(study, []))

    def studies(self) -> list[str]:
        with self._lock:
            return sorted(study for study, images in self._read().items() if images)

    def all_flags(self) -> dict[str, list[KeyImage]]:
        """Every study's key images (studies sorted), from one read of the file."""
        with self._lock:
            table = self._read()
        return {study: list(table[study]) for study in sorted(table) if table[study]}

    def is_flagged(self, study: str, image: str, frame: int = 0) -> bool:
        return any(k.identity == (study, image, frame) for k in self.for_study(study))

    # -- changing
    def flag(self, study: str, image: str, frame: int = 0, *, reader: str = "",
             note: str = "") -> KeyImage:
        """Flag an image (already flagged: its reader and note are updated, not its time)."""
        key = KeyImage(_text("study", study), _text("image", image), _frame(frame), reader,
                       datetime.now(timezone.utc).isoformat(timespec="milliseconds"), note)
        with self._lock:
            table = self._read()
            images = table.setdefault(key.study, [])
            for index, existing in enumerate(images):
                if existing.identity == key.identity:
                    key = KeyImage(*key.identity, reader, existing.flagged_at, note)
                    images[index] = key
                    break
            else:
                images.append(key)
            self._write(table)
        return key

    def unflag(self, study: str, image: str, frame: int = 0) -> bool:
        """Remove the flag; returns whether there was one."""
        with self._lock:
            table = self._read()
            images = table.get(study, [])
            kept = [k for k in images if k.identity != (study, image, frame)]
            if len(kept) == len(images):
                return False
            if kept:
                table[study] = kept
            else:
                table.pop(study, None)
            self._write(table)
        return True

    def toggle(self, study: str, image: str, frame: int = 0, *, reader: str = "") -> bool:
        """Flag or unflag; returns whether the image is flagged afterwards."""
        if self.unflag(study, image, frame):
            return False
        self.flag(study, image, frame, reader=reader)
        return True

    # -- the file
    def _read(self) -> dict[str, list[KeyImage]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise KeyImagesError(f"The key images file {self.path} cannot be read "
                                 f"({exc.strerror or exc}).") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            self._set_aside(str(exc))
            return {}
        if isinstance(data, dict) and isinstance(data.get("format"), int) \
                and data["format"] > FORMAT_VERSION:
            raise KeyImagesError(f"The key images file {self.path} was written by a newer "
                                 f"MedViewer (format {data['format']}); update MedViewer to "
                                 "use it.")
        try:
            return _parse(data)
        except (ValueError, TypeError, KeyError, KeyImagesError) as exc:
            self._set_aside(f"{type(exc).__name__}: {exc}")
            return {}

    def _set_aside(self, reason: str) -> None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        target = self.path.with_name(f"{self.path.stem}.damaged-{stamp}{self.path.suffix}")
        n = 1
        while target.exists():
            n += 1
            target = target.with_name(f"{self.path.stem}.damaged-{stamp}-{n}{self.path.suffix}")
        try:
            os.replace(self.path, target)
        except OSError as exc:
            raise KeyImagesError(f"The key images file {self.path} is damaged and could not "
                                 f"be set aside ({exc.strerror or exc}).") from None
        notice = (f"The key images file {self.path} was damaged; it was kept as {target.name} "
                  "and key images start again from none.")
        log.warning("%s (%s)", notice, reason)
        self.notices.append(notice)

    def _write(self, table: dict[str, list[KeyImage]]) -> None:
        data = {"format": FORMAT_VERSION,
                "studies": {study: [_entry(k) for k in images]
                            for study, images in sorted(table.items()) if images}}
        try:
            write_atomically(self.path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        except OSError as exc:
            raise KeyImagesError(f"The key images could not be saved in {self.path} "
                                 f"({exc.strerror or exc}).") from None


def _entry(key: KeyImage) -> dict[str, Any]:
    entry = asdict(key)
    del entry["study"]
    return entry


def _parse(data: Any) -> dict[str, list[KeyImage]]:
    """The file's content, or ValueError/TypeError/KeyError when it is not this format."""
    if not isinstance(data, dict) or not isinstance(data.get("studies"), dict):
        raise ValueError("not a key images object")
    if not isinstance(data.get("format"), int):
        raise ValueError(f"unknown format {data.get('format')!r}")
    table: dict[str, list[KeyImage]] = {}
    for study, entries in data["studies"].items():
        if not isinstance(entries, list):
            raise TypeError(f"study {study!r} does not hold a list")
        table[study] = [KeyImage(study, _text("image", e["image"]), _frame(e.get("frame", 0)),
                                 str(e.get("reader", "")), str(e.get("flagged_at", "")),
                                 str(e.get("note", "")))
                        for e in entries]
    return table


def _text(what: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise KeyImagesError(f"A key image needs its {what} key (got {value!r}).")
    return value.strip()


def _frame(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise KeyImagesError(f"A key image's frame must be a whole number from 0, not "
                             f"{value!r}.")
    return value
