"""`medviewer pacs ...` through medviewer.cli.main against the test Orthanc."""

from __future__ import annotations

import json

import pytest

from medviewer.cli import main
from medviewer.pacs.servers import config_path, secrets
from tests.pacs.orthanc import ORTHANC_AE, PASSWORD, USER, free_port
from tests.pacs.studies import make_study


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def configured(capsys, orthanc, monkeypatch):
    dimse = f"{ORTHANC_AE}@127.0.0.1:{orthanc.dicom_port}"
    assert _run(capsys, "pacs", "servers", "add", "ward-pacs", "--dimse", dimse,
                "--timeout", "10")[0] == 0
    assert _run(capsys, "pacs", "servers", "add", "ward-web", "--url", orthanc.dicomweb_url,
                "--auth", "basic", "--username", USER)[0] == 0
    monkeypatch.setenv("MEDVIEWER_PACS_SECRET", PASSWORD)
    yield
    secrets.forget("ward-web")


def test_servers_add_list_remove(capsys, configured):
    code, out, _ = _run(capsys, "pacs", "servers")
    assert code == 0 and "ward-pacs: dimse ORTHANC@127.0.0.1:" in out
    assert "ward-web: dicomweb http://127.0.0.1:" in out and "basic authentication" in out
    listing = json.loads(_run(capsys, "pacs", "servers", "--json")[1])
    assert [s["name"] for s in listing["servers"]] == ["ward-pacs", "ward-web"]
    assert PASSWORD not in config_path().read_text()
    assert _run(capsys, "pacs", "servers", "remove", "ward-pacs")[0] == 0
    code, out, err = _run(capsys, "pacs", "servers", "remove", "ward-pacs")
    assert code == 1 and err == ("medviewer: There is no server called 'ward-pacs' "
                                 "(configured: ward-web).\n")


@pytest.mark.parametrize("server", ["ward-pacs", "ward-web"])
def test_echo_find_get_send_by_name(capsys, configured, orthanc, tmp_path, server):
    study = make_study(tmp_path / "in", 4, patient_id=f"CLI-{server}", study_date="20220202")
    code, out, _ = _run(capsys, "pacs", "send", "--server", server, tmp_path / "in", "--json")
    assert code == 0 and json.loads(out)["sent"] == 4

    code, out, _ = _run(capsys, "pacs", "echo", "--server", server, "--json")
    assert code == 0 and json.loads(out)["milliseconds"] > 0

    code, out, _ = _run(capsys, "pacs", "find", "--server", server, "--patient-id",
                        f"CLI-{server}", "--study-date", "20220101-20221231", "--modality",
                        "CT", "--json")
    studies = json.loads(out)["studies"]
    assert code == 0 and [s["study_uid"] for s in studies] == [study.study_uid]
    assert studies[0]["instances"] == 4

    code, out, _ = _run(capsys, "pacs", "find", "--server", server, "--series-of",
                        study.study_uid)
    assert code == 0 and out.rstrip().endswith("1 series.")

    code, out, _ = _run(capsys, "pacs", "get", "--server", server, study.study_uid,
                        "-o", tmp_path / "out")
    assert code == 0 and out.startswith(f"Retrieved 4 instances from {server} into ")
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 4


def test_one_off_address_and_failures_are_one_line(capsys, orthanc, tmp_path):
    code, out, _ = _run(capsys, "pacs", "echo", "--server",
                        f"{ORTHANC_AE}@127.0.0.1:{orthanc.dicom_port}")
    assert code == 0 and "answered in" in out
    port = free_port()
    code, out, err = _run(capsys, "pacs", "echo", "--server", f"X@127.0.0.1:{port}")
    assert (code, out) == (1, "")
    assert err == (f"medviewer: The server 'X@127.0.0.1:{port}' refused the connection at "
                   f"127.0.0.1:{port}: check that the server is running and that the host "
                   f"and port are right.\n")
    code, _, err = _run(capsys, "pacs", "find", "--server", "nowhere")
    assert code == 1 and err.startswith("medviewer: 'nowhere' is neither a configured server")
    code, _, err = _run(capsys, "pacs", "find", "--server", orthanc.dicomweb_url,
                        "--study-date", "2024-13-01-")
    assert code == 1 and err == ("medviewer: '2024-13-01-' is not a date (use YYYYMMDD or "
                                 "YYYY-MM-DD).\n")


def test_wrong_password_from_the_environment(capsys, configured, monkeypatch):
    monkeypatch.setenv("MEDVIEWER_PACS_SECRET", "wrong")
    code, out, err = _run(capsys, "pacs", "echo", "--server", "ward-web")
    assert (code, out) == (1, "")
    assert err == ("medviewer: The server 'ward-web' refused the user name, password or token "
                   "(authentication failed).\n")
