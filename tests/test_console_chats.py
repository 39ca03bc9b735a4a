"""An agent works escalated chats in the console: queue, take over, reply, reveal, hand back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from conftest import LiveBackend
from fakes.console import ConsoleClient, add_agent, audit_actions, escalate
from fakes.ledger import add_customers, customer, session_token, submit
from sqlalchemy import select

from backend.models.audit import AuditEntry
from backend.models.ledger import Notification
from backend.services import Services
from common.clock import FakeClock
from common.masking import mask_phone


@pytest.fixture
async def alice(backend: LiveBackend, services: Services) -> AsyncIterator[ConsoleClient]:
    await add_agent(services, "alice")
    client = ConsoleClient(backend.url)
    await client.log_in("alice")
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def bob(backend: LiveBackend, services: Services) -> AsyncIterator[ConsoleClient]:
    await add_agent(services, "bob")
    client = ConsoleClient(backend.url)
    await client.log_in("bob")
    try:
        yield client
    finally:
        await client.close()


async def say(backend: LiveBackend, chat: str, text: str, direction: str = "in") -> bool:
    async with backend.client.post(
        backend.api(f"/api/v1/chats/{chat}/messages"), json={"direction": direction, "text": text}
    ) as resp:
        assert resp.status == 201
        return bool((await resp.json())["agent_active"])


async def sent_to(services: Services, chat: str) -> list[tuple[str, dict[str, Any]]]:
    async with services.sessions() as session:
        rows = await session.scalars(
            select(Notification).where(Notification.chat == chat).order_by(Notification.id)
        )
        return [(n.type, json.loads(n.details) if n.details else {}) for n in rows]


async def test_the_queue_shows_why_how_long_which_language_and_whether_verified(
    backend: LiveBackend, alice: ConsoleClient, clock: FakeClock
) -> None:
    await escalate(backend, "tg:1", reason="lockout", locale="ru")
    clock.advance(minutes=3)
    await escalate(backend, "tg:2", reason="failed_request", locale="zh_Hant", verified=True)
    clock.advance(minutes=4)
    status, page = await alice.get("/console/")
    assert status == 200
    page = page[page.index("<table") :]  # the rows, after the shift's counts
    first, second = page.index("Locked out of verification"), page.index("A request failed")
    assert first < second  # the longest-waiting first
    assert "7 min" in page[first:second]
    assert "Русский" in page[first:second]
    assert "not verified" in page[first:second]
    assert "4 min" in page[second:]
    assert "繁體中文" in page[second:]
    assert ">verified<" in page[second:]


async def test_taking_over_tells_the_customer_and_silences_the_bot(
    backend: LiveBackend, services: Services, alice: ConsoleClient
) -> None:
    es = await escalate(backend)
    await say(backend, "tg:42", "Man vajag cilvēku, mans e-pasts anna@example.lv")
    status, page = await alice.get(f"/console/chats/{es}")
    assert status == 200
    assert "a•••@example.lv" in page
    assert "anna@example.lv" not in page
    status, where = await alice.post(f"/console/chats/{es}/take")
    assert (status, where) == (302, f"/console/chats/{es}")
    assert await sent_to(services, "tg:42") == [("agent_joined", {})]
    assert await say(backend, "tg:42", "Sveiki?") is True
    _, page = await alice.get(f"/console/chats/{es}")
    assert "Sveiki?" in page
    assert 'id="send"' in page


async def test_a_second_agent_cannot_take_a_taken_chat(
    backend: LiveBackend, services: Services, alice: ConsoleClient, bob: ConsoleClient
) -> None:
    es = await escalate(backend)
    await alice.get(f"/console/chats/{es}")
    await bob.get(f"/console/chats/{es}")
    await alice.post(f"/console/chats/{es}/take")
    status, page = await bob.post(f"/console/chats/{es}/take")
    assert status == 409
    assert "Another agent took this chat first" in page
    status, page = await bob.post(f"/console/chats/{es}/reply", {"text": "Hello from Bob"})
    assert status == 403
    assert [t for t, _ in await sent_to(services, "tg:42")] == ["agent_joined"]


async def test_a_reply_reaches_the_customer_and_the_transcript(
    backend: LiveBackend, services: Services, alice: ConsoleClient
) -> None:
    es = await escalate(backend)
    await alice.get(f"/console/chats/{es}")
    await alice.post(f"/console/chats/{es}/take")
    status, _ = await alice.post(
        f"/console/chats/{es}/reply", {"text": "Labdien! Kā varu palīdzēt?"}
    )
    assert status == 302
    assert (await sent_to(services, "tg:42"))[-1] == (
        "agent_message",
        {"text": "Labdien! Kā varu palīdzēt?"},
    )
    _, page = await alice.get(f"/console/chats/{es}")
    assert 'class="msg agent"' in page
    assert "Kā varu palīdzēt?" in page


async def test_a_canned_response_goes_out_in_the_customers_language(
    backend: LiveBackend, services: Services, alice: ConsoleClient
) -> None:
    es = await escalate(backend, locale="ru")
    _, page = await alice.get(f"/console/chats/{es}")
    await alice.post(f"/console/chats/{es}/take")
    _, page = await alice.get(f"/console/chats/{es}")
    assert "Вас приветствует служба поддержки" in page  # the buttons carry the Russian text
    await alice.post(f"/console/chats/{es}/reply", {"text": "", "canned": "greeting"})
    kind, details = (await sent_to(services, "tg:42"))[-1]
    assert kind == "agent_message"
    assert details["text"].startswith("Здравствуйте!")


async def test_an_empty_reply_is_refused_and_nothing_is_sent(
    backend: LiveBackend, services: Services, alice: ConsoleClient
) -> None:
    es = await escalate(backend)
    await alice.get(f"/console/chats/{es}")
    await alice.post(f"/console/chats/{es}/take")
    status, page = await alice.post(f"/console/chats/{es}/reply", {"text": "   "})
    assert status == 422
    assert "empty or too long" in page
    assert [t for t, _ in await sent_to(services, "tg:42")] == ["agent_joined"]


async def test_handing_back_resumes_the_bot_as_the_agent_chose(
    backend: LiveBackend, services: Services, alice: ConsoleClient
) -> None:
    es = await escalate(backend)
    await alice.get(f"/console/chats/{es}")
    await alice.post(f"/console/chats/{es}/take")
    status, where = await alice.post(f"/console/chats/{es}/hand-back", {"resume": "menu"})
    assert (status, where) == (302, "/console/")
    assert (await sent_to(services, "tg:42"))[-1] == ("agent_left", {"resume": "menu"})
    assert await say(backend, "tg:42", "Paldies") is False
    _, queue = await alice.get("/console/")
    assert "No chat is waiting for a person" in queue
    actions = [(a, o) for a, _, o in await audit_actions(services)]
    assert ("escalation.take", "taken") in actions
    assert ("escalation.hand_back", "menu") in actions


async def test_a_waiting_chat_can_be_closed_and_the_bot_carries_on(
    backend: LiveBackend, services: Services, alice: ConsoleClient
) -> None:
    es = await escalate(backend)
    await alice.get(f"/console/chats/{es}")
    status, where = await alice.post(f"/console/chats/{es}/close")
    assert (status, where) == (302, "/console/")
    assert await sent_to(services, "tg:42") == [("agent_left", {"resume": "where_left_off"})]


async def test_revealing_a_field_needs_a_reason_and_is_audited(
    backend: LiveBackend, services: Services, alice: ConsoleClient
) -> None:
    await add_customers(services, customer("C-1001", phone="+37120000001"))
    token = await session_token(services, "C-1001")
    es = await escalate(backend, verified=True, session_token=token)
    await alice.get(f"/console/chats/{es}")
    await alice.post(f"/console/chats/{es}/take")
    _, page = await alice.get(f"/console/chats/{es}")
    assert mask_phone("+37120000001") in page
    assert "+37120000001" not in page
    status, page = await alice.post(
        f"/console/chats/{es}/reveal", {"field": "phone", "reason": "short"}
    )
    assert status == 422
    assert "+37120000001" not in page
    reason = "Customer asks which number we have on file"
    status, page = await alice.post(
        f"/console/chats/{es}/reveal", {"field": "phone", "reason": reason}
    )
    assert status == 200
    assert '<strong class="revealed" id="revealed-phone">+37120000001</strong>' in page
    async with services.sessions() as session:
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "console.reveal")
        )
    assert entry is not None
    assert entry.outcome is None  # revealed; refusals carry their code here
    assert entry.subject == "C-1001"
    assert json.loads(entry.data) == {"escalation": es, "field": "phone", "reason": reason}
    # Shown once: the next page load is masked again.
    _, page = await alice.get(f"/console/chats/{es}")
    assert "+37120000001" not in page
    # A reason quoting personal data is kept masked in the (never erased) audit chain.
    await alice.post(
        f"/console/chats/{es}/reveal",
        {"field": "email", "reason": "Caller says +37120000001 is no longer theirs"},
    )
    async with services.sessions() as session:
        last = await session.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))
    assert last is not None
    assert "+37120000001" not in last.data
    assert json.loads(last.data)["field"] == "email"


async def test_the_live_socket_brings_new_messages_and_queue_changes(
    backend: LiveBackend, services: Services, alice: ConsoleClient
) -> None:
    es = await escalate(backend)
    await say(backend, "tg:42", "first")
    url = f"{backend.url}/console/live?chat={es}&after=0"
    async with alice.http.ws_connect(url) as ws:
        event = await ws.receive_json(timeout=10)
        assert event["type"] == "entries"
        assert [e["text"] for e in event["entries"]] == ["first"]
        await say(backend, "tg:42", "card 4111111111111111 please")
        event = await ws.receive_json(timeout=10)
        assert event["type"] == "entries"
        assert event["entries"][0]["text"] == "card 411111••••••1111 please"
        await escalate(backend, "tg:99")
        event = await ws.receive_json(timeout=10)
        assert event == {"type": "queue"}


async def test_the_live_socket_refuses_without_a_session(backend: LiveBackend) -> None:
    client = ConsoleClient(backend.url)
    try:
        async with client.http.get(
            f"{backend.url}/console/live",
            headers={"Upgrade": "websocket", "Connection": "Upgrade"},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 401
    finally:
        await client.close()


async def test_the_live_socket_refuses_another_sites_page(
    backend: LiveBackend, alice: ConsoleClient
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await alice.http.ws_connect(
            f"{backend.url}/console/live", headers={"Origin": "https://evil.example"}
        )
    assert refused.value.status == 403


async def test_the_live_socket_tells_the_page_when_the_session_ends(
    backend: LiveBackend, alice: ConsoleClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backend.console import live

    monkeypatch.setattr(live, "SESSION_CHECK_SECONDS", 0.0)
    async with alice.http.ws_connect(f"{backend.url}/console/live") as ws:
        await alice.get("/console/")
        await alice.post("/console/logout")
        event = await ws.receive_json(timeout=10)
        assert event == {"type": "session_ended"}


async def test_the_chat_page_lists_the_requests_made_from_that_chat(
    backend: LiveBackend, services: Services, alice: ConsoleClient
) -> None:
    await add_customers(services, customer("C-1005", phone="+37120000055"))
    token = await session_token(services, "C-1005", chat="tg:42")
    status, made = await submit(backend, token, "marketing_opt_out", {"channels": ["sms"]})
    assert status == 201, made
    es = await escalate(backend, reason="failed_request", session_token=token)
    _, page = await alice.get(f"/console/chats/{es}")
    assert f'data-reference="{made["reference"]}"' in page
    assert "marketing opt out" in page


async def test_a_supervisor_can_release_a_chat_another_agent_left_holding(
    backend: LiveBackend, services: Services, alice: ConsoleClient
) -> None:
    sam_id = await add_agent(services, "sam", "supervisor")
    sam = ConsoleClient(backend.url)
    try:
        await sam.log_in("sam")
        es = await escalate(backend)
        await alice.get(f"/console/chats/{es}")
        await alice.post(f"/console/chats/{es}/take")
        _, page = await sam.get(f"/console/chats/{es}")
        assert 'id="hand-back"' in page
        assert 'id="send"' not in page  # releasing is not replying as someone else
        status, where = await sam.post(f"/console/chats/{es}/hand-back", {"resume": "menu"})
        assert (status, where) == (302, "/console/")
    finally:
        await sam.close()
    assert (await sent_to(services, "tg:42"))[-1] == ("agent_left", {"resume": "menu"})
    async with services.sessions() as session:
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "escalation.hand_back")
        )
    assert entry is not None
    assert entry.actor == f"agent:{sam_id}"
    assert json.loads(entry.data) == {"held_by": 1}


async def test_an_agent_cannot_hand_back_someone_elses_chat(
    backend: LiveBackend, services: Services, alice: ConsoleClient, bob: ConsoleClient
) -> None:
    es = await escalate(backend)
    await alice.get(f"/console/chats/{es}")
    await alice.post(f"/console/chats/{es}/take")
    _, page = await bob.get(f"/console/chats/{es}")
    assert 'id="hand-back"' not in page
    status, _ = await bob.post(f"/console/chats/{es}/hand-back", {"resume": "menu"})
    assert status == 403
    assert await say(backend, "tg:42", "still there?") is True


async def test_an_unknown_chat_gets_a_page_not_a_crash(alice: ConsoleClient) -> None:
    status, page = await alice.get("/console/chats/es_nosuchchat")
    assert status == 404
    assert "There is no such chat" in page


async def test_stopping_the_server_closes_open_live_sockets(
    backend: LiveBackend, services: Services
) -> None:
    from conftest import start_app

    from backend.api.app import create_app

    await add_agent(services, "carol")
    runner, url = await start_app(create_app(services))
    client = ConsoleClient(url)
    try:
        await client.log_in("carol")
        async with client.http.ws_connect(f"{url}/console/live") as ws:
            await runner.shutdown()
            message = await ws.receive(timeout=10)
            assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    finally:
        await client.close()
        await runner.cleanup()
