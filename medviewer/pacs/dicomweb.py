"""DICOMweb with dicomweb-client: QIDO-RS search, WADO-RS retrieve (and rendered thumbnails),
STOW-RS store; basic or bearer authentication; TLS verified against the system's CAs or a
given CA file.

Every HTTP call has the server's timeout (a transport adapter adds it: dicomweb-client does
not pass one) and no automatic retries; failures become one PacsError sentence.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from medviewer.jobs import CancelFlag, JobCancelled, Progress
from medviewer.pacs import errors
from medviewer.pacs.cache import instance_path, safe_name, write_instance
from medviewer.pacs.query import SeriesRow, StudyQuery, StudyRow, as_int, name_pattern
from medviewer.pacs.servers import ServerConfig

log = logging.getLogger(__name__)

STOW_BATCH = 16  # instances per STOW-RS request: progress and cancel between requests
QIDO_PAGE = 500  # results per QIDO-RS request
MAX_RESULTS = 5000  # a search stops there and says so
STUDY_FIELDS = ("PatientBirthDate", "StudyDescription", "NumberOfStudyRelatedSeries",
                "NumberOfStudyRelatedInstances", "ModalitiesInStudy")
SERIES_FIELDS = ("SeriesDescription", "SeriesNumber", "Modality",
                 "NumberOfSeriesRelatedInstances")


class _ServerAdapter(HTTPAdapter):
    """Every request to the server: its timeout, its certificate check, no retries."""

    def __init__(self, timeout_s: float, verify: bool | str) -> None:
        super().__init__(max_retries=0)
        self.timeout_s = timeout_s
        self.verify = verify

    def send(self, request, **kwargs):
        request.url = literal_wildcards(request.url)
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = (min(self.timeout_s, 15.0), self.timeout_s)
        # Set here, not only on the session: requests lets REQUESTS_CA_BUNDLE (or
        # CURL_CA_BUNDLE) replace a session's CA file.
        kwargs["verify"] = self.verify
        return super().send(request, **kwargs)


def literal_wildcards(url: str) -> str:
    """Keep QIDO's ``*`` and ``^`` literal in the query string: requests escapes them, and
    some servers (Orthanc's DICOMweb plugin 1.7) match the escaped text, finding nothing.
    Both are allowed unescaped in a query by RFC 3986 practice."""
    if "?" not in url:
        return url
    path, query = url.split("?", 1)
    return path + "?" + query.replace("%2A", "*").replace("%5E", "^")


def make_session(server: ServerConfig, secret: str | None) -> requests.Session:
    session = requests.Session()
    adapter = _ServerAdapter(server.timeout_s, server.ca_file or True)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if server.auth == "basic":
        session.auth = (server.username, secret or "")
    elif server.auth == "bearer":
        session.headers["Authorization"] = f"Bearer {secret or ''}"
    session.verify = server.ca_file if server.ca_file else True
    session.headers["User-Agent"] = "MedViewer"
    return session


def make_client(server: ServerConfig, secret: str | None):
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(url=server.url, session=make_session(server, secret),
                            timeout=(min(server.timeout_s, 15.0), server.timeout_s))
    client.set_http_retry_params(retry=False)
    return client


@contextlib.contextmanager
def http_errors(server: ServerConfig, doing: str) -> Iterator[None]:
    """Turn what requests raises into one sentence naming the server."""
    try:
        yield
    except requests.exceptions.SSLError as exc:
        raise errors.PacsError(
            f"{server.label} ({server.url}) presented a TLS certificate that could not be "
            f"verified while {doing} ({_tls_reason(exc)}); ask for the hospital's CA file "
            f"and set it in the server settings.") from None
    except requests.exceptions.ConnectTimeout:
        raise errors.timed_out(server.label, min(server.timeout_s, 15.0),
                               "accept a connection") from None
    except requests.exceptions.Timeout:
        raise errors.timed_out(server.label, server.timeout_s, f"answer while {doing}") \
            from None
    except requests.exceptions.ConnectionError as exc:
        if _caused_by(exc, ConnectionRefusedError):
            raise errors.refused(server.label, server.url) from None
        raise errors.PacsError(f"{server.label} ({server.url}) dropped the connection while "
                               f"{doing} ({_root_reason(exc)}).") from None
    except requests.exceptions.HTTPError as exc:
        response = exc.response
        code = response.status_code if response is not None else 0
        if code in (401, 403):
            raise errors.authentication_failed(server.label) from None
        if code == 404:
            raise errors.PacsError(f"{server.label} has no such resource ({doing}): check the "
                                   f"DICOMweb base URL {server.url}.") from None
        reason = response.reason if response is not None else ""
        raise errors.PacsError(f"{server.label} answered HTTP {code} {reason} while "
                               f"{doing}.") from None
    except requests.exceptions.RequestException as exc:
        raise errors.PacsError(f"{server.label} could not be reached while {doing} "
                               f"({_root_reason(exc)}).") from None


def _caused_by(exc: BaseException, kind: type) -> bool:
    seen = set()
    stack: list[Any] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind):
            return True
        stack.extend([current.__cause__, current.__context__,
                      *[a for a in getattr(current, "args", ()) if isinstance(a, BaseException)],
                      getattr(current, "reason", None)])
    return False


def _tls_reason(exc: BaseException) -> str:
    """OpenSSL's own words for a failed certificate check, without requests' wrapping."""
    import ssl

    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current.verify_message or "certificate verify failed"
        stack.extend([current.__cause__, current.__context__, getattr(current, "reason", None),
                      *[a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]])
    return "the TLS handshake failed"


def _root_reason(exc: BaseException) -> str:
    text = str(exc)
    return text[-200:] if text else type(exc).__name__


# ---------------------------------------------------------------- QIDO-RS


def _value(item: dict, keyword: str) -> Any:
    from pydicom.datadict import tag_for_keyword

    tag = f"{tag_for_keyword(keyword):08X}"
    values = item.get(tag, {}).get("Value") or []
    if not values:
        return ""
    value = values[0] if len(values) == 1 else values
    if isinstance(value, dict):  # a person name
        return value.get("Alphabetic", "")
    return value


def study_row(item: dict) -> StudyRow:
    modalities = _value(item, "ModalitiesInStudy")
    if isinstance(modalities, str):
        modalities = [modalities] if modalities else []
    return StudyRow(
        study_uid=str(_value(item, "StudyInstanceUID")),
        patient_id=str(_value(item, "PatientID")), patient_name=str(_value(item, "PatientName")),
        birth_date=str(_value(item, "PatientBirthDate")), date=str(_value(item, "StudyDate")),
        time=str(_value(item, "StudyTime")), description=str(_value(item, "StudyDescription")),
        accession=str(_value(item, "AccessionNumber")),
        modalities=tuple(str(m) for m in modalities),
        series_count=as_int(_value(item, "NumberOfStudyRelatedSeries")),
        instance_count=as_int(_value(item, "NumberOfStudyRelatedInstances")))


def study_filters(query: StudyQuery) -> dict[str, str]:
    filters = {"PatientID": query.patient_id.strip(),
               "PatientName": name_pattern(query.patient_name),
               "StudyDate": query.date_range(), "AccessionNumber": query.accession.strip(),
               "ModalitiesInStudy": query.modality.strip().upper(),
               "StudyInstanceUID": query.study_uid.strip()}
    return {k: v for k, v in filters.items() if v}


def echo(server: ServerConfig, secret: str | None, cancel: CancelFlag
         ) -> Generator[Progress, None, float]:
    """A one-study QIDO-RS search: the service answers and accepts our credentials."""
    import time

    yield Progress(0, 1, f"Verifying {server.url}")
    client = make_client(server, secret)
    started = time.perf_counter()
    with http_errors(server, "verifying the connection"):
        client.search_for_studies(limit=1)
    cancel.raise_if_cancelled()
    yield Progress(1, 1, "Verified")
    return (time.perf_counter() - started) * 1000.0


def find_studies(server: ServerConfig, secret: str | None, query: StudyQuery,
                 cancel: CancelFlag, limit: int | None = None
                 ) -> Generator[Progress, None, list[StudyRow]]:
    yield Progress(0, None, "Searching")
    client = make_client(server, secret)
    found = yield from _paged(server, "studies", "StudyInstanceUID", cancel, limit,
                              lambda offset, count: client.search_for_studies(
                                  search_filters=study_filters(query), fields=list(STUDY_FIELDS),
                                  offset=offset, limit=count))
    return [study_row(item) for item in found]


def _paged(server: ServerConfig, what: str, key: str, cancel: CancelFlag, limit: int | None,
           search: Callable[[int, int], list[dict]]) -> Generator[Progress, None, list[dict]]:
    """Page through a QIDO-RS search with offset and limit, bounded: a server that ignores
    ``offset`` (it sends the first page again) cannot make this loop forever."""
    wanted = min(limit or MAX_RESULTS, MAX_RESULTS)
    found: list[dict] = []
    seen: set[str] = set()
    while len(found) < wanted:
        count = min(QIDO_PAGE, wanted - len(found))
        with http_errors(server, f"searching for {what}"):
            page = search(len(found), count)
        cancel.raise_if_cancelled()
        new = [item for item in page if str(_value(item, key)) not in seen]
        seen.update(str(_value(item, key)) for item in new)
        found.extend(new)
        if len(page) < count or not new:
            break
        yield Progress(len(found), None, f"{len(found)} {what} found")
    return found[:wanted]


def find_series(server: ServerConfig, secret: str | None, study_uid: str, cancel: CancelFlag
                ) -> Generator[Progress, None, list[SeriesRow]]:
    yield Progress(0, None, "Searching for series")
    client = make_client(server, secret)
    found = yield from _paged(server, "series", "SeriesInstanceUID", cancel, None,
                              lambda offset, count: client.search_for_series(
                                  study_instance_uid=study_uid, fields=list(SERIES_FIELDS),
                                  offset=offset, limit=count))
    rows = [SeriesRow(study_uid, str(_value(i, "SeriesInstanceUID")), str(_value(i, "Modality")),
                      as_int(_value(i, "SeriesNumber")), str(_value(i, "SeriesDescription")),
                      as_int(_value(i, "NumberOfSeriesRelatedInstances"))) for i in found]
    return sorted(rows, key=lambda r: (r.number is None, r.number or 0, r.series_uid))


def count_instances(client, server: ServerConfig, study_uid: str,
                    series_uid: str | None) -> int | None:
    with http_errors(server, "counting the instances to retrieve"):
        if series_uid:
            found = client.search_for_series(
                study_instance_uid=study_uid, fields=["NumberOfSeriesRelatedInstances"],
                search_filters={"SeriesInstanceUID": series_uid})
            return as_int(_value(found[0], "NumberOfSeriesRelatedInstances")) if found else None
        found = client.search_for_studies(search_filters={"StudyInstanceUID": study_uid},
                                          fields=["NumberOfStudyRelatedInstances"])
        return as_int(_value(found[0], "NumberOfStudyRelatedInstances")) if found else None


# ---------------------------------------------------------------- WADO-RS


def retrieve(server: ServerConfig, secret: str | None, study_uid: str, series_uid: str | None,
             root: Path, cancel: CancelFlag, on_arrival: Callable[[Path, int | None], Any]
             ) -> Generator[Any, None, tuple[list[Path], int | None]]:
    """Stream the study (or series) with WADO-RS; each instance is written as it arrives."""
    from pydicom.filewriter import dcmwrite

    client = make_client(server, secret)
    expected = count_instances(client, server, study_uid, series_uid)
    if expected == 0:
        return [], 0
    arrived: list[Path] = []
    # Instances in the syntax they are stored in ('*'), as a PACS viewer would.
    media_types = (("application/dicom", "*"),)
    folder = root / safe_name(study_uid)
    with http_errors(server, "retrieving the study"):
        if series_uid:
            stream = client.iter_series(study_uid, series_uid, media_types=media_types)
        else:
            stream = client.iter_study(study_uid, media_types=media_types)
    try:
        while True:
            cancel.raise_if_cancelled()
            try:
                with http_errors(server, "retrieving the study"):
                    dataset = next(stream)
            except StopIteration:
                break
            except errors.PacsError as exc:
                log.info("WADO-RS retrieve ended early: %s", exc)
                raise errors.partial(server.label, arrived, expected,
                                     "the connection was lost or timed out", folder) from None
            path = instance_path(root, str(dataset.get("StudyInstanceUID", study_uid)),
                                 str(dataset.get("SeriesInstanceUID", "unknown")),
                                 str(dataset.SOPInstanceUID))
            buffer = _encode(dataset, dcmwrite)
            write_instance(path, buffer)
            arrived.append(path)
            yield on_arrival(path, expected)
    except JobCancelled:
        _close(stream)
        raise
    except ValueError as exc:  # a multipart message cut short
        raise errors.partial(server.label, arrived, expected,
                             f"the answer was cut short: {exc}", folder) from None
    if expected is not None and len(arrived) < expected:
        raise errors.partial(server.label, arrived, expected, "the server stopped sending",
                             folder)
    return arrived, expected if expected is not None else len(arrived)


def _encode(dataset, dcmwrite) -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()


def _close(stream) -> None:
    with contextlib.suppress(Exception):
        stream.close()


def rendered_thumbnail(server: ServerConfig, secret: str | None, study_uid: str,
                       series_uid: str, sop_uid: str, size: int = 128) -> bytes:
    """A JPEG of one instance rendered by the server, at most ``size`` pixels wide and high
    where the server honours the viewport (for quick previews)."""
    client = make_client(server, secret)
    with http_errors(server, "fetching a thumbnail"):
        try:
            return client.retrieve_instance_rendered(
                study_uid, series_uid, sop_uid, media_types=("image/jpeg",),
                params={"viewport": f"{size},{size}"})
        except requests.exceptions.HTTPError as exc:
            if exc.response is None or exc.response.status_code != 400:
                raise
        # Some servers (Orthanc's plugin 1.7) refuse the viewport parameter: full size.
        return client.retrieve_instance_rendered(study_uid, series_uid, sop_uid,
                                                 media_types=("image/jpeg",))


# ---------------------------------------------------------------- STOW-RS


def store(server: ServerConfig, secret: str | None, paths: list[Path], cancel: CancelFlag
          ) -> Generator[Progress, None, tuple[int, list[tuple[Path, str]]]]:
    from pydicom import dcmread

    client = make_client(server, secret)
    sent = 0
    failed: list[tuple[Path, str]] = []
    for start in range(0, len(paths), STOW_BATCH):
        cancel.raise_if_cancelled()
        yield Progress(start, len(paths), f"Sending {start + 1}-"
                                          f"{min(start + STOW_BATCH, len(paths))}")
        batch = []
        for path in paths[start:start + STOW_BATCH]:
            try:
                batch.append((path, dcmread(path)))
            except Exception as exc:  # noqa: BLE001 - one bad file is reported, not fatal
                failed.append((path, f"{path} is not a DICOM file that can be sent ({exc})"))
        if not batch:
            continue
        with http_errors(server, "sending files"):
            answer = client.store_instances([ds for _p, ds in batch])
        refused = {str(item.ReferencedSOPInstanceUID)
                   for item in answer.get("FailedSOPSequence", [])} if answer else set()
        for path, ds in batch:
            if str(ds.SOPInstanceUID) in refused:
                failed.append((path, f"{server.label} refused {path.name}"))
            else:
                sent += 1
    yield Progress(len(paths), len(paths), f"Sent {sent} files")
    return sent, failed
