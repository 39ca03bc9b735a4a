"""Who may reveal a customer's details in the console, while when, and how often.

Through the real HTTP console on a real database: only the agent holding the
chat, or a supervisor, while the escalation is open; at most 20 an hour per
agent, counted atomically; every reveal and every refusal audited.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from conftest import LiveBackend
from fakes.console import ConsoleClient, add_agent, escalate
from fakes.ledger import add_customers, customer, session_token
from sqlalchemy import select

from backend.console import reveal
from backend.models.audit import AuditEntry
from backend.services import Services
from common.clock import FakeClock

PHONE = "+37120000001"
REASON = "Customer asks which number we have on file"


async def _agent(backend: LiveBackend, services: Services, name: str, role: str) -> ConsoleClient:
    await add_agent(services, name, role)
    client = ConsoleClient(backend.url)
    status, _ = await client.log_in(name)
    assert status == 302
    return client


@pytest.fixture
async def alice(backend: LiveBackend, services: Services) -> AsyncIterator[ConsoleClient]:
    client = await _agent(backend, services, "alice", "agent")
    yield client
    await client.close()


@pytest.fixture
async def bob(backend: LiveBackend, services: Services) -> AsyncIterator[ConsoleClient]:
    client = await _agent(backend, services, "bob", "agent")
    yield client
    await client.close()


@pytest.fixture
async def sam(backend: LiveBackend, services: Services) -> AsyncIterator[ConsoleClient]:
    client = await _agent(backend, services, "sam", "supervisor")
    yield client
    await client.close()


@pytest.fixture
async def es(backend: LiveBackend, services: Services) -> str:
    """A verified customer's chat, waiting for an agent."""
    await add_customers(services, customer("C-1001", phone=PHONE))
    token = await session_token(services, "C-1001")
    return await escalate(backend, verified=True, session_token=token)


async def _reveal(agent: ConsoleClient, es: str, field: str = "phone") -> tuple[int, str]:
    await agent.get(f"/console/chats/{es}")
    return await agent.post(f"/console/chats/{es}/reveal", {"field": field, "reason": REASON})


async def _reveal_entries(services: Services) -> list[tuple[str, str | None, dict[str, str]]]:
    async with services.sessions() as session:
        rows = await session.scalars(
            select(AuditEntry).where(AuditEntry.action == "console.reveal").order_by(AuditEntry.id)
        )
        return [(e.actor, e.outcome, json.loads(e.data)) for e in rows]


async def test_an_agent_who_never_took_the_chat_cannot_reveal_and_is_audited(
    services: Services, es: str, alice: ConsoleClient
) -> None:
    _, page = await alice.get(f"/console/chats/{es}")
    assert "Reveal phone" not in page  # no button offered
    status, page = await _reveal(alice, es)
    assert status == 403
    assert PHONE not in page
    assert "Only the agent holding this chat, or a supervisor" in page
    assert await _reveal_entries(services) == [
        ("agent:1", "reveal_not_holder", {"field": "phone", "escalation": es})
    ]


async def test_a_script_gets_the_refusal_as_json(es: str, alice: ConsoleClient) -> None:
    await alice.get(f"/console/chats/{es}")
    async with alice.http.post(
        f"{alice.base}/console/chats/{es}/reveal",
        data={"field": "phone", "reason": REASON, "csrf": alice.csrf or ""},
        headers={"Accept": "application/json"},
    ) as resp:
        assert resp.status == 403
        assert await resp.json() == {"error": {"code": "reveal_not_holder"}}


async def test_only_the_agent_holding_the_chat_can_reveal(
    es: str, alice: ConsoleClient, bob: ConsoleClient
) -> None:
    await alice.get(f"/console/chats/{es}")
    await alice.post(f"/console/chats/{es}/take")
    _, page = await alice.get(f"/console/chats/{es}")
    assert "Reveal phone" in page
    status, page = await _reveal(bob, es)
    assert status == 403
    assert PHONE not in page
    status, page = await _reveal(alice, es)
    assert status == 200
    assert f'id="revealed-phone">{PHONE}<' in page


async def test_a_supervisor_can_reveal_while_the_chat_waits_or_is_held_by_another(
    es: str, alice: ConsoleClient, sam: ConsoleClient
) -> None:
    status, page = await _reveal(sam, es)
    assert status == 200
    assert PHONE in page
    await alice.get(f"/console/chats/{es}")
    await alice.post(f"/console/chats/{es}/take")
    status, page = await _reveal(sam, es, "name")
    assert status == 200
    assert 'id="revealed-name"' in page


async def test_nobody_can_reveal_once_the_chat_is_handed_back(
    services: Services, es: str, alice: ConsoleClient, sam: ConsoleClient
) -> None:
    await alice.get(f"/console/chats/{es}")
    await alice.post(f"/console/chats/{es}/take")
    await alice.get(f"/console/chats/{es}")
    status, _ = await alice.post(f"/console/chats/{es}/hand-back", {"resume": "menu"})
    assert status == 302
    for agent in (alice, sam):
        _, page = await agent.get(f"/console/chats/{es}")
        assert "Reveal phone" not in page
        status, page = await _reveal(agent, es)
        assert status == 403
        assert PHONE not in page
        assert "no longer open" in page
    outcomes = [outcome for _, outcome, _ in await _reveal_entries(services)]
    assert outcomes == ["reveal_not_open", "reveal_not_open"]


async def test_nobody_can_reveal_once_a_waiting_chat_is_closed(
    es: str, alice: ConsoleClient, sam: ConsoleClient
) -> None:
    await alice.get(f"/console/chats/{es}")
    status, _ = await alice.post(f"/console/chats/{es}/close")
    assert status == 302
    status, page = await _reveal(sam, es)
    assert status == 403
    assert PHONE not in page


async def test_an_agent_may_reveal_twenty_fields_an_hour_and_then_waits(
    services: Services, clock: FakeClock, es: str, alice: ConsoleClient
) -> None:
    await alice.get(f"/console/chats/{es}")
    await alice.post(f"/console/chats/{es}/take")
    for n in range(reveal.PER_HOUR):
        status, _ = await _reveal(alice, es, reveal.FIELDS[n % 4])
        assert status == 200, n
        clock.advance(minutes=1)
    await alice.get(f"/console/chats/{es}")
    async with alice.http.post(
        f"{alice.base}/console/chats/{es}/reveal",
        data={"field": "phone", "reason": REASON, "csrf": alice.csrf or ""},
        headers={"Accept": "text/html"},
    ) as resp:
        page = await resp.text()
        assert resp.status == 429
        assert resp.headers["Retry-After"] == str(40 * 60)  # the hour began 20 min ago
    assert PHONE not in page
    assert "You have revealed 20 fields in the last hour" in page
    assert "Try again in 40 min" in page
    entries = await _reveal_entries(services)
    assert [outcome for _, outcome, _ in entries] == [None] * 20 + ["reveal_limit"]
    for _ in range(4):  # the console session stays alive while the agent works on
        clock.advance(minutes=10)
        await alice.get("/console/")
    status, page = await _reveal(alice, es)
    assert status == 200
    assert PHONE in page


async def test_thirty_parallel_reveals_let_exactly_twenty_through(
    services: Services, es: str, alice: ConsoleClient
) -> None:
    await alice.get(f"/console/chats/{es}")
    await alice.post(f"/console/chats/{es}/take")
    await alice.get(f"/console/chats/{es}")

    async def one() -> int:
        async with alice.http.post(
            f"{alice.base}/console/chats/{es}/reveal",
            data={"field": "phone", "reason": REASON, "csrf": alice.csrf or ""},
            headers={"Accept": "application/json"},
        ) as resp:
            return resp.status

    statuses = await asyncio.gather(*(one() for _ in range(30)))
    assert sorted(statuses) == [200] * 20 + [429] * 10
    outcomes = [outcome for _, outcome, _ in await _reveal_entries(services)]
    assert outcomes.count(None) == 20
    assert outcomes.count("reveal_limit") == 10


async def test_the_reveal_limit_is_per_agent(
    es: str, alice: ConsoleClient, sam: ConsoleClient
) -> None:
    await alice.get(f"/console/chats/{es}")
    await alice.post(f"/console/chats/{es}/take")
    for _ in range(reveal.PER_HOUR):
        status, _ = await _reveal(alice, es)
        assert status == 200
    status, _ = await _reveal(alice, es)
    assert status == 429
    status, _ = await _reveal(sam, es)
    assert status == 200
