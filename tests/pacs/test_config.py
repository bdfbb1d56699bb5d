"""Server configuration, secrets, search keys and the retrieve cache (no server needed)."""

from __future__ import annotations

import json
import os
import time
from datetime import date

import pytest

from medviewer.pacs import servers
from medviewer.pacs.cache import RetrieveCache, instance_path, safe_name
from medviewer.pacs.errors import PacsError
from medviewer.pacs.query import StudyQuery, parse_date_range
from medviewer.pacs.servers import ServerConfig


@pytest.mark.parametrize("text, expected", [
    ("20240101-20240630", (date(2024, 1, 1), date(2024, 6, 30))),
    ("2024-01-01-2024-06-30", (date(2024, 1, 1), date(2024, 6, 30))),
    ("20240101-", (date(2024, 1, 1), None)),
    ("-20240630", (None, date(2024, 6, 30))),
    ("2024-03-05", (date(2024, 3, 5), date(2024, 3, 5))),
])
def test_date_ranges(text, expected):
    assert parse_date_range(text) == expected


@pytest.mark.parametrize("text, sentence", [
    ("yesterday", "'yesterday' is not a date range"),
    ("20240631-", "'20240631-' is not a date"),
    ("20240601-20240101", "The date range '20240601-20240101' ends before it starts."),
])
def test_bad_date_ranges_are_one_sentence(text, sentence):
    with pytest.raises(PacsError, match=sentence):
        parse_date_range(text)


def test_query_date_range_in_dicom_form():
    assert StudyQuery(date_from=date(2024, 1, 1)).date_range() == "20240101-"
    assert StudyQuery(date_to=date(2024, 1, 1)).date_range() == "-20240101"
    assert StudyQuery(date_from=date(2024, 1, 1), date_to=date(2024, 1, 1)).date_range() == \
        "20240101"


def test_one_off_addresses():
    pacs = servers.parse_address("PACS1@10.1.2.3:104")
    assert (pacs.kind, pacs.ae_title, pacs.host, pacs.port) == ("dimse", "PACS1", "10.1.2.3", 104)
    web = servers.parse_address("https://pacs.example/dicom-web/")
    assert (web.kind, web.url) == ("dicomweb", "https://pacs.example/dicom-web")
    assert servers.parse_address("just-a-name") is None


@pytest.mark.parametrize("changes, sentence", [
    ({"ae_title": "A" * 17}, "must be 1 to 16 printable characters"),
    ({"port": 70000}, "The port of 'p' must be a number from 1 to 65535."),
    ({"kind": "dicomweb", "url": "ftp://x"}, "must start with http:// or https://"),
    ({"kind": "dicomweb", "url": "https://x", "auth": "basic"}, "needs a user name"),
    ({"kind": "dicomweb", "url": "https://x", "ca_file": "/nonexistent/ca.pem"},
     "The CA file /nonexistent/ca.pem for 'p' does not exist."),
])
def test_configuration_is_checked(changes, sentence):
    values = {"name": "p", "ae_title": "PACS", "host": "h", **changes}
    with pytest.raises(PacsError, match=sentence):
        ServerConfig(**values).checked()


def test_servers_are_saved_without_secrets_and_secrets_stay_in_memory_without_keyring(
        keyring_backend):
    from keyring.backends import fail

    keyring_backend(fail.Keyring())  # as on a machine without a keyring service
    secrets = servers.Secrets()
    assert not secrets.keyring_available()
    server = ServerConfig("web", "dicomweb", url="https://pacs.example/dicom-web",
                          auth="bearer")
    servers.put_server(server)
    notice = secrets.set("web", "token-123")
    assert notice.startswith("No system keyring is available, so passwords and tokens are "
                             "kept in memory for this session only")
    assert secrets.get("web") == "token-123"
    text = servers.config_path().read_text()
    assert "token-123" not in text
    assert json.loads(text)["servers"][0]["auth"] == "bearer"
    assert servers.Secrets().get("web") is None  # a new session asks again
    assert servers.load_config().find("web") == server.checked()


@pytest.fixture
def keyring_backend():
    """Run a test with the given keyring backend, then put the previous one back."""
    import keyring

    previous = keyring.get_keyring()
    yield keyring.set_keyring
    keyring.set_keyring(previous)


def test_secrets_go_to_the_keyring_when_there_is_one(keyring_backend):
    from keyring.backend import KeyringBackend

    # Defined here: keyring discovers every backend class, and this one must not be
    # picked up by other tests.
    class MemoryKeyring(KeyringBackend):
        """A keyring backend kept in a dict, standing in for the OS keyring service."""

        priority = 1

        def __init__(self):
            super().__init__()
            self.stored = {}

        def get_password(self, service, username):
            return self.stored.get((service, username))

        def set_password(self, service, username, password):
            self.stored[(service, username)] = password

        def delete_password(self, service, username):
            self.stored.pop((service, username), None)

    backend = MemoryKeyring()
    keyring_backend(backend)
    first = servers.Secrets()
    assert first.set("web", "s3cret") is None
    assert backend.stored == {(servers.KEYRING_SERVICE, "web"): "s3cret"}
    assert servers.Secrets().get("web") == "s3cret"  # remembered across sessions
    first.forget("web")
    assert backend.stored == {}


def test_a_damaged_server_list_is_one_sentence():
    servers.config_path().write_text("{not json")
    with pytest.raises(PacsError, match=r"The server list .*pacs.json cannot be read"):
        servers.load_config()


def test_instance_paths_are_safe(tmp_path):
    assert safe_name("1.2.3") == "1.2.3"
    assert safe_name("../../etc").startswith("x") and "/" not in safe_name("../../etc")
    path = instance_path(tmp_path, "1.2", "1.2.3", "1.2.3.4")
    assert path == tmp_path / "1.2" / "1.2.3" / "1.2.3.4.dcm"


def _fill(cache: RetrieveCache, uid: str, size: int, age_s: float) -> None:
    path = instance_path(cache.root, uid, "1", "1")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    cache.touch(uid)
    used = time.time() - age_s
    os.utime(cache.study_folder(uid) / ".last-used", (used, used))


def test_cache_evicts_oldest_studies_but_never_an_open_one(tmp_path):
    cache = RetrieveCache(tmp_path / "cache", limit_bytes=3000)
    _fill(cache, "1.1", 1000, age_s=400)  # oldest, but open
    _fill(cache, "1.2", 1000, age_s=300)
    _fill(cache, "1.3", 1000, age_s=200)
    _fill(cache, "1.4", 1000, age_s=100)
    assert cache.evict(open_study_uids={"1.1"}) == ["1.2"]
    assert [s.study_uid for s in cache.studies()] == ["1.1", "1.3", "1.4"]
    cache.limit_bytes = 0
    assert cache.evict(open_study_uids={"1.1"}, keep={"1.4"}) == ["1.3"]
    assert {s.study_uid for s in cache.studies()} == {"1.1", "1.4"}
