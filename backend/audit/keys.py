"""The audit log's keys, kept outside the database (docs/audit.md, "Keys").

- The chain key (HMAC-SHA256): ``DATADESK_AUDIT_KEY``, else ``DATA_DIR/audit.key``.
- The checkpoint signing key (Ed25519, the hex of its 32-byte seed):
  ``DATADESK_AUDIT_SIGNING_KEY``, else ``DATA_DIR/audit-signing.key``.

Both files are created ``0600`` on first use (``common/private_files.py``), one
key however many processes start at once. Someone who can write the database
but not read these cannot recompute a MAC nor sign a checkpoint.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from backend.settings import Settings
from common.errors import ConfigError
from common.private_files import ensure_private_dir, read_or_create_secret, read_secret

KEY_FILE = "audit.key"
SIGNING_KEY_FILE = "audit-signing.key"


class MissingKey(Exception):
    """An audit key that verification needs is neither set nor in its file."""


@dataclass(frozen=True)
class AuditKeys:
    """The chain key and the checkpoint signing key."""

    mac_key: bytes
    signing: Ed25519PrivateKey

    @property
    def verifying(self) -> Ed25519PublicKey:
        return self.signing.public_key()

    @property
    def key_id(self) -> str:
        """A short public name of the chain key: checkpoints record which key made the chain."""
        return hmac.new(self.mac_key, b"datadesk audit key id", hashlib.sha256).hexdigest()[:16]


def _new_signing_seed() -> str:
    return Ed25519PrivateKey.generate().private_bytes_raw().hex()


def _signing_key(raw: str, where: str) -> Ed25519PrivateKey:
    try:
        seed = bytes.fromhex(raw)
        return Ed25519PrivateKey.from_private_bytes(seed)
    except ValueError:
        raise ConfigError(where, None, "is not the hex of a 32-byte Ed25519 seed") from None


def load_keys(settings: Settings, *, create: bool = True) -> AuditKeys:
    """The keys from the settings or ``DATA_DIR``; created there when missing and ``create``.

    Without ``create`` (verification) a missing key is ``MissingKey``: a new
    key would only make every MAC look forged.
    """
    folder = settings.data_dir
    mac_raw = settings.audit_key
    seed = settings.audit_signing_key
    if create:
        ensure_private_dir(folder)
        mac_raw = mac_raw or read_or_create_secret(folder / KEY_FILE)
        seed = seed or read_or_create_secret(folder / SIGNING_KEY_FILE, _new_signing_seed)
    else:
        mac_raw = mac_raw or _existing(folder / KEY_FILE, "DATADESK_AUDIT_KEY")
        seed = seed or _existing(folder / SIGNING_KEY_FILE, "DATADESK_AUDIT_SIGNING_KEY")
    where = (
        "DATADESK_AUDIT_SIGNING_KEY"
        if settings.audit_signing_key
        else str(folder / SIGNING_KEY_FILE)
    )
    return AuditKeys(mac_key=mac_raw.encode(), signing=_signing_key(seed, where))


def _existing(path: Path, setting: str) -> str:
    found = read_secret(path)
    if found is None:
        raise MissingKey(f"{path} is missing and {setting} is not set")
    return found
