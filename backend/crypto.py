"""Keys and field encryption for personal data at rest.

One master secret (``DATADESK_SECRET_KEY``, or a random key generated into
``DATA_DIR/secret.key`` on first run) is stretched with HKDF into separate
sub-keys, one per purpose:

- ``encrypt``/``decrypt``: AES-256-GCM for personal fields (names, phones,
  emails, addresses). The stored form is ``v1.<nonce+ciphertext, base64url>``.
- ``blind_index``: HMAC-SHA256 of a normalised value (an E.164 phone, a
  lower-cased email), so a customer can be found by phone without keeping the
  phone in clear.
- ``mac``: HMAC-SHA256 for one-time codes and tokens, compared with
  ``hmac.compare_digest`` so a check takes the same time whatever matched.

``Encrypted`` is a column type that encrypts on write and decrypts on read with
the process-wide keyring set by ``install``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

_PREFIX = "v1."


class CryptoError(Exception):
    """A stored value could not be decrypted: wrong key or damaged data."""


def _derive(master: bytes, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
        master
    )


class Keyring:
    """Sub-keys derived from one master secret; see the module docstring."""

    def __init__(self, master: bytes) -> None:
        if len(master) < 16:
            raise ValueError("the master secret must be at least 16 bytes")
        self._aead = AESGCM(_derive(master, "datadesk/field-encryption/v1"))
        self._index_key = _derive(master, "datadesk/blind-index/v1")
        self._mac_key = _derive(master, "datadesk/mac/v1")

    @classmethod
    def from_secret(cls, secret: str) -> Keyring:
        """Build a keyring from an operator-supplied secret string of any form."""
        return cls(hashlib.sha256(secret.encode()).digest())

    def encrypt(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), None)
        return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def decrypt(self, token: str) -> str:
        if not token.startswith(_PREFIX):
            raise CryptoError("value is not in the v1 encrypted form")
        raw = base64.urlsafe_b64decode(token[len(_PREFIX) :])
        try:
            return self._aead.decrypt(raw[:12], raw[12:], None).decode()
        except InvalidTag as exc:
            raise CryptoError("value does not decrypt with this key") from exc

    def blind_index(self, kind: str, normalized: str) -> str:
        """A stable, keyed digest of ``normalized`` for equality look-ups."""
        message = f"{kind}\x00{normalized}".encode()
        return hmac.new(self._index_key, message, hashlib.sha256).hexdigest()

    def mac(self, *parts: str) -> str:
        """A keyed digest of ``parts``; compare results with ``constant_time_equal``."""
        message = "\x00".join(parts).encode()
        return hmac.new(self._mac_key, message, hashlib.sha256).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    """Compare two digests in time that does not depend on where they differ."""
    return hmac.compare_digest(a.encode(), b.encode())


def load_keyring(secret_key: str | None, data_dir: Path) -> Keyring:
    """The keyring for this deployment: the configured secret, or one kept in ``data_dir``."""
    if secret_key:
        return Keyring.from_secret(secret_key)
    path = data_dir / "secret.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        # Write-then-rename so two processes starting at once agree on one key.
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(secrets.token_urlsafe(48))
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return Keyring.from_secret(path.read_text().strip())


_installed: Keyring | None = None


def install(keyring: Keyring) -> None:
    """Make ``keyring`` the one ``Encrypted`` columns use in this process."""
    global _installed
    _installed = keyring


def current() -> Keyring:
    """The installed keyring; fails loudly if the process forgot to install one."""
    if _installed is None:
        raise RuntimeError("no keyring installed: call backend.crypto.install() at start-up")
    return _installed


class Encrypted(TypeDecorator[str]):
    """A text column stored encrypted with the installed keyring."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else current().encrypt(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else current().decrypt(str(value))


class BlindIndex(TypeDecorator[str]):
    """A fixed-width column holding a ``Keyring.blind_index`` digest."""

    impl = String(64)
    cache_ok = True
