"""The console's chat page, history and shift view, over HTTP on a real database.

The browser tests (tests/browser/test_console_chatpage_browser.py) show the
same at 375 px and on a desktop; these check what each action leaves behind:
the audit entries, the ledger's states, what the customer is (not) told.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from conftest import LiveBackend
from fakes.console import ConsoleClient, add_agent, audit_actions, escalate
from fakes.ledger import add_customers, customer, session_token, submit
from sqlalchemy import select
from test_console_security import console_routes
from test_worker_queue import crm_of

from backend import chat_history, chat_notes, transcripts
from backend.errors import ConnectorError
from backend.ledger.transitions import Lease, transition
from backend.ledger.worker import run_one
from backend.models.audit import AuditEntry
from backend.models.console import Escalation
from backend.models.ledger import Notification, Request
from backend.services import Services
from common.clock import FakeClock
from common.vocabulary.request_states import FAILED, RUNNING

ADDRESS = {"line1": "Elizabetes iela 2", "city": "Rīga", "postcode": "LV-1010", "country": "LV"}
WHY = "the CRM was down at night, it is back"


async def _client(backend: LiveBackend, services: Services, name: str, role: str) -> ConsoleClient:
    await add_agent(services, name, role=role)
    client = ConsoleClient(backend.url)
    await client.log_in(name)
    return client


@pytest.fixture
async def alice(backend: LiveBackend, services: Services) -> AsyncIterator[ConsoleClient]:
    client = await _client(backend, services, "alice", "agent")
    yield client
    await client.close()


@pytest.fixture
async def bob(backend: LiveBackend, services: Services) -> AsyncIterator[ConsoleClient]:
    client = await _client(backend, services, "bob", "agent")
    yield client
    await client.close()


@pytest.fixture
async def sue(backend: LiveBackend, services: Services) -> AsyncIterator[ConsoleClient]:
    client = await _client(backend, services, "sue", "supervisor")
    yield client
    await client.close()


async def verified_chat(backend: LiveBackend, services: Services, chat: str = "tg:42") -> str:
    """A verified customer (C-1001, Anna Bērziņa) waiting for an agent in ``chat``."""
    record = customer("C-1001")
    record["name"] = "Anna Bērziņa"
    await add_customers(services, record)
    token = await session_token(services, "C-1001", chat)
    return await escalate(backend, chat, verified=True, session_token=token)


async def new_request(backend: LiveBackend, services: Services, chat: str = "tg:42") -> str:
    """A queued address change of C-1001's; return its reference."""
    token = await session_token(services, "C-1001", chat)
    status, body = await submit(
        backend, token, "update_contact", {"field": "address", "address": ADDRESS}
    )
    assert status == 201, body
    return str(body["reference"])


async def fail(services: Services, reference: str) -> None:
    """A worker claims the request and it fails (the ledger escalates the chat)."""
    now = services.clock.now()
    async with services.sessions() as session, session.begin():
        row = await session.scalar(select(Request).where(Request.reference == reference))
        assert row is not None
        lease = Lease("worker-test", now + timedelta(minutes=5))
        await transition(session, row, RUNNING, actor="worker:test", at=now, lease=lease)
        await transition(session, row, FAILED, actor="worker:test", at=now, reason="crm_down")


async def state_of(services: Services, reference: str) -> str:
    async with services.sessions() as session:
        return str(
            await session.scalar(select(Request.state).where(Request.reference == reference))
        )


async def audit_data(services: Services, action: str) -> list[dict[str, Any]]:
    async with services.sessions() as session:
        rows = await session.scalars(
            select(AuditEntry.data).where(AuditEntry.action == action).order_by(AuditEntry.id)
        )
        return [json.loads(d) if isinstance(d, str) else dict(d or {}) for d in rows]


async def notified(services: Services, chat: str) -> list[str]:
    async with services.sessions() as session:
        rows = await session.scalars(
            select(Notification.type).where(Notification.chat == chat).order_by(Notification.id)
        )
        return list(rows)


async def test_the_heading_names_the_customer_by_reference_and_masked_name(
    backend: LiveBackend, services: Services, alice: ConsoleClient
) -> None:
    es = await verified_chat(backend, services)
    status, page = await alice.get(f"/console/chats/{es}")
    assert status == 200
    heading = page[page.index('<h1 id="chat-title">') : page.index("</h1>")]
    assert "C-1001" in heading
    assert "A••• B•••••" in heading
    assert "Anna" not in page
    assert "Bērziņa" not in page
    assert "Latviešu" in page
    assert ">verified<" in page


async def test_an_unverified_chat_says_so_in_its_heading(
    backend: LiveBackend, alice: ConsoleClient
) -> None:
    es = await escalate(backend, "tg:7", locale="ru")
    _, page = await alice.get(f"/console/chats/{es}")
    assert "Chat with an unverified customer" in page
    assert "Русский" in page
    assert "not verified" in page


async def test_the_wait_stops_at_take_over_and_the_page_says_who_holds_it_since_when(
    backend: LiveBackend, alice: ConsoleClient, clock: FakeClock
) -> None:
    es = await escalate(backend)
    clock.advance(minutes=6)
    await alice.get(f"/console/chats/{es}")
    await alice.post(f"/console/chats/{es}/take")
    taken_at = clock.now().strftime("%H:%M")
    clock.advance(minutes=50)
    await alice.log_in("alice")  # the idle session ended meanwhile
    _, page = await alice.get(f"/console/chats/{es}")
    assert '<dd id="waited">6 min</dd>' in page
    assert f"alice since {taken_at}" in page
    _, queue = await alice.get("/console/")
    assert "6 min" in queue
    assert "56 min" not in queue


async def test_the_reason_shown_is_the_latest_one_recorded(
    backend: LiveBackend, alice: ConsoleClient
) -> None:
    es = await escalate(backend, reason="lockout")
    assert await escalate(backend, reason="asked") == es
    _, page = await alice.get(f"/console/chats/{es}")
    assert "Asked for a person" in page
    assert "Locked out of verification" not in page


async def test_a_note_is_kept_and_audited_and_never_sent_to_the_customer(
    backend: LiveBackend, services: Services, alice: ConsoleClient
) -> None:
    es = await escalate(backend)
    await alice.get(f"/console/chats/{es}")
    before = await notified(services, "tg:42")
    status, _ = await alice.post(
        f"/console/chats/{es}/note", {"text": "Customer calls back at 3; phone +37120000009"}
    )
    assert status == 302
    _, page = await alice.get(f"/console/chats/{es}")
    assert "Customer calls back at 3; phone +371 2•••••09" in page
    assert "— alice" in page
    assert await notified(services, "tg:42") == before
    assert ("escalation.note", "agent:1", None) in await audit_actions(services)
    status, page = await alice.post(f"/console/chats/{es}/note", {"text": "  "})
    assert status == 422
    assert "The note was empty." in page


async def test_the_customers_requests_are_listed_with_their_state(
    backend: LiveBackend, services: Services, alice: ConsoleClient
) -> None:
    es = await verified_chat(backend, services)
    reference = await new_request(backend, services)
    _, page = await alice.get(f"/console/chats/{es}")
    assert f'data-reference="{reference}"' in page
    assert ">queued<" in page
    # An agent sees them but cannot act on them.
    assert f"/requests/{reference}/cancel" not in page


async def test_a_supervisor_retries_a_failed_request_with_a_reason_through_the_ledger(
    backend: LiveBackend, services: Services, sue: ConsoleClient, alice: ConsoleClient
) -> None:
    await verified_chat(backend, services)
    reference = await new_request(backend, services)
    await fail(services, reference)
    async with services.sessions() as session:
        es = await session.scalar(select(Escalation.id).where(Escalation.chat == "tg:42"))
    _, page = await sue.get(f"/console/chats/{es}")
    assert f"Retry {reference}" in page
    path = f"/console/review/chats/{es}/requests/{reference}/retry"
    status, page = await sue.post(path, {"reason": "short"})
    assert status == 422
    assert "10 to 200 characters" in page
    assert await state_of(services, reference) == "failed"

    status, _ = await sue.post(path, {"reason": WHY})
    assert status == 302
    assert await state_of(services, reference) == "queued"
    assert await audit_data(services, "request_retried") == [
        {"kind": "update_contact", "attempt": 1, "note": WHY}
    ]
    status, page = await sue.post(path, {"reason": WHY})
    assert status == 409
    assert "Only a failed request can be retried." in page

    await alice.get(f"/console/chats/{es}")
    status, _ = await alice.post(path, {"reason": WHY})
    assert status == 403

    # The worker carries it out this time, with the address the customer gave.
    assert await run_one(services, crm_of(backend), "w1")
    assert await state_of(services, reference) == "done"
    record = await services.crm.get("C-1001")
    assert record is not None
    assert record.address is not None
    assert record.address.line1 == ADDRESS["line1"]


async def test_a_cancelled_failed_request_keeps_no_payload(
    backend: LiveBackend, services: Services, sue: ConsoleClient
) -> None:
    await verified_chat(backend, services)
    reference = await new_request(backend, services)
    await fail(services, reference)
    async with services.sessions() as session:
        es = await session.scalar(select(Escalation.id).where(Escalation.chat == "tg:42"))
        kept = await session.scalar(select(Request.payload).where(Request.reference == reference))
    assert kept != "{}"  # kept, sealed, for a retry
    await sue.get(f"/console/chats/{es}")
    status, _ = await sue.post(
        f"/console/review/chats/{es}/requests/{reference}/cancel",
        {"code": "legal_obligation", "reason": "address under a court order"},
    )
    assert status == 302
    async with services.sessions() as session:
        row = await session.scalar(select(Request).where(Request.reference == reference))
    assert row is not None
    assert (row.state, row.payload) == ("rejected", "{}")


async def test_a_supervisor_cancels_a_queued_request_and_the_customer_is_told_why(
    backend: LiveBackend, services: Services, sue: ConsoleClient
) -> None:
    es = await verified_chat(backend, services)
    reference = await new_request(backend, services)
    await sue.get(f"/console/chats/{es}")
    path = f"/console/review/chats/{es}/requests/{reference}/cancel"
    status, _ = await sue.post(
        path, {"code": "duplicate_request", "reason": "asked twice by phone"}
    )
    assert status == 302
    assert await state_of(services, reference) == "rejected"
    async with services.sessions() as session:
        told = (
            await session.execute(
                select(Notification.outcome, Notification.reason).where(
                    Notification.chat == "tg:42", Notification.type == "request_outcome"
                )
            )
        ).one()
    assert tuple(told) == ("rejected", "review_rejected:duplicate_request")
    assert await audit_data(services, "request_cancelled") == [
        {
            "kind": "update_contact",
            "attempt": 0,
            "reason": "review_rejected:duplicate_request",
            "note": "asked twice by phone",
            "cancelled": True,
        }
    ]
    _, page = await sue.get(f"/console/chats/{es}")
    assert f"Cancel {reference}" not in page  # nothing left to cancel


async def test_a_supervisor_reassigns_a_held_chat_and_it_is_audited(
    backend: LiveBackend,
    services: Services,
    alice: ConsoleClient,
    bob: ConsoleClient,
    sue: ConsoleClient,
) -> None:
    es = await escalate(backend)
    await alice.get(f"/console/chats/{es}")
    await alice.post(f"/console/chats/{es}/take")
    _, queue = await sue.get("/console/")
    assert "alice since" in queue
    _, page = await sue.get(f"/console/chats/{es}")
    assert "Reassign this chat" in page
    status, _ = await sue.post(
        f"/console/review/chats/{es}/reassign", {"agent": "2", "reason": "alice's shift ended"}
    )
    assert status == 302
    _, page = await bob.get(f"/console/chats/{es}")
    assert '<dd id="state">yours</dd>' in page
    assert ("escalation.reassign", "agent:3", "agent:2") in await audit_actions(services)
    status, _ = await alice.post(f"/console/chats/{es}/reply", {"text": "still here?"})
    assert status == 403  # not alice's any more
    status, page = await sue.post(
        f"/console/review/chats/{es}/reassign", {"agent": "99", "reason": "nobody by that id"}
    )
    assert status == 422
    assert "Choose an active agent" in page


async def test_the_queue_counts_chats_per_reason_and_language_and_the_oldest_wait(
    backend: LiveBackend, alice: ConsoleClient, clock: FakeClock
) -> None:
    await escalate(backend, "tg:1", reason="lockout", locale="ru")
    clock.advance(minutes=3)
    await escalate(backend, "tg:2", reason="lockout", locale="lv")
    await escalate(backend, "tg:3", reason="asked", locale="lv")
    clock.advance(minutes=9)
    _, page = await alice.get("/console/")
    assert '<dd id="count-waiting">3</dd>' in page
    assert '<dd id="oldest-wait">12 min</dd>' in page
    assert "Locked out of verification: 2" in page
    assert "Asked for a person: 1" in page
    assert "Latviešu: 2" in page
    assert "Русский: 1" in page


async def closed_chat(backend: LiveBackend, services: Services, agent: ConsoleClient) -> str:
    es = await verified_chat(backend, services)
    await new_request(backend, services)
    async with backend.client.post(
        backend.api("/api/v1/chats/tg:42/messages"),
        json={"direction": "in", "text": "my phone is +37120000001, I paid 1 250.00 EUR"},
    ) as resp:
        assert resp.status == 201
    await agent.get(f"/console/chats/{es}")
    await agent.post(f"/console/chats/{es}/take")
    await agent.post(f"/console/chats/{es}/note", {"text": "Asked about the fee"})
    await agent.post(f"/console/chats/{es}/hand-back", {"resume": "menu"})
    return es


async def test_a_closed_chat_is_found_by_customer_request_reference_or_day_read_only_and_masked(
    backend: LiveBackend, services: Services, alice: ConsoleClient
) -> None:
    es = await closed_chat(backend, services, alice)
    async with services.sessions() as session:
        reference = await session.scalar(select(Request.reference))
    for query in (
        "?customer=C-1001",
        f"?reference={reference}",
        f"?reference={str(reference).lower()}",
        f"?day={services.clock.now().date().isoformat()}",
        "",
    ):
        status, page = await alice.get(f"/console/history{query}")
        assert status == 200, query
        assert f'href="/console/history/{es}"' in page, query
    _, page = await alice.get("/console/history?customer=C-9999")
    assert "No closed chat matches." in page
    status, page = await alice.get("/console/history?reference=nonsense&day=yesterday")
    assert status == 422
    assert "A request reference looks like DD-7K2Q9M." in page
    assert "YYYY-MM-DD" in page

    status, page = await alice.get(f"/console/history/{es}")
    assert status == 200
    assert "C-1001" in page
    assert "A••• B•••••" in page
    assert "my phone is +371 2•••••01, I paid 1 250.00 EUR" in page
    assert "Asked about the fee" in page
    assert '<form method="post"' not in page.split("</header>", 1)[1]  # read-only


async def test_a_closed_chat_leaves_the_history_when_its_retention_period_ends(
    backend: LiveBackend, services: Services, alice: ConsoleClient, clock: FakeClock
) -> None:
    es = await closed_chat(backend, services, alice)
    clock.advance(days=360)
    await alice.log_in("alice")
    _, page = await alice.get("/console/history?customer=C-1001")
    assert es in page
    clock.advance(days=10)  # twelve months (retention.yaml: chat_history_kept) have passed
    await alice.log_in("alice")
    _, page = await alice.get("/console/history?customer=C-1001")
    assert es not in page
    status, _ = await alice.get(f"/console/history/{es}")
    assert status == 404


async def test_an_open_chat_is_not_in_the_history(
    backend: LiveBackend, alice: ConsoleClient
) -> None:
    es = await escalate(backend)
    status, _ = await alice.get(f"/console/history/{es}")
    assert status == 404


async def test_the_route_walk_covers_the_new_routes_and_guards_the_supervisors(
    backend: LiveBackend,
) -> None:
    # tests/test_console_security.py walks these: no answer without a session, a
    # 403 for agents on every /console/review route, none without a CSRF token.
    routes = console_routes(backend)
    assert {
        ("GET", "/console/history"),
        ("GET", "/console/history/es_doesnotexist"),
        ("POST", "/console/chats/es_doesnotexist/note"),
        ("POST", "/console/review/chats/es_doesnotexist/reassign"),
        ("POST", "/console/review/chats/es_doesnotexist/requests/DD-0000AA/retry"),
        ("POST", "/console/review/chats/es_doesnotexist/requests/DD-0000AA/cancel"),
    } <= set(routes)


async def test_a_crm_that_does_not_answer_costs_the_page_its_fields_not_the_page(
    backend: LiveBackend,
    services: Services,
    alice: ConsoleClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    es = await verified_chat(backend, services)

    async def down(ref: str) -> None:
        raise ConnectorError("connection refused")

    monkeypatch.setattr(services.crm, "get", down)
    status, page = await alice.get(f"/console/chats/{es}")
    assert status == 200
    assert 'Chat with <span class="ref">C-1001</span></h1>' in page
    assert "The customer's record could not be read just now." in page


async def test_a_closed_chats_history_ends_where_it_closed(
    backend: LiveBackend, services: Services, alice: ConsoleClient, clock: FakeClock
) -> None:
    es = await closed_chat(backend, services, alice)
    clock.advance(minutes=5)
    async with backend.client.post(
        backend.api("/api/v1/chats/tg:42/messages"),
        json={"direction": "in", "text": "a new conversation, later"},
    ) as resp:
        assert resp.status == 201
    _, page = await alice.get(f"/console/history/{es}")
    assert "I paid 1 250.00 EUR" in page
    assert "a new conversation, later" not in page


async def test_the_daily_purge_deletes_transcripts_and_notes_past_their_period(
    backend: LiveBackend, services: Services, alice: ConsoleClient, clock: FakeClock
) -> None:
    await closed_chat(backend, services, alice)
    clock.advance(days=200)
    assert await chat_history.purge(services) == 0
    clock.advance(days=170)  # past twelve months: retention.yaml's chat_history_kept
    assert await chat_history.purge(services) > 0
    async with services.sessions() as session:
        assert await transcripts.transcript(session, "tg:42") == []
        assert await chat_notes.for_chat(session, "tg:42") == []
    assert ("chat_history_purged", "system:purge", None) in await audit_actions(services)


async def test_erasing_a_customers_chat_history_erases_the_notes_too(
    backend: LiveBackend, services: Services, alice: ConsoleClient
) -> None:
    await closed_chat(backend, services, alice)
    async with services.sessions() as session, session.begin():
        await transcripts.erase_chat_history(session, "C-1001")
    async with services.sessions() as session:
        assert await chat_notes.for_chat(session, "tg:42") == []
        assert await transcripts.transcript(session, "tg:42") == []
