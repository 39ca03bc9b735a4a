"""The bot's side of agent hand-over, through the real HTTP API on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import LiveBackend
from sqlalchemy import select

from backend import escalations, transcripts
from backend.errors import Conflict
from backend.models.audit import AuditEntry
from backend.models.console import Agent, TranscriptEntry
from backend.models.ledger import Notification
from backend.services import Services
from common.clock import FakeClock

ESCALATE = {"chat": "tg:42", "reason": "asked", "locale": "lv", "verified": False}


async def _post(backend: LiveBackend, path: str, body: Any) -> tuple[int, Any]:
    async with backend.client.post(backend.api(path), json=body) as resp:
        return resp.status, await resp.json()


async def _agent(services: Services, name: str = "alice") -> int:
    async with services.sessions() as session, session.begin():
        agent = Agent(
            name=name,
            password_hash="x",
            role="agent",
            active=True,
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
        session.add(agent)
        await session.flush()
        return agent.id


async def _notifications(services: Services, chat: str) -> list[Notification]:
    async with services.sessions() as session:
        rows = await session.scalars(
            select(Notification).where(Notification.chat == chat).order_by(Notification.id)
        )
        return list(rows)


async def test_an_escalation_is_opened_once_and_then_returned_as_it_is(
    backend: LiveBackend,
) -> None:
    status, first = await _post(backend, "/api/v1/escalations", ESCALATE)
    assert status == 201
    assert first["state"] == "waiting"
    assert first["escalation_id"].startswith("es_")
    status, again = await _post(backend, "/api/v1/escalations", {**ESCALATE, "reason": "asked"})
    assert status == 200
    assert again == first


async def _reason(services: Services, chat: str) -> str | None:
    async with services.sessions() as session:
        row = await escalations.open_for_chat(session, chat)
        return None if row is None else row.reason


async def test_a_later_explicit_request_for_a_person_becomes_the_reason(
    backend: LiveBackend, services: Services
) -> None:
    await _post(backend, "/api/v1/escalations", {**ESCALATE, "reason": "lockout"})
    assert await _reason(services, "tg:42") == "lockout"
    status, _ = await _post(backend, "/api/v1/escalations", {**ESCALATE, "reason": "asked"})
    assert status == 200
    assert await _reason(services, "tg:42") == "asked"
    async with services.sessions() as session:
        actions = list(await session.scalars(select(AuditEntry.action)))
    assert "escalation.reason" in actions


async def test_a_customer_who_stops_waiting_leaves_the_agents_queue(
    backend: LiveBackend, services: Services
) -> None:
    await _post(backend, "/api/v1/escalations", ESCALATE)
    status, body = await _post(backend, "/api/v1/escalations/withdraw", {"chat": "tg:42"})
    assert (status, body) == (200, {"withdrawn": True})
    assert await _reason(services, "tg:42") is None
    assert await _notifications(services, "tg:42") == []
    status, again = await _post(backend, "/api/v1/escalations/withdraw", {"chat": "tg:42"})
    assert (status, again) == (200, {"withdrawn": False})
    status, reopened = await _post(backend, "/api/v1/escalations", ESCALATE)
    assert (status, reopened["state"]) == (201, "waiting")


async def test_stopping_waiting_leaves_a_chat_an_agent_took_with_the_agent(
    backend: LiveBackend, services: Services, clock: FakeClock
) -> None:
    _, opened = await _post(backend, "/api/v1/escalations", ESCALATE)
    agent = await _agent(services)
    async with services.sessions() as session, session.begin():
        await escalations.take_over(
            session, opened["escalation_id"], agent_id=agent, at=clock.now()
        )
    status, body = await _post(backend, "/api/v1/escalations/withdraw", {"chat": "tg:42"})
    assert (status, body) == (200, {"withdrawn": False})
    assert await _reason(services, "tg:42") == "asked"


async def test_a_withdrawal_without_a_chat_is_refused(backend: LiveBackend) -> None:
    status, body = await _post(backend, "/api/v1/escalations/withdraw", {"chat": ""})
    assert status == 422
    assert body["error"]["fields"] == {"chat": "invalid_chat"}


async def test_a_bad_escalation_names_every_wrong_field(backend: LiveBackend) -> None:
    status, body = await _post(
        backend, "/api/v1/escalations", {"chat": "", "reason": "bored", "locale": "de"}
    )
    assert status == 422
    assert body["error"]["fields"] == {
        "chat": "invalid_chat",
        "reason": "invalid_reason",
        "locale": "invalid_locale",
    }


async def test_escalations_need_the_service_token(backend: LiveBackend) -> None:
    async with backend.client.post(
        backend.api("/api/v1/escalations"), json=ESCALATE, headers={"Authorization": "Bearer no"}
    ) as resp:
        assert resp.status == 401


async def test_the_transcript_is_masked_again_by_the_backend(
    backend: LiveBackend, services: Services
) -> None:
    text = "card 4111 1111 1111 1111, mail anna@example.lv, call +37120000001, IBAN LV80BANK0000435195001"
    status, body = await _post(
        backend, "/api/v1/chats/tg:42/messages", {"direction": "in", "text": text}
    )
    assert status == 201
    assert body == {"agent_active": False}
    async with services.sessions() as session:
        (stored,) = await transcripts.transcript(session, "tg:42")
    assert "4111 1111 1111 1111" not in stored.text
    assert "411111" in stored.text
    assert "1111" in stored.text
    assert "anna@" not in stored.text
    assert "a•••@example.lv" in stored.text
    assert "20000001" not in stored.text
    assert "+371 2" in stored.text
    assert "435195001" not in stored.text
    assert "LV80 •••• 5001" in stored.text


async def test_the_transcript_is_encrypted_at_rest(
    backend: LiveBackend, services: Services
) -> None:
    await _post(backend, "/api/v1/chats/tg:7/messages", {"direction": "out", "text": "Sveiki!"})
    async with services.engine.connect() as conn:
        raw = (await conn.exec_driver_sql("SELECT text FROM transcript_entries")).scalar_one()
    assert "Sveiki" not in raw


async def test_a_message_with_a_bad_direction_or_no_text_is_refused(backend: LiveBackend) -> None:
    status, body = await _post(
        backend, "/api/v1/chats/tg:42/messages", {"direction": "sideways", "text": " "}
    )
    assert status == 422
    assert body["error"]["fields"] == {"direction": "invalid_direction", "text": "empty"}


async def test_while_an_agent_holds_the_chat_the_bot_is_told_to_stay_quiet(
    backend: LiveBackend, services: Services, clock: FakeClock
) -> None:
    _, opened = await _post(backend, "/api/v1/escalations", ESCALATE)
    agent = await _agent(services)
    async with services.sessions() as session, session.begin():
        await escalations.take_over(
            session, opened["escalation_id"], agent_id=agent, at=clock.now()
        )
    _, body = await _post(
        backend, "/api/v1/chats/tg:42/messages", {"direction": "in", "text": "hi"}
    )
    assert body == {"agent_active": True}
    _, other = await _post(
        backend, "/api/v1/chats/tg:43/messages", {"direction": "in", "text": "hi"}
    )
    assert other == {"agent_active": False}
    (joined,) = await _notifications(services, "tg:42")
    assert (joined.type, joined.locale) == ("agent_joined", "lv")


async def test_reply_and_hand_back_reach_the_customer_in_order(
    backend: LiveBackend, services: Services, clock: FakeClock
) -> None:
    _, opened = await _post(backend, "/api/v1/escalations", ESCALATE)
    es = opened["escalation_id"]
    agent = await _agent(services)
    async with services.sessions() as session, session.begin():
        await escalations.take_over(session, es, agent_id=agent, at=clock.now())
        await escalations.reply(session, es, agent_id=agent, text="Labdien!", at=clock.now())
        await escalations.hand_back(session, es, agent_id=agent, resume="menu", at=clock.now())
    sent = await _notifications(services, "tg:42")
    assert [n.type for n in sent] == ["agent_joined", "agent_message", "agent_left"]
    assert json.loads(sent[1].details or "{}") == {"text": "Labdien!"}
    assert json.loads(sent[2].details or "{}") == {"resume": "menu"}
    _, body = await _post(backend, "/api/v1/chats/tg:42/messages", {"direction": "in", "text": "x"})
    assert body == {"agent_active": False}
    # A new request for an agent after the hand-back opens a fresh escalation.
    status, fresh = await _post(backend, "/api/v1/escalations", ESCALATE)
    assert status == 201
    assert fresh["escalation_id"] != es
    async with services.sessions() as session:
        actions = list(await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
        kinds = list(await session.scalars(select(TranscriptEntry.direction)))
    assert actions == [
        "escalation.open",
        "escalation.take",
        "escalation.reply",
        "escalation.hand_back",
        "escalation.open",
    ]
    assert kinds == ["agent", "in"]


async def test_two_agents_taking_the_same_chat_at_once_get_it_once(
    backend: LiveBackend, services: Services, clock: FakeClock
) -> None:
    _, opened = await _post(backend, "/api/v1/escalations", ESCALATE)
    agents = [await _agent(services, "alice"), await _agent(services, "bob")]

    async def attempt(agent: int) -> bool:
        async with services.sessions() as session, session.begin():
            return await escalations.take(
                session, opened["escalation_id"], agent_id=agent, at=clock.now()
            )

    for _ in range(3):
        results = await asyncio.gather(*(attempt(a) for a in agents))
        assert sorted(results) == [False, True]
        async with services.sessions() as session, session.begin():
            row = await escalations.get(session, opened["escalation_id"])
            assert row.taken_by == agents[results.index(True)]
            row.state, row.taken_by = "waiting", None


async def test_a_late_take_over_is_refused_and_tells_the_customer_nothing(
    backend: LiveBackend, services: Services, clock: FakeClock
) -> None:
    _, opened = await _post(backend, "/api/v1/escalations", ESCALATE)
    first, second = await _agent(services, "alice"), await _agent(services, "bob")
    async with services.sessions() as session, session.begin():
        await escalations.take_over(
            session, opened["escalation_id"], agent_id=first, at=clock.now()
        )
    async with services.sessions() as session, session.begin():
        with pytest.raises(Conflict) as refused:
            await escalations.take_over(
                session, opened["escalation_id"], agent_id=second, at=clock.now()
            )
    assert refused.value.code == "already_taken"
    assert [n.type for n in await _notifications(services, "tg:42")] == ["agent_joined"]


async def test_an_agent_reply_after_an_acknowledged_one_gets_a_new_notification_id(
    backend: LiveBackend, services: Services, clock: FakeClock
) -> None:
    _, opened = await _post(backend, "/api/v1/escalations", ESCALATE)
    es = opened["escalation_id"]
    agent = await _agent(services)
    async with services.sessions() as session, session.begin():
        await escalations.take_over(session, es, agent_id=agent, at=clock.now())
    async with backend.client.get(backend.api("/api/v1/notifications?wait=0")) as resp:
        (joined,) = (await resp.json())["notifications"]
    async with backend.client.post(
        backend.api("/api/v1/notifications/ack"), json={"ids": [joined["id"]]}
    ) as resp:
        assert resp.status == 204
    async with services.sessions() as session, session.begin():
        await escalations.reply(session, es, agent_id=agent, text="Sveiki", at=clock.now())
    async with backend.client.get(backend.api("/api/v1/notifications?wait=0")) as resp:
        (message,) = (await resp.json())["notifications"]
    # The bot shows each id once: a reused id would be dropped as already shown.
    assert message["id"] != joined["id"]
    assert message["details"] == {"text": "Sveiki"}


async def test_the_api_description_names_the_hand_over_routes(backend: LiveBackend) -> None:
    import yaml

    async with backend.client.get(backend.api("/api/v1/openapi.yaml")) as resp:
        document = yaml.safe_load(await resp.text())
    assert "/api/v1/escalations" in document["paths"]
    assert "/api/v1/chats/{chat}/messages" in document["paths"]


async def test_a_long_transcript_opens_at_its_newest_lines(
    backend: LiveBackend, services: Services, clock: FakeClock
) -> None:
    async with services.sessions() as session, session.begin():
        for n in range(12):
            await transcripts.record_message(
                session, chat="tg:5", direction="in", text=f"line {n}", at=clock.now()
            )
    async with services.sessions() as session:
        newest = await transcripts.transcript(session, "tg:5", limit=5)
        later = await transcripts.transcript(session, "tg:5", after=newest[0].id, limit=2)
    assert [e.text for e in newest] == [f"line {n}" for n in range(7, 12)]
    assert [e.text for e in later] == ["line 8", "line 9"]


@pytest.mark.parametrize(
    ("said", "stored"),
    [
        ("kept until 2029-06-30 (5 years)", "kept until 2029-06-30 (5 years)"),
        ("līdz 30.06.2029. gadam", "līdz 30.06.2029. gadam"),
        ("ref DD-7K2Q9M, 12.50 EUR", "ref DD-7K2Q9M, 12.50 EUR"),
        ("card 4111-1111-1111-1111", "card 411111••••••1111"),
        ("call +371 2000 0001 now", "call +371 2•••••01 now"),
    ],
)
def test_server_side_masking_keeps_dates_references_and_amounts(said: str, stored: str) -> None:
    assert transcripts.mask_personal_data(said) == stored
