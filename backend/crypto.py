"""Keys and field encryption for personal data at rest.

A key is one master secret (``DATADESK_SECRET_KEY``, or a random key generated
into ``DATA_DIR/secret.key`` on first run, ``0600`` from creation), stretched
with HKDF into separate sub-keys, one per purpose:

- field encryption: AES-256-GCM for personal fields (names, phones, emails,
  addresses, request payloads, transcripts);
- ``blind_index``: HMAC-SHA256 of a normalised value (an E.164 phone, a
  lower-cased email), so a customer can be found by phone without keeping the
  phone in clear;
- ``mac``: HMAC-SHA256 for one-time codes and tokens, compared with
  ``hmac.compare_digest`` so a check takes the same time whatever matched;
- a key id (public: it names the key in ciphertexts) and a key check (stored
  in ``crypto_keys`` so a process started with the wrong key refuses to run).

A ``Keyring`` holds the primary key (new values, blind indexes, MACs) and the
old keys still listed in ``DATADESK_OLD_SECRET_KEYS`` while ``datadesk keys
rotate`` moves values off them. Stored forms:

- ``v2.<key id>.<nonce+ciphertext, base64url>``: written today. The associated
  data binds the value to its key id, table, column and row (``row_aad``), so a
  value copied to another row, column or table, a flipped bit or a changed key
  id fails to decrypt (``TamperedValue``).
- ``v1.<nonce+ciphertext>``: written before key ids existed, with no
  associated data; still read (with whichever configured key opens it) until
  a rotation rewrites it as ``v2``.

``Encrypted`` is the column type. It writes only values the session's flush
has tagged with their row (``_seal_rows``; a Core bulk write tags its own with
``for_row``), and reads each value together with
its row's identity (``column_expression``), so the binding holds for ORM loads
and column selects alike. Errors::

    CryptoError              a stored value cannot be used (never shows the value)
    ├── UnknownKey           its key id is not configured
    └── TamperedValue        it does not decrypt: altered, moved, or the wrong key
    KeyMismatch (SettingsError)  the configured keys do not fit the database
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Column, String, Table, Text, cast, event, inspect, literal_column, select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, PassiveFlag, Session, attributes, defer
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

from common.private_files import ensure_private_dir, read_or_create_secret
from common.settings import SettingsError

V1 = "v1."
V2 = "v2."
SECRET_KEY_FILE = "secret.key"  # noqa: S105 - a file name, not a secret
# Between a value and its row identity in what ``Encrypted.column_expression`` selects.
_SEP = "|"


class CryptoError(Exception):
    """A stored value could not be decrypted; the message names the column, never the value."""


class UnknownKey(CryptoError):
    """The value names a key id that is neither the primary key nor an old key."""


class TamperedValue(CryptoError):
    """The value does not decrypt: altered, moved from elsewhere, or under another key."""


class KeyMismatch(SettingsError):
    """The configured keys do not open this database; the message names the setting."""


def _derive(master: bytes, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
        master
    )


class Key:
    """One master secret's sub-keys (see the module docstring)."""

    def __init__(self, master: bytes) -> None:
        if len(master) < 16:
            raise ValueError("the master secret must be at least 16 bytes")
        # The v1 derivations are kept as they were, so existing values and indexes still fit.
        self.aead = AESGCM(_derive(master, "datadesk/field-encryption/v1"))
        self.index_key = _derive(master, "datadesk/blind-index/v1")
        self.mac_key = _derive(master, "datadesk/mac/v1")
        self.id = _derive(master, "datadesk/key-id/v2")[:6].hex()
        self.check = _derive(master, "datadesk/key-check/v2").hex()

    @classmethod
    def from_secret(cls, secret: str) -> Key:
        """The key for an operator-supplied secret string of any form."""
        return cls(hashlib.sha256(secret.encode()).digest())


def row_aad(table: str, column: str, row: Sequence[object]) -> str:
    """What binds a value to its place: ``table|column|row key parts``."""
    return _SEP.join([table, column, *(str(part) for part in row)])


class Keyring:
    """The primary key and the old keys still readable; see the module docstring."""

    def __init__(self, primary: Key | bytes, old: Sequence[Key] = ()) -> None:
        self.primary = primary if isinstance(primary, Key) else Key(primary)
        self.keys: dict[str, Key] = {self.primary.id: self.primary}
        for key in old:
            self.keys.setdefault(key.id, key)

    @classmethod
    def from_secret(cls, secret: str, old_secrets: Sequence[str] = ()) -> Keyring:
        """A keyring from operator-supplied secrets: the primary one, then the old ones."""
        return cls(Key.from_secret(secret), [Key.from_secret(s) for s in old_secrets])

    @property
    def primary_id(self) -> str:
        return self.primary.id

    def encrypt(self, plaintext: str, aad: str) -> str:
        """``plaintext`` sealed under the primary key, bound to ``aad`` (see ``row_aad``)."""
        key = self.primary
        nonce = os.urandom(12)
        sealed = key.aead.encrypt(nonce, plaintext.encode(), _v2_aad(key.id, aad))
        return f"{V2}{key.id}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, aad: str) -> str:
        """The plaintext of ``token`` stored at ``aad``; raises a ``CryptoError`` subclass."""
        if token.startswith(V2):
            key_id, dot, body = token[len(V2) :].partition(".")
            key = self.keys.get(key_id)
            if not dot or key is None:
                raise UnknownKey(f"{_where(aad)}: key id {key_id[:16]!r} is not configured")
            return _open(key, body, _v2_aad(key_id, aad), aad)
        if token.startswith(V1):
            for key in self.keys.values():
                try:
                    return _open(key, token[len(V1) :], None, aad)
                except TamperedValue:
                    continue
            raise TamperedValue(f"{_where(aad)}: a v1 value no configured key opens")
        raise TamperedValue(f"{_where(aad)}: not an encrypted value")

    def key_of(self, token: str) -> str:
        """The key id a stored value names, ``v1`` for values written before key ids."""
        if token.startswith(V2):
            return token[len(V2) :].partition(".")[0]
        return "v1"

    def blind_index(self, kind: str, normalized: str) -> str:
        """A stable, keyed digest of ``normalized`` under the primary key, for new rows."""
        return _index(self.primary, kind, normalized)

    def blind_indexes(self, kind: str, normalized: str) -> list[str]:
        """The digests under every configured key: what a look-up matches during a rotation."""
        return [_index(key, kind, normalized) for key in self.keys.values()]

    def mac(self, *parts: str) -> str:
        """A keyed digest of ``parts``; compare results with ``constant_time_equal``."""
        message = "\x00".join(parts).encode()
        return hmac.new(self.primary.mac_key, message, hashlib.sha256).hexdigest()


def _v2_aad(key_id: str, aad: str) -> bytes:
    return f"datadesk/v2{_SEP}{key_id}{_SEP}{aad}".encode()


def _where(aad: str) -> str:
    # table.column only: the row part may be a customer reference.
    table, _, rest = aad.partition(_SEP)
    return f"{table}.{rest.partition(_SEP)[0]}"


def _open(key: Key, body: str, aad: bytes | None, where: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(body.encode())
    except (binascii.Error, ValueError):
        raise TamperedValue(f"{_where(where)}: the stored value is not base64") from None
    try:
        return key.aead.decrypt(raw[:12], raw[12:], aad).decode()
    except (InvalidTag, ValueError, UnicodeDecodeError):
        raise TamperedValue(
            f"{_where(where)}: the value does not decrypt under key id {key.id}: it was "
            "altered, or belongs to another row, column or table"
        ) from None


def _index(key: Key, kind: str, normalized: str) -> str:
    message = f"{kind}\x00{normalized}".encode()
    return hmac.new(key.index_key, message, hashlib.sha256).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    """Compare two digests in time that does not depend on where they differ."""
    return hmac.compare_digest(a.encode(), b.encode())


def load_keyring(
    secret_key: str | None, data_dir: Path, old_secret_keys: Sequence[str] = ()
) -> Keyring:
    """The keyring for this deployment: the configured secret, or one kept in ``data_dir``.

    A generated key file is created ``0600`` (``common.private_files``); several
    processes starting at once agree on one key.
    """
    if not secret_key:
        ensure_private_dir(data_dir)
        secret_key = read_or_create_secret(data_dir / SECRET_KEY_FILE)
    return Keyring.from_secret(secret_key, old_secret_keys)


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


class _ForRow(str):
    """A plaintext on its way to an ``Encrypted`` column, tagged with its associated data."""

    aad: str


def for_row(value: str, table: str, column: str, row: Sequence[object]) -> str:
    """``value`` tagged for an ``Encrypted`` column of ``table`` written by a Core statement.

    What ``_seal_rows`` does for a flush, for a bulk insert or update that
    writes many rows in one statement: ``row`` is the column's row identity
    (its ``Encrypted(row=...)`` parts, in order).
    """
    tagged = _ForRow(value)
    tagged.aad = row_aad(table, column, row)
    return tagged


def open_for_row(stored: str, table: str, column: str, row: Sequence[object]) -> str:
    """The plaintext of an ``Encrypted`` value read raw (``type_coerce(column, Text)``).

    ``for_row``'s counterpart, for a reader that decides itself what to do with
    a value that does not open (a ``CryptoError``), row by row.
    """
    return current().decrypt(stored, row_aad(table, column, row))


class Encrypted(TypeDecorator[str]):
    """A text column stored encrypted with the installed keyring, bound to its row.

    ``row`` names the columns of the same table that identify the row and are
    known before the insert (a reference, a client-generated ``row_uid``); they
    must never change once the row exists.
    """

    impl = Text
    cache_ok = True

    def __init__(self, row: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.row = tuple(row)

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, _ForRow):
            raise CryptoError(
                "an Encrypted column was written outside an ORM flush, so without its row; "
                "write it through the session (backend.crypto._seal_rows) or tag it (for_row)"
            )
        return current().encrypt(str(value), value.aad)

    def column_expression(self, colexpr: ColumnElement[str]) -> ColumnElement[str]:
        table = getattr(colexpr, "table", None)
        if table is None or not self.row:
            return colexpr
        expr: ColumnElement[str] = colexpr.concat(literal_column(f"'{_SEP}'"))
        expr = expr.concat(literal_column(f"'{_table_name(table)}{_SEP}{colexpr.name}'"))
        for name in self.row:
            expr = expr.concat(literal_column(f"'{_SEP}'")).concat(cast(table.c[name], String))
        return expr

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        token, _, aad = str(value).partition(_SEP)
        return current().decrypt(token, aad)


def _table_name(table: Any) -> str:
    while not isinstance(table, Table) and hasattr(table, "element"):
        table = table.element
    return str(table.name)


class BlindIndex(TypeDecorator[str]):
    """A fixed-width column holding a ``Keyring.blind_index`` digest."""

    impl = String(64)
    cache_ok = True


@dataclass(frozen=True)
class SealedColumn:
    """An ``Encrypted`` column of a mapped class, with what names its row."""

    attribute: str
    column: str
    row: tuple[str, ...]


_sealed_by_mapper: dict[Any, tuple[str, list[SealedColumn]]] = {}


def sealed_columns(mapper: Any) -> tuple[str, list[SealedColumn]]:
    """The table name and ``Encrypted`` columns of ``mapper`` (cached)."""
    found = _sealed_by_mapper.get(mapper)
    if found is None:
        table = mapper.local_table
        columns = [
            SealedColumn(prop.key, col.name, col.type.row)
            for prop in mapper.column_attrs
            for col in prop.columns
            if isinstance(col, Column) and isinstance(col.type, Encrypted)
        ]
        found = _sealed_by_mapper[mapper] = (str(table.name), columns)
    return found


def new_row_uid() -> str:
    """A row identity for tables with no natural one known before the insert."""
    return secrets.token_hex(16)


@event.listens_for(Session, "before_flush")
def _seal_rows(session: Session, _context: Any, _instances: Any) -> None:
    """Tag every new or changed ``Encrypted`` value with its table, column and row."""
    for obj in (*session.new, *session.dirty):
        state = inspect(obj)
        table, columns = sealed_columns(state.mapper)
        if not columns:
            continue
        for col in columns:
            # An unchanged value keeps its ciphertext; asking must not load it.
            if (
                not state.pending
                and not attributes.get_history(
                    obj, col.attribute, passive=PassiveFlag.PASSIVE_NO_INITIALIZE
                ).added
            ):
                continue
            value = getattr(obj, col.attribute)
            if value is None:
                continue
            row = []
            for name in col.row:
                part = getattr(obj, name)
                if part is None and name == "row_uid":
                    part = new_row_uid()
                    setattr(obj, name, part)
                if part is None:
                    raise CryptoError(f"{table}.{col.column}: written before {name} was set")
                row.append(part)
            tagged = _ForRow(value)
            tagged.aad = row_aad(table, col.column, row)
            setattr(obj, col.attribute, tagged)


async def load_readable(
    session: AsyncSession, query: Any, column: InstrumentedAttribute[Any]
) -> tuple[list[Any], dict[int, CryptoError]]:
    """The rows of ``query``, and the ids of those whose ``column`` does not decrypt, with why.

    Read together as usual; only when that raises (a value altered in the
    database) are the rows read again with ``column`` deferred and each value
    read alone, so that one bad row cannot stop a whole queue. The unreadable
    rows come back too, ``column`` unloaded: the caller decides their fate.
    """
    try:
        return list((await session.scalars(query)).all()), {}
    except CryptoError:
        pass
    entity = column.class_
    rows = list((await session.scalars(query.options(defer(column)))).all())
    unreadable: dict[int, CryptoError] = {}
    for row in rows:
        try:
            value = await session.scalar(select(column).where(entity.id == row.id))
        except CryptoError as exc:
            unreadable[row.id] = exc
            continue
        attributes.set_committed_value(row, column.key, value)
    return rows, unreadable
