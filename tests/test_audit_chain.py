"""The audit log's hash chain: appends, verification, and tampering found."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import timedelta

from sqlalchemy import delete, select, text, update

from backend import audit
from backend.models.audit import AuditEntry
from backend.services import Services
from backend.settings import Settings
from common.clock import FakeClock


async def _write(services: Services, clock: FakeClock, count: int) -> None:
    for i in range(count):
        async with services.sessions() as session:
            await audit.record(
                session,
                action="request_submitted",
                actor="customer:C-1",
                subject=f"DD-00000{i % 10}",
                outcome="queued",
                data={"kind": "erasure", "attempt": i, "review": False, "note": None},
                at=clock.now(),
            )
            await session.commit()
        clock.advance(seconds=1.5)


def _verify_cli(settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {"DATADESK_DATABASE_URL": settings.database_url, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "datadesk.cli", "audit", "verify"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


async def test_an_untouched_chain_verifies_with_its_count(
    services: Services, clock: FakeClock, settings: Settings
) -> None:
    await _write(services, clock, 5)
    result = await asyncio.to_thread(_verify_cli, settings)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "audit: 5 entries, chain intact"


async def test_an_edited_entry_is_named_by_the_command(
    services: Services, clock: FakeClock, settings: Settings
) -> None:
    await _write(services, clock, 5)
    async with services.sessions() as session:
        await session.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(actor="agent:x"))
        await session.commit()
    result = await asyncio.to_thread(_verify_cli, settings)
    assert result.returncode == 1
    assert result.stdout.strip() == "audit: entry 3: hash does not match its contents"


async def test_a_removed_entry_shows_as_a_sequence_gap(
    services: Services, clock: FakeClock
) -> None:
    await _write(services, clock, 5)
    async with services.sessions() as session:
        await session.execute(delete(AuditEntry).where(AuditEntry.seq == 2))
        await session.commit()
        verdict = await audit.verify(session)
    assert verdict.problem == "entry 3: sequence gap after 1"


async def test_an_entry_removed_from_the_end_is_noticed(
    services: Services, clock: FakeClock
) -> None:
    await _write(services, clock, 4)
    async with services.sessions() as session:
        await session.execute(delete(AuditEntry).where(AuditEntry.seq == 4))
        await session.commit()
        verdict = await audit.verify(session)
    assert verdict.problem == "entry 4: missing, the chain ends at 3"


async def test_an_inserted_entry_breaks_the_links_after_it(
    services: Services, clock: FakeClock
) -> None:
    await _write(services, clock, 3)
    async with services.sessions() as session:
        # Rewrite entry 2 consistently with itself, as a forger would: its hash
        # matches its contents, but entry 3 still points at the original.
        row = (await session.execute(select(AuditEntry).where(AuditEntry.seq == 2))).scalar_one()
        forged = audit.entry_hash(
            seq=2,
            at=row.at + timedelta(seconds=1),
            actor="agent:forger",
            action=row.action,
            subject=row.subject,
            outcome=row.outcome,
            data=row.data,
            prev_hash=row.prev_hash,
        )
        await session.execute(
            update(AuditEntry)
            .where(AuditEntry.seq == 2)
            .values(actor="agent:forger", at=row.at + timedelta(seconds=1), hash=forged)
        )
        await session.commit()
        verdict = await audit.verify(session)
    assert verdict.problem == "entry 3: prev_hash does not match entry 2"


async def test_concurrent_appends_from_many_sessions_keep_one_chain(
    services: Services, clock: FakeClock
) -> None:
    async def one(i: int) -> None:
        async with services.sessions() as session:
            await audit.record(
                session, action="probe", actor="system", data={"i": i}, at=clock.now()
            )
            await session.commit()

    await asyncio.gather(*(one(i) for i in range(20)))
    async with services.sessions() as session:
        verdict = await audit.verify(session)
        seqs = (await session.execute(text("SELECT seq FROM audit_entries ORDER BY seq"))).all()
    assert verdict.intact, verdict.problem
    assert [s for (s,) in seqs] == list(range(1, 21))
