"""Errors a user can cause while labelling; each ``str()`` is one sentence to show."""

from __future__ import annotations

from pathlib import Path

from medviewer.errors import UserError


class LabelError(UserError):
    """Base class of every labelling error."""


class DamagedStoreError(LabelError):
    """The store file fails SQLite's integrity check or cannot be read as a database."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason.rstrip(".")
        super().__init__(
            f"The label store {self.path} is damaged ({self.reason}); run "
            f"'medviewer labels recover --store {self.path}' (or LabelStore.recover) to keep "
            f"the damaged file aside and rebuild the store from every label that can still "
            f"be read.")


class NotALabelStoreError(LabelError):
    def __init__(self, path: Path, reason: str) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path} is not a MedViewer label store ({reason.rstrip('.')}).")


class NewerStoreError(LabelError):
    def __init__(self, path: Path, version: int, supported: int) -> None:
        self.path = Path(path)
        super().__init__(
            f"The label store {self.path} was written by a newer MedViewer (schema version "
            f"{version}; this version reads up to {supported}): update MedViewer to open it.")


class StoreUnavailableError(LabelError):
    """The file system refused a read or write (busy, full, read-only); nothing was saved."""


class UnknownLabelSetError(LabelError):
    def __init__(self, name: str, existing: list[str]) -> None:
        self.name = name
        known = ", ".join(existing) if existing else "none yet"
        super().__init__(f"There is no label set named '{name}' (label sets: {known}).")


class InvalidLabelError(LabelError):
    """A class, reader, source or region that the label set does not allow."""


class UndoConflictError(LabelError):
    """Undoing would overwrite a change made since (by an import or another actor)."""


class ImportRejectedError(LabelError):
    """An import found problem rows and the caller did not accept a partial import."""


class ExportError(LabelError):
    pass
