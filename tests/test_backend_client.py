"""The bot's backend client against a stand-in speaking the HTTP contract on loopback.

Only the HTTP edge is replaced: the client, its session, its timeouts and the
action handlers run for real. Journeys against the real backend live in
``tests/test_conversation_*.py``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from conftest import start_app

from bot import backend_client
from bot.actions import ActionContext, run_action
from bot.backend_client import BackendClient, BackendRefused, BackendUnavailable, idempotency_key

TOKEN = "stand-in-service-token"


@dataclass
class StandIn:
    """Records each call and answers what the test queued for its path."""

    url: str
    calls: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    answers: dict[str, tuple[int, Any]] = field(default_factory=dict)
    hang: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def stand_in() -> AsyncIterator[StandIn]:
    """A loopback server answering every path from ``answers`` (404 when absent)."""
    holder: list[StandIn] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        box = holder[0]
        body = await request.json() if request.can_read_body else None
        box.calls.append((request.method, request.path_qs, dict(request.headers), body))
        status, data = box.answers.get(request.path, (404, {"error": {"code": "not_found"}}))
        if data == "hang":
            await box.hang.wait()
        if data is None:
            return web.Response(status=status)
        if isinstance(data, str):
            return web.Response(status=status, text=data)
        return web.json_response(data, status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner, url = await start_app(app)
    holder.append(StandIn(url=url))
    try:
        yield holder[0]
    finally:
        holder[0].hang.set()
        await runner.cleanup()


@pytest.fixture
async def client(stand_in: StandIn) -> AsyncIterator[BackendClient]:
    backend = BackendClient(stand_in.url, TOKEN, timeout=2)
    try:
        yield backend
    finally:
        await backend.close()


async def test_every_call_carries_the_service_token_and_a_session_when_verified(
    stand_in: StandIn, client: BackendClient
) -> None:
    stand_in.answers["/api/v1/me"] = (200, {"language": "lv", "phones": []})
    profile = await client.me("session-abc", chat="tg:7")
    method, path, headers, _ = stand_in.calls[0]
    assert (method, path) == ("GET", "/api/v1/me")
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["X-Customer-Session"] == "session-abc"
    assert headers["X-Customer-Chat"] == "tg:7"
    assert profile["language"] == "lv"


async def test_listing_requests_sends_the_chats_session(
    stand_in: StandIn, client: BackendClient
) -> None:
    stand_in.answers["/api/v1/requests"] = (200, {"requests": [{"reference": "DD-7K2Q9M"}]})
    assert await client.list_requests("session-abc", chat="tg:7") == [{"reference": "DD-7K2Q9M"}]
    _, _, headers, _ = stand_in.calls[0]
    assert headers["X-Customer-Session"] == "session-abc"
    assert headers["X-Customer-Chat"] == "tg:7"


async def test_listing_requests_without_a_session_asks_to_verify_and_calls_nothing(
    stand_in: StandIn, client: BackendClient
) -> None:
    ctx = ActionContext("tg:7", "en", {})
    assert await run_action(client, ctx, "list_requests", {}) == ("session_expired", {})
    assert stand_in.calls == []


async def test_a_submit_sends_its_idempotency_key_and_the_body_of_the_contract(
    stand_in: StandIn, client: BackendClient
) -> None:
    stand_in.answers["/api/v1/requests"] = (201, {"reference": "DD-7K2Q9M", "state": "queued"})
    key = idempotency_key("term:t", "s1", "marketing_opt_out", {"channels": ["all"]})
    answer = await client.submit_request(
        "s1",
        chat="term:t",
        kind="marketing_opt_out",
        locale="lv",
        payload={"channels": ["all"]},
        key=key,
    )
    _, _, headers, body = stand_in.calls[0]
    assert headers["Idempotency-Key"] == key
    assert headers["X-Customer-Chat"] == "term:t"
    assert body == {
        "kind": "marketing_opt_out",
        "chat": "term:t",
        "locale": "lv",
        "payload": {"channels": ["all"]},
    }
    assert answer["reference"] == "DD-7K2Q9M"


def test_the_same_confirmation_gives_the_same_key_and_another_payload_another() -> None:
    one = idempotency_key("tg:1", "session", "erasure", {"preview_id": "pv_1"})
    again = idempotency_key("tg:1", "session", "erasure", {"preview_id": "pv_1"})
    other = idempotency_key("tg:1", "session", "erasure", {"preview_id": "pv_2"})
    elsewhere = idempotency_key("tg:2", "session", "erasure", {"preview_id": "pv_1"})
    assert one == again
    assert len({one, other, elsewhere}) == 3


async def test_a_refusal_carries_the_stable_code_and_its_fields(
    stand_in: StandIn, client: BackendClient
) -> None:
    stand_in.answers["/api/v1/verifications"] = (
        422,
        {"error": {"code": "invalid", "message": "x", "fields": {"phone": "invalid_phone"}}},
    )
    with pytest.raises(BackendRefused) as caught:
        await client.start_verification("term:t", "12", locale="en")
    assert caught.value.code == "invalid"
    assert caught.value.fields == {"phone": "invalid_phone"}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_backend_that_is_down_makes_every_action_answer_error() -> None:
    backend = BackendClient(f"http://127.0.0.1:{_closed_port()}", TOKEN, timeout=2)
    ctx = ActionContext("term:t", "en", {"session_token": "s"})
    try:
        with pytest.raises(BackendUnavailable):
            await backend.list_requests("s", chat="term:t")
        for name, args in [
            ("start_verification", {"phone": "+37120000001"}),
            ("load_profile", {}),
            ("submit_request", {"kind": "marketing_opt_out", "payload": {"channels": ["all"]}}),
            ("list_requests", {}),
            ("escalate", {"reason": "asked"}),
            # Never heard where codes can go: the dialog offers both channels.
            ("verification_channels", {}),
        ]:
            outcome, _ = await run_action(backend, ctx, name, args)
            assert outcome == "error", name
    finally:
        await backend.close()


async def test_where_codes_can_go_costs_no_request_and_a_stale_answer_is_given_at_once(
    stand_in: StandIn, client: BackendClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    route = "/api/v1/verifications/channels"
    ctx = ActionContext("term:t", "en", {})
    stand_in.answers[route] = (200, {"channels": ["sms"]})
    await client.load_channels()
    asked = len(stand_in.calls)
    assert asked == 1
    # Mail is switched on; the answer heard is still fresh, so nothing is asked.
    stand_in.answers[route] = (200, {"channels": ["sms", "email"]})
    for _ in range(3):
        assert await run_action(client, ctx, "verification_channels", {}) == (
            "ok",
            {"email_codes": False},
        )
    assert len(stand_in.calls) == asked
    # Once stale, the last answer is still given at once and the new one asked behind it.
    monkeypatch.setattr(backend_client, "CHANNELS_FRESH_FOR", 0.0)
    first = await run_action(client, ctx, "verification_channels", {})
    assert first == ("ok", {"email_codes": False})
    monkeypatch.setattr(backend_client, "CHANNELS_FRESH_FOR", 60.0)
    await client.load_channels()  # waits for the refresh under way
    assert await run_action(client, ctx, "verification_channels", {}) == (
        "ok",
        {"email_codes": True},
    )
    assert {(method, path) for method, path, _, _ in stand_in.calls} == {("GET", route)}


async def test_a_backend_that_does_not_answer_in_time_is_unavailable(stand_in: StandIn) -> None:
    stand_in.answers["/api/v1/requests"] = (200, "hang")
    backend = BackendClient(stand_in.url, TOKEN, timeout=0.2)
    try:
        with pytest.raises(BackendUnavailable):
            await backend.list_requests("s", chat="term:t")
    finally:
        await backend.close()


async def test_a_server_error_or_a_page_that_is_not_json_is_unavailable(
    stand_in: StandIn, client: BackendClient
) -> None:
    stand_in.answers["/api/v1/requests"] = (500, {"error": {"code": "internal_error"}})
    with pytest.raises(BackendUnavailable):
        await client.list_requests("s", chat="term:t")
    stand_in.answers["/api/v1/requests"] = (200, "<html>proxy error</html>")
    with pytest.raises(BackendUnavailable):
        await client.list_requests("s", chat="term:t")


async def test_a_wrong_code_answers_the_attempts_left_and_keeps_no_session(
    stand_in: StandIn, client: BackendClient
) -> None:
    stand_in.answers["/api/v1/verifications/vf_1/check"] = (
        422,
        {"error": {"code": "wrong_code", "message": "x", "attempts_left": 3}},
    )
    ctx = ActionContext("term:t", "en", {"verification_id": "vf_1"})
    assert await run_action(client, ctx, "check_code", {"code": "111 111"}) == (
        "wrong_code",
        {"attempts_left": 3},
    )
    assert stand_in.calls[0][3] == {"code": "111111"}
    assert "session_token" not in ctx.memory


async def test_a_lockout_says_when_to_retry_and_to_offer_an_agent(
    stand_in: StandIn, client: BackendClient
) -> None:
    stand_in.answers["/api/v1/verifications"] = (
        429,
        {"error": {"code": "locked_out", "message": "x", "retry_after": 1800, "offer_agent": True}},
    )
    ctx = ActionContext("term:t", "en")
    outcome, data = await run_action(client, ctx, "start_verification", {"phone": "+37120000001"})
    assert outcome == "locked_out"
    assert data == {"retry_after": 1800, "offer_agent": True}


async def test_an_expired_session_is_forgotten_and_said(
    stand_in: StandIn, client: BackendClient
) -> None:
    stand_in.answers["/api/v1/erasure-preview"] = (
        401,
        {"error": {"code": "session_expired", "message": "x"}},
    )
    ctx = ActionContext("term:t", "en", {"session_token": "old", "verified": True})
    assert await run_action(client, ctx, "preview_erasure", {"scope": ["all"]}) == (
        "session_expired",
        {},
    )
    assert ctx.session_token is None


async def test_a_shared_contact_is_reported_as_vouched_for(
    stand_in: StandIn, client: BackendClient
) -> None:
    stand_in.answers["/api/v1/verifications"] = (
        202,
        {"verification_id": "vf_9", "channel": "sms", "expires_in": 300, "resend_after": 30},
    )
    ctx = ActionContext("tg:5", "ru", shared_phone="37120000001")
    outcome, _ = await run_action(client, ctx, "start_verification", {"phone": "+37120000001"})
    assert outcome == "sent"
    assert stand_in.calls[0][3]["shared_contact"] is True
    assert ctx.memory["verification_id"] == "vf_9"


async def test_notifications_are_polled_by_prefix_and_acknowledged(
    stand_in: StandIn, client: BackendClient
) -> None:
    stand_in.answers["/api/v1/notifications"] = (
        200,
        {"notifications": [{"id": 3, "chat": "term:a", "type": "agent_left"}]},
    )
    stand_in.answers["/api/v1/notifications/ack"] = (204, None)
    found = await client.poll_notifications(prefix="term:", wait=0)
    await client.ack_notifications([3])
    assert [n["id"] for n in found] == [3]
    assert "prefix=term:" in stand_in.calls[0][1]
    assert stand_in.calls[1][3] == {"ids": [3]}
