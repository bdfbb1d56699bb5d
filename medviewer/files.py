"""Opening the user's files safely, and what an operating-system error means to a user.

Only regular files are ever opened for reading: a named pipe (FIFO) would block the
reader for ever and a device could be endless, so :func:`open_regular` opens without
blocking and refuses anything else with :class:`NotAFileError`. Outputs are checked the
same way (:func:`check_output_path`), so no command writes into a pipe or replaces a
device. :func:`os_error_reason` turns any ``OSError`` (a name too long, no permission, a
full disk...) into the reason half of a user sentence: ``f"Cannot open {path}: {reason}."``.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path
from typing import IO, Any

# Below this much free space a failed write is put down to a full disk.
FULL_DISK_BYTES = 1024**2

_REASONS = {
    errno.ENOENT: "it does not exist",
    errno.EACCES: "you do not have permission to open it",
    errno.EPERM: "you do not have permission to open it",
    errno.ENAMETOOLONG: "its name is too long for the file system",
    errno.ENOTDIR: "a part of its path is a file, not a folder",
    errno.EISDIR: "it is a folder, not a file",
    errno.ENOSPC: "the disk is full",
    errno.EROFS: "the disk is read-only",
    errno.ELOOP: "its path goes round a loop of symbolic links",
    errno.EMFILE: "too many files are open at once",
    errno.ENFILE: "too many files are open at once",
    errno.EIO: "the disk reported a read or write error",
    errno.ENXIO: "no program is reading from it",
    errno.EBUSY: "another program is using it",
    errno.EFBIG: "it is larger than the file system allows",
    errno.EEXIST: "something else already has that name",
    errno.EINVAL: "its name is not valid here",
}
if hasattr(errno, "EDQUOT"):
    _REASONS[errno.EDQUOT] = "your disk quota is used up"


class NotAFileError(OSError):
    """A path that exists but is not a regular file (a folder, a named pipe, a device)."""

    def __init__(self, path: str | os.PathLike, kind: str) -> None:
        code = errno.EISDIR if kind == "a folder" else None
        super().__init__(code, f"it is {kind}, not a regular file", os.fspath(path))


def file_kind(mode: int) -> str:
    """What a file of this ``st_mode`` is, in words ('a folder', 'a named pipe (FIFO)'...)."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a plain file"


def require_regular(path: str | os.PathLike) -> os.stat_result:
    """The file's stat when it is a regular file; raises NotAFileError or the OSError.

    For paths handed on to a library that opens them itself (Pillow, onnx, torch).
    """
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise NotAFileError(path, file_kind(info.st_mode))
    return info


def open_regular(path: str | os.PathLike, mode: str = "rb", **options: Any) -> IO[Any]:
    """``open(path, mode)`` for reading a regular file, never blocking on a pipe.

    The file is opened non-blocking (a FIFO without a writer would otherwise wait for
    ever) and checked on the open descriptor, so it cannot be swapped in between.
    """
    if any(flag in mode for flag in "wax+"):
        raise ValueError(f"open_regular only reads, not mode {mode!r}")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) \
        | getattr(os, "O_BINARY", 0)
    descriptor = os.open(path, flags)
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise NotAFileError(path, file_kind(info.st_mode))
        if hasattr(os, "set_blocking"):
            os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, mode, **options)
    except BaseException:
        os.close(descriptor)
        raise


def check_output_path(path: str | os.PathLike) -> None:
    """Refuse to write where something other than a regular file (or nothing) is.

    Raises NotAFileError for a folder, pipe or device; other OSErrors (a name too long,
    no permission) pass through for the caller's sentence.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(info.st_mode):
        raise NotAFileError(path, file_kind(info.st_mode))


def check_output_file(path: str | os.PathLike) -> None:
    """Before any work: refuse an output path that cannot be a new or replaced regular file
    (a folder or pipe there, a missing folder, a name too long), as one UserError."""
    from medviewer.errors import UserError

    try:
        check_output_path(path)
        folder = Path(os.fsdecode(path)).parent
        folder_exists = folder.is_dir()
    except OSError as exc:
        raise UserError(f"Cannot write {os.fsdecode(path)}: {os_error_reason(exc)}.") from None
    if not folder_exists:
        raise UserError(f"Cannot write {os.fsdecode(path)}: the folder {folder} does not "
                        "exist.")


def os_error_reason(exc: OSError) -> str:
    """Why an operating-system call failed, in the user's words (no period, no path)."""
    if isinstance(exc, NotAFileError) and exc.strerror:
        return exc.strerror
    reason = _REASONS.get(exc.errno) if exc.errno is not None else None
    if reason is None and exc.filename is not None and disk_is_full(exc.filename):
        reason = _REASONS[errno.ENOSPC]
    if reason is None:
        text = (exc.strerror or type(exc).__name__).strip().rstrip(".")
        reason = text[:1].lower() + text[1:]
    return reason


def disk_is_full(path: str | os.PathLike) -> bool:
    """Whether the file system holding ``path`` (or its nearest existing folder) is full:
    libraries such as SQLite report a full disk as a plain I/O error."""
    try:
        folder = Path(os.fsdecode(path))
        for _ in range(64):
            if folder.exists():
                break
            folder = folder.parent
        return shutil.disk_usage(folder).free < FULL_DISK_BYTES
    except (OSError, ValueError):
        return False
