"""The bot's Bot API client (``bot.telegram.transport``) against a Bot API server on loopback.

python-telegram-bot's ``Bot`` makes the calls, as in the product: what the
server receives is what Telegram would, and a server that is down, slow or
saturated gives the errors python-telegram-bot (and ``bot.telegram.retries``)
know how to handle.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from fakes.loopback import serve
from telegram import Bot
from telegram.error import NetworkError, TimedOut

from bot.telegram.transport import AiohttpRequest
from common.logs import render_exception

TOKEN = "123456:transport-test"


class BotApi:
    """A Bot API that records each call's method and fields; ``hold`` keeps calls waiting."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.hold = asyncio.Event()
        self.hold.set()
        self.sent = asyncio.Event()  # a sendMessage arrived
        self.url = ""

    async def _call(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        fields: dict[str, Any] = {}
        if request.content_type.startswith("multipart/"):
            async for part in await request.multipart():
                fields[part.name or ""] = (
                    (part.filename, part.headers.get("Content-Type"), await part.read())
                    if part.filename
                    else await part.text()
                )
        else:
            fields = dict(await request.post())
        self.calls.append((method, fields))
        if method == "sendMessage":
            self.sent.set()
        await self.hold.wait()
        chat = {"id": 42, "type": "private"}
        result: Any = True
        if method == "getMe":
            result = {"id": 1, "is_bot": True, "first_name": "datadesk", "username": "dd_bot"}
        if method in {"sendMessage", "sendDocument"}:
            result = {"message_id": len(self.calls), "date": 0, "chat": chat}
            if method == "sendMessage":
                result["text"] = fields.get("text", "")
            else:
                result["document"] = {"file_id": "f", "file_unique_id": "u"}
        return web.json_response({"ok": True, "result": result})


@pytest.fixture
async def api() -> AsyncIterator[BotApi]:
    server = BotApi()
    app = web.Application()
    app.router.add_post("/bot{token}/{method}", server._call)
    runner, server.url = await serve(app)
    try:
        yield server
    finally:
        server.hold.set()
        await runner.cleanup()


def make_bot(url: str, pool: int = 8) -> Bot:
    return Bot(TOKEN, base_url=f"{url}/bot", request=AiohttpRequest(pool))


async def test_a_message_reaches_the_bot_api_with_its_fields(api: BotApi) -> None:
    async with make_bot(api.url) as bot:
        sent = await bot.send_message(42, "Your request DD-1 is done.")
    assert sent.message_id >= 1
    assert sent.text == "Your request DD-1 is done."
    method, fields = api.calls[-1]
    assert method == "sendMessage"
    assert fields["chat_id"] == "42"
    assert fields["text"] == "Your request DD-1 is done."


async def test_a_document_arrives_as_the_file_the_customer_gets(api: BotApi) -> None:
    content = b"%PDF-1.7 a customer's copy"
    async with make_bot(api.url) as bot:
        await bot.send_document(42, document=content, filename="copy.pdf", caption="Your data")
    method, fields = api.calls[-1]
    assert method == "sendDocument"
    filename, _, body = fields["document"]
    assert filename == "copy.pdf"
    assert body == content
    assert fields["caption"] == "Your data"


async def test_a_bot_api_that_is_down_is_a_network_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens once the probe closes
    with pytest.raises(NetworkError) as raised:
        async with make_bot(f"http://127.0.0.1:{port}") as bot:  # its first call: getMe
            await bot.send_message(42, "hello")
    assert not isinstance(raised.value, TimedOut)
    assert TOKEN not in render_exception(raised.value)  # what the log would show


async def test_a_timed_out_call_does_not_quote_the_token(api: BotApi) -> None:
    async with make_bot(api.url, pool=1) as bot:
        api.hold.clear()
        first = asyncio.create_task(bot.send_message(42, "first", read_timeout=30))
        await api.sent.wait()
        with pytest.raises(TimedOut) as raised:
            await bot.send_message(42, "second", pool_timeout=0.1, connect_timeout=0.1)
        api.hold.set()
        await first
    assert "127.0.0.1" in str(raised.value)  # aiohttp's own words are kept...
    assert TOKEN.split(":")[1] not in render_exception(raised.value)  # ...without the URL's token


async def test_a_bot_api_that_does_not_answer_times_out(api: BotApi) -> None:
    async with make_bot(api.url) as bot:
        api.hold.clear()
        began = time.monotonic()
        with pytest.raises(TimedOut):
            await bot.send_message(42, "hello", read_timeout=0.3)
        # Well before the 5 s default: the call's own read timeout was applied.
        assert time.monotonic() - began < 3.0


async def test_a_call_waiting_for_a_busy_pool_gives_up_unsent(api: BotApi) -> None:
    async with make_bot(api.url, pool=1) as bot:
        api.hold.clear()
        first = asyncio.create_task(bot.send_message(42, "first", read_timeout=30))
        await api.sent.wait()
        # Waiting for the pool and connecting share one bound: pool + connect.
        with pytest.raises(TimedOut, match="not sent"):
            await bot.send_message(42, "second", pool_timeout=0.2, connect_timeout=0.1)
        api.hold.set()
        await first
    assert [fields["text"] for method, fields in api.calls if method == "sendMessage"] == ["first"]


async def test_a_call_before_initialize_is_refused() -> None:
    request = AiohttpRequest()
    with pytest.raises(RuntimeError, match="not initialized"):
        await request.do_request("http://127.0.0.1:9/bot/getMe", "POST")
