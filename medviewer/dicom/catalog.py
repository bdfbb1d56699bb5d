"""A folder, a file or a DICOMDIR -> Patient > Study > Series > Instance, with a cached index.

``index_path`` is a job generator (see ``medviewer.jobs``): it yields Progress events and
returns a :class:`Catalog`. Re-indexing a folder reuses the cache in the user cache dir for
files whose size and modification time are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class InstanceRecord:
    """What the browser needs about one file, read from its header only."""

    path: Path
    sop_instance_uid: str
    instance_number: int | None = None
    n_frames: int = 1
    rows: int = 0
    columns: int = 0
    modality: str = ""
    photometric: str = ""
    content_hash: str | None = None  # set for non-DICOM images


@dataclass
class SeriesNode:
    uid: str
    number: int | None = None
    description: str = ""
    modality: str = ""
    instances: list[InstanceRecord] = field(default_factory=list)


@dataclass
class StudyNode:
    uid: str
    date: str = ""  # DICOM DA, YYYYMMDD
    description: str = ""
    accession_number: str = ""
    series: list[SeriesNode] = field(default_factory=list)


@dataclass
class PatientNode:
    patient_id: str
    name: str = ""
    birth_date: str = ""
    sex: str = ""
    studies: list[StudyNode] = field(default_factory=list)


@dataclass
class FileError:
    path: Path
    reason: str  # the LoadError sentence


@dataclass
class Catalog:
    root: Path
    patients: list[PatientNode] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
    from_cache: int = 0  # how many records came from the cache unchanged

    def instances(self) -> list[InstanceRecord]:
        return [inst for p in self.patients for st in p.studies for se in st.series
                for inst in se.instances]
