"""How much a worker claims at once: 4 a slot, doubling while claims come back full.

Up to 64 a slot on the built-in CRM (its joined batches cost about as much for
64 requests as for one), 4 a slot on any other CRM; a claim that comes back
short starts the doubling over, so workers starting together share the queue.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from conftest import LiveBackend
from fakes.ledger import add_customers, customer
from sqlalchemy import select

from backend import ledger
from backend.crm.builtin import BuiltinCrm
from backend.ledger import worker
from backend.ledger.claims import Claimed, claim
from backend.models.ledger import Request
from backend.services import Services

ADDRESS = {"line1": "Elizabetes iela 2", "city": "Rīga", "postcode": "LV-1010", "country": "LV"}


class OtherCrm:
    """A CRM that is not the built-in one (as the HTTP CRM), doing what the built-in one does."""

    def __init__(self, inner: BuiltinCrm) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def _queue(services: Services, count: int) -> None:
    refs = [f"C-{i:04d}" for i in range(count)]
    await add_customers(
        services, *(customer(ref, phone=f"+3712{i:07d}") for i, ref in enumerate(refs))
    )
    for ref in refs:
        await ledger.submit(
            services,
            customer_ref=ref,
            chat=f"tg:{ref}",
            locale="en",
            kind="update_contact",
            payload={"field": "address", "address": ADDRESS},
            idempotency_key=uuid.uuid4().hex,
        )


def _watch_claims(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(asked for, taken) of every claim the worker makes, in order."""
    seen: list[tuple[int, int]] = []

    async def watched(services: Services, owner: str, limit: int = 1) -> list[Claimed]:
        taken = await claim(services, owner, limit)
        seen.append((limit, len(taken)))
        return taken

    monkeypatch.setattr(worker, "claim", watched)
    return seen


async def _done(services: Services) -> set[str]:
    async with services.sessions() as session:
        return set((await session.scalars(select(Request.state))).all())


async def test_claims_double_while_full_up_to_64_a_slot_then_start_over(
    backend: LiveBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = backend.services
    await _queue(services, 150)
    seen = _watch_claims(monkeypatch)
    crm = BuiltinCrm(services.sessions, services.clock)
    ran = await worker.run_workers(
        services, crm, concurrency=1, stop=asyncio.Event(), once=True, purge=False
    )
    assert ran == 150
    assert await _done(services) == {"done"}
    # 4+8+16+32+64 = 124 full claims, then 26 of 64 (short), then the start again.
    assert seen == [(4, 4), (8, 8), (16, 16), (32, 32), (64, 64), (64, 26), (4, 0)]


async def test_claims_stay_at_4_a_slot_on_a_crm_other_than_the_built_in_one(
    backend: LiveBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = backend.services
    await _queue(services, 30)
    seen = _watch_claims(monkeypatch)
    crm = OtherCrm(BuiltinCrm(services.sessions, services.clock))
    ran = await worker.run_workers(
        services,
        crm,  # type: ignore[arg-type]
        concurrency=2,
        stop=asyncio.Event(),
        once=True,
        purge=False,
    )
    assert ran == 30
    assert await _done(services) == {"done"}
    assert {asked for asked, _ in seen} == {8}
    assert sum(taken for _, taken in seen) == 30
