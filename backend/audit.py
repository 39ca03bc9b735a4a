"""The audit log: who did what to which request or customer, as a hash chain.

Every entry's hash is SHA-256 over a canonical JSON of its fields and the
previous entry's hash, so editing, inserting or removing an entry breaks the
chain at that point; ``verify`` finds the first break and ``datadesk audit
verify`` reports it. Entries carry internal ids and codes only, never personal
data: ``subject`` is a request reference or a customer ref, ``data`` holds
small scalar facts (a kind, a reason code, a count).

Appends are serialised by updating the one ``audit_head`` row first: on
PostgreSQL that row lock orders every writer until its transaction ends; on
SQLite the single writer lock already does. ``record`` runs inside the caller's
transaction, so an action and its audit entry commit or roll back together.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.models.audit import AuditEntry, AuditHead
from backend.settings import Settings

GENESIS = "0" * 64
Scalar = str | int | bool | None


def canonical_data(data: Mapping[str, Scalar] | None) -> str:
    """The stored, hashed form of an entry's ``data``: sorted keys, no spaces."""
    for key, value in (data or {}).items():
        if not isinstance(value, str | int | bool) and value is not None:
            raise TypeError(f"audit data {key!r} must be a scalar, got {type(value).__name__}")
    return json.dumps(dict(data or {}), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    subject: str | None,
    outcome: str | None,
    data: str,
    prev_hash: str,
) -> str:
    """SHA-256 over the canonical JSON of one entry and its predecessor's hash."""
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    fields = [seq, stamp, actor, action, subject, outcome, data, prev_hash]
    raw = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()


async def record(
    session: AsyncSession,
    *,
    action: str,
    actor: str,
    subject: str | None = None,
    outcome: str | None = None,
    data: Mapping[str, Scalar] | None = None,
    at: datetime,
) -> None:
    """Append one entry inside the caller's transaction (the caller commits)."""
    text = canonical_data(data)
    # UPDATE first: it takes the head's row lock (PostgreSQL) or the write lock
    # (SQLite) before the head is read, so two writers cannot fork the chain.
    head = (
        await session.execute(
            update(AuditHead)
            .where(AuditHead.id == 1)
            .values(seq=AuditHead.seq + 1)
            .returning(AuditHead.seq, AuditHead.hash)
        )
    ).one()
    seq, prev_hash = int(head.seq), str(head.hash)
    # Stored timestamps keep microseconds on both engines; hash what is stored.
    at = at.astimezone(UTC)
    digest = entry_hash(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        outcome=outcome,
        data=text,
        prev_hash=prev_hash,
    )
    session.add(
        AuditEntry(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            subject=subject,
            outcome=outcome,
            data=text,
            prev_hash=prev_hash,
            hash=digest,
        )
    )
    await session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=digest))
    await session.flush()


@dataclass(frozen=True)
class Verdict:
    """The result of walking the chain: how many entries, and the first problem."""

    count: int
    problem: str | None

    @property
    def intact(self) -> bool:
        return self.problem is None


async def verify(session: AsyncSession, *, batch: int = 1000) -> Verdict:
    """Walk the whole chain in order and report the first entry that breaks it."""
    expected_seq, prev_hash, count = 1, GENESIS, 0
    last_seq = 0
    while True:
        rows = (
            await session.execute(
                select(AuditEntry)
                .where(AuditEntry.seq > last_seq)
                .order_by(AuditEntry.seq)
                .limit(batch)
            )
        ).scalars()
        page = list(rows)
        if not page:
            break
        for entry in page:
            if entry.seq != expected_seq:
                return Verdict(count, f"entry {entry.seq}: sequence gap after {expected_seq - 1}")
            if entry.prev_hash != prev_hash:
                return Verdict(
                    count, f"entry {entry.seq}: prev_hash does not match entry {entry.seq - 1}"
                )
            digest = entry_hash(
                seq=entry.seq,
                at=entry.at,
                actor=entry.actor,
                action=entry.action,
                subject=entry.subject,
                outcome=entry.outcome,
                data=entry.data,
                prev_hash=entry.prev_hash,
            )
            if digest != entry.hash:
                return Verdict(count, f"entry {entry.seq}: hash does not match its contents")
            prev_hash, expected_seq, count = entry.hash, expected_seq + 1, count + 1
            last_seq = entry.seq
        session.expunge_all()
    head = (await session.execute(select(AuditHead).where(AuditHead.id == 1))).scalar_one()
    # The head remembers the newest entry, so removing entries from the end shows too.
    if head.seq != count or head.hash != prev_hash:
        return Verdict(count, f"entry {head.seq}: missing, the chain ends at {count}")
    return Verdict(count, None)


async def _verify_database(settings: Settings) -> Verdict:
    from common.db import make_engine, make_sessionmaker

    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            return await verify(session)
    finally:
        await engine.dispose()


def verify_command(args: argparse.Namespace, settings: Settings) -> int:
    """``datadesk audit verify``: exit 0 with a count when intact, 1 at the first break."""
    verdict = asyncio.run(_verify_database(settings))
    if verdict.problem is not None:
        print(f"audit: {verdict.problem}")
        return 1
    print(f"audit: {verdict.count} entries, chain intact")
    return 0
