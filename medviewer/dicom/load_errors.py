"""LoadError, and turning whatever a damaged file makes the libraries raise into one."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medviewer.errors import UserError

log = logging.getLogger(__name__)


class LoadError(UserError):
    """A file that cannot be opened or decoded; ``str()`` is one sentence for the user."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason.rstrip(".")
        super().__init__(f"Cannot open {self.path}: {self.reason}.")


def reason_from_exception(exc: BaseException) -> str:
    """The first informative line of an exception's message (decoders add detail below)."""
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


@contextmanager
def as_load_error(path: Path, doing: str) -> Iterator[None]:
    """Turn whatever a damaged file makes the libraries raise into one LoadError."""
    try:
        yield
    except LoadError:
        raise
    except MemoryError:
        raise LoadError(path, f"{doing} needs more memory than is available") from None
    except RecursionError:
        raise LoadError(path, "its sequences are nested too deeply to be valid") from None
    except BaseException as exc:  # noqa: BLE001 - the file's content decides what is raised
        if not isinstance(exc, Exception) and not is_decoder_panic(exc):
            raise  # KeyboardInterrupt, SystemExit...
        log.debug("%s failed", doing, exc_info=True)
        if _caused_by(exc, RecursionError):  # pydicom re-raises some as OSError
            raise LoadError(path, "its sequences are nested too deeply to be valid") from None
        raise LoadError(path, f"{doing} failed ({reason_from_exception(exc)})") from None


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
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
