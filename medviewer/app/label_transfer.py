"""Label import and export as jobs on a connection of their own (the GUI's Labels menu).

Validation and export read the store on a second connection, on a worker, so a big file
never holds up the label panel's store thread; the import itself is applied through that
thread (``labels.io.apply_import``), in order with the reader's own writes.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING

from medviewer.jobs import CancelFlag, Progress

if TYPE_CHECKING:
    from medviewer.labels.io import ImportPlan
    from medviewer.labels.store import ImportResult, LabelStore


def plural(count: int, unit: str) -> str:
    return f"{count} {unit}{'' if count == 1 else 's'}"


def open_store(path: Path, reader: str) -> LabelStore:
    """A second connection to the label panel's store (on a worker thread)."""
    from medviewer.labels.errors import StoreUnavailableError
    from medviewer.labels.store import LabelStore

    try:
        # No integrity check: the panel's own connection checked this file when it opened it,
        # and a quick_check of a large store costs seconds each time.
        return LabelStore(path, reader=reader, check=False)
    except OSError as exc:
        raise StoreUnavailableError(f"Cannot open the label store {path}: "
                                    f"{exc.strerror or exc}.") from None


def validation_job(store_path: Path, source: Path, label_set: str | None, *,
                   classes: list[str] | None, multi_label: bool, reader: str,
                   cancel: CancelFlag) -> Generator[Progress, None, ImportPlan]:
    """Job: validate an import file against the store on a connection of its own."""
    from medviewer.labels import io as label_io

    store = open_store(store_path, reader)
    try:
        return (yield from label_io.validate_file_job(
            store, source, label_set, classes=classes, multi_label=multi_label,
            reader=reader, cancel=cancel))
    finally:
        store.close()


def export_job(store_path: Path, label_set: str, fmt: str, target: Path, reader: str,
               cancel: CancelFlag) -> Generator[Progress, None, int]:
    """Job: write one label set to ``target`` (atomically); returns export's count."""
    from medviewer.labels import export as label_export

    store = open_store(store_path, reader)
    try:
        store.label_set(label_set)  # a clear sentence if it was deleted meanwhile
        cancel.raise_if_cancelled()
        yield Progress(0, None, f"Writing {target.name}")
        write, _ = label_export.EXPORTERS[fmt]
        return write(store, label_set, target)
    finally:
        store.close()


def import_summary(plan: ImportPlan, result: ImportResult) -> str:
    """One sentence: what was written, and that one Undo reverts it."""
    if result.action_id is None:
        return f"Nothing was imported: {plan.source.name} holds no labels or regions."
    extras = []
    if result.label_set_created:
        extras.append("a new label set")
    if result.labels_unchanged:
        extras.append(f"{result.labels_unchanged} already there")
    if plan.problem_count:
        where = plan.problems[0].where
        extras.append(f"{plural(plan.problem_count, f'problem {where}')} left out")
    extra = f" ({', '.join(extras)})" if extras else ""
    return (f"Imported {plural(result.labels_written, 'label')} and "
            f"{plural(result.regions_written, 'region')} into '{plan.label_set}'{extra}; "
            f"Undo reverts the whole import.")
