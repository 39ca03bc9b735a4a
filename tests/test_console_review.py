"""A supervisor reviews erasures held for back-office review: sees the plan, approves or rejects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from conftest import LiveBackend
from fakes.console import ConsoleClient, add_agent, audit_actions
from fakes.ledger import add_customers, customer, preview, session_token, submit
from sqlalchemy import select

from backend.models.ledger import Notification, Request
from backend.services import Services
from backend.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Erasures wait for review in these tests."""
    return replace(settings, review_kinds=frozenset({"erasure"}))


@pytest.fixture
async def sam(backend: LiveBackend, services: Services) -> AsyncIterator[ConsoleClient]:
    await add_agent(services, "sam", "supervisor")
    client = ConsoleClient(backend.url)
    await client.log_in("sam")
    try:
        yield client
    finally:
        await client.close()


async def erasure_awaiting_review(backend: LiveBackend, services: Services) -> str:
    await add_customers(services, customer("C-2001", phone="+37120000021"))
    token = await session_token(services, "C-2001", chat="tg:77")
    status, plan = await preview(backend, token, ["marketing", "transactions"])
    assert status in (200, 201), plan
    status, body = await submit(
        backend, token, "erasure", {"preview_id": plan["preview_id"]}, chat="tg:77"
    )
    assert status == 201, body
    assert body["state"] == "awaiting_review"
    return str(body["reference"])


async def state_of(services: Services, reference: str) -> str:
    async with services.sessions() as session:
        state = await session.scalar(select(Request.state).where(Request.reference == reference))
    return str(state)


async def test_the_review_queue_shows_the_plan_the_customer_confirmed(
    backend: LiveBackend, services: Services, sam: ConsoleClient
) -> None:
    reference = await erasure_awaiting_review(backend, services)
    status, page = await sam.get("/console/review")
    assert status == 200
    assert reference in page
    assert "C-2001" in page
    assert "marketing" in page
    assert "erase" in page
    assert "keep" in page


async def test_approving_sends_the_erasure_on_to_the_queue(
    backend: LiveBackend, services: Services, sam: ConsoleClient
) -> None:
    reference = await erasure_awaiting_review(backend, services)
    await sam.get("/console/review")
    status, where = await sam.post(f"/console/review/{reference}/approve")
    assert (status, where) == (302, "/console/review")
    assert await state_of(services, reference) == "queued"
    _, page = await sam.get("/console/review")
    assert reference not in page
    assert ("request_approved", "agent:1", "queued") in await audit_actions(services)


async def test_rejecting_with_a_reason_tells_the_customer(
    backend: LiveBackend, services: Services, sam: ConsoleClient
) -> None:
    reference = await erasure_awaiting_review(backend, services)
    await sam.get("/console/review")
    status, _ = await sam.post(
        f"/console/review/{reference}/reject", {"reason_code": "legal_obligation"}
    )
    assert status == 302
    assert await state_of(services, reference) == "rejected"
    async with services.sessions() as session:
        told = await session.scalar(
            select(Notification).where(
                Notification.chat == "tg:77", Notification.type == "request_outcome"
            )
        )
    assert told is not None
    assert (told.reference, told.outcome, told.reason) == (
        reference,
        "rejected",
        "review_rejected:legal_obligation",
    )


async def test_a_rejection_needs_a_known_reason_code(
    backend: LiveBackend, services: Services, sam: ConsoleClient
) -> None:
    reference = await erasure_awaiting_review(backend, services)
    await sam.get("/console/review")
    status, page = await sam.post(f"/console/review/{reference}/reject", {"reason_code": ""})
    assert status == 422
    assert "Choose a reason" in page
    assert await state_of(services, reference) == "awaiting_review"


async def test_a_second_decision_on_the_same_request_is_refused(
    backend: LiveBackend, services: Services, sam: ConsoleClient
) -> None:
    reference = await erasure_awaiting_review(backend, services)
    await sam.get("/console/review")
    await sam.post(f"/console/review/{reference}/approve")
    status, page = await sam.post(
        f"/console/review/{reference}/reject", {"reason_code": "duplicate_request"}
    )
    assert status == 409
    assert "Someone already decided" in page
    assert await state_of(services, reference) == "queued"
