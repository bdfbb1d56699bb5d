"""Pseudonyms from a project key: the same patient, UID or image always maps to the same value.

Every replacement is an HMAC-SHA256 of the original under the user's project key, so two
exports made with one key link up (same pseudonymous patient, same new UIDs, same date
shift) and nobody without the key can reverse or recompute them. Without a key file a
random key lives for one run only: the run is consistent in itself, but links to nothing.

New UIDs are ``2.25.<integer>`` (PS3.5 B.2: a UUID-derived UID), the integer being the
first 128 bits of the HMAC.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from medviewer.errors import UserError
from medviewer.paths import write_atomically

log = logging.getLogger(__name__)

KEY_BYTES = 32
KEY_FILE_HEADER = "# MedViewer de-identification project key: keep it private and safe;\n" \
                  "# exports made with it link up, and without it they cannot be re-linked.\n"
# Dates move back by 1 to 10 years, whole days, the same for every date of one patient.
SHIFT_MIN_DAYS, SHIFT_MAX_DAYS = 365, 3652
PATIENT_PREFIX = "ANON"


class ProjectKey:
    """The secret behind every pseudonym of a project."""

    def __init__(self, secret: bytes, path: Path | None = None) -> None:
        if len(secret) < 16:
            raise ValueError("a project key needs at least 16 bytes")
        self._secret = secret
        self.path = path  # None for a one-run key

    @classmethod
    def ephemeral(cls) -> ProjectKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    @property
    def persistent(self) -> bool:
        return self.path is not None

    def _digest(self, kind: str, value: str) -> bytes:
        return hmac.new(self._secret, f"{kind}\x00{value}".encode("utf-8", "surrogateescape"),
                        hashlib.sha256).digest()

    def uid(self, original: str) -> str:
        return "2.25." + str(int.from_bytes(self._digest("uid", original.strip())[:16], "big"))

    def patient_id(self, identity: str) -> str:
        """'ANON' + 12 base32 characters (60 bits): short enough for every ID field."""
        code = base64.b32encode(self._digest("patient", identity)[:10]).decode("ascii")
        return PATIENT_PREFIX + code[:12]

    def image_id(self, key: str) -> str:
        """A pseudonymous name for an image that has no UID to replace (a PNG's hash)."""
        return "img-" + self._digest("image", key)[:12].hex()

    def date_shift_days(self, identity: str) -> int:
        span = SHIFT_MAX_DAYS - SHIFT_MIN_DAYS + 1
        value = int.from_bytes(self._digest("dates", identity)[:8], "big")
        return -(SHIFT_MIN_DAYS + value % span)


def load_or_create_key(path: str | os.PathLike) -> tuple[ProjectKey, bool]:
    """The key in ``path`` (hex text), or a new one written there (owner-only, 0600).

    Returns (key, created). Raises UserError naming the file when it cannot be used.
    """
    path = Path(path).expanduser()
    if path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"The key file {path} cannot be read "
                            f"({getattr(exc, 'strerror', None) or exc}).") from None
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and
                 not ln.lstrip().startswith("#")]
        try:
            secret = bytes.fromhex(lines[0]) if len(lines) == 1 else b""
        except ValueError:
            secret = b""
        if len(secret) < 16:
            raise UserError(f"The key file {path} does not hold a MedViewer project key "
                            f"(one line of at least 32 hex digits).")
        return ProjectKey(secret, path), False
    secret = secrets.token_bytes(KEY_BYTES)
    try:
        write_atomically(path, KEY_FILE_HEADER + secret.hex() + "\n")  # owner-only
    except OSError as exc:
        raise UserError(f"A new key file cannot be written to {path} "
                        f"({exc.strerror or exc}).") from None
    log.info("wrote a new de-identification project key to %s", path)
    return ProjectKey(secret, path), True
