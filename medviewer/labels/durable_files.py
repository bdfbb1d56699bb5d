"""Files that must survive a power cut: fsync a file and the folder that lists it, and a
free name beside a file that must not be overwritten (backups, damaged copies)."""

from __future__ import annotations

import os
from pathlib import Path


def unused_path(path: Path) -> Path:
    """``path`` if nothing is there, else the first free ``<name>.2``, ``<name>.3``..."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    if os.name != "posix":  # Windows cannot open a folder for fsync; NTFS journals renames
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
