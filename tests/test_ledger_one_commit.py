"""On the built-in CRM a request's change, its undo record and its outcome commit together, or none."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from conftest import LiveBackend
from fakes.ledger import add_customers, customer, proof_token, session_token, submit
from sqlalchemy import delete, event, func, select

from backend import audit
from backend.crm.builtin import BuiltinCrm
from backend.crm.connector import Address
from backend.crm.http import HttpCrm
from backend.errors import ConnectorError
from backend.ledger import one_commit
from backend.ledger.claims import Claimed, claim
from backend.ledger.worker import run_one, run_workers
from backend.models.crm import AppliedChange, Customer, Phone
from backend.models.ledger import Notification, Request
from backend.models.undo import ContactUndo
from common.clock import FakeClock

ADDRESS = {"line1": "Elizabetes iela 2", "city": "Rīga", "postcode": "LV-1010", "country": "LV"}


async def _counts(backend: LiveBackend) -> tuple[int, int, int]:
    """CRM changes applied, undo records kept, notifications written."""
    async with backend.services.sessions() as session:
        return (
            await session.scalar(select(func.count()).select_from(AppliedChange)) or 0,
            await session.scalar(select(func.count()).select_from(ContactUndo)) or 0,
            await session.scalar(select(func.count()).select_from(Notification)) or 0,
        )


async def _request(backend: LiveBackend) -> Request:
    async with backend.services.sessions() as session:
        return (await session.execute(select(Request))).scalar_one()


async def test_a_change_whose_outcome_is_not_recorded_is_not_kept_and_is_made_once_later(
    backend: LiveBackend, clock: FakeClock
) -> None:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    await submit(backend, token, "update_contact", {"field": "address", "address": ADDRESS})
    crm = BuiltinCrm(backend.services.sessions, clock)

    def fail(job: Claimed) -> None:
        # Between the CRM change and the outcome, as a database error there would.
        raise RuntimeError("the outcome could not be written")

    await run_one(backend.services, crm, "w1", after_effect=fail)
    retried = await _request(backend)
    assert (retried.state, retried.attempts) == ("queued", 1)
    assert await _counts(backend) == (0, 0, 0)
    record = await crm.get("C-1")
    assert record is not None
    assert record.address is not None
    assert record.address.line1 == "Brīvības iela 1"  # as before

    assert retried.next_run_at is not None
    clock.set(retried.next_run_at)
    assert await run_one(backend.services, crm, "w1") is True
    assert (await _request(backend)).state == "done"
    assert await _counts(backend) == (1, 1, 1)
    record = await crm.get("C-1")
    assert record is not None
    assert record.address is not None
    assert record.address.line1 == "Elizabetes iela 2"
    await audit.seal_pending(backend.services)
    async with backend.services.sessions() as session:
        assert (await audit.verify(session, backend.services.settings)).intact


async def test_a_change_for_a_customer_the_crm_no_longer_has_is_rejected_and_the_customer_told(
    backend: LiveBackend, clock: FakeClock
) -> None:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    await submit(backend, token, "update_contact", {"field": "address", "address": ADDRESS})
    async with backend.services.sessions() as session, session.begin():
        gone = select(Customer.id).where(Customer.ref == "C-1").scalar_subquery()
        await session.execute(delete(Phone).where(Phone.customer_id == gone))
        await session.execute(delete(Customer).where(Customer.ref == "C-1"))
    crm = BuiltinCrm(backend.services.sessions, clock)

    assert await run_one(backend.services, crm, "w1") is True
    row = await _request(backend)
    assert (row.state, row.reason) == ("rejected", "customer_not_found")
    assert await _counts(backend) == (0, 0, 1)


async def test_only_the_built_in_crm_s_contact_and_marketing_changes_commit_with_their_outcome(
    backend: LiveBackend, clock: FakeClock
) -> None:
    crm = BuiltinCrm(backend.services.sessions, clock)
    job = Claimed(
        id=1,
        reference="R-1",
        customer_ref="C-1",
        chat="chat",
        locale="en",
        kind="update_contact",
        payload={},
        attempts=1,
        max_attempts=5,
    )
    assert one_commit.joins(crm, job)
    assert one_commit.joins(crm, Claimed(**{**vars(job), "kind": "marketing_opt_out"}))
    assert not one_commit.joins(crm, Claimed(**{**vars(job), "kind": "erasure"}))
    assert not one_commit.joins(crm, Claimed(**{**vars(job), "kind": "access"}))
    # The bank's CRM over HTTP cannot take part in the transaction: its change, then the outcome.
    assert not one_commit.joins(HttpCrm("http://127.0.0.1:9/crm", None), job)


class FailsForOne(BuiltinCrm):
    """The built-in CRM, refusing every change of one customer."""

    def __init__(self, *args: object, refusing: str) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.refusing = refusing

    async def update_address(self, ref: str, address: Address, *, idempotency_key: str) -> None:
        if ref == self.refusing:
            raise ConnectorError("CRM refused")
        await super().update_address(ref, address, idempotency_key=idempotency_key)


async def test_a_request_that_fails_in_a_batch_is_retried_alone_and_the_others_are_done(
    backend: LiveBackend, clock: FakeClock
) -> None:
    refs = ["C-1", "C-2", "C-3"]
    await add_customers(
        backend.services, *(customer(r, phone=f"+3712300{i:04d}") for i, r in enumerate(refs))
    )
    for ref in refs:
        token = await session_token(backend.services, ref)
        await submit(backend, token, "update_contact", {"field": "address", "address": ADDRESS})
    crm = FailsForOne(backend.services.sessions, clock, refusing="C-2")

    done = await run_workers(
        backend.services, crm, concurrency=1, stop=asyncio.Event(), once=True, purge=False
    )
    assert done == 3
    async with backend.services.sessions() as session:
        rows = await session.execute(select(Request.customer_ref, Request.state))
        states = {ref: state for ref, state in rows.tuples()}
        applied = set(await session.scalars(select(AppliedChange.customer_ref)))
        undone = set(await session.scalars(select(ContactUndo.customer_ref)))
    assert states == {"C-1": "done", "C-2": "queued", "C-3": "done"}
    assert applied == undone == {"C-1", "C-3"}


class OneByOne(BuiltinCrm):
    """The built-in CRM as a subclass: its batches go one request at a time."""


async def _mixed_batch(backend: LiveBackend, clock: FakeClock, crm: BuiltinCrm) -> dict[str, Any]:
    """Contact changes of every field and one customer gone, drained by one worker; what it left."""
    refs = ["C-1", "C-2", "C-3", "C-4"]
    await add_customers(
        backend.services, *(customer(r, phone=f"+3712300{i:04d}") for i, r in enumerate(refs))
    )
    payloads = {
        "C-1": {"field": "address", "address": ADDRESS},
        "C-2": {
            "field": "phone",
            "proof_token": await proof_token(backend.services, "C-2", "phone", "+37129990002"),
        },
        "C-3": {
            "field": "email",
            "proof_token": await proof_token(backend.services, "C-3", "email", "new@example.lv"),
        },
        "C-4": {"field": "address", "address": ADDRESS},
    }
    for ref, payload in payloads.items():
        token = await session_token(backend.services, ref, chat=f"tg:{ref}")
        status, _ = await submit(backend, token, "update_contact", payload)
        assert status == 201
    async with backend.services.sessions() as session, session.begin():
        gone = select(Customer.id).where(Customer.ref == "C-4").scalar_subquery()
        await session.execute(delete(Phone).where(Phone.customer_id == gone))
        await session.execute(delete(Customer).where(Customer.ref == "C-4"))

    done = await run_workers(
        backend.services, crm, concurrency=1, stop=asyncio.Event(), once=True, purge=False
    )
    assert done == 4
    await audit.seal_pending(backend.services)
    async with backend.services.sessions() as session:
        assert (await audit.verify(session, backend.services.settings)).intact
        states = dict(
            (await session.execute(select(Request.customer_ref, Request.state))).tuples().all()
        )
        undos = {
            row.customer_ref: (row.field, row.previous, row.notice_sent_at is not None)
            for row in await session.scalars(select(ContactUndo))
        }
        told = sorted(
            (n.chat, n.outcome, n.reason) for n in await session.scalars(select(Notification))
        )
    records = {ref: await crm.export(ref) for ref in refs}
    return {"states": states, "undos": undos, "told": told, "records": records}


async def test_a_batch_of_contact_changes_ends_as_it_does_one_request_at_a_time(
    backend: LiveBackend, clock: FakeClock
) -> None:
    left = await _mixed_batch(backend, clock, BuiltinCrm(backend.services.sessions, clock))
    assert left["states"] == {"C-1": "done", "C-2": "done", "C-3": "done", "C-4": "rejected"}
    # Each old contact was sent its "Was this you?" notice, with what to restore.
    assert left["undos"]["C-2"] == ("phone", "+37123000001", True)
    assert left["undos"]["C-3"] == ("email", "c-3@example.lv", True)
    assert left["undos"]["C-1"][0] == "address"
    assert json.loads(left["undos"]["C-1"][1])["line1"] == "Brīvības iela 1"
    assert left["told"] == [
        ("tg:C-1", "done", None),
        ("tg:C-2", "done", None),
        ("tg:C-3", "done", None),
        ("tg:C-4", "rejected", "customer_not_found"),
    ]
    assert left["records"]["C-2"]["phones"] == [{"number": "+37129990002", "primary": True}]
    assert left["records"]["C-3"]["emails"] == [{"address": "new@example.lv", "primary": True}]
    assert left["records"]["C-1"]["address"]["line1"] == "Elizabetes iela 2"


async def test_one_request_at_a_time_leaves_the_same(
    backend: LiveBackend, clock: FakeClock
) -> None:
    left = await _mixed_batch(backend, clock, OneByOne(backend.services.sessions, clock))
    assert left["states"] == {"C-1": "done", "C-2": "done", "C-3": "done", "C-4": "rejected"}
    assert left["undos"]["C-2"] == ("phone", "+37123000001", True)
    assert left["undos"]["C-3"] == ("email", "c-3@example.lv", True)
    assert left["records"]["C-2"]["phones"] == [{"number": "+37129990002", "primary": True}]
    assert left["records"]["C-3"]["emails"] == [{"address": "new@example.lv", "primary": True}]
    assert left["records"]["C-1"]["address"]["line1"] == "Elizabetes iela 2"


async def _statements_for(backend: LiveBackend, clock: FakeClock, first: int, count: int) -> int:
    """Statements one worker sends to carry out ``count`` address changes in one batch."""
    refs = [f"C-{first + i}" for i in range(count)]
    await add_customers(
        backend.services,
        *(customer(r, phone=f"+3712400{first + i:04d}") for i, r in enumerate(refs)),
    )
    for ref in refs:
        token = await session_token(backend.services, ref, chat=f"tg:{ref}")
        await submit(backend, token, "update_contact", {"field": "address", "address": ADDRESS})
    crm = BuiltinCrm(backend.services.sessions, clock)
    jobs = await claim(backend.services, "w1", count)
    assert len(jobs) == count
    sent: list[str] = []

    def count_it(*args: object) -> None:
        sent.append(str(args[2]))

    engine = backend.services.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count_it)
    try:
        results = await one_commit.carry_out(backend.services, crm, jobs, "w1")
    finally:
        event.remove(engine, "before_cursor_execute", count_it)
    assert [r.outcome.state for r in results if r.outcome] == ["done"] * count
    return len(sent)


async def test_a_batch_costs_as_many_statements_for_many_requests_as_for_few(
    backend: LiveBackend, clock: FakeClock
) -> None:
    few = await _statements_for(backend, clock, 100, 2)
    many = await _statements_for(backend, clock, 200, 32)
    assert many == few, (few, many)
    assert many <= 25, many


async def test_a_request_whose_effect_fails_in_a_batch_is_retried_alone(
    backend: LiveBackend, clock: FakeClock
) -> None:
    refs = ["C-1", "C-2", "C-3"]
    await add_customers(
        backend.services, *(customer(r, phone=f"+3712300{i:04d}") for i, r in enumerate(refs))
    )
    for ref in refs:
        token = await session_token(backend.services, ref, chat=f"tg:{ref}")
        await submit(backend, token, "update_contact", {"field": "address", "address": ADDRESS})
    crm = BuiltinCrm(backend.services.sessions, clock)

    def fail_for_c2(job: Claimed) -> None:
        if job.customer_ref == "C-2":
            raise RuntimeError("the outcome could not be written")

    done = await run_workers(
        backend.services,
        crm,
        concurrency=1,
        stop=asyncio.Event(),
        once=True,
        purge=False,
        after_effect=fail_for_c2,
    )
    assert done == 3
    async with backend.services.sessions() as session:
        states = dict(
            (await session.execute(select(Request.customer_ref, Request.state))).tuples().all()
        )
        applied = set(await session.scalars(select(AppliedChange.customer_ref)))
    assert states == {"C-1": "done", "C-2": "queued", "C-3": "done"}
    assert applied == {"C-1", "C-3"}
    record = await crm.get("C-2")
    assert record is not None
    assert record.address is not None
    assert record.address.line1 == "Brīvības iela 1"  # as before
