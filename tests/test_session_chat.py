"""A customer session belongs to the chat it was issued in.

The same token sent for another chat (another ``X-Customer-Chat``, or a
request filed for another chat) is refused like an expired one, and listing
a chat's requests needs that chat's session, not only the service token.
"""

from __future__ import annotations

from typing import Any

import pytest
from fakes.verification_world import ANNA, ANNA_REF, DMITRY, World, world
from sqlalchemy import func, select

from backend.models.console import Escalation
from backend.models.ledger import Request

__all__ = ["world"]

OPT_OUT = {"kind": "marketing_opt_out", "locale": "lv", "payload": {"channels": ["sms"]}}


async def call(
    world: World, method: str, path: str, token: str | None, chat: str | None, body: Any = None
) -> tuple[int, dict[str, Any]]:
    """One API call with the service token, and the session and chat headers when given."""
    headers = {"Idempotency-Key": "k-1"}
    if token is not None:
        headers["X-Customer-Session"] = token
    if chat is not None:
        headers["X-Customer-Chat"] = chat
    async with world.backend.client.request(
        method, world.backend.api(path), json=body, headers=headers
    ) as resp:
        return resp.status, await resp.json()


async def stored_requests(world: World) -> int:
    async with world.services.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Request)) or 0)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/me", None),
        ("POST", "/api/v1/erasure-preview", {"scope": ["marketing"]}),
        ("POST", "/api/v1/contact-proofs", {"kind": "phone", "value": "+37129999999"}),
        ("POST", "/api/v1/requests", {**OPT_OUT, "chat": "tg:2"}),
    ],
)
async def test_a_session_sent_for_another_chat_is_refused_as_expired(
    world: World, method: str, path: str, body: Any
) -> None:
    token = await world.verify(ANNA, chat="tg:1")
    for chat in ("tg:2", None):
        status, answer = await call(world, method, path, token, chat, body)
        assert (status, answer["error"]["code"]) == (401, "session_expired"), chat
    assert await stored_requests(world) == 0
    assert world.sink.codes_for("+37129999999") == []


async def test_the_session_works_in_its_own_chat(world: World) -> None:
    token = await world.verify(ANNA, chat="tg:1")
    status, _ = await call(world, "GET", "/api/v1/me", token, "tg:1")
    assert status == 200
    status, answer = await call(
        world, "POST", "/api/v1/requests", token, "tg:1", {**OPT_OUT, "chat": "tg:1"}
    )
    assert status == 201, answer


async def test_a_request_filed_for_another_chat_than_the_sessions_is_refused(
    world: World,
) -> None:
    token = await world.verify(ANNA, chat="tg:1")
    body = {**OPT_OUT, "chat": "tg:2"}
    status, answer = await call(world, "POST", "/api/v1/requests", token, "tg:1", body)
    assert (status, answer["error"]["code"]) == (401, "session_expired")
    assert await stored_requests(world) == 0


async def file_erasure(world: World, token: str, chat: str) -> str:
    """An erasure of marketing data filed from ``chat`` (it stays open: queued); its reference."""
    status, preview = await call(
        world, "POST", "/api/v1/erasure-preview", token, chat, {"scope": ["marketing"]}
    )
    assert status == 201, preview
    body = {"kind": "erasure", "chat": chat, "locale": "lv"}
    body["payload"] = {"preview_id": preview["preview_id"]}
    status, submitted = await call(world, "POST", "/api/v1/requests", token, chat, body)
    assert (status, submitted["state"]) == (201, "queued"), submitted
    return str(submitted["reference"])


async def test_listing_a_chats_requests_needs_that_chats_session(world: World) -> None:
    token = await world.verify(ANNA, chat="tg:1")
    reference = await file_erasure(world, token, "tg:1")
    other = await world.verify(DMITRY, chat="tg:2")
    for session in (None, other, "made-up"):
        status, answer = await call(world, "GET", "/api/v1/requests?chat=tg:1", session, None)
        assert (status, answer["error"]["code"]) == (401, "session_expired")
    status, answer = await call(world, "GET", "/api/v1/requests?chat=tg:1", token, None)
    assert status == 200
    assert [r["reference"] for r in answer["requests"]] == [reference]


async def test_the_list_shows_only_the_verified_customers_requests_not_the_chats_earlier_ones(
    world: World,
) -> None:
    anna = await world.verify(ANNA, chat="tg:1")
    reference = await file_erasure(world, anna, "tg:1")
    # Someone else verifies in the same chat later: Anna's request is not theirs to see.
    dmitry = await world.verify(DMITRY, chat="tg:1")
    status, answer = await call(world, "GET", "/api/v1/requests?chat=tg:1", dmitry, None)
    assert (status, answer["requests"]) == (200, [])
    status, answer = await call(world, "GET", "/api/v1/requests?chat=tg:1", anna, None)
    assert [r["reference"] for r in answer["requests"]] == [reference]


async def test_an_escalation_with_another_chats_session_is_not_verified(world: World) -> None:
    token = await world.verify(ANNA, chat="tg:1")
    body = {"chat": "tg:2", "reason": "asked", "locale": "lv", "session_token": token}
    status, _ = await call(world, "POST", "/api/v1/escalations", None, None, body)
    assert status == 201
    body = {**body, "chat": "tg:1"}
    status, _ = await call(world, "POST", "/api/v1/escalations", None, None, body)
    assert status == 201
    async with world.services.sessions() as session:
        rows = (await session.scalars(select(Escalation).order_by(Escalation.chat))).all()
    assert [(e.chat, e.customer_ref) for e in rows] == [("tg:1", ANNA_REF), ("tg:2", None)]
