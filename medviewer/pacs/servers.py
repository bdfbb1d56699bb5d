"""Configured PACS and DICOMweb servers, and where their secrets live.

The list of servers is a small JSON file in the user's config folder (``pacs.json``); it
never holds a password or token. Secrets go to the operating system's keyring through the
``keyring`` package; where no keyring backend is available they are kept in memory for this
session only, and :meth:`Secrets.notice` says so.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from urllib.parse import urlsplit

from medviewer.files import os_error_reason
from medviewer.pacs.errors import PacsError
from medviewer.paths import user_config_dir, write_atomically

log = logging.getLogger(__name__)

KINDS = ("dimse", "dicomweb")
AUTH_KINDS = ("none", "basic", "bearer")
RETRIEVE_METHODS = ("get", "move")
DEFAULT_CALLING_AE = "MEDVIEWER"
DEFAULT_TIMEOUT_S = 30.0
KEYRING_SERVICE = "MedViewer PACS"
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # printable ASCII but backslash


@dataclass(frozen=True)
class ServerConfig:
    """One server: a DIMSE PACS (AE title, host, port) or a DICOMweb service (base URL)."""

    name: str
    kind: str = "dimse"
    ae_title: str = ""  # the PACS's (called) AE title
    host: str = ""
    port: int = 104
    url: str = ""  # DICOMweb base URL, e.g. https://pacs.example/dicom-web
    auth: str = "none"  # DICOMweb: none, basic or bearer
    username: str = ""
    ca_file: str = ""  # DICOMweb over https: trust this CA bundle besides the system's
    calling_ae: str = DEFAULT_CALLING_AE  # MedViewer's own AE title
    retrieve_method: str = "get"  # DIMSE: C-GET, or C-MOVE to our storage SCP
    move_port: int = 11112  # DIMSE C-MOVE: the port our storage SCP listens on
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def label(self) -> str:
        """How sentences name the server."""
        return f"The server '{self.name}'"

    @property
    def address(self) -> str:
        return self.url if self.kind == "dicomweb" else f"{self.ae_title}@{self.host}:{self.port}"

    @property
    def needs_secret(self) -> bool:
        return self.kind == "dicomweb" and self.auth != "none"

    def checked(self) -> ServerConfig:
        """This configuration, or a PacsError naming the first field that is wrong."""
        name = self.name.strip()
        if not name:
            raise PacsError("A server needs a name.")
        if self.kind not in KINDS:
            raise PacsError(f"The server '{name}' has the unknown kind '{self.kind}' "
                            f"(use {' or '.join(KINDS)}).")
        if not _AE_TITLE.match(self.calling_ae.strip()):
            raise PacsError(f"MedViewer's AE title '{self.calling_ae}' for '{name}' must be "
                            f"1 to 16 printable characters.")
        if not 0 < self.timeout_s <= 3600:
            raise PacsError(f"The timeout of '{name}' must be between 0 and 3600 seconds.")
        if self.kind == "dimse":
            if not _AE_TITLE.match(self.ae_title.strip()):
                raise PacsError(f"The AE title '{self.ae_title}' of '{name}' must be 1 to 16 "
                                f"printable characters.")
            if not self.host.strip():
                raise PacsError(f"The server '{name}' needs a host name or address.")
            for what, port in (("port", self.port), ("C-MOVE port", self.move_port)):
                if not isinstance(port, int) or not 0 < port < 65536:
                    raise PacsError(f"The {what} of '{name}' must be a number from 1 to 65535.")
            if self.retrieve_method not in RETRIEVE_METHODS:
                raise PacsError(f"The retrieve method of '{name}' must be get or move.")
        else:
            parts = urlsplit(self.url.strip())
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise PacsError(f"The DICOMweb URL '{self.url}' of '{name}' must start with "
                                f"http:// or https:// and name a host.")
            if self.auth not in AUTH_KINDS:
                raise PacsError(f"The authentication of '{name}' must be one of "
                                f"{', '.join(AUTH_KINDS)}.")
            if self.auth == "basic" and not self.username.strip():
                raise PacsError(f"The server '{name}' uses basic authentication and needs a "
                                f"user name.")
            if self.ca_file and not Path(self.ca_file).is_file():
                raise PacsError(f"The CA file {self.ca_file} for '{name}' does not exist.")
        return replace(self, name=name, ae_title=self.ae_title.strip(), host=self.host.strip(),
                       url=self.url.strip().rstrip("/"), calling_ae=self.calling_ae.strip())

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> ServerConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


_ONE_OFF_DIMSE = re.compile(r"^(?P<ae>[^@]{1,16})@(?P<host>[^:@]+):(?P<port>\d{1,5})$")


def parse_address(text: str, calling_ae: str = DEFAULT_CALLING_AE) -> ServerConfig | None:
    """A one-off server from ``AE@host:port`` or an http(s) URL; None if it is neither."""
    text = text.strip()
    if text.startswith(("http://", "https://")):
        return ServerConfig(name=text, kind="dicomweb", url=text.rstrip("/"),
                            calling_ae=calling_ae).checked()
    match = _ONE_OFF_DIMSE.match(text)
    if match:
        return ServerConfig(name=text, kind="dimse", ae_title=match["ae"],
                            host=match["host"], port=int(match["port"]),
                            calling_ae=calling_ae).checked()
    return None


# ---------------------------------------------------------------- the configuration file


@dataclass
class PacsConfig:
    servers: list[ServerConfig]

    def find(self, name: str) -> ServerConfig:
        for server in self.servers:
            if server.name == name:
                return server
        names = ", ".join(s.name for s in self.servers) or "none yet"
        raise PacsError(f"There is no server called '{name}' (configured: {names}).")


def config_path() -> Path:
    return user_config_dir() / "pacs.json"


def load_config(path: Path | None = None) -> PacsConfig:
    """The configured servers; a missing file is an empty list, a damaged one an error."""
    path = path or config_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return PacsConfig([])
    except (OSError, ValueError) as exc:
        raise PacsError(f"The server list {path} cannot be read ({exc}); fix or remove "
                        f"it.") from None
    try:
        servers = [ServerConfig.from_dict(item) for item in raw.get("servers", [])]
        return PacsConfig(servers)  # an older file's "cache_limit_mb": now a setting
    except (TypeError, ValueError, AttributeError):
        raise PacsError(f"The server list {path} is not in MedViewer's format; fix or "
                        f"remove it.") from None


def save_config(config: PacsConfig, path: Path | None = None) -> None:
    """Write atomically; secrets are never part of it."""
    path = path or config_path()
    document = {"version": 1, "servers": [s.to_dict() for s in config.servers]}
    try:
        write_atomically(path, json.dumps(document, indent=2))
    except OSError as exc:
        raise PacsError(f"Cannot save the server list to {path}: {os_error_reason(exc)}.") \
            from None


def put_server(server: ServerConfig, replacing: str | None = None) -> PacsConfig:
    """Add a server, or replace the one called ``replacing`` (default: the same name)."""
    server = server.checked()
    config = load_config()
    old = replacing or server.name
    if server.name != old and any(s.name == server.name for s in config.servers):
        raise PacsError(f"A server called '{server.name}' already exists.")
    config.servers = [s for s in config.servers if s.name != old] + [server]
    config.servers.sort(key=lambda s: s.name.lower())
    save_config(config)
    return config


def remove_server(name: str) -> PacsConfig:
    config = load_config()
    config.find(name)
    config.servers = [s for s in config.servers if s.name != name]
    save_config(config)
    secrets.forget(name)
    return config


def resolve_server(name_or_address: str) -> ServerConfig:
    """A configured server by name, else a one-off ``AE@host:port`` or URL."""
    config = load_config()
    for server in config.servers:
        if server.name == name_or_address:
            return server
    one_off = parse_address(name_or_address)
    if one_off is not None:
        return one_off
    names = ", ".join(s.name for s in config.servers) or "none yet"
    raise PacsError(f"'{name_or_address}' is neither a configured server ({names}) nor an "
                    f"address like AE@host:port or https://host/dicom-web.")


# ---------------------------------------------------------------- secrets


class Secrets:
    """Passwords and tokens: the OS keyring when there is one, else memory for this session."""

    def __init__(self) -> None:
        self._memory: dict[str, str] = {}
        self._lock = threading.Lock()
        self._keyring_ok: bool | None = None

    def keyring_available(self) -> bool:
        if self._keyring_ok is None:
            try:
                import keyring
                from keyring.backends import fail

                backend = keyring.get_keyring()
                self._keyring_ok = not isinstance(backend, fail.Keyring) and \
                    getattr(backend, "priority", 1) > 0
            except Exception as exc:  # noqa: BLE001 - a broken keyring is "no keyring"
                log.info("No usable keyring: %s", exc)
                self._keyring_ok = False
        return self._keyring_ok

    def notice(self) -> str | None:
        """A sentence when secrets cannot be remembered between sessions."""
        if self.keyring_available():
            return None
        return ("No system keyring is available, so passwords and tokens are kept in memory "
                "for this session only and asked for again next time.")

    def get(self, server_name: str) -> str | None:
        with self._lock:
            if server_name in self._memory:
                return self._memory[server_name]
        if self.keyring_available():
            try:
                import keyring

                secret = keyring.get_password(KEYRING_SERVICE, server_name)
            except Exception as exc:  # noqa: BLE001 - a locked keyring: ask instead
                log.warning("Keyring read failed: %s", exc)
                return None
            if secret is not None:  # asked once a session: a keyring call may block
                with self._lock:
                    self._memory[server_name] = secret
            return secret
        return None

    def set(self, server_name: str, secret: str, remember: bool = True) -> str | None:
        """Keep a secret; returns a sentence when it is kept for this session only."""
        with self._lock:
            self._memory[server_name] = secret
        if not remember:
            return None
        if not self.keyring_available():
            return self.notice()
        try:
            import keyring

            keyring.set_password(KEYRING_SERVICE, server_name, secret)
        except Exception as exc:  # noqa: BLE001
            log.warning("Keyring write failed: %s", exc)
            return ("The system keyring refused to store the secret, so it is kept in memory "
                    "for this session only.")
        return None

    def forget(self, server_name: str) -> None:
        with self._lock:
            self._memory.pop(server_name, None)
        if self.keyring_available():
            try:
                import keyring
                from keyring.errors import PasswordDeleteError

                try:
                    keyring.delete_password(KEYRING_SERVICE, server_name)
                except PasswordDeleteError:
                    pass
            except Exception as exc:  # noqa: BLE001
                log.warning("Keyring delete failed: %s", exc)

    def reset_backend(self) -> None:
        """Look for a keyring backend again (after ``keyring.set_keyring``)."""
        self._keyring_ok = None


# One per process: the GUI and the command line share what was typed this session.
secrets = Secrets()


def secret_for(server: ServerConfig, given: str | None = None) -> str | None:
    """The secret a job uses: the one given, else the stored one; an error if it needs one."""
    if not server.needs_secret:
        return None
    secret = given if given is not None else secrets.get(server.name)
    if not secret:
        what = "password" if server.auth == "basic" else "token"
        raise PacsError(f"{server.label} needs a {what}; enter it in the server settings "
                        f"(or with 'medviewer pacs servers add --ask-secret').")
    return secret
