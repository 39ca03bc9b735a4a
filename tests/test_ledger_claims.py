"""Claims take due requests the longest-waiting first, one at a time per customer.

A customer's second request waits while their first is queued or running,
so a later address change never overtakes an earlier one; the other
customers' requests are taken meanwhile, however long the first customer's
run of waiting requests at the head of the queue.
"""

from __future__ import annotations

import uuid

from conftest import LiveBackend
from fakes.ledger import add_customers, customer
from sqlalchemy import select, update

from backend import ledger
from backend.crm.builtin import BuiltinCrm
from backend.ledger.claims import LEASE_SECONDS, claim
from backend.ledger.worker import run_one
from backend.models.ledger import Request
from backend.services import Services
from common.clock import FakeClock


def _address(n: int) -> dict[str, object]:
    street = f"Elizabetes iela {n}"
    return {"field": "address", "address": {"line1": street, "city": "Rīga", "postcode": "LV-1010", "country": "LV"}}  # fmt: skip


async def _submit(services: Services, ref: str, n: int) -> str:
    answer = await ledger.submit(
        services,
        customer_ref=ref,
        chat=f"tg:{ref}",
        locale="en",
        kind="update_contact",
        payload=_address(n),
        idempotency_key=uuid.uuid4().hex,
    )
    return str(answer.body["reference"])


async def _street(services: Services, ref: str) -> str | None:
    record = await services.crm.get(ref)
    assert record is not None
    return record.address.line1 if record.address else None


async def test_a_customers_second_request_waits_until_the_first_is_done(
    backend: LiveBackend,
) -> None:
    services = backend.services
    await add_customers(services, customer("C-1"), customer("C-2", phone="+37120000002"))
    first = await _submit(services, "C-1", 1)
    second = await _submit(services, "C-1", 2)
    other = await _submit(services, "C-2", 3)

    taken = await claim(services, "w1", limit=10)
    assert [job.reference for job in taken] == [first, other]
    # While the first runs, the second is not due for anyone.
    assert await claim(services, "w2", limit=10) == []

    crm = BuiltinCrm(services.sessions, services.clock)
    async with services.sessions() as session:
        await session.execute(
            update(Request)
            .where(Request.reference == first)
            .values(lease_expires_at=services.clock.now())
        )
        await session.commit()
    await run_one(services, crm, "w3")  # takes the first up and carries it out
    assert await _street(services, "C-1") == "Elizabetes iela 1"
    [then] = await claim(services, "w4", limit=10)
    assert then.reference == second


async def test_a_long_run_of_one_customers_requests_does_not_hold_the_others_back(
    backend: LiveBackend,
) -> None:
    services = backend.services
    await add_customers(services, customer("C-1"), customer("C-2", phone="+37120000002"))
    run = [await _submit(services, "C-1", n) for n in range(1, 41)]
    behind = await _submit(services, "C-2", 99)

    taken = await claim(services, "w1", limit=4)
    assert [job.reference for job in taken] == [run[0], behind]


async def test_a_request_whose_lease_ran_out_is_taken_before_the_queue(
    backend: LiveBackend, clock: FakeClock
) -> None:
    services = backend.services
    await add_customers(services, customer("C-1"), customer("C-2", phone="+37120000002"))
    stranded = await _submit(services, "C-1", 1)
    [job] = await claim(services, "dead-worker", limit=1)
    assert job.reference == stranded
    clock.advance(seconds=1)
    waiting = await _submit(services, "C-2", 2)
    clock.advance(seconds=LEASE_SECONDS)

    taken = await claim(services, "w2", limit=1)
    assert [job.reference for job in taken] == [stranded]
    assert taken[0].attempts == 2
    async with services.sessions() as session:
        owner = await session.scalar(
            select(Request.lease_owner).where(Request.reference == stranded)
        )
    assert owner == "w2"
    assert [job.reference for job in await claim(services, "w2", limit=1)] == [waiting]
