"""LoadError, and turning whatever a damaged file makes the libraries raise into one.

A refusal says what is wrong in the user's terms; the library's own message (a decoder's
complaint, numpy's or pydicom's internals) goes to the log, never into the sentence.
"""

from __future__ import annotations

import logging
import os
import re
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from medviewer.errors import UserError

log = logging.getLogger(__name__)

# What a file's failure means when a library raised something this module has no better
# words for: said instead of the library's text.
DAMAGED_OR_UNSUPPORTED = ("the file is damaged or uses a form of DICOM this viewer does "
                          "not read")
UNDECODABLE = "the compressed data is damaged or uses a feature no installed decoder supports"


class LoadError(UserError):
    """A file that cannot be opened or decoded; ``str()`` is one sentence for the user."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason.rstrip(".")
        super().__init__(f"Cannot open {self.path}: {self.reason}.")


class UnusableValueError(ValueError):
    """A value in a file that makes its image impossible to compute (raised by code that
    does not know the file's path); ``str()`` is the reason in the user's words."""


def reason_from_exception(exc: BaseException) -> str:
    """The first informative line of a library's message (for the log, not the user)."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    if "exceptions were raised by all available plugins" in text:
        return plugin_failure_reason(text)
    return text.splitlines()[0].strip()[:300]


# Messages some decoding plugins give that say nothing about the file.
_UNINFORMATIVE = ("'NoneType' object has no attribute", "does not support", "is not available",
                  "missing required", "no module named")
_PLUGIN_PREFIXES = (re.compile(r"^libjpeg error code '?-?\d+'? returned from Decode\(\):\s*"),
                    re.compile(r"^Error decoding the J2K data:\s*"),
                    re.compile(r"^Unable to decode the .* data:\s*"))


def plugin_failure_reason(text: str) -> str:
    """pydicom lists one line per decoding plugin; keep the one that explains the failure."""
    messages: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        name, _, message = line.strip().partition(": ")
        if message:
            messages[name] = message.strip()
    informative = {name: message for name, message in messages.items()
                   if not any(bit in message.lower() for bit in map(str.lower, _UNINFORMATIVE))}
    for name in ("pylibjpeg", "pillow", "pydicom", "gdcm", *informative):
        if name in informative:
            message = informative[name]
            for prefix in _PLUGIN_PREFIXES:
                message = prefix.sub("", message)
            return f"{name}: {message}"[:300]
    if messages:
        return "none of the installed decoders supports it (" + "; ".join(
            f"{name}: {message}" for name, message in messages.items())[:280] + ")"
    return "no decoder is installed for it"


def log_library_text(path: Path, doing: str, exc: BaseException) -> None:
    """The library's own words about a file we refused, for whoever reads the log."""
    log.info("%s: %s failed: %s: %s", path, doing, type(exc).__name__,
             reason_from_exception(exc))


def user_reason(exc: BaseException) -> str:
    """What an exception a library raised on a file means, in the user's words."""
    if caused_by(exc, MemoryError):
        return "it needs more memory than is available"
    if caused_by(exc, RecursionError):
        return "its sequences are nested too deeply to be valid"
    if caused_by(exc, zlib.error):
        return "its compressed data is damaged"
    if isinstance(exc, OSError) and exc.errno is not None:
        from medviewer.files import os_error_reason

        return os_error_reason(exc)
    return DAMAGED_OR_UNSUPPORTED


@contextmanager
def as_load_error(path: Path, doing: str,
                  known: Mapping[type[BaseException], str] | None = None) -> Iterator[None]:
    """Turn whatever a damaged file makes the libraries raise into one LoadError.

    ``known`` maps exception types (found anywhere in the cause chain) to the reason to give.
    """
    try:
        yield
    except LoadError:
        raise
    except BaseException as exc:  # noqa: BLE001 - the file's content decides what is raised
        if not isinstance(exc, Exception) and not is_decoder_panic(exc):
            raise  # KeyboardInterrupt, SystemExit...
        if isinstance(exc, UnusableValueError):
            raise LoadError(path, str(exc)) from None
        for kind, reason in (known or {}).items():
            if caused_by(exc, kind):
                raise LoadError(path, reason) from None
        log_library_text(path, doing, exc)
        if caused_by(exc, MemoryError):
            raise LoadError(path, f"{doing} needs more memory than is available") from None
        if caused_by(exc, RecursionError):  # pydicom re-raises some as OSError
            raise LoadError(path, "its sequences are nested too deeply to be valid") from None
        raise LoadError(path, f"{doing} failed: {user_reason(exc)}") from None


def caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``exc`` or an exception it was raised from (or during) is a ``kind``."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 50:
        if isinstance(current, kind):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def is_decoder_panic(exc: BaseException) -> bool:
    """pyo3 (Rust) decoders raise PanicException, a BaseException, on corrupt input."""
    return type(exc).__name__ == "PanicException"
