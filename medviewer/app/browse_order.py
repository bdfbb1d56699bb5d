"""The order images are listed in the study browser and walked by N / P: one definition.

DICOM images by patient, study and series as the catalog sorts them; plain PNG/JPEG images
(which have no patient, study or series of their own) one row per folder, by file name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medviewer.dicom.catalog import Catalog, InstanceRecord, PatientNode


@dataclass
class FolderGroup:
    """The plain images of one folder, shown as one row."""

    folder: Path
    records: list[InstanceRecord]


def display_groups(catalog: Catalog, include: Callable[[InstanceRecord], bool] = lambda r: True,
                   ) -> list[tuple[PatientNode | FolderGroup, list[InstanceRecord]]]:
    """The browser's top-level rows for ``catalog`` with their images, in the tree's order:
    DICOM patients as the catalog sorts them, then plain images by folder and file name."""
    from medviewer.dicom import images

    rows: list[tuple[PatientNode | FolderGroup, list[InstanceRecord]]] = []
    folders: dict[Path, FolderGroup] = {}
    for patient in catalog.patients:
        chosen = [record for study in patient.studies for series in study.series
                  for record in series.instances if include(record)]
        if not chosen:
            continue
        if all(images.is_plain_image(record.path) for record in chosen):
            for record in chosen:
                folder = record.path.parent
                folders.setdefault(folder, FolderGroup(folder, [])).records.append(record)
        else:
            rows.append((patient, chosen))
    for group in sorted(folders.values(), key=lambda g: str(g.folder)):
        group.records.sort(key=lambda r: r.path.name)
        rows.append((group, group.records))
    return rows


def display_order(catalog: Catalog) -> list[InstanceRecord]:
    """Every image of ``catalog`` in the order the browser lists it (N / P follow this)."""
    return [record for _, records in display_groups(catalog) for record in records]
