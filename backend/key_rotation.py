"""``datadesk keys rotate``: every encrypted value onto the primary key while the system serves.

``rotate`` walks every ``Encrypted`` column table by table in primary-key
order, a batch per short transaction: the rows not yet on the primary key are
locked (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write lock on SQLite),
decrypted with their old key and associated data, re-encrypted with the
primary key, and their blind indexes recomputed under it. Work done is
committed batch by batch, so a killed rotation resumes where it stopped: the
next run selects only what is still on an old key. Rows a writer held locked
are taken by a later pass. When nothing is left, the old keys are marked
retired and may be removed from ``DATADESK_OLD_SECRET_KEYS``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, literal, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncEngine

from backend import crypto
from backend.crypto import CryptoError, Keyring
from backend.keys import (
    BLIND_INDEXES,
    KEYS_TABLE,
    OLD_SECRETS,
    SealedTable,
    key_counts,
    print_counts,
    sealed_tables,
    totals_by_key,
)
from common.clock import Clock, SystemClock


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
        # One executemany per set of changed columns: a statement per row cost
        # nine tenths of a rotation's time (cProfile: AsyncConnection.execute).
        updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
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
            params = {f"pk_{c.name}": row[c.name] for c in pk}
            params.update({f"new_{name}": value for name, value in changes.items()})
            updates.setdefault(tuple(sorted(changes)), []).append(params)
            report.rewritten += 1
        for columns, params_list in updates.items():
            statement = (
                update(raw)
                .where(and_(*(c == bindparam(f"pk_{c.name}") for c in pk)))
                .values({name: bindparam(f"new_{name}") for name in columns})
            )
            await conn.execute(statement, params_list)
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
        left = {k for k in totals_by_key(await key_counts(engine)) if k != keyring.primary_id}
        if not left or report.unreadable or report.rewritten == before_pass:
            break
    if left or report.unreadable:
        return report
    now = (clock or SystemClock()).now()
    t = KEYS_TABLE
    async with engine.begin() as conn:
        retired = await conn.execute(
            update(t)
            .where(t.c.key_id != keyring.primary_id, t.c.retired_at.is_(None))
            .values(retired_at=now)
            .returning(t.c.key_id)
        )
        report.retired = sorted(str(k) for k in retired.scalars())
    return report


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
        left = {k for k in totals_by_key(counts) if k != services.keyring.primary_id}
        if left or report.unreadable:
            print_counts(counts, services.keyring.primary_id, sys.stderr)
            return 1
        return 0

    return asyncio.run(body())
