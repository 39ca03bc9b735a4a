"""A worker process killed mid-request: another takes the request up, and it happens once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from conftest import SECRET_KEY, LiveBackend
from fakes.dying_worker import DIED
from fakes.ledger import add_customers, customer, preview, session_token, submit
from sqlalchemy import func, select

from backend import audit
from backend.crm.builtin import BuiltinCrm
from backend.ledger.claims import LEASE_SECONDS
from backend.models.audit import AuditEntry
from backend.models.crm import AppliedChange
from backend.models.ledger import Notification, Request
from common.clock import FakeClock

ROOT = Path(__file__).resolve().parent.parent


def _worker(
    backend: LiveBackend, now: str, *, die_at: str | None = None, concurrency: int = 1
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m backend.worker --once`` against the test's database at a fixed time.

    ``die_at`` (``effect`` or ``outcome``) runs ``tests/fakes/dying_worker.py``
    instead, which exits abruptly at that point of its first request.
    """
    settings = backend.services.settings
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATADESK_DATABASE_URL": settings.database_url,
        "DATADESK_DATA_DIR": str(settings.data_dir),
        "DATADESK_SECRET_KEY": SECRET_KEY,
        "DATADESK_SERVICE_TOKEN": "unused",
        "DATADESK_JURISDICTION": settings.jurisdiction,
    }
    if die_at is not None:
        command = ["tests.fakes.dying_worker", "--now", now, "--die-at", die_at]
    else:
        command = ["backend.worker", "--once", "--now", now, "--concurrency", str(concurrency)]
    return subprocess.run(  # noqa: S603  (our own interpreter and module, fixed arguments)
        [sys.executable, "-m", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _kill_then_recover(
    backend: LiveBackend,
    clock: FakeClock,
    reference: str,
    die_at: str = "effect",
    *,
    applied: int = 1,
) -> None:
    """Kill a worker at ``die_at``, with ``applied`` CRM changes committed by then; run another.

    A change on the built-in CRM commits with its outcome (``backend/ledger/one_commit.py``):
    a worker killed before that commit leaves none (``applied=0``).
    """
    died = await asyncio.to_thread(_worker, backend, clock.now().isoformat(), die_at=die_at)
    assert died.returncode == DIED, died.stderr
    async with backend.services.sessions() as session:
        row = (
            await session.execute(select(Request).where(Request.reference == reference))
        ).scalar_one()
        assert row.state == "running"
        assert await session.scalar(select(func.count()).select_from(AppliedChange)) == applied
        # Nothing of the outcome is half-written: no notice, no audit entry.
        assert await session.scalar(select(func.count()).select_from(Notification)) == 0
        finished = await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action.in_(["request_done", "request_partly_done"]))
        )
        assert finished == 0
    later = (clock.now() + timedelta(seconds=LEASE_SECONDS + 1)).isoformat()
    second = await asyncio.to_thread(_worker, backend, later)
    assert second.returncode == 0, second.stderr


async def _once_each(backend: LiveBackend, reference: str) -> tuple[str, int]:
    async with backend.services.sessions() as session:
        row = (
            await session.execute(select(Request).where(Request.reference == reference))
        ).scalar_one()
        applied = await session.scalar(
            select(func.count())
            .select_from(AppliedChange)
            .where(AppliedChange.idempotency_key == reference)
        )
        finished = await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action.in_(["request_done", "request_partly_done"]))
        )
        told = await session.scalar(select(func.count()).select_from(Notification))
        assert (await audit.verify(session, backend.services.settings)).intact
    assert (applied, finished, told) == (1, 1, 1)
    assert row.attempts == 2
    return row.state, row.attempts


async def test_an_address_change_whose_worker_dies_after_the_crm_write_is_made_once_by_the_next(
    backend: LiveBackend, clock: FakeClock
) -> None:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    address = {"line1": "Elizabetes iela 2", "city": "Rīga", "postcode": "LV-1010", "country": "LV"}
    _, body = await submit(
        backend, token, "update_contact", {"field": "address", "address": address}
    )
    await _kill_then_recover(backend, clock, body["reference"], applied=0)
    state, _ = await _once_each(backend, body["reference"])
    assert state == "done"
    record = await BuiltinCrm(backend.services.sessions, clock).get("C-1")
    assert record is not None
    assert record.address is not None
    assert record.address.line1 == "Elizabetes iela 2"


async def test_an_erasure_survives_its_worker_dying_and_is_carried_out_once(
    backend: LiveBackend, clock: FakeClock
) -> None:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    _, shown = await preview(backend, token, ["all"])
    _, body = await submit(backend, token, "erasure", {"preview_id": shown["preview_id"]})
    await _kill_then_recover(backend, clock, body["reference"])
    state, _ = await _once_each(backend, body["reference"])
    assert state == "partly_done"
    record = await BuiltinCrm(backend.services.sessions, clock).get("C-1")
    assert record is not None
    assert record.erased_categories == {"marketing", "chat_history"}


async def test_two_worker_processes_share_one_queue_and_run_each_request_once(
    backend: LiveBackend, clock: FakeClock
) -> None:
    refs = [f"C-{i}" for i in range(16)]
    await add_customers(
        backend.services, *(customer(r, phone=f"+3712100{i:04d}") for i, r in enumerate(refs))
    )
    address = {"line1": "Elizabetes iela 2", "city": "Rīga", "postcode": "LV-1010", "country": "LV"}
    for ref in refs:
        token = await session_token(backend.services, ref)
        await submit(backend, token, "update_contact", {"field": "address", "address": address})
    now = clock.now().isoformat()
    first, second = await asyncio.gather(
        asyncio.to_thread(_worker, backend, now, concurrency=2),
        asyncio.to_thread(_worker, backend, now, concurrency=2),
    )
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    async with backend.services.sessions() as session:
        states = (await session.execute(select(Request.state))).scalars().all()
        applied = await session.scalar(select(func.count()).select_from(AppliedChange))
        claims = await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "request_claimed")
        )
        assert (await audit.verify(session, backend.services.settings)).intact
    assert set(states) == {"done"}
    assert (applied, claims) == (16, 16)


async def test_a_worker_killed_while_recording_an_outcome_leaves_none_of_it_and_it_is_told_once(
    backend: LiveBackend, clock: FakeClock
) -> None:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    address = {"line1": "Elizabetes iela 2", "city": "Rīga", "postcode": "LV-1010", "country": "LV"}
    _, body = await submit(
        backend, token, "update_contact", {"field": "address", "address": address}
    )
    await _kill_then_recover(backend, clock, body["reference"], die_at="outcome", applied=0)
    state, _ = await _once_each(backend, body["reference"])
    assert state == "done"


async def test_worker_processes_claim_in_batches_without_overlap_and_keep_each_customers_order(
    backend: LiveBackend, clock: FakeClock
) -> None:
    refs = [f"C-{i}" for i in range(6)]
    await add_customers(
        backend.services, *(customer(r, phone=f"+3712200{i:04d}") for i, r in enumerate(refs))
    )
    references: dict[str, list[str]] = {ref: [] for ref in refs}
    for street in ("Pirmā iela 1", "Otrā iela 2", "Trešā iela 3"):
        for ref in refs:
            token = await session_token(backend.services, ref)
            address = {"line1": street, "city": "Rīga", "postcode": "LV-1010", "country": "LV"}
            _, body = await submit(
                backend, token, "update_contact", {"field": "address", "address": address}
            )
            references[ref].append(body["reference"])
    now = clock.now().isoformat()
    runs = await asyncio.gather(
        *(asyncio.to_thread(_worker, backend, now, concurrency=3) for _ in range(2))
    )
    assert [run.returncode for run in runs] == [0, 0], "".join(run.stderr for run in runs)
    crm = BuiltinCrm(backend.services.sessions, clock)
    async with backend.services.sessions() as session:
        states = (await session.execute(select(Request.state))).scalars().all()
        applied = await session.scalar(select(func.count()).select_from(AppliedChange))
        log = (
            await session.execute(
                select(AuditEntry.subject, AuditEntry.action).order_by(AuditEntry.seq)
            )
        ).all()
    assert set(states) == {"done"}
    assert applied == 18
    claims = [subject for subject, action in log if action == "request_claimed"]
    assert sorted(claims) == sorted(r for rs in references.values() for r in rs)
    position = {(subject, action): i for i, (subject, action) in enumerate(log)}
    for ref, (first, second, third) in references.items():
        # Each of a customer's requests was claimed only after the one before it was done.
        assert position[(first, "request_done")] < position[(second, "request_claimed")]
        assert position[(second, "request_done")] < position[(third, "request_claimed")]
        record = await crm.get(ref)
        assert record is not None
        assert record.address is not None
        assert record.address.line1 == "Trešā iela 3"


async def test_a_worker_killed_while_sealing_leaves_every_entry_to_be_sealed_once_by_the_next(
    backend: LiveBackend, clock: FakeClock
) -> None:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    address = {"line1": "Elizabetes iela 2", "city": "Rīga", "postcode": "LV-1010", "country": "LV"}
    _, body = await submit(
        backend, token, "update_contact", {"field": "address", "address": address}
    )
    died = await asyncio.to_thread(_worker, backend, clock.now().isoformat(), die_at="seal")
    assert died.returncode == DIED, died.stderr
    async with backend.services.sessions() as session:
        sealed = await session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.seq.is_not(None))
        )
        waiting = await session.scalar(select(func.count()).select_from(AuditEntry))
    # The dead sealer's transaction left nothing half-sealed.
    assert sealed == 0
    assert waiting
    later = (clock.now() + timedelta(seconds=LEASE_SECONDS + 1)).isoformat()
    second = await asyncio.to_thread(_worker, backend, later)
    assert second.returncode == 0, second.stderr
    async with backend.services.sessions() as session:
        seqs = sorted(s for s in (await session.execute(select(AuditEntry.seq))).scalars() if s)
        verdict = await audit.verify(session, backend.services.settings)
        row = (
            await session.execute(select(Request).where(Request.reference == body["reference"]))
        ).scalar_one()
    assert verdict.intact, verdict.problem
    # Every entry, the dead worker's and the new one's, sealed once, in one unbroken sequence.
    assert seqs == list(range(1, len(seqs) + 1))
    assert (verdict.count, verdict.unsealed) == (len(seqs), 0)
    assert row.state == "done"


async def test_a_worker_killed_in_a_batch_leaves_none_of_it_and_the_next_makes_each_change_once(
    backend: LiveBackend, clock: FakeClock
) -> None:
    refs = ["C-1", "C-2", "C-3"]
    await add_customers(
        backend.services, *(customer(r, phone=f"+3712400{i:04d}") for i, r in enumerate(refs))
    )
    address = {"line1": "Elizabetes iela 2", "city": "Rīga", "postcode": "LV-1010", "country": "LV"}
    for ref in refs:
        token = await session_token(backend.services, ref)
        await submit(backend, token, "update_contact", {"field": "address", "address": address})
    # One slot takes all three in one transaction; it dies after the first one's CRM change.
    died = await asyncio.to_thread(_worker, backend, clock.now().isoformat(), die_at="effect")
    assert died.returncode == DIED, died.stderr
    async with backend.services.sessions() as session:
        states = (await session.execute(select(Request.state))).scalars().all()
        assert sorted(states) == ["running"] * 3
        assert await session.scalar(select(func.count()).select_from(AppliedChange)) == 0
        assert await session.scalar(select(func.count()).select_from(Notification)) == 0
    later = (clock.now() + timedelta(seconds=LEASE_SECONDS + 1)).isoformat()
    second = await asyncio.to_thread(_worker, backend, later)
    assert second.returncode == 0, second.stderr
    async with backend.services.sessions() as session:
        states = (await session.execute(select(Request.state))).scalars().all()
        applied = await session.scalar(select(func.count()).select_from(AppliedChange))
        told = await session.scalar(select(func.count()).select_from(Notification))
        done = await session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "request_done")
        )
        assert (await audit.verify(session, backend.services.settings)).intact
    assert sorted(states) == ["done"] * 3
    assert (applied, told, done) == (3, 3, 3)
