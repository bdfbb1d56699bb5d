"""The PACS jobs the GUI and the command line run: verify, search, retrieve, send.

Each is a job generator (``medviewer.jobs``): it yields :class:`~medviewer.jobs.Progress`
(and, while retrieving, one :class:`InstanceArrived` per file, so a viewer can open the first
image at once), checks the cancel flag between messages and returns its result. Which
protocol runs (DIMSE or DICOMweb) follows the server's ``kind``; the protocol modules are
imported here, inside the jobs, so merely listing servers loads neither pynetdicom nor
requests.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medviewer.jobs import CancelFlag, Progress
from medviewer.pacs import errors
from medviewer.pacs.cache import RetrieveCache, safe_name
from medviewer.pacs.query import (
    PatientRow,
    SeriesRow,
    StudyQuery,
    StudyRow,
    group_by_patient,
)
from medviewer.pacs.servers import ServerConfig, secret_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InstanceArrived:
    """Event: one retrieved instance is complete on disk (``done`` so far, of ``total``)."""

    path: Path
    done: int
    total: int | None
    first: bool


@dataclass
class RetrieveResult:
    server: str
    study_uid: str
    series_uid: str | None
    folder: Path  # the study's folder
    paths: list[Path]
    expected: int | None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"server": self.server, "study_uid": self.study_uid,
                "series_uid": self.series_uid, "folder": str(self.folder),
                "instances": len(self.paths), "expected": self.expected,
                "seconds": round(self.seconds, 3)}


@dataclass
class SendResult:
    server: str
    sent: int
    failed: list[tuple[Path, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"server": self.server, "sent": self.sent,
                "failed": [{"path": str(p), "reason": r} for p, r in self.failed]}


def _cancel(cancel: CancelFlag | None) -> CancelFlag:
    return cancel if cancel is not None else CancelFlag()


def echo_job(server: ServerConfig, secret: str | None = None,
             cancel: CancelFlag | None = None) -> Generator[Progress, None, float]:
    """Verify that the server answers and accepts us; returns the round trip in ms."""
    cancel = _cancel(cancel)
    if server.kind == "dicomweb":
        from medviewer.pacs import dicomweb

        return (yield from dicomweb.echo(server, secret_for(server, secret), cancel))
    from medviewer.pacs import dimse

    return (yield from dimse.echo(server, cancel))


def find_studies_job(server: ServerConfig, query: StudyQuery, secret: str | None = None,
                     cancel: CancelFlag | None = None
                     ) -> Generator[Progress, None, list[StudyRow]]:
    cancel = _cancel(cancel)
    if server.kind == "dicomweb":
        from medviewer.pacs import dicomweb

        return (yield from dicomweb.find_studies(server, secret_for(server, secret), query,
                                                 cancel))
    from medviewer.pacs import dimse

    return (yield from dimse.find_studies(server, query, cancel))


def find_patients_job(server: ServerConfig, query: StudyQuery, secret: str | None = None,
                      cancel: CancelFlag | None = None
                      ) -> Generator[Progress, None, list[PatientRow]]:
    """Patients with their matching studies (a study-level search, grouped)."""
    studies = yield from find_studies_job(server, query, secret, cancel)
    return group_by_patient(studies)


def find_series_job(server: ServerConfig, study_uid: str, secret: str | None = None,
                    cancel: CancelFlag | None = None
                    ) -> Generator[Progress, None, list[SeriesRow]]:
    cancel = _cancel(cancel)
    if server.kind == "dicomweb":
        from medviewer.pacs import dicomweb

        return (yield from dicomweb.find_series(server, secret_for(server, secret), study_uid,
                                                cancel))
    from medviewer.pacs import dimse

    return (yield from dimse.find_series(server, study_uid, cancel))


def priors_job(server: ServerConfig, study: StudyRow, secret: str | None = None,
               cancel: CancelFlag | None = None
               ) -> Generator[Progress, None, list[StudyRow]]:
    """The patient's other studies on the server, newest first."""
    if not study.patient_id:
        raise errors.PacsError("This study has no patient ID, so its priors cannot be found.")
    found = yield from find_studies_job(server, StudyQuery(patient_id=study.patient_id),
                                        secret, cancel)
    others = [s for s in found if s.study_uid != study.study_uid]
    return sorted(others, key=lambda s: (s.date, s.time), reverse=True)


def retrieve_job(server: ServerConfig, study_uid: str, series_uid: str | None = None, *,
                 root: Path, secret: str | None = None, cancel: CancelFlag | None = None,
                 ) -> Generator[Any, None, RetrieveResult]:
    """Retrieve a study (or one series) into ``root/<study>/<series>/<sop>.dcm``.

    Yields Progress and one InstanceArrived per file. A retrieve that ends early raises
    PartialRetrieveError (what arrived is kept); cancelling raises JobCancelled.
    """
    import time

    cancel = _cancel(cancel)
    started = time.perf_counter()
    count = 0
    what = "series" if series_uid else "study"
    yield Progress(0, None, f"Retrieving the {what} from {server.name}")

    def arrived(path: Path, expected: int | None) -> InstanceArrived:
        nonlocal count
        count += 1
        return InstanceArrived(path, count, expected, count == 1)

    if server.kind == "dicomweb":
        from medviewer.pacs import dicomweb

        paths, expected = yield from dicomweb.retrieve(
            server, secret_for(server, secret), study_uid, series_uid, root, cancel, arrived)
    else:
        from medviewer.pacs import dimse

        paths, expected = yield from dimse.retrieve(server, study_uid, series_uid, root,
                                                    cancel, arrived)
    return RetrieveResult(server.name, study_uid, series_uid, root / safe_name(study_uid),
                          paths, expected, time.perf_counter() - started)


def retrieve_to_cache_job(server: ServerConfig, study_uid: str, series_uid: str | None = None,
                          *, cache: RetrieveCache, open_study_uids: Iterable[str] = (),
                          secret: str | None = None, cancel: CancelFlag | None = None,
                          ) -> Generator[Any, None, RetrieveResult]:
    """Retrieve into the local cache, then evict the oldest studies over its limit (never an
    open one, nor this one). A partial retrieve still marks the study used and is kept."""
    cache.touch(study_uid)
    try:
        result = yield from retrieve_job(server, study_uid, series_uid, root=cache.root,
                                         secret=secret, cancel=cancel)
    finally:
        cache.touch(study_uid)
        cache.evict(open_study_uids, keep=[study_uid])
    return result


def send_job(server: ServerConfig, paths: Sequence[str | os.PathLike],
             secret: str | None = None, cancel: CancelFlag | None = None
             ) -> Generator[Progress, None, SendResult]:
    """Send files (folders are walked) with C-STORE or STOW-RS.

    Raises PacsError when any file was not taken (the sentence counts them and names the
    first reason); returns the result when every file was sent.
    """
    cancel = _cancel(cancel)
    files = list_files(paths)
    if not files:
        raise errors.PacsError("There is nothing to send: no files were given or found.")
    if server.kind == "dicomweb":
        from medviewer.pacs import dicomweb

        sent, failed = yield from dicomweb.store(server, secret_for(server, secret), files,
                                                 cancel)
    else:
        from medviewer.pacs import dimse

        sent, failed = yield from dimse.store(server, files, cancel)
    if failed:
        raise errors.PacsError(f"{len(failed)} of {len(files)} files were not sent to "
                               f"{server.name}; the first: {failed[0][1].rstrip('.')}.")
    return SendResult(server.name, sent, failed)


def list_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files from files and folders (walked, hidden files left out), in a stable order."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(p for p in sorted(path.rglob("*"))
                         if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            found.append(path)
        else:
            raise errors.PacsError(f"Cannot send {path}: the file does not exist.")
    return found
