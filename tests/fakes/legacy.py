"""Values as versions before key ids wrote them, for tests of reading and rotating old data."""

from __future__ import annotations

import base64
import os

from backend.crypto import Key


def v1_value(key: Key | str, plaintext: str) -> str:
    """``plaintext`` sealed the v1 way: no key id, no associated data."""
    key = Key.from_secret(key) if isinstance(key, str) else key
    nonce = os.urandom(12)
    sealed = key.aead.encrypt(nonce, plaintext.encode(), None)
    return "v1." + base64.urlsafe_b64encode(nonce + sealed).decode()
