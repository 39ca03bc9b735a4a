"""Workers carry out queued requests once each, retry with back-off, and fail into an escalation."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from conftest import LiveBackend
from fakes.ledger import FlakyCrm, add_customers, customer, proof_token, session_token, submit
from sqlalchemy import func, select
from sqlalchemy import text as sa_text

from backend import audit
from backend.ledger.claims import LEASE_SECONDS, claim
from backend.ledger.outcomes import backoff
from backend.ledger.worker import run_one, run_workers
from backend.models.audit import AuditEntry
from backend.models.console import Escalation
from backend.models.ledger import Notification, Request
from common.clock import FakeClock

ADDRESS = {"line1": "Elizabetes iela 2", "city": "Rīga", "postcode": "LV-1010", "country": "LV"}


def crm_of(backend: LiveBackend, failures: int = 0) -> FlakyCrm:
    return FlakyCrm(backend.services.sessions, backend.services.clock, failures=failures)


async def _request(backend: LiveBackend) -> Request:
    async with backend.services.sessions() as session:
        return (await session.execute(select(Request))).scalar_one()


async def test_a_queued_address_change_is_applied_and_the_customer_told(
    backend: LiveBackend,
) -> None:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    _, body = await submit(
        backend, token, "update_contact", {"field": "address", "address": ADDRESS}
    )
    crm = crm_of(backend)
    assert await run_one(backend.services, crm, "w1") is True
    assert await run_one(backend.services, crm, "w1") is False
    record = await crm.get("C-1")
    assert record is not None
    assert record.address is not None
    assert record.address.line1 == "Elizabetes iela 2"
    row = await _request(backend)
    assert (row.state, row.attempts, row.lease_owner) == ("done", 1, None)
    assert row.payload == "{}"  # the new address is in the CRM, not kept in the ledger
    await audit.seal_pending(backend.services)
    async with backend.services.sessions() as session:
        told = (await session.execute(select(Notification))).scalar_one()
        assert (await audit.verify(session, backend.services.settings)).intact
    assert (told.reference, told.outcome, told.locale) == (body["reference"], "done", "lv")


async def test_a_new_phone_proven_by_code_becomes_the_primary_phone(backend: LiveBackend) -> None:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    proof = await proof_token(backend.services, "C-1", "phone", "+37129999999")
    status, _ = await submit(
        backend, token, "update_contact", {"field": "phone", "proof_token": proof}
    )
    assert status == 201
    crm = crm_of(backend)
    await run_one(backend.services, crm, "w1")
    record = await crm.get("C-1")
    assert record is not None
    assert ("+37129999999", True) in record.phones


async def test_a_failing_crm_is_retried_after_a_growing_delay(
    backend: LiveBackend, clock: FakeClock
) -> None:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    await submit(backend, token, "update_contact", {"field": "address", "address": ADDRESS})
    crm = crm_of(backend, failures=2)
    await run_one(backend.services, crm, "w1")
    first = await _request(backend)
    assert first.state == "queued"
    assert first.next_run_at is not None
    delay1 = first.next_run_at - clock.now()
    assert await run_one(backend.services, crm, "w1") is False  # not due yet
    clock.set(first.next_run_at)
    await run_one(backend.services, crm, "w1")
    second = await _request(backend)
    assert second.next_run_at is not None
    delay2 = second.next_run_at - clock.now()
    assert timedelta(seconds=2.5) <= delay1 <= timedelta(seconds=5)
    assert timedelta(seconds=5) <= delay2 <= timedelta(seconds=10)
    clock.set(second.next_run_at)
    await run_one(backend.services, crm, "w1")
    assert (await _request(backend)).state == "done"
    assert crm.calls == 3


async def test_after_the_last_attempt_the_request_fails_and_an_agent_is_called(
    backend: LiveBackend, clock: FakeClock
) -> None:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    _, body = await submit(
        backend, token, "update_contact", {"field": "address", "address": ADDRESS}
    )
    crm = crm_of(backend, failures=100)
    for _ in range(5):
        await run_one(backend.services, crm, "w1")
        clock.advance(hours=2)
    row = await _request(backend)
    assert (row.state, row.reason, row.attempts) == ("failed", "attempts_exhausted", 5)
    async with backend.services.sessions() as session:
        told = (await session.execute(select(Notification))).scalar_one()
        escalation = (await session.execute(select(Escalation))).scalar_one()
    assert (told.reference, told.outcome) == (body["reference"], "failed")
    assert (escalation.chat, escalation.reason) == ("tg:42", "failed_request")


async def test_a_request_whose_worker_vanished_is_taken_up_when_the_lease_runs_out(
    backend: LiveBackend, clock: FakeClock
) -> None:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    await submit(backend, token, "update_contact", {"field": "address", "address": ADDRESS})
    assert len(await claim(backend.services, "dead-worker")) == 1
    crm = crm_of(backend)
    assert await run_one(backend.services, crm, "w2") is False
    clock.advance(seconds=LEASE_SECONDS + 1)
    assert await run_one(backend.services, crm, "w2") is True
    row = await _request(backend)
    assert (row.state, row.attempts) == ("done", 2)


async def test_four_workers_run_each_of_many_requests_exactly_once(backend: LiveBackend) -> None:
    refs = [f"C-{i}" for i in range(12)]
    await add_customers(
        backend.services, *(customer(r, phone=f"+3712000{i:04d}") for i, r in enumerate(refs))
    )
    for ref in refs:
        token = await session_token(backend.services, ref)
        await submit(backend, token, "update_contact", {"field": "address", "address": ADDRESS})
    crm = crm_of(backend)
    ran = await run_workers(
        backend.services, crm, concurrency=4, stop=asyncio.Event(), once=True, purge=False
    )
    assert ran == 12
    async with backend.services.sessions() as session:
        states = (await session.execute(select(Request.state))).scalars().all()
        claims = await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "request_claimed")
        )
    assert set(states) == {"done"}
    assert claims == 12


def test_back_off_doubles_and_stays_under_its_ceiling() -> None:
    delays = [backoff(n).total_seconds() for n in range(1, 15)]
    assert all(d <= 3600 for d in delays)
    assert 2.5 <= delays[0] <= 5
    assert 40 <= delays[4] <= 80


async def test_a_request_whose_workers_keep_dying_fails_after_its_last_attempt(
    backend: LiveBackend, clock: FakeClock
) -> None:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    _, body = await submit(
        backend, token, "update_contact", {"field": "address", "address": ADDRESS}
    )
    for attempt in range(1, 6):
        [held] = await claim(backend.services, f"doomed-{attempt}")
        assert held.attempts == attempt
        clock.advance(seconds=LEASE_SECONDS + 1)
    assert await claim(backend.services, "w6") == []
    row = await _request(backend)
    assert (row.state, row.reason, row.attempts) == ("failed", "attempts_exhausted", 5)
    await audit.seal_pending(backend.services)
    async with backend.services.sessions() as session:
        told = (await session.execute(select(Notification))).scalar_one()
        escalation = (await session.execute(select(Escalation))).scalar_one()
        assert (await audit.verify(session, backend.services.settings)).intact
    assert (told.reference, told.outcome) == (body["reference"], "failed")
    assert escalation.reason == "failed_request"


async def test_a_request_whose_payload_was_altered_fails_alone_and_the_queue_goes_on(
    backend: LiveBackend,
) -> None:
    await add_customers(backend.services, customer("C-1"), customer("C-2"), customer("C-3"))
    for ref in ("C-1", "C-2", "C-3"):
        token = await session_token(backend.services, ref)
        status, _ = await submit(
            backend, token, "update_contact", {"field": "address", "address": ADDRESS}
        )
        assert status == 201
    async with backend.services.sessions() as session, session.begin():
        # Someone with database access copies C-2's sealed payload onto C-1's request.
        first, second = (
            await session.execute(sa_text("SELECT id, payload FROM requests ORDER BY id LIMIT 2"))
        ).all()
        await session.execute(
            sa_text("UPDATE requests SET payload = :p WHERE id = :i"),
            {"p": second.payload, "i": first.id},
        )
    crm = crm_of(backend)
    while await run_one(backend.services, crm, "w1"):
        pass
    async with backend.services.sessions() as session:
        rows = (await session.execute(select(Request).order_by(Request.id))).scalars().all()
        escalation = (await session.execute(select(Escalation))).scalar_one()
    assert [(r.customer_ref, r.state, r.reason) for r in rows] == [
        ("C-1", "failed", "stored_data_unreadable"),
        ("C-2", "done", None),
        ("C-3", "done", None),
    ]
    assert (escalation.chat, escalation.reason) == ("tg:42", "failed_request")
    assert crm.calls == 2
