"""DIMSE with pynetdicom: C-ECHO, C-FIND, C-GET, C-MOVE (to our own storage SCP), C-STORE.

Each function is a job generator (``medviewer.jobs``). Every association and every message
has the server's timeout; a failure becomes one :class:`~medviewer.pacs.errors.PacsError`
sentence (refused, timed out, rejected with the reason, aborted). Cancelling aborts the
association at the next message; instances already written are kept.

Instances arrive on pynetdicom's association (or storage SCP) thread; the handler writes each
one whole and hands its path to the job's thread through a queue, which yields an
:class:`~medviewer.pacs.operations.InstanceArrived` event per file.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable, Generator
from io import BytesIO
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
    UID,
)
from pynetdicom import (
    AE, PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION,
    StoragePresentationContexts, build_role, evt,
)
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from medviewer.dicom import file_meta
from medviewer.jobs import CancelFlag, JobCancelled, Progress, run_to_end
from medviewer.pacs import errors
from medviewer.pacs.cache import instance_path, safe_name, write_instance
from medviewer.pacs.query import SeriesRow, StudyQuery, StudyRow, as_int, name_pattern
from medviewer.pacs.servers import ServerConfig

log = logging.getLogger(__name__)
# pynetdicom logs every refused or rejected association at ERROR; MedViewer says the same in
# one sentence, so its lines would only duplicate it on stderr. Debug runs (-v) keep them.
if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)

# What we accept when a PACS sends us instances: uncompressed first, then the compressed
# syntaxes the viewer decodes, so compressed studies arrive as stored (no transcoding).
RECEIVE_SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                    DeflatedExplicitVRLittleEndian, JPEGBaseline8Bit, JPEGExtended12Bit,
                    JPEGLosslessSV1, JPEGLSLossless, JPEG2000Lossless, JPEG2000, RLELossless]
# Proposed for C-GET besides the classes the PACS says the study holds: proposing all ~120
# storage classes with every syntax costs ~0.3 s of association set-up before the first image.
COMMON_STORAGE = (
    "1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.5.1.4.1.1.1.2",
    "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.4",
    "1.2.840.10008.5.1.4.1.1.4.1", "1.2.840.10008.5.1.4.1.1.6.1", "1.2.840.10008.5.1.4.1.1.7",
    "1.2.840.10008.5.1.4.1.1.12.1", "1.2.840.10008.5.1.4.1.1.20", "1.2.840.10008.5.1.4.1.1.128",
    "1.2.840.10008.5.1.4.1.1.1.2.1", "1.2.840.10008.5.1.4.1.1.88.11",
    "1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.88.33",
    "1.2.840.10008.5.1.4.1.1.88.34", "1.2.840.10008.5.1.4.1.1.11.1",
    "1.2.840.10008.5.1.4.1.1.104.1", "1.2.840.10008.5.1.4.1.1.66.4",
)  # CR, DX, MG, CT, enhanced CT, MR, enhanced MR, US, SC, XA, NM, PET, SR, GSPS, PDF, SEG
_PENDING = (0xFF00, 0xFF01)
_STORE_OK, _STORE_FAILED = 0x0000, 0xA700  # success; "refused: out of resources"


def _status_text(code: int) -> str:
    known = {0xA700: "out of resources", 0xA900: "identifier does not match SOP class",
             0xAA00: "none of the frames requested were found",
             0xC000: "unable to process", 0xA701: "out of resources (matches)",
             0xA702: "out of resources (sub-operations)",
             0xA801: "the move destination is unknown to the PACS", 0xFE00: "cancelled",
             0x0122: "SOP class not supported"}
    return known.get(code, f"status 0x{code:04X}")


def _new_ae(server: ServerConfig) -> AE:
    ae = AE(ae_title=server.calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = server.timeout_s
    ae.connection_timeout = min(server.timeout_s, 15.0)
    ae.maximum_pdu_size = 0  # no limit on what we accept
    return ae


def _probe(server: ServerConfig) -> errors.PacsError:
    """Why an association could not even be set up: refused, timed out or unreachable."""
    where = f"{server.host}:{server.port}"
    try:
        with socket.create_connection((server.host, server.port),
                                      timeout=min(server.timeout_s, 15.0)):
            pass
    except ConnectionRefusedError:
        return errors.refused(server.label, where)
    except TimeoutError:
        return errors.timed_out(server.label, min(server.timeout_s, 15.0), "accept a connection")
    except OSError as exc:
        return errors.PacsError(f"{server.label} cannot be reached at {where}: "
                                f"{exc.strerror or exc}.")
    return errors.timed_out(server.label, server.timeout_s, "accept the association")


def _no_delay(event) -> None:
    """Send each DIMSE message at once: with Nagle's algorithm every small C-STORE response
    waits for the peer's delayed ACK (tens of ms per instance on a retrieve)."""
    with contextlib.suppress(AttributeError, OSError):
        event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def associate(ae: AE, server: ServerConfig, ext_neg: list | None = None,
              handlers: list | None = None):
    """An established association, or a PacsError saying why not."""
    answers: list[Any] = []

    def keep_answer(event) -> None:
        answers.append(event.primitive)

    def keep_rejection(event) -> None:
        # The PDU itself: when the PACS closes the connection right after rejecting,
        # pynetdicom may handle the close first and report an abort, never the rejection.
        if type(event.pdu).__name__ == "A_ASSOCIATE_RJ":
            answers.append(event.pdu)

    handlers = list(handlers or []) + [(evt.EVT_ACSE_RECV, keep_answer),
                                       (evt.EVT_PDU_RECV, keep_rejection),
                                       (evt.EVT_CONN_OPEN, _no_delay)]
    assoc = ae.associate(server.host, server.port, ae_title=server.ae_title,
                         ext_neg=ext_neg, evt_handlers=handlers)
    if assoc.is_established:
        assoc.unbind(evt.EVT_PDU_RECV, keep_rejection)  # not called for every data PDU
        return assoc
    rejection = next((a for a in reversed(answers) if getattr(a, "result", 0) in (1, 2)), None)
    if assoc.is_rejected or rejection is not None:
        try:
            reason = rejection.reason_str if rejection is not None else "no reason given"
        except ValueError:  # a reason code the standard does not define
            reason = "no reason given"
        hint = ""
        if "AE title" in reason:
            hint = (f" (MedViewer called '{server.ae_title}' as '{server.calling_ae}'; check "
                    f"both AE titles with the PACS administrator)")
        raise errors.rejected(server.label, f"{reason[:1].lower()}{reason[1:]}{hint}")
    if assoc.is_aborted and answers:
        raise errors.PacsError(f"{server.label} aborted the association request (it may "
                               f"not accept MedViewer's AE title '{server.calling_ae}').")
    if any(getattr(a, "result", None) == 0 for a in answers):
        raise errors.PacsError(f"{server.label} accepted none of the requested services.")
    raise _probe(server)


@contextlib.contextmanager
def _abort_on_cancel(assoc, cancel: CancelFlag):
    """Abort the association as soon as the flag is set, even while the job's thread waits
    for the server's next message (a PACS may take its own timeout to answer a refused
    sub-operation)."""
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.05):
            if cancel.cancelled:
                assoc.abort()
                return

    watcher = threading.Thread(target=watch, name="medviewer-pacs-cancel", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def _end(assoc, cancel: CancelFlag) -> None:
    """Release a finished association; abort one left early (cancelled, failed, or closed by
    the job's runner): a release in the middle of a retrieve waits for the PACS's timeout."""
    if not assoc.is_established:
        return
    if cancel.cancelled or sys.exc_info()[0] is not None:
        assoc.abort()
    else:
        assoc.release()


def _check_cancel(cancel: CancelFlag, assoc) -> None:
    if cancel.cancelled:
        assoc.abort()
        raise JobCancelled()


# ---------------------------------------------------------------- C-ECHO


def echo(server: ServerConfig, cancel: CancelFlag) -> Generator[Progress, None, float]:
    """Verify the connection; returns the round trip in milliseconds."""
    yield Progress(0, 1, f"Verifying {server.address}")
    ae = _new_ae(server)
    ae.add_requested_context(Verification)
    started = time.perf_counter()
    assoc = associate(ae, server)
    try:
        _check_cancel(cancel, assoc)
        status = assoc.send_c_echo()
        if not status:
            raise errors.timed_out(server.label, server.timeout_s, "answer the verification")
        if status.Status != 0x0000:
            raise errors.PacsError(f"{server.label} answered the verification with "
                                   f"{_status_text(status.Status)}.")
    finally:
        _end(assoc, cancel)
    yield Progress(1, 1, "Verified")
    return (time.perf_counter() - started) * 1000.0


# ---------------------------------------------------------------- C-FIND


def _find(server: ServerConfig, identifier: Dataset, model, cancel: CancelFlag,
          what: str) -> Generator[Progress, None, list[Dataset]]:
    ae = _new_ae(server)
    ae.add_requested_context(model)
    assoc = associate(ae, server)
    matches: list[Dataset] = []
    try:
        with _abort_on_cancel(assoc, cancel):
            for status, found in assoc.send_c_find(identifier, model):
                _check_cancel(cancel, assoc)
                if not status:
                    raise errors.PacsError(f"{server.label} stopped answering the search for "
                                           f"{what} (the connection was lost or timed out after "
                                           f"{server.timeout_s:g} s).")
                if status.Status in _PENDING:
                    if found is not None:
                        matches.append(found)
                        if len(matches) % 50 == 0:
                            yield Progress(len(matches), None, f"{len(matches)} {what} found")
                elif status.Status != 0x0000:
                    raise errors.PacsError(f"{server.label} refused the search for {what}: "
                                           f"{_status_text(status.Status)}.")
    finally:
        _end(assoc, cancel)
    return matches


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def study_identifier(query: StudyQuery) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.PatientID = query.patient_id.strip()
    ds.PatientName = name_pattern(query.patient_name)
    ds.PatientBirthDate = ""
    ds.StudyDate = query.date_range()
    ds.StudyTime = ""
    ds.AccessionNumber = query.accession.strip()
    ds.ModalitiesInStudy = query.modality.strip().upper()
    ds.StudyDescription = ""
    ds.StudyInstanceUID = query.study_uid.strip()
    ds.NumberOfStudyRelatedSeries = ""
    ds.NumberOfStudyRelatedInstances = ""
    return ds


def study_row(ds: Dataset) -> StudyRow:
    modalities = ds.get("ModalitiesInStudy", "") or ""
    if isinstance(modalities, str):
        modalities = [m for m in modalities.split("\\") if m]
    return StudyRow(
        study_uid=_text(ds, "StudyInstanceUID"), patient_id=_text(ds, "PatientID"),
        patient_name=_text(ds, "PatientName"), birth_date=_text(ds, "PatientBirthDate"),
        date=_text(ds, "StudyDate"), time=_text(ds, "StudyTime"),
        description=_text(ds, "StudyDescription"), accession=_text(ds, "AccessionNumber"),
        modalities=tuple(str(m) for m in modalities),
        series_count=as_int(ds.get("NumberOfStudyRelatedSeries")),
        instance_count=as_int(ds.get("NumberOfStudyRelatedInstances")))


def find_studies(server: ServerConfig, query: StudyQuery, cancel: CancelFlag
                 ) -> Generator[Progress, None, list[StudyRow]]:
    found = yield from _find(server, study_identifier(query),
                             StudyRootQueryRetrieveInformationModelFind, cancel, "studies")
    return [study_row(ds) for ds in found]


def find_patients(server: ServerConfig, query: StudyQuery, cancel: CancelFlag
                  ) -> Generator[Progress, None, list[dict]]:
    """Patient-level matches (patient root model): ID, name, birth date, study count."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "PATIENT"
    ds.PatientID = query.patient_id.strip()
    ds.PatientName = name_pattern(query.patient_name)
    ds.PatientBirthDate = ""
    ds.NumberOfPatientRelatedStudies = ""
    found = yield from _find(server, ds, PatientRootQueryRetrieveInformationModelFind, cancel,
                             "patients")
    return [{"patient_id": _text(d, "PatientID"), "patient_name": _text(d, "PatientName"),
             "birth_date": _text(d, "PatientBirthDate"),
             "studies": as_int(d.get("NumberOfPatientRelatedStudies"))} for d in found]


def find_series(server: ServerConfig, study_uid: str, cancel: CancelFlag
                ) -> Generator[Progress, None, list[SeriesRow]]:
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = ""
    ds.Modality = ""
    ds.SeriesNumber = ""
    ds.SeriesDescription = ""
    ds.NumberOfSeriesRelatedInstances = ""
    found = yield from _find(server, ds, StudyRootQueryRetrieveInformationModelFind, cancel,
                             "series")
    rows = [SeriesRow(study_uid, _text(d, "SeriesInstanceUID"), _text(d, "Modality"),
                      as_int(d.get("SeriesNumber")), _text(d, "SeriesDescription"),
                      as_int(d.get("NumberOfSeriesRelatedInstances"))) for d in found]
    return sorted(rows, key=lambda r: (r.number is None, r.number or 0, r.series_uid))


# ---------------------------------------------------------------- C-GET / C-MOVE


class _Receiver:
    """The C-STORE handler: writes each instance whole and queues its path."""

    def __init__(self, root: Path, study_uid: str, cancel: CancelFlag) -> None:
        self.root = root
        self.study_uid = study_uid
        self.cancel = cancel
        self.arrived: queue.Queue[Path] = queue.Queue()

    def __call__(self, event) -> int:
        if self.cancel.cancelled:
            return _STORE_FAILED
        try:
            request = event.request
            sop_uid = str(request.AffectedSOPInstanceUID)
            syntax = UID(event.context.transfer_syntax)
            header = _header_bytes(event, request, sop_uid, syntax)
            if header is None:  # deflated, or a meta value pydicom has to check
                dataset = event.dataset
                header, encoded = b"", event.encoded_dataset(include_meta=True)
            else:
                encoded = request.DataSet.getvalue()
                dataset = _study_elements(encoded, syntax)
            study_uid = str(dataset.get("StudyInstanceUID", self.study_uid))
            if study_uid != self.study_uid:
                # The C-MOVE receiver listens to the network while a retrieve runs: only
                # the study asked for goes into the cache (and counts as arrived).
                log.warning("Refused instance %s of study %s while retrieving %s", sop_uid,
                            study_uid, self.study_uid)
                return _STORE_FAILED
            path = instance_path(self.root, study_uid,
                                 str(dataset.get("SeriesInstanceUID", "unknown")), sop_uid)
            write_instance(path, header, encoded)
        except Exception:
            log.exception("Could not keep an instance the PACS sent")
            return _STORE_FAILED
        self.arrived.put(path)
        return _STORE_OK

    def drain(self) -> list[Path]:
        paths = []
        while True:
            try:
                paths.append(self.arrived.get_nowait())
            except queue.Empty:
                return paths


def _header_bytes(event, request, sop_uid: str, syntax: UID) -> bytes | None:
    """Preamble and file meta for an instance as it arrived (the data set is written as
    sent, never decoded and encoded again); None for a deflated one."""
    if syntax.is_deflated:
        return None
    meta = file_meta.encode_file_meta({
        file_meta.MEDIA_STORAGE_SOP_CLASS_UID: str(request.AffectedSOPClassUID),
        file_meta.MEDIA_STORAGE_SOP_INSTANCE_UID: sop_uid,
        file_meta.TRANSFER_SYNTAX_UID: str(syntax),
        file_meta.IMPLEMENTATION_CLASS_UID: PYNETDICOM_IMPLEMENTATION_UID,
        file_meta.IMPLEMENTATION_VERSION_NAME: PYNETDICOM_IMPLEMENTATION_VERSION,
        file_meta.SOURCE_APPLICATION_ENTITY_TITLE: str(event.assoc.requestor.ae_title
                                                       if event.assoc.is_acceptor else
                                                       event.assoc.acceptor.ae_title)})
    return file_meta.PREAMBLE + meta if meta is not None else None


def _study_elements(encoded: bytes, syntax: UID) -> Dataset:
    """The data set's elements up to the Series Instance UID (the folders the instance
    goes in), read from its bytes without reading the rest (the pixel data)."""
    return read_dataset(BytesIO(encoded), syntax.is_implicit_VR, syntax.is_little_endian,
                        stop_when=lambda tag, vr, length: tag > 0x0020000E)


def retrieve_identifier(study_uid: str, series_uid: str | None) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES" if series_uid else "STUDY"
    ds.StudyInstanceUID = study_uid
    if series_uid:
        ds.SeriesInstanceUID = series_uid
    return ds


def retrieve(server: ServerConfig, study_uid: str, series_uid: str | None, root: Path,
             cancel: CancelFlag, on_arrival: Callable[[Path, int | None], Any]
             ) -> Generator[Any, None, tuple[list[Path], int | None]]:
    """C-GET or C-MOVE (the server's ``retrieve_method``) into ``root``.

    ``on_arrival(path, expected)`` makes the event yielded for each arrived file. Returns
    (paths, expected count); raises PartialRetrieveError when fewer arrived than expected.
    """
    receiver = _Receiver(root, study_uid, cancel)
    identifier = retrieve_identifier(study_uid, series_uid)
    ae = _new_ae(server)
    scp = None
    if server.retrieve_method == "move":
        model = StudyRootQueryRetrieveInformationModelMove
        ae.add_requested_context(model)
        scp = _start_storage_scp(server, receiver)
        ext_neg, handlers = None, None
    else:
        model = StudyRootQueryRetrieveInformationModelGet
        ae.add_requested_context(model)
        classes = _storage_classes(server, study_uid, cancel)
        for sop_class in classes:
            ae.add_requested_context(sop_class, RECEIVE_SYNTAXES)
        ext_neg = [build_role(sop_class, scp_role=True) for sop_class in classes]
        handlers = [(evt.EVT_C_STORE, receiver)]
    arrived: list[Path] = []
    expected: int | None = None
    failed_subops = 0
    lost = final = None
    comment = ""
    try:
        assoc = associate(ae, server, ext_neg=ext_neg, handlers=handlers)
        try:
            with _abort_on_cancel(assoc, cancel):
                if scp is not None:
                    responses = assoc.send_c_move(identifier, server.calling_ae, model)
                else:
                    responses = assoc.send_c_get(identifier, model)
                for status, _identifier in responses:
                    for path in receiver.drain():
                        arrived.append(path)
                        yield on_arrival(path, expected)
                    _check_cancel(cancel, assoc)
                    if not status:
                        lost = ("the connection was lost or the server did not answer within "
                                f"{server.timeout_s:g} s")
                        break
                    counts = [as_int(status.get(k)) or 0 for k in (
                        "NumberOfRemainingSuboperations", "NumberOfCompletedSuboperations",
                        "NumberOfFailedSuboperations", "NumberOfWarningSuboperations")]
                    if status.Status in _PENDING:
                        if "NumberOfRemainingSuboperations" in status:
                            expected = sum(counts)
                    else:
                        final = status.Status
                        comment = str(status.get("ErrorComment", "") or "").strip()
                        failed_subops = counts[2]
                        if expected is None and any(counts[1:]):
                            expected = sum(counts[1:])
        finally:
            _end(assoc, cancel)
    finally:
        if scp is not None:
            _drain_scp(scp, receiver, expected, len(arrived), server.timeout_s)
            scp.shutdown()
    for path in receiver.drain():
        arrived.append(path)
        yield on_arrival(path, expected)
    cancel.raise_if_cancelled()
    folder = root / safe_name(study_uid)
    if lost:
        raise errors.partial(server.label, arrived, expected, lost, folder)
    if final is not None and final not in (0x0000, 0xB000, 0xFE00) and not arrived:
        reason = _status_text(final) + (f": {comment.rstrip('.')}" if comment else "")
        if scp is not None:  # most often the PACS does not know where to send
            raise errors.PacsError(
                f"{server.label} could not send the study to MedViewer ({reason}); check that "
                f"the PACS knows MedViewer's AE title '{server.calling_ae}' as a C-MOVE "
                f"destination with this computer's address and port {server.move_port}.")
        raise errors.PacsError(f"{server.label} could not send the study ({reason}).")
    if expected is not None and len(arrived) < expected:
        why = (f"the server reported {failed_subops} failed transfers" if failed_subops
               else "the server stopped sending")
        raise errors.partial(server.label, arrived, expected, why, folder)
    return arrived, expected if expected is not None else len(arrived)


def _storage_classes(server: ServerConfig, study_uid: str, cancel: CancelFlag) -> list[str]:
    """The storage classes to offer for a C-GET: those the PACS says the study holds plus the
    common ones; every class pynetdicom knows when the PACS does not say."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = study_uid
    ds.SOPClassesInStudy = ""
    try:
        found = run_to_end(_find(server, ds, StudyRootQueryRetrieveInformationModelFind,
                                 cancel, "the study's kinds of object"))
    except errors.PacsError:
        found = []
    in_study: list[str] = []
    for match in found:
        value = match.get("SOPClassesInStudy")
        if value:  # one UID is a str, several a MultiValue
            in_study.extend([str(value)] if isinstance(value, str) else map(str, value))
    if not in_study:
        return [c.abstract_syntax for c in StoragePresentationContexts[:127]]
    return list(dict.fromkeys([*in_study, *COMMON_STORAGE]))[:127]


def _start_storage_scp(server: ServerConfig, receiver: _Receiver):
    scp_ae = AE(ae_title=server.calling_ae)
    scp_ae.network_timeout = scp_ae.dimse_timeout = scp_ae.acse_timeout = server.timeout_s
    scp_ae.maximum_pdu_size = 0
    for context in StoragePresentationContexts:
        scp_ae.add_supported_context(context.abstract_syntax, RECEIVE_SYNTAXES)
    # Listen on loopback only when the PACS itself is on this machine.
    bind = "127.0.0.1" if server.host in ("127.0.0.1", "localhost", "::1") else ""
    try:
        return scp_ae.start_server((bind, server.move_port), block=False,
                                   evt_handlers=[(evt.EVT_C_STORE, receiver),
                                                 (evt.EVT_CONN_OPEN, _no_delay)])
    except OSError as exc:
        raise errors.PacsError(f"MedViewer cannot receive the C-MOVE on port "
                               f"{server.move_port}: {exc.strerror or exc} (is another "
                               f"program using it?).") from None


def _drain_scp(scp, receiver: _Receiver, expected: int | None, seen: int,
               timeout_s: float) -> None:
    """C-MOVE: the PACS's store association may still be finishing after the last response."""
    deadline = time.monotonic() + min(timeout_s, 10.0)
    while time.monotonic() < deadline and scp.active_associations:
        if expected is not None and seen + receiver.arrived.qsize() >= expected:
            break
        time.sleep(0.02)


# ---------------------------------------------------------------- C-STORE


def store(server: ServerConfig, paths: list[Path], cancel: CancelFlag
          ) -> Generator[Progress, None, tuple[int, list[tuple[Path, str]]]]:
    """Send files; returns (sent, [(file, reason)]) for those the server did not take."""
    headers: list[tuple[Path, str, str]] = []
    failed: list[tuple[Path, str]] = []
    for path in paths:
        try:
            head = dcmread(path, stop_before_pixels=True,
                           specific_tags=["SOPClassUID", "SOPInstanceUID"])
            sop_class = str(head.get("SOPClassUID") or head.file_meta.MediaStorageSOPClassUID)
            syntax = str(head.file_meta.TransferSyntaxUID)
            headers.append((path, sop_class, syntax))
        except Exception as exc:  # noqa: BLE001 - one bad file is reported, not fatal
            failed.append((path, f"{path} is not a DICOM file that can be sent ({exc})"))
    contexts: dict[str, set[str]] = {}
    for _path, sop_class, syntax in headers:
        contexts.setdefault(sop_class, set()).add(syntax)
    if len(contexts) > 128:
        raise errors.PacsError(f"The {len(paths)} files hold {len(contexts)} kinds of DICOM "
                               f"object; send at most 128 kinds at once.")
    sent = 0
    if headers:
        ae = _new_ae(server)
        for sop_class, syntaxes in contexts.items():
            wanted = list(dict.fromkeys([*sorted(syntaxes), ExplicitVRLittleEndian,
                                         ImplicitVRLittleEndian]))
            ae.add_requested_context(sop_class, wanted)
        assoc = associate(ae, server)
        try:
            for index, (path, _cls, _ts) in enumerate(headers):
                _check_cancel(cancel, assoc)
                yield Progress(index, len(headers), f"Sending {path.name}")
                try:
                    status = assoc.send_c_store(path)
                except ValueError as exc:  # no accepted context for this object
                    failed.append((path, f"{server.label} does not accept {path.name} ({exc})"))
                    continue
                if not status:
                    raise errors.PacsError(
                        f"{server.label} stopped answering after {sent} of {len(paths)} files "
                        f"were sent (connection lost or timed out).")
                if status.Status in (0x0000, 0xB000, 0xB007, 0xB006):
                    sent += 1
                else:
                    reason = f"{server.label} refused {path.name}: {_status_text(status.Status)}"
                    failed.append((path, reason))
        finally:
            _end(assoc, cancel)
    yield Progress(len(paths), len(paths), f"Sent {sent} files")
    return sent, failed
