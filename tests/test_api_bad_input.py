"""Input that used to answer 500 now gets a 4xx with a stable code, and nothing is stored.

Each case came from issue 9: bodies nested 20,000 levels deep, integers of
4,301 digits, lone surrogates, NUL and ESC in a chat id, ids past the id
columns' range, bytes that are not UTF-8 in headers, a code that is not six
digits, a huge ``after=`` on the console's live socket. Every test runs on
SQLite and on PostgreSQL, where the 32-bit id columns and the refusal of NUL
made more of them fail.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from conftest import SERVICE_TOKEN, LiveBackend
from fakes.console import ConsoleClient, add_agent
from fakes.ledger import add_customers, customer, session_token
from fakes.verification_world import ANNA, World, world
from sqlalchemy import func, select

from backend.models.console import TranscriptEntry
from backend.models.ledger import Request

__all__ = ["world"]

ADDRESS = {"line1": "Elizabetes iela 2", "city": "Rīga", "postcode": "LV-1010", "country": "LV"}


async def post_raw(
    backend: LiveBackend, path: str, body: str | bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """POST ``body`` exactly as given (JSON escapes such as ``\\ud800`` stay escapes)."""
    async with backend.client.post(
        backend.api(path),
        data=body.encode() if isinstance(body, str) else body,
        headers={"Content-Type": "application/json", **(headers or {})},
    ) as resp:
        return resp.status, await resp.json()


async def raw_http(backend: LiveBackend, head: bytes, body: bytes = b"") -> tuple[int, Any]:
    """Send a hand-written request (clients refuse to send bytes that are not UTF-8 in headers)."""
    host, port = backend.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    length = f"Content-Length: {len(body)}\r\n".encode() if body else b""
    writer.write(head + length + b"Host: test\r\nConnection: close\r\n\r\n" + body)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.split(b"\r\n\r\n", 1)[1])


async def count(backend: LiveBackend, model: Any) -> int:
    async with backend.services.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
async def token(backend: LiveBackend) -> str:
    """A verified session of customer C-1."""
    await add_customers(backend.services, customer("C-1"))
    return await session_token(backend.services, "C-1")


def request_body(chat: str = "tg:1", **payload: Any) -> str:
    return json.dumps(
        {
            "kind": "marketing_opt_out",
            "chat": chat,
            "locale": "en",
            "payload": payload or {"channels": ["all"]},
        }
    )


async def test_a_body_nested_20000_levels_deep_is_malformed_json(backend: LiveBackend) -> None:
    deep = "[" * 20000 + "]" * 20000
    status, body = await post_raw(backend, "/api/v1/notifications/ack", '{"ids": ' + deep + "}")
    assert (status, body["error"]["code"]) == (400, "malformed_json")
    assert "nests deeper than 32 levels" in body["error"]["message"]
    # Deep enough to be refused, shallow enough for the parser: the same answer.
    status, body = await post_raw(
        backend, "/api/v1/escalations", '{"chat": ' + "[" * 40 + "]" * 40 + "}"
    )
    assert (status, body["error"]["code"]) == (400, "malformed_json")


async def test_an_integer_of_4301_digits_is_malformed_json(backend: LiveBackend) -> None:
    status, body = await post_raw(
        backend, "/api/v1/notifications/ack", '{"ids": [' + "9" * 4301 + "]}"
    )
    assert (status, body["error"]["code"]) == (400, "malformed_json")
    assert "more than 64 digits" in body["error"]["message"]


async def test_nan_and_infinity_are_not_json_numbers(backend: LiveBackend) -> None:
    for constant in ("NaN", "Infinity", "-Infinity"):
        status, body = await post_raw(
            backend, "/api/v1/notifications/ack", '{"ids": [' + constant + "]}"
        )
        assert (status, body["error"]["code"]) == (400, "malformed_json"), constant


async def test_a_lone_surrogate_in_the_chat_of_a_request_is_invalid_text_and_nothing_is_stored(
    backend: LiveBackend, token: str
) -> None:
    status, body = await post_raw(
        backend,
        "/api/v1/requests",
        request_body(chat="tg:\ud800"),
        {"X-Customer-Session": token, "X-Customer-Chat": "tg:42", "Idempotency-Key": "k1"},
    )
    assert (status, body["error"]["fields"]) == (422, {"chat": "invalid_text"})
    assert await count(backend, Request) == 0


async def test_a_lone_surrogate_in_an_address_line_is_invalid_text_and_nothing_is_stored(
    backend: LiveBackend, token: str
) -> None:
    address = json.dumps(ADDRESS).replace("Elizabetes", "Eliz\\ud800abetes")
    raw = request_body().replace(
        '{"channels": ["all"]}', '{"field": "address", "address": ' + address + "}"
    )
    raw = raw.replace("marketing_opt_out", "update_contact")
    status, body = await post_raw(
        backend,
        "/api/v1/requests",
        raw,
        {"X-Customer-Session": token, "X-Customer-Chat": "tg:42", "Idempotency-Key": "k2"},
    )
    assert status == 422
    assert body["error"]["fields"] == {"payload.address.line1": "invalid_text"}
    assert await count(backend, Request) == 0


async def test_a_lone_surrogate_in_transcript_text_is_invalid_text_and_nothing_is_stored(
    backend: LiveBackend,
) -> None:
    status, body = await post_raw(
        backend, "/api/v1/chats/tg:1/messages", '{"direction": "in", "text": "Olga \\udfff here"}'
    )
    assert (status, body["error"]["fields"]) == (422, {"text": "invalid_text"})
    assert await count(backend, TranscriptEntry) == 0


async def test_nul_in_any_text_is_invalid_text_on_both_databases(backend: LiveBackend) -> None:
    status, body = await post_raw(
        backend, "/api/v1/chats/tg:1/messages", '{"direction": "in", "text": "a\\u0000b"}'
    )
    assert (status, body["error"]["fields"]) == (422, {"text": "invalid_text"})
    status, body = await post_raw(
        backend,
        "/api/v1/escalations",
        '{"chat": "tg:1", "reason": "asked", "locale": "en", "session_token": "x\\u0000"}',
    )
    assert (status, body["error"]["fields"]) == (422, {"session_token": "invalid_text"})
    assert await count(backend, TranscriptEntry) == 0


async def test_the_chat_of_a_request_refuses_control_characters_like_the_other_chat_fields(
    backend: LiveBackend, token: str
) -> None:
    headers = {"X-Customer-Session": token, "X-Customer-Chat": "tg:42", "Idempotency-Key": "k3"}
    status, body = await post_raw(
        backend, "/api/v1/requests", request_body(chat="tg:\x1b[31m"), headers
    )
    assert (status, body["error"]["fields"]) == (422, {"chat": "invalid_chat"})
    status, body = await post_raw(
        backend,
        "/api/v1/escalations",
        json.dumps({"chat": "tg:\x1b[31m", "reason": "asked", "locale": "en"}),
    )
    assert (status, body["error"]["fields"]) == (422, {"chat": "invalid_chat"})
    async with backend.client.get(
        backend.api("/api/v1/requests"), params={"chat": "tg:\x1b"}
    ) as resp:
        assert (resp.status, (await resp.json())["error"]["fields"]) == (
            422,
            {"chat": "invalid_chat"},
        )
    assert await count(backend, Request) == 0


@pytest.mark.parametrize("bad", [2**31, 2**63, 2**64, 0, -1])
async def test_acknowledging_an_id_outside_the_id_columns_is_invalid_ids(
    backend: LiveBackend, bad: int
) -> None:
    status, body = await post_raw(
        backend, "/api/v1/notifications/ack", json.dumps({"ids": [1, bad]})
    )
    assert (status, body["error"]["fields"]) == (422, {"ids": "invalid_ids"})


async def test_the_largest_id_the_columns_hold_is_acknowledged(backend: LiveBackend) -> None:
    async with backend.client.post(
        backend.api("/api/v1/notifications/ack"), json={"ids": [2**31 - 1]}
    ) as resp:
        assert resp.status == 204


async def test_a_url_with_nul_is_malformed_url_on_every_route(backend: LiveBackend) -> None:
    for path in (
        "/api/v1/notifications?prefix=tg%00",
        "/api/v1/requests?chat=tg%00",
        "/api/v1/verifications/vf_%00/check",
        "/console/chats/es_%00",
    ):
        async with backend.client.get(backend.api(path)) as resp:
            assert resp.status == 400, path
            assert (await resp.json())["error"]["code"] == "malformed_url", path


async def test_header_bytes_that_are_not_utf8_answer_401_and_422_not_500(
    backend: LiveBackend, token: str
) -> None:
    status, body = await raw_http(
        backend, b"GET /api/v1/me HTTP/1.1\r\nAuthorization: Bearer \xff\xfe\r\n"
    )
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    auth = b"Authorization: Bearer " + SERVICE_TOKEN.encode() + b"\r\n"
    status, body = await raw_http(
        backend, b"GET /api/v1/me HTTP/1.1\r\n" + auth + b"X-Customer-Session: \xc3\x28\r\n"
    )
    assert (status, body["error"]["code"]) == (401, "session_expired")
    status, body = await raw_http(
        backend,
        b"POST /api/v1/requests HTTP/1.1\r\n"
        + auth
        + b"X-Customer-Session: "
        + token.encode()
        + b"\r\nX-Customer-Chat: tg:42"
        + b"\r\nIdempotency-Key: k\xff\r\n",
        request_body().encode(),
    )
    assert (status, body["error"]["fields"]) == (422, {"idempotency_key": "invalid_text"})
    assert await count(backend, Request) == 0


async def test_a_console_session_cookie_that_is_not_utf8_is_no_session_not_a_500(
    backend: LiveBackend,
) -> None:
    status, body = await raw_http(
        backend,
        b"GET /console/live HTTP/1.1\r\nCookie: datadesk_console=\xff\xfe\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\n",
    )
    assert (status, body["error"]["code"]) == (401, "no_session")


async def test_a_code_that_is_not_six_digits_is_invalid_code_and_spends_no_attempt(
    world: World,
) -> None:
    _, started = await world.start(ANNA)
    vid = started["verification_id"]
    code = await world.code_for(ANNA)
    for typed in ("12345", "1234567", "abcdef", "12345x", "١٢٣٤٥٦", "", 123456, None):
        status, body = await world.check(vid, typed)  # type: ignore[arg-type]
        assert (status, body["error"]["fields"]) == (422, {"code": "invalid_code"}), typed
    wrong = "000000" if code != "000000" else "111111"
    status, body = await world.check(vid, wrong)
    assert (status, body["error"]["attempts_left"]) == (422, 4)
    # Spaces and dashes between the digits are how people type codes: still a code.
    status, _ = await world.check(vid, f"{code[:3]}-{code[3:]}")
    assert status == 200


async def test_a_huge_after_on_the_live_socket_is_refused_before_the_upgrade(
    backend: LiveBackend,
) -> None:
    await add_agent(backend.services, "alice")
    alice = ConsoleClient(backend.url)
    try:
        await alice.log_in("alice")
        for after, code in (
            (str(2**63), "out_of_range"),
            ("9" * 5000, "out_of_range"),
            ("-1", "out_of_range"),
            ("1.5", "invalid_number"),
            ("soon", "invalid_number"),
        ):
            async with alice.http.get(
                f"{backend.url}/console/live",
                params={"after": after},
                headers={"Upgrade": "websocket", "Connection": "Upgrade"},
            ) as resp:
                assert resp.status == 422, after[:20]
                assert (await resp.json())["error"]["fields"] == {"after": code}, after[:20]
        async with alice.http.ws_connect(f"{backend.url}/console/live?after={2**31 - 1}") as ws:
            await ws.close()
    finally:
        await alice.close()


async def test_optional_verification_fields_sent_with_a_value_they_cannot_take_are_refused(
    world: World,
) -> None:
    status, body = await world.call(
        "POST",
        "/api/v1/verifications",
        {"chat": "tg:1", "phone": ANNA, "locale": "xx", "channel": None, "shared_contact": "yes"},
    )
    assert status == 422
    assert body["error"]["fields"] == {
        "locale": "invalid_locale",
        "channel": "invalid_channel",
        "shared_contact": "invalid_bool",
    }
    status, started = await world.call(
        "POST", "/api/v1/verifications", {"chat": "tg:1", "phone": ANNA}
    )
    assert status == 202
    status, body = await world.call(
        "POST", f"/api/v1/verifications/{started['verification_id']}/resend", {"locale": None}
    )
    assert (status, body["error"]["fields"]) == (422, {"locale": "invalid_locale"})
