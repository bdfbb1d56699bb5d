"""Where retrieved instances land: ``ROOT/<study>/<series>/<sop>.dcm``, with a size limit.

:class:`RetrieveCache` keeps one folder per study; when the whole cache is over its limit the
least recently used studies are removed, never one that is open (the caller says which are)
and never the one just retrieved. The same layout serves ``medviewer pacs get -o DIR``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from medviewer.paths import user_cache_dir

log = logging.getLogger(__name__)

_UID = re.compile(r"^[0-9.]{1,64}$")
_USED_MARK = ".last-used"


def safe_name(uid: str) -> str:
    """A UID as a file name; anything that is not a plain UID becomes a hash of it."""
    uid = (uid or "").strip().rstrip("\x00")
    if _UID.match(uid) and not uid.startswith("."):
        return uid
    return "x" + hashlib.sha256(uid.encode("utf-8", "replace")).hexdigest()[:32]


def instance_path(root: Path, study_uid: str, series_uid: str, sop_uid: str) -> Path:
    return root / safe_name(study_uid) / safe_name(series_uid) / f"{safe_name(sop_uid)}.dcm"


def write_instance(path: Path, *parts: bytes) -> Path:
    """Write a whole file (``parts`` one after the other) or nothing: a viewer opening the
    first image never sees half."""
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    with open(partial, "wb") as handle:
        handle.writelines(parts)
    os.replace(partial, path)
    return path


@dataclass(frozen=True)
class CachedStudy:
    study_uid: str  # the folder name (the UID, or its hash)
    folder: Path
    size_bytes: int
    last_used: float


def _folder_size(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def default_cache_root() -> Path:
    """Where retrieved studies go unless the settings name another folder."""
    return user_cache_dir() / "pacs"


class RetrieveCache:
    def __init__(self, root: Path | None = None, limit_bytes: int = 4096 * 1024 * 1024) -> None:
        self.root = root if root is not None else default_cache_root()
        self.root.mkdir(parents=True, exist_ok=True)
        self.limit_bytes = int(limit_bytes)

    def study_folder(self, study_uid: str) -> Path:
        return self.root / safe_name(study_uid)

    def has_study(self, study_uid: str) -> bool:
        return self.study_folder(study_uid).is_dir()

    def touch(self, study_uid: str) -> None:
        """Mark a study as just used (retrieved or opened)."""
        folder = self.study_folder(study_uid)
        folder.mkdir(parents=True, exist_ok=True)
        mark = folder / _USED_MARK
        mark.touch()
        now = time.time()
        os.utime(mark, (now, now))

    def studies(self) -> list[CachedStudy]:
        found = []
        for folder in self.root.iterdir() if self.root.is_dir() else []:
            if not folder.is_dir():
                continue
            mark = folder / _USED_MARK
            try:
                used = (mark if mark.exists() else folder).stat().st_mtime
            except OSError:
                continue
            found.append(CachedStudy(folder.name, folder, _folder_size(folder), used))
        return sorted(found, key=lambda s: s.last_used)

    def size_bytes(self) -> int:
        return sum(s.size_bytes for s in self.studies())

    def evict(self, open_study_uids: Iterable[str] = (), keep: Iterable[str] = ()) -> list[str]:
        """Remove the least recently used studies until the cache fits its limit.

        Studies in ``open_study_uids`` (open in the viewer) or ``keep`` are never removed, even
        if the cache stays over the limit. Returns the removed studies' folder names.
        """
        protected = {safe_name(uid) for uid in (*open_study_uids, *keep)}
        studies = self.studies()
        total = sum(s.size_bytes for s in studies)
        removed = []
        for study in studies:  # oldest first
            if total <= self.limit_bytes:
                break
            if study.study_uid in protected:
                continue
            shutil.rmtree(study.folder, ignore_errors=True)
            total -= study.size_bytes
            removed.append(study.study_uid)
            log.info("Evicted study %s from the retrieve cache", study.study_uid)
        return removed
