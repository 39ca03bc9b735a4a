"""Erasing a customer's chat history deletes the transcripts of their chats, and only theirs."""

from __future__ import annotations

from conftest import LiveBackend
from fakes.ledger import add_customers, customer, session_token

from backend import transcripts
from backend.services import Services


async def _say(backend: LiveBackend, chat: str, text: str) -> None:
    async with backend.client.post(
        backend.api(f"/api/v1/chats/{chat}/messages"), json={"direction": "in", "text": text}
    ) as resp:
        assert resp.status == 201


async def test_erasing_chat_history_deletes_the_customers_transcripts_only(
    backend: LiveBackend, services: Services
) -> None:
    await add_customers(services, customer("C-4001"), customer("C-4002", phone="+37120000042"))
    token = await session_token(services, "C-4001", chat="tg:1")
    async with backend.client.post(
        backend.api("/api/v1/escalations"),
        json={"chat": "tg:1", "reason": "asked", "locale": "en", "session_token": token},
    ) as resp:
        assert resp.status == 201
    await _say(backend, "tg:1", "mine")
    await _say(backend, "tg:2", "someone else's")

    await services.crm.erase("C-4001", frozenset({"chat_history"}), (), idempotency_key="DD-ERASE1")
    await services.crm.erase("C-4001", frozenset({"chat_history"}), (), idempotency_key="DD-ERASE1")

    async with services.sessions() as session:
        assert await transcripts.transcript(session, "tg:1") == []
        (kept,) = await transcripts.transcript(session, "tg:2")
    assert kept.text == "someone else's"
