"""Echo, find, retrieve and send against a real Orthanc, over DIMSE and DICOMweb, and the
failures a reading room meets: server down, wrong AE title, wrong password, a server that
stops mid-retrieve, a server that never answers, and cancelling a retrieve."""

from __future__ import annotations

import re
import socket
import threading
from datetime import date
from io import BytesIO

import pydicom
import pytest

from medviewer.jobs import CancelFlag, JobCancelled, run_to_end
from medviewer.pacs import operations as ops
from medviewer.pacs.errors import PacsError, PartialRetrieveError
from medviewer.pacs.query import StudyQuery
from medviewer.pacs.servers import ServerConfig, secrets
from tests.pacs.conftest import dimse_config, web_config
from tests.pacs.orthanc import ORTHANC_AE, PASSWORD, free_port
from tests.pacs.studies import make_study

PROTOCOLS = ("dimse", "dicomweb")


@pytest.fixture(params=PROTOCOLS)
def server(request, dimse_server, web_server) -> ServerConfig:
    return dimse_server if request.param == "dimse" else web_server


def test_echo_answers_over_both_protocols(server):
    milliseconds = run_to_end(ops.echo_job(server))
    assert 0 < milliseconds < 10_000


@pytest.mark.parametrize("query", [
    StudyQuery(patient_id="PAT-STORED"),
    StudyQuery(patient_name="stored"),  # a prefix, any case
    StudyQuery(date_from=date(2023, 6, 1), date_to=date(2023, 6, 30)),
    StudyQuery(modality="MR", accession="ACC-STORED"),
], ids=["patient-id", "name-prefix", "date-range", "modality-accession"])
def test_find_studies_by_each_key(server, stored_study, query):
    found = run_to_end(ops.find_studies_job(server, query))
    assert [s.study_uid for s in found] == [stored_study.study_uid]
    study = found[0]
    assert (study.patient_id, study.patient_name, study.date) == \
        ("PAT-STORED", "Stored^Pat", "20230607")
    assert study.modalities == ("MR",)
    assert (study.series_count, study.instance_count) == (2, 12)


def test_find_excludes_what_does_not_match(server, stored_study):
    assert run_to_end(ops.find_studies_job(server, StudyQuery(patient_id="NOBODY"))) == []
    outside = StudyQuery(patient_id="PAT-STORED", date_from=date(2024, 1, 1))
    assert run_to_end(ops.find_studies_job(server, outside)) == []


def test_series_and_patients_with_counts(server, stored_study):
    series = run_to_end(ops.find_series_job(server, stored_study.study_uid))
    assert [(s.number, s.instances, s.modality) for s in series] == [(1, 6, "MR"), (2, 6, "MR")]
    assert {s.series_uid for s in series} == set(stored_study.series_uids)
    patients = run_to_end(ops.find_patients_job(server, StudyQuery(patient_id="PAT-STORED")))
    assert [(p.patient_id, len(p.studies)) for p in patients] == [("PAT-STORED", 1)]


def test_patient_level_find_over_dimse(dimse_server, stored_study):
    from medviewer.pacs import dimse

    found = run_to_end(dimse.find_patients(dimse_server, StudyQuery(patient_id="PAT-STORED"),
                                           CancelFlag()))
    assert found == [{"patient_id": "PAT-STORED", "patient_name": "Stored^Pat",
                      "birth_date": "19600101", "studies": 1}]


def _same_instances(retrieved, originals):
    by_uid = {pydicom.dcmread(p).SOPInstanceUID: p for p in originals}
    assert len(retrieved) == len(by_uid)
    for path in retrieved:
        got = pydicom.dcmread(path)
        sent = pydicom.dcmread(by_uid[got.SOPInstanceUID])
        assert got.PixelData == sent.PixelData
        assert got.StudyInstanceUID == sent.StudyInstanceUID


@pytest.mark.parametrize("method", ["get", "move", "wado"])
def test_retrieve_a_study_streams_every_instance(orthanc, stored_study, tmp_path, method):
    if method == "wado":
        server = web_config(orthanc)
        secrets.set(server.name, PASSWORD, remember=False)
    else:
        server = dimse_config(orthanc, retrieve_method=method)
    events = []
    result = run_to_end(ops.retrieve_job(server, stored_study.study_uid, root=tmp_path),
                        events.append)
    arrived = [e for e in events if isinstance(e, ops.InstanceArrived)]
    assert [e.done for e in arrived] == list(range(1, 13))
    assert arrived[0].first and not any(e.first for e in arrived[1:])
    assert arrived[-1].total == 12
    assert sorted(e.path for e in arrived) == sorted(result.paths)
    assert result.expected == 12 and result.folder.parent == tmp_path
    assert all(p.is_relative_to(result.folder) for p in result.paths)
    _same_instances(result.paths, stored_study.paths)


@pytest.mark.parametrize("method", ["get", "move"])
def test_a_retrieved_instance_is_a_part_10_file_with_the_data_set_as_sent(
        orthanc, stored_study, tmp_path, method):
    """The data set is written as it came off the wire, behind a file meta group made
    from the C-STORE request: a strict reader takes it, and it names the sender."""
    from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID

    server = dimse_config(orthanc, retrieve_method=method)
    result = run_to_end(ops.retrieve_job(server, stored_study.study_uid, root=tmp_path))
    assert len(result.paths) == 12
    for path in result.paths:
        got = pydicom.dcmread(path)  # not force: preamble, DICM and meta must be right
        meta = got.file_meta
        assert path.read_bytes()[:132] == b"\x00" * 128 + b"DICM"
        assert meta.MediaStorageSOPClassUID == got.SOPClassUID
        assert meta.MediaStorageSOPInstanceUID == got.SOPInstanceUID == path.stem
        assert meta.ImplementationClassUID == PYNETDICOM_IMPLEMENTATION_UID
        assert meta.SourceApplicationEntityTitle == ORTHANC_AE
        data = path.read_bytes()
        group_end = 144 + meta.FileMetaInformationGroupLength  # after DICM and the length
        assert data[group_end:group_end + 2] != b"\x02\x00", "the group length is short"
        assert pydicom.dcmread(BytesIO(data[group_end:]), force=True).SOPInstanceUID == \
            got.SOPInstanceUID, "the group length is long"
        assert path.parent.name == got.SeriesInstanceUID
    _same_instances(result.paths, stored_study.paths)


def test_a_deflated_instance_is_kept_whole(orthanc, tmp_path):
    """A deflated instance on the PACS comes back whole with the same pixels, in whatever
    syntax the PACS sends it (Orthanc inflates it to explicit VR little endian; a deflated
    data set would take pynetdicom's own path, as its bytes are compressed)."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    study = make_study(tmp_path / "deflated", 1, patient_id="DEFLATE-1")
    ds = pydicom.dcmread(study.paths[0])
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(study.paths[0], enforce_file_format=True)
    orthanc.upload(study.paths)
    result = run_to_end(ops.retrieve_job(dimse_config(orthanc), study.study_uid,
                                         root=tmp_path / "out"))
    [path] = result.paths
    got = pydicom.dcmread(path)
    assert got.SOPInstanceUID == ds.SOPInstanceUID and got.PixelData == ds.PixelData
    assert path.parent.name == ds.SeriesInstanceUID


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_retrieve_one_series(orthanc, stored_study, tmp_path, protocol):
    server = dimse_config(orthanc) if protocol == "dimse" else web_config(orthanc)
    secrets.set(server.name, PASSWORD, remember=False)
    series_uid = stored_study.series_uids[1]
    result = run_to_end(ops.retrieve_job(server, stored_study.study_uid, series_uid,
                                         root=tmp_path))
    assert len(result.paths) == 6
    assert {pydicom.dcmread(p).SeriesInstanceUID for p in result.paths} == {series_uid}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_send_stores_files_on_the_server(orthanc, tmp_path, protocol):
    server = dimse_config(orthanc) if protocol == "dimse" else web_config(orthanc)
    secrets.set(server.name, PASSWORD, remember=False)
    study = make_study(tmp_path / "new", 5, patient_id=f"SENT-{protocol}")
    result = run_to_end(ops.send_job(server, [tmp_path / "new"]))
    assert (result.sent, result.failed) == (5, [])
    found = orthanc.rest("GET", "/studies?expand")
    mine = [s for s in found if s["MainDicomTags"]["StudyInstanceUID"] == study.study_uid]
    assert len(mine) == 1 and len(orthanc.rest("GET", f"/studies/{mine[0]['ID']}/instances")) == 5


def test_send_reports_a_file_that_is_not_dicom(dimse_server, tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(PacsError, match=r"1 of 1 files were not sent to pacs.*notes.txt"):
        run_to_end(ops.send_job(dimse_server, [tmp_path / "notes.txt"]))


# ---------------------------------------------------------------- failures


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_server_down_is_refused(protocol):
    port = free_port()  # nothing listens there
    server = (ServerConfig("down", "dimse", ae_title="ORTHANC", host="127.0.0.1", port=port)
              if protocol == "dimse" else
              ServerConfig("down", "dicomweb", url=f"http://127.0.0.1:{port}/dicom-web"))
    with pytest.raises(PacsError, match=r"^The server 'down' refused the connection at "):
        run_to_end(ops.echo_job(server))


def test_wrong_called_ae_title_is_rejected_with_the_reason(orthanc):
    server = dimse_config(orthanc, ae_title="NOT-ORTHANC")
    with pytest.raises(PacsError) as caught:
        run_to_end(ops.find_studies_job(server, StudyQuery()))
    text = str(caught.value)
    assert text.startswith("The server 'pacs' rejected the association: called AE title "
                           "not recognised")
    assert "'NOT-ORTHANC'" in text and "\n" not in text


@pytest.mark.parametrize("operation", ["echo", "find", "retrieve"])
def test_wrong_password_is_an_authentication_failure(orthanc, stored_study, tmp_path,
                                                     operation):
    server = web_config(orthanc)
    jobs = {"echo": lambda: ops.echo_job(server, "wrong"),
            "find": lambda: ops.find_studies_job(server, StudyQuery(), "wrong"),
            "retrieve": lambda: ops.retrieve_job(server, stored_study.study_uid,
                                                 root=tmp_path, secret="wrong")}
    with pytest.raises(PacsError, match=r"^The server 'web' refused the user name, password "
                                        r"or token \(authentication failed\)\.$"):
        run_to_end(jobs[operation]())


def test_a_missing_password_is_asked_for_not_sent_empty(orthanc):
    server = web_config(orthanc, name="no-secret-yet")
    with pytest.raises(PacsError, match="needs a password"):
        run_to_end(ops.echo_job(server))


def test_a_server_that_never_answers_times_out():
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        server = ServerConfig("silent", "dimse", ae_title="X", host="127.0.0.1",
                              port=silent.getsockname()[1], timeout_s=1)
        with pytest.raises(PacsError, match=r"did not accept the association within 1 s "
                                            r"\(timed out\)"):
            run_to_end(ops.echo_job(server))


def test_a_rejection_followed_at_once_by_a_close_is_still_a_rejection():
    """A PACS may close the connection right after its A-ASSOCIATE-RJ (Orthanc does);
    pynetdicom then sometimes handles the close first and reports an abort. The sentence
    must still give the PACS's reason, every time."""
    attempts = 20
    rejection = bytes([0x03, 0, 0, 0, 0, 4, 0, 1, 1, 7])  # permanent, by the user: called AE

    def serve(listener: socket.socket) -> None:
        for _ in range(attempts):
            connection, _ = listener.accept()
            with connection:
                connection.settimeout(5)
                connection.recv(65536)  # the A-ASSOCIATE-RQ
                connection.sendall(rejection)

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        listener.settimeout(30)
        thread = threading.Thread(target=serve, args=(listener,), daemon=True)
        thread.start()
        server = ServerConfig("strict", "dimse", ae_title="STRICT", host="127.0.0.1",
                              port=listener.getsockname()[1], timeout_s=5)
        sentences = []
        for _ in range(attempts):
            with pytest.raises(PacsError) as caught:
                run_to_end(ops.echo_job(server))
            sentences.append(str(caught.value))
        thread.join(10)
    assert all(s.startswith("The server 'strict' rejected the association: called AE title "
                            "not recognised") for s in sentences), sentences


@pytest.mark.slow
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_server_stopped_mid_retrieve_keeps_what_arrived(own_orthanc, tmp_path, protocol):
    study = make_study(tmp_path / "big", 40, size=512)
    own_orthanc.upload(study.paths)
    server = dimse_config(own_orthanc) if protocol == "dimse" else web_config(own_orthanc)
    secrets.set(server.name, PASSWORD, remember=False)
    seen = []

    def on_event(event):
        if isinstance(event, ops.InstanceArrived):
            seen.append(event.path)
            if event.first:
                own_orthanc.kill()

    with pytest.raises(PartialRetrieveError) as caught:
        run_to_end(ops.retrieve_job(server, study.study_uid, root=tmp_path / "out"), on_event)
    error = caught.value
    assert 1 <= len(error.paths) < 40 and error.expected == 40
    assert re.match(rf"Only {len(error.paths)} of 40 instances arrived from the server "
                    rf"'{server.name}' \((the connection was lost|the server stopped sending)",
                    str(error))
    assert "that arrived are kept in" in str(error)
    assert error.paths == seen and all(p.is_file() for p in error.paths)
    assert all(pydicom.dcmread(p).SOPInstanceUID for p in error.paths)  # whole files


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_cancel_mid_retrieve_stops_and_keeps_what_arrived(orthanc, tmp_path, protocol):
    study = make_study(tmp_path / "cancel", 20, size=128, patient_id=f"CANCEL-{protocol}")
    orthanc.upload(study.paths)
    server = dimse_config(orthanc) if protocol == "dimse" else web_config(orthanc)
    secrets.set(server.name, PASSWORD, remember=False)
    cancel = CancelFlag()
    seen = []

    def on_event(event):
        if isinstance(event, ops.InstanceArrived):
            seen.append(event.path)
            if event.done == 3:
                cancel.cancel()

    with pytest.raises(JobCancelled):
        run_to_end(ops.retrieve_job(server, study.study_uid, root=tmp_path / "out",
                                    cancel=cancel), on_event)
    assert 3 <= len(seen) < 20
    assert all(p.is_file() for p in seen)
    # The server is still fine for the next call (the association was aborted cleanly).
    assert run_to_end(ops.echo_job(server)) > 0
    assert not [t for t in threading.enumerate() if t.name.startswith("AcceptorThread")]


def test_dicomweb_rendered_thumbnail(web_server, stored_study):
    from PIL import Image

    from medviewer.pacs import dicomweb

    first = pydicom.dcmread(stored_study.paths[0])
    data = dicomweb.rendered_thumbnail(web_server, PASSWORD, first.StudyInstanceUID,
                                       first.SeriesInstanceUID, first.SOPInstanceUID, size=32)
    import io

    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG" and image.size[0] in (32, first.Columns)


def test_c_move_to_an_unregistered_destination_says_what_to_register(orthanc, stored_study,
                                                                      tmp_path):
    server = dimse_config(orthanc, retrieve_method="move", calling_ae="STRANGER",
                          move_port=free_port())
    with pytest.raises(PacsError) as caught:
        run_to_end(ops.retrieve_job(server, stored_study.study_uid, root=tmp_path))
    text = str(caught.value)
    assert text.startswith("The server 'pacs' could not send the study to MedViewer (")
    assert text.endswith(f"check that the PACS knows MedViewer's AE title 'STRANGER' as a "
                         f"C-MOVE destination with this computer's address and port "
                         f"{server.move_port}.")
