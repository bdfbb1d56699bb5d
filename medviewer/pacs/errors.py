"""The PACS errors: every network failure is one sentence naming the server and the reason."""

from __future__ import annotations

from pathlib import Path

from medviewer.errors import UserError


class PacsError(UserError):
    """A query, retrieve, send or verification that failed; ``str()`` is the sentence."""


class PartialRetrieveError(PacsError):
    """A retrieve that stopped early; the instances that arrived are kept in ``paths``."""

    def __init__(self, sentence: str, paths: list[Path], expected: int | None) -> None:
        super().__init__(sentence)
        self.paths = paths
        self.expected = expected


def refused(label: str, where: str) -> PacsError:
    return PacsError(f"{label} refused the connection at {where}: check that the server is "
                     f"running and that the host and port are right.")


def timed_out(label: str, seconds: float, doing: str = "answer") -> PacsError:
    return PacsError(f"{label} did not {doing} within {seconds:g} s (timed out).")


def rejected(label: str, reason: str) -> PacsError:
    return PacsError(f"{label} rejected the association: {reason}.")


def authentication_failed(label: str) -> PacsError:
    return PacsError(f"{label} refused the user name, password or token "
                     f"(authentication failed).")


def partial(label: str, arrived: list[Path], expected: int | None, why: str,
            folder: Path) -> PartialRetrieveError:
    """``why`` completes "...arrived from X: ..." (e.g. "the connection was lost")."""
    of = f" of {expected}" if expected is not None else ""
    kept = (f"the {len(arrived)} that arrived are kept in {folder}" if arrived
            else "nothing was kept")
    source = label[:1].lower() + label[1:]
    return PartialRetrieveError(
        f"Only {len(arrived)}{of} instances arrived from {source} ({why}); {kept}.",
        arrived, expected)
