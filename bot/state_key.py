"""The bot's own key, and conversation state sealed under it.

Conversation state carries what customers typed, so it is encrypted at rest;
not with the backend's key, which the bot never holds, but with the bot's:
``DATADESK_BOT_SECRET_KEY``, or a random key generated into ``DATA_DIR/bot.key``
on first start (``0600`` from creation; processes starting at once agree on
one, see ``common.private_files``). Bots that share a conversation database
must share this key (set ``DATADESK_BOT_SECRET_KEY`` on every one).

HKDF-SHA256 stretches the secret into an AES-256-GCM key. A sealed value is
``s1.`` and base64url(nonce ‖ ciphertext); its associated data names the chat
and the column, so a value copied to another chat or column does not open.
A value that does not open (another key, the shared key of earlier versions,
damage) raises ``SealError``; the store treats it as no state.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.settings import MIN_SECRET_LENGTH, BotSettings
from common.errors import DatadeskError
from common.private_files import ensure_private_dir, read_or_create_secret

BOT_KEY_FILE = "bot.key"
_FORM = "s1."
_NONCE = 12


class SealError(DatadeskError):
    """A sealed value does not open: another key, another chat or column, or damaged."""


class StateKey:
    """Seals and opens the bot's conversation state; see the module docstring."""

    def __init__(self, secret: str) -> None:
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"the bot's secret key must be at least {MIN_SECRET_LENGTH} characters"
            )
        master = hashlib.sha256(secret.encode()).digest()
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"datadesk/bot-state/v1"
        ).derive(master)
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, *, bound_to: str) -> str:
        """``plaintext`` encrypted; it opens only with this key and the same ``bound_to``."""
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), bound_to.encode())
        return _FORM + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, sealed: str, *, bound_to: str) -> str:
        """The plaintext of ``sealed``; SealError if it was not sealed by this key for ``bound_to``."""
        if not sealed.startswith(_FORM):
            raise SealError("not sealed by the bot's key (an older form)")
        try:
            raw = base64.urlsafe_b64decode(sealed[len(_FORM) :])
            return self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], bound_to.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise SealError("does not open with the bot's key") from exc


def load_state_key(settings: BotSettings) -> StateKey:
    """The bot's key: ``DATADESK_BOT_SECRET_KEY``, or ``DATA_DIR/bot.key`` (made on first start)."""
    if settings.bot_secret_key:
        return StateKey(settings.bot_secret_key)
    ensure_private_dir(settings.data_dir)
    return StateKey(read_or_create_secret(settings.data_dir / BOT_KEY_FILE))
