"""An SMS gateway sink: the DESIGN.md HTTP contract served on loopback, recording what arrives.

``async with running_sms_sink(token) as sink:`` serves ``POST {sink.url}``;
each accepted message lands in ``sink.messages`` (``to``, ``text``,
``reference``). ``sink.fail_next(n, status)`` answers the next ``n`` posts with
``status`` (recorded in ``sink.rejected``, the messages in ``sink.refused``)
so retries and failures can be tested;
``sink.hold()`` keeps posts hanging until ``sink.release()``. A wrong
or missing Bearer token gets 401. ``await sink.wait_for(n)`` waits until ``n``
messages were accepted; ``sink.codes_for(phone)`` lists the 6-digit codes sent
to a number, oldest first.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from fakes.loopback import serve


@dataclass(frozen=True)
class SmsMessage:
    to: str
    text: str
    reference: str


class SmsSink:
    """What the gateway received; see the module docstring."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.url = ""
        self.messages: list[SmsMessage] = []
        self.rejected: list[tuple[int, str]] = []  # (status, reference)
        self.refused: list[SmsMessage] = []  # what those posts carried
        self._failures: list[int] = []
        self._arrived = asyncio.Condition()
        self._open = asyncio.Event()
        self._open.set()
        self.waiting = 0  # posts held by ``hold()``

    def hold(self) -> None:
        """Keep every post waiting (a gateway that hangs) until ``release()``."""
        self._open.clear()

    def release(self) -> None:
        """Let held and future posts through."""
        self._open.set()

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` posts with ``status`` instead of accepting them."""
        self._failures.extend([status] * count)

    def codes_for(self, phone: str) -> list[str]:
        """The one-time codes sent to ``phone``, oldest first."""
        codes = []
        for message in self.messages:
            if message.to == phone:
                found = re.search(r"\b(\d{6})\b", message.text)
                if found:
                    codes.append(found.group(1))
        return codes

    async def wait_for(self, count: int = 1, within: float = 10.0) -> list[SmsMessage]:
        """Wait until at least ``count`` messages were accepted; return them all."""
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: len(self.messages) >= count)
        return list(self.messages)

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "unauthorized"}, status=401)
        body = await request.json()
        self.waiting += 1
        try:
            await self._open.wait()
        finally:
            self.waiting -= 1
        if self._failures:
            status = self._failures.pop(0)
            self.rejected.append((status, str(body.get("reference"))))
            self.refused.append(SmsMessage(body["to"], body["text"], body["reference"]))
            return web.json_response({"error": "try later"}, status=status)
        async with self._arrived:
            self.messages.append(SmsMessage(body["to"], body["text"], body["reference"]))
            self._arrived.notify_all()
        return web.json_response({"accepted": True}, status=202)


@contextlib.asynccontextmanager
async def running_sms_sink(token: str = "sms-gateway-token") -> AsyncIterator[SmsSink]:  # noqa: S107
    """Serve a sink on a free loopback port for the duration of the block."""
    sink = SmsSink(token)
    app = web.Application()
    app.router.add_post("/send", sink.handle)
    runner, url = await serve(app)
    sink.url = f"{url}/send"
    try:
        yield sink
    finally:
        await runner.cleanup()
