"""The keys a database is encrypted with: the check at start, ``keys status``, ``keys rotate``.

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

Rotation (``rotate``) walks every ``Encrypted`` column table by table in
primary-key order, a batch per short transaction: the rows not yet on the
primary key are locked (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write lock
on SQLite), decrypted with their old key and associated data, re-encrypted with
the primary key, and their blind indexes recomputed under it. Work done is
committed batch by batch, so a killed rotation resumes where it stopped: the
next run selects only what is still on an old key. When nothing is left, the
old keys are marked retired and may be removed from ``DATADESK_OLD_SECRET_KEYS``.
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
    and_,
    case,
    func,
    literal,
    or_,
    select,
    tuple_,
    update,
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
_KEYS: Table = CryptoKey.__table__  # type: ignore[assignment]
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
    t = _KEYS
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
            _KEYS.insert().values(
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
    t = _KEYS
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


def _totals(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for by_key in counts.values():
        for key, n in by_key.items():
            totals[key] = totals.get(key, 0) + n
    return totals


# -- rotation ---------------------------------------------------------------------------------


@dataclass
class RotationReport:
    """What a rotation pass did; ``unreadable`` names rows as ``table pk=…`` (no values)."""

    rewritten: int = 0
    unreadable: list[str] | None = None
    retired: list[str] | None = None


def _on_old_key(table: SealedTable, primary_id: str) -> Any:
    prefix = f"{crypto.V2}{primary_id}.%"
    return or_(
        *(
            and_(table.raw.c[col.column].is_not(None), ~table.raw.c[col.column].like(prefix))
            for col in table.columns
        )
    )


async def _rotate_batch(
    engine: AsyncEngine,
    keyring: Keyring,
    table: SealedTable,
    after: tuple[Any, ...] | None,
    batch: int,
    report: RotationReport,
) -> tuple[Any, ...] | None:
    """Re-encrypt up to ``batch`` rows after ``after``; the last primary key seen, or None."""
    raw = table.raw
    pk = [raw.c[name] for name in table.primary_key]
    query = select(raw).where(_on_old_key(table, keyring.primary_id))
    if after is not None:
        query = query.where(tuple_(*pk) > tuple_(*(literal(v) for v in after)))
    query = query.order_by(*pk).limit(batch)
    async with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            await conn.begin()
            query = query.with_for_update(skip_locked=True)
        rows = (await conn.execute(query)).mappings().all()
        for row in rows:
            changes: dict[str, str] = {}
            try:
                for col in table.columns:
                    token = row[col.column]
                    if token is None or keyring.key_of(token) == keyring.primary_id:
                        continue
                    aad = crypto.row_aad(table.name, col.column, [row[n] for n in col.row])
                    plain = keyring.decrypt(token, aad)
                    changes[col.column] = keyring.encrypt(plain, aad)
                    if (table.name, col.column) in BLIND_INDEXES:
                        index_col, kind, normalise = BLIND_INDEXES[(table.name, col.column)]
                        changes[index_col] = keyring.blind_index(kind, normalise(plain))
            except CryptoError as exc:
                where = ", ".join(f"{n}={row[n]}" for n in table.primary_key)
                report.unreadable = [*(report.unreadable or []), f"{table.name} {where}: {exc}"]
                continue
            await conn.execute(
                update(raw).where(and_(*(c == row[c.name] for c in pk))).values(**changes)
            )
            report.rewritten += 1
        await conn.commit()
    if not rows:
        return None
    return tuple(rows[-1][n] for n in table.primary_key)


async def _rotate_table(
    engine: AsyncEngine,
    keyring: Keyring,
    table: SealedTable,
    batch: int,
    pause: float,
    progress: Callable[[str], None],
    report: RotationReport,
) -> None:
    after: tuple[Any, ...] | None = None
    done = 0
    while True:
        before = report.rewritten
        after = await _rotate_batch(engine, keyring, table, after, batch, report)
        if after is None:
            return
        done += report.rewritten - before
        progress(f"{table.name}: {done} rows re-encrypted")
        if pause:
            await asyncio.sleep(pause)


async def rotate(
    engine: AsyncEngine,
    keyring: Keyring,
    *,
    batch: int = 500,
    pause: float = 0.0,
    progress: Callable[[str], None] = print,
    clock: Clock | None = None,
) -> RotationReport:
    """Move every value onto the primary key, batch by batch; retire old keys when none is left."""
    report = RotationReport()
    while True:
        # Rows a writer held locked (PostgreSQL skips them) are taken by the next pass.
        before_pass = report.rewritten
        report.unreadable = None
        for table in sealed_tables():
            await _rotate_table(engine, keyring, table, batch, pause, progress, report)
        left = {k for k in _totals(await key_counts(engine)) if k != keyring.primary_id}
        if not left or report.unreadable or report.rewritten == before_pass:
            break
    if left or report.unreadable:
        return report
    now = (clock or SystemClock()).now()
    t = _KEYS
    async with engine.begin() as conn:
        retired = await conn.execute(
            update(t)
            .where(t.c.key_id != keyring.primary_id, t.c.retired_at.is_(None))
            .values(retired_at=now)
            .returning(t.c.key_id)
        )
        report.retired = sorted(str(k) for k in retired.scalars())
    return report


# -- commands ---------------------------------------------------------------------------------


def _print_counts(counts: dict[str, dict[str, int]], primary_id: str, out: Any) -> None:
    for where, by_key in counts.items():
        if by_key:
            shown = ", ".join(f"{k}: {n}" for k, n in sorted(by_key.items()))
            print(f"{where}: {shown}", file=out)
    totals = _totals(counts)
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
                t = _KEYS
                keys = (await conn.execute(select(t.c.key_id, t.c.retired_at))).all()
        finally:
            await services.close()
        primary = services.keyring.primary_id
        for key_id, retired_at in sorted(keys):
            state = "retired" if retired_at else "primary" if key_id == primary else "readable"
            print(f"key id {key_id}: {state}")
        _print_counts(counts, primary, sys.stdout)
        return 0 if set(_totals(counts)) <= {primary} else 1

    return asyncio.run(body())


def rotate_command(args: argparse.Namespace, settings: Any) -> int:
    """``datadesk keys rotate``: re-encrypt onto the primary key while the system runs."""
    from backend.services import open_services

    batch = max(1, int(getattr(args, "batch", 500) or 500))
    pause = max(0.0, float(getattr(args, "pause", 0.0) or 0.0))

    async def body() -> int:
        services = await open_services(settings)
        try:
            report = await rotate(
                services.engine,
                services.keyring,
                batch=batch,
                pause=pause,
                progress=lambda line: print(line, flush=True),
            )
            counts = await key_counts(services.engine)
        finally:
            await services.close()
        for line in report.unreadable or []:
            print(f"datadesk: {line}", file=sys.stderr)
        print(f"{report.rewritten} rows re-encrypted onto key {services.keyring.primary_id}")
        for key in report.retired or []:
            print(f"key id {key} retired: remove it from {OLD_SECRETS}")
        left = {k for k in _totals(counts) if k != services.keyring.primary_id}
        if left or report.unreadable:
            _print_counts(counts, services.keyring.primary_id, sys.stderr)
            return 1
        return 0

    return asyncio.run(body())
