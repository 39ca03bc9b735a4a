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
    backend: LiveBackend, now: str, *, die_after_effect: bool, concurrency: int = 1
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m backend.worker --once`` against the test's database at a fixed time.

    ``die_after_effect`` runs ``tests/fakes/dying_worker.py`` instead, which
    exits abruptly right after its first CRM effect.
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
    if die_after_effect:
        command = ["tests.fakes.dying_worker", "--now", now]
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


async def _kill_then_recover(backend: LiveBackend, clock: FakeClock, reference: str) -> None:
    died = await asyncio.to_thread(_worker, backend, clock.now().isoformat(), die_after_effect=True)
    assert died.returncode == DIED, died.stderr
    async with backend.services.sessions() as session:
        row = (
            await session.execute(select(Request).where(Request.reference == reference))
        ).scalar_one()
        assert row.state == "running"
        applied = await session.scalar(select(func.count()).select_from(AppliedChange))
        assert applied == 1
    later = (clock.now() + timedelta(seconds=LEASE_SECONDS + 1)).isoformat()
    second = await asyncio.to_thread(_worker, backend, later, die_after_effect=False)
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
        assert (await audit.verify(session)).intact
    assert (applied, finished, told) == (1, 1, 1)
    assert row.attempts == 2
    return row.state, row.attempts


async def test_an_address_change_survives_its_worker_dying_after_the_crm_write(
    backend: LiveBackend, clock: FakeClock
) -> None:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    address = {"line1": "Elizabetes iela 2", "city": "Rīga", "postcode": "LV-1010", "country": "LV"}
    _, body = await submit(
        backend, token, "update_contact", {"field": "address", "address": address}
    )
    await _kill_then_recover(backend, clock, body["reference"])
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
        asyncio.to_thread(_worker, backend, now, die_after_effect=False, concurrency=2),
        asyncio.to_thread(_worker, backend, now, die_after_effect=False, concurrency=2),
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
        assert (await audit.verify(session)).intact
    assert set(states) == {"done"}
    assert (applied, claims) == (16, 16)
