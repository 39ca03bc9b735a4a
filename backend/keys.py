"""The keys a database is encrypted with: the check at start and ``datadesk keys status``.

Start-up (``check_keys``, from ``open_services``): every backend, worker and
command process compares its keys with the ``crypto_keys`` rows and refuses to
run, with one line naming the setting, when

- its ``DATADESK_SECRET_KEY`` is not a key the database knows, unless one of
  its ``DATADESK_OLD_SECRET_KEYS`` is (then a rotation begins: the new key is
  registered and becomes the one new values are written with);
- its key was retired by a finished rotation;
- a key still holding data is not configured.

A database with no key registered yet (first start, or the first start after
migration 0007) registers the primary key, after checking that stored values
open with a configured key, so a changed key is caught there too.
``datadesk keys rotate`` is ``backend/key_rotation.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    MetaData,
    String,
    Table,
    case,
    func,
    literal,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backend import crypto
from backend.crypto import CryptoError, KeyMismatch, Keyring
from backend.models import keys as _keys_models  # noqa: F401  (registers every model)
from backend.models.base import Base
from backend.models.keys import CryptoKey
from backend.validation import email_key
from common.clock import Clock, SystemClock
from common.settings import PREFIX

SECRET = f"{PREFIX}SECRET_KEY"
KEYS_TABLE: Table = CryptoKey.__table__  # type: ignore[assignment]
OLD_SECRETS = f"{PREFIX}OLD_SECRET_KEYS"

# Blind indexes recomputed with the value they index: (table, value column) → (index column, kind, normalise).
BLIND_INDEXES: dict[tuple[str, str], tuple[str, str, Callable[[str], str]]] = {
    ("crm_phones", "number"): ("number_index", "phone", lambda v: v),
    ("crm_emails", "address"): ("address_index", "email", email_key),
}


@dataclass(frozen=True)
class SealedTable:
    """A table with ``Encrypted`` columns, seen raw: ciphertexts as text, no type processing."""

    name: str
    raw: Table
    primary_key: tuple[str, ...]
    columns: tuple[crypto.SealedColumn, ...]


def sealed_tables() -> list[SealedTable]:
    """Every table holding ``Encrypted`` columns, in a fixed order."""
    found = []
    for mapper in Base.registry.mappers:
        name, columns = crypto.sealed_columns(mapper)
        if not columns:
            continue
        table = Base.metadata.tables[name]
        wanted = {c.name for c in table.primary_key.columns}
        for col in columns:
            wanted.update(col.row)
            wanted.add(col.column)
            if (name, col.column) in BLIND_INDEXES:
                wanted.add(BLIND_INDEXES[(name, col.column)][0])
        # Plain text columns: rotation moves ciphertexts as they are stored.
        raw = Table(
            name,
            MetaData(),
            *(
                Column(c.name, String if c.name in {x.column for x in columns} else c.type)
                for c in table.columns
                if c.name in wanted
            ),
        )
        pk = tuple(c.name for c in table.primary_key.columns)
        found.append(SealedTable(name, raw, pk, tuple(columns)))
    return sorted(found, key=lambda t: t.name)


# -- the check at start ---------------------------------------------------------------------


async def check_keys(
    engine: AsyncEngine, keyring: Keyring, clock: Clock | None = None, source: str = SECRET
) -> None:
    """Refuse (``KeyMismatch``) keys that do not fit the database; register a new primary key.

    ``source`` is where the primary key came from, as the message names it: the
    setting, or the generated key file when the setting is unset.
    """
    now = (clock or SystemClock()).now()
    for attempt in (1, 2):
        try:
            async with engine.begin() as conn:
                await _check(conn, keyring, now, source)
            return
        except IntegrityError:
            # Another process registered the same key at the same moment: look again.
            if attempt == 2:
                raise


async def _check(conn: AsyncConnection, keyring: Keyring, now: datetime, source: str) -> None:
    t = KEYS_TABLE
    rows = (await conn.execute(select(t.c.key_id, t.c.key_check, t.c.retired_at))).all()
    known = {r.key_id: r for r in rows}
    primary = keyring.primary
    for key in keyring.keys.values():
        row = known.get(key.id)
        if row is not None and not crypto.constant_time_equal(row.key_check, key.check):
            raise KeyMismatch(
                f"{source}: the check stored for key id {key.id} does not match; "
                "the crypto_keys table was altered"
            )
    active = {kid for kid, r in known.items() if r.retired_at is None}
    if not known:
        await _check_stored_values(conn, keyring, source)
    elif primary.id in known:
        if known[primary.id].retired_at is not None:
            raise KeyMismatch(
                f"{source}: key id {primary.id} was retired by a finished rotation; "
                f"set the current key (key id {', '.join(sorted(active)) or 'none'})"
            )
    elif not active & (set(keyring.keys) - {primary.id}):
        raise KeyMismatch(
            f"{source} does not match the key this database is encrypted with (key id "
            f"{primary.id}, the database has {', '.join(sorted(active)) or 'none active'}); "
            f"set the right key, or to rotate, put the current key in {OLD_SECRETS}"
        )
    if primary.id not in known:
        await conn.execute(
            KEYS_TABLE.insert().values(
                key_id=primary.id, key_check=primary.check, created_at=now, retired_at=None
            )
        )
    missing = active - set(keyring.keys)
    if missing:
        raise KeyMismatch(
            f"{OLD_SECRETS}: key id {', '.join(sorted(missing))} still encrypts data here but "
            "is not configured; keep it there until `datadesk keys rotate` has finished"
        )


async def _check_stored_values(conn: AsyncConnection, keyring: Keyring, source: str) -> None:
    """With no key registered yet, one stored value per table must open with a configured key."""
    for table in sealed_tables():
        for col in table.columns:
            c = table.raw.c[col.column]
            value = await conn.scalar(select(c).where(c.is_not(None)).limit(1))
            if value is None:
                continue
            if str(value).startswith(crypto.V2):
                opens = keyring.key_of(str(value)) in keyring.keys
            else:
                try:
                    keyring.decrypt(str(value), "")
                    opens = True
                except CryptoError:
                    opens = False
            if not opens:
                raise KeyMismatch(
                    f"{source} does not match the key this database is encrypted with: "
                    f"{table.name}.{col.column} does not open with it"
                )
            return


async def key_is_current(conn: AsyncConnection, keyring: Keyring) -> bool:
    """Whether this process's primary key is registered and not retired (readiness)."""
    t = KEYS_TABLE
    row = (
        await conn.execute(
            select(t.c.key_check, t.c.retired_at).where(t.c.key_id == keyring.primary_id)
        )
    ).first()
    return (
        row is not None
        and row.retired_at is None
        and crypto.constant_time_equal(row.key_check, keyring.primary.check)
    )


# -- status -----------------------------------------------------------------------------------


async def key_counts(engine: AsyncEngine) -> dict[str, dict[str, int]]:
    """``{"table.column": {key id or "v1": values}}`` for every ``Encrypted`` column."""
    counts: dict[str, dict[str, int]] = {}
    async with engine.connect() as conn:
        for table in sealed_tables():
            for col in table.columns:
                c = table.raw.c[col.column]
                key = case((c.like(f"{crypto.V2}%"), func.substr(c, 4, 12)), else_=literal("v1"))
                rows = await conn.execute(
                    select(key, func.count()).where(c.is_not(None)).group_by(key)
                )
                counts[f"{table.name}.{col.column}"] = {str(k): int(n) for k, n in rows}
    return counts


def totals_by_key(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for by_key in counts.values():
        for key, n in by_key.items():
            totals[key] = totals.get(key, 0) + n
    return totals


# -- commands ---------------------------------------------------------------------------------


def print_counts(counts: dict[str, dict[str, int]], primary_id: str, out: Any) -> None:
    for where, by_key in counts.items():
        if by_key:
            shown = ", ".join(f"{k}: {n}" for k, n in sorted(by_key.items()))
            print(f"{where}: {shown}", file=out)
    totals = totals_by_key(counts)
    for key, n in sorted(totals.items()):
        label = "primary" if key == primary_id else "old" if key != "v1" else "no key id"
        print(f"key {key} ({label}): {n} values", file=out)


def status_command(args: argparse.Namespace, settings: Any) -> int:
    """``datadesk keys status``: how many values are on which key; exit 1 while any is on an old one."""
    from backend.services import open_services

    async def body() -> int:
        services = await open_services(settings)
        try:
            counts = await key_counts(services.engine)
            async with services.engine.connect() as conn:
                t = KEYS_TABLE
                keys = (await conn.execute(select(t.c.key_id, t.c.retired_at))).all()
        finally:
            await services.close()
        primary = services.keyring.primary_id
        for key_id, retired_at in sorted(keys):
            state = "retired" if retired_at else "primary" if key_id == primary else "readable"
            print(f"key id {key_id}: {state}")
        print_counts(counts, primary, sys.stdout)
        return 0 if set(totals_by_key(counts)) <= {primary} else 1

    return asyncio.run(body())
