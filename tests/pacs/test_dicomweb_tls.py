"""DICOMweb over https with a bearer token, against a small real server on 127.0.0.1 whose
certificate comes from a test CA: verified with the CA file, refused without it."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from medviewer.jobs import run_to_end
from medviewer.pacs import operations as ops
from medviewer.pacs.errors import PacsError
from medviewer.pacs.query import StudyQuery
from medviewer.pacs.servers import ServerConfig

TOKEN = "token-for-tests"
STUDY = {"0020000D": {"vr": "UI", "Value": ["1.2.3.4"]},
         "00100020": {"vr": "LO", "Value": ["TLS-1"]},
         "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Secure^Sam"}]}}


def _certificate(subject: str, key, issuer_name, issuer_key, ca: bool):
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def https_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "MedViewer test CA")])
    ca_cert = _certificate("MedViewer test CA", ca_key, ca_name, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate("127.0.0.1", key, ca_name, ca_key, ca=False)
    (folder / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))

    class Qido(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self.send_response(401)
                self.end_headers()
                return
            body = json.dumps([STUDY] if "offset=0" in self.path else []).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Qido)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "server.pem", folder / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/dicom-web", folder / "ca.pem"
    server.shutdown()
    server.server_close()
    thread.join(5)


def _server(url: str, ca_file: str = "") -> ServerConfig:
    return ServerConfig("secure", "dicomweb", url=url, auth="bearer", ca_file=ca_file,
                        timeout_s=5).checked()


def test_bearer_token_over_verified_tls(https_server):
    url, ca_file = https_server
    server = _server(url, str(ca_file))
    assert run_to_end(ops.echo_job(server, TOKEN)) > 0
    (study,) = run_to_end(ops.find_studies_job(server, StudyQuery(patient_id="TLS-1"), TOKEN))
    assert (study.study_uid, study.patient_name) == ("1.2.3.4", "Secure^Sam")


def test_wrong_token_is_an_authentication_failure(https_server):
    url, ca_file = https_server
    with pytest.raises(PacsError, match=r"^The server 'secure' refused the user name, password "
                                        r"or token \(authentication failed\)\.$"):
        run_to_end(ops.echo_job(_server(url, str(ca_file)), "not-the-token"))


def test_a_certificate_from_an_unknown_ca_is_refused(https_server):
    url, _ca_file = https_server
    with pytest.raises(PacsError) as caught:
        run_to_end(ops.echo_job(_server(url), TOKEN))
    assert str(caught.value) == (
        f"The server 'secure' ({url}) presented a TLS certificate that could not be verified "
        f"while verifying the connection (unable to get local issuer certificate); ask for "
        f"the hospital's CA file and set it in the server settings.")
