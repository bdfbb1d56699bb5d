"""A real Orthanc PACS for the tests and benchmarks: loopback only, random free ports, a
temporary storage folder and a generated configuration.

Orthanc and its DICOMweb plugin come from the Debian packages ``orthanc`` and
``orthanc-dicomweb`` (``tools/install_pacs_deps.sh`` installs them). :func:`missing_programs`
says what is missing; the fixtures skip with that sentence, or fail when
``MEDVIEWER_REQUIRE_PACS=1`` (CI), so a CI run can never pass with the PACS tests skipped.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ORTHANC_AE = "ORTHANC"
MEDVIEWER_AE = "MEDVIEWER"
USER, PASSWORD = "alice", "reading-room-7"
DICOMWEB_PLUGIN_DIRS = (Path("/usr/share/orthanc/plugins"), Path("/usr/lib/orthanc"))
INSTALL_HINT = "install it with: sudo apt-get install orthanc orthanc-dicomweb dcmtk " \
               "(or run tools/install_pacs_deps.sh as root)"


def _dicomweb_plugin() -> Path | None:
    for folder in DICOMWEB_PLUGIN_DIRS:
        for candidate in sorted(folder.glob("libOrthancDicomWeb.so*")):
            return candidate
    return None


def missing_programs() -> str | None:
    """One line naming what is missing for a PACS test, or None when everything is there."""
    if shutil.which("Orthanc") is None:
        return f"The Debian package 'orthanc' is missing (no Orthanc program); {INSTALL_HINT}."
    if _dicomweb_plugin() is None:
        return f"The Debian package 'orthanc-dicomweb' is missing; {INSTALL_HINT}."
    return None


def pacs_required() -> bool:
    return os.environ.get("MEDVIEWER_REQUIRE_PACS", "") not in ("", "0")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Orthanc:
    """One Orthanc process; :meth:`start` it, then use its ports, :meth:`stop` it."""

    folder: Path
    dicom_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    # Port of MedViewer's own storage SCP, registered as the C-MOVE destination.
    move_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.base_url}/dicom-web"

    def configuration(self) -> dict:
        return {
            "Name": "MedViewerTestPACS",
            "StorageDirectory": str(self.folder / "storage"),
            "IndexDirectory": str(self.folder / "storage"),
            "DicomAet": ORTHANC_AE,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,  # loopback only
            "AuthenticationEnabled": True,
            "RegisteredUsers": {USER: PASSWORD},
            "DicomCheckCalledAet": True,  # a wrong called AE title is rejected
            "DicomModalities": {"medviewer": [MEDVIEWER_AE, "127.0.0.1", self.move_port]},
            "DicomAlwaysAllowEcho": True, "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": True, "DicomAlwaysAllowGet": True,
            "DicomAlwaysAllowMove": True,
            "DicomScuTimeout": 10, "DicomScpTimeout": 30,
            "DicomAssociationCloseDelay": 0,
            "HttpThreadsCount": 8, "DicomThreadsCount": 4,
            "StableAge": 1, "SaveJobs": False, "LogExportedResources": False,
            "StorageCompression": False, "OverwriteInstances": True,
            "MaximumPduLength": 65536,
            "Plugins": [str(_dicomweb_plugin())],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False,
                         "Host": f"127.0.0.1:{self.http_port}", "Ssl": False},
        }

    def start(self, timeout_s: float = 30.0) -> Orthanc:
        (self.folder / "storage").mkdir(parents=True, exist_ok=True)
        config = self.folder / "orthanc.json"
        config.write_text(json.dumps(self.configuration(), indent=1))
        # MV_ORTHANC_FLAGS=--verbose shows what the server did with a request (debugging).
        flags = os.environ.get("MV_ORTHANC_FLAGS", "").split()
        with open(self.folder / "orthanc.log", "ab") as log:
            self.process = subprocess.Popen(["Orthanc", *flags, str(config)], stdout=log,
                                            stderr=log, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.process.returncode}; see "
                                   f"{self.folder / 'orthanc.log'}")
            try:
                self.rest("GET", "/system")
                if _port_open(self.dicom_port):
                    return self
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within {timeout_s:g} s")

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout_s)

    def kill(self) -> None:
        """Stop at once, as a crash or a pulled cable would (tests of a dropped retrieve)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    # ------------------------------------------------------------ REST (set-up only)
    def rest(self, method: str, path: str, body: bytes | None = None,
             content_type: str = "application/json", timeout_s: float = 10.0):
        request = urllib.request.Request(self.base_url + path, data=body, method=method)
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        if body is not None:
            request.add_header("Content-Type", content_type)
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            data = response.read()
        return json.loads(data) if data else None

    def upload(self, paths) -> int:
        """Store files through the REST API (test set-up, not the code under test)."""
        count = 0
        for path in paths:
            self.rest("POST", "/instances", Path(path).read_bytes(), "application/dicom")
            count += 1
        return count

    def clear(self) -> None:
        for patient in self.rest("GET", "/patients") or []:
            self.rest("DELETE", f"/patients/{patient}")

    def statistics(self) -> dict:
        return self.rest("GET", "/statistics")


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
