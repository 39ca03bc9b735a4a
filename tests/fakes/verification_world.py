"""A live backend with the well-known demo customers and an SMS sink, for verification tests.

Test modules import the ``world`` fixture (``from fakes.verification_world
import world``). ``World`` speaks the HTTP API the way the bot does and reads
the codes the sink received, so tests read like the customer's side.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import LiveBackend

from backend.crm import importer
from backend.crm.demo import well_known
from backend.services import Services
from backend.sms import HttpSmsGateway
from common.clock import FakeClock
from fakes.sms_sink import SmsSink, running_sms_sink

ANNA, ANNA_REF = "+37120000001", "C-1001"
DMITRY, DMITRY_REF = "+37120000002", "C-1002"
UNKNOWN = "+37129999901"


async def seed(services: Services) -> None:
    """Load the well-known demo customers (DEMO.md) into the built-in CRM."""
    customers, problems = importer.validate({"customers": well_known()})
    assert problems == []
    await importer.apply(services.sessions, customers, services.clock)


@dataclass
class World:
    backend: LiveBackend
    sink: SmsSink
    clock: FakeClock
    # The chat each session was issued in, sent with it as X-Customer-Chat.
    session_chats: dict[str, str] = field(default_factory=dict)

    @property
    def services(self) -> Services:
        return self.backend.services

    async def call(
        self, method: str, path: str, body: Any = None, session: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        """One API call with the service token; (status, JSON body)."""
        headers = {}
        if session:
            chat = self.session_chats.get(session, "tg:1")
            headers = {"X-Customer-Session": session, "X-Customer-Chat": chat}
        async with self.backend.client.request(
            method, self.backend.api(path), json=body, headers=headers
        ) as resp:
            return resp.status, await resp.json()

    async def start(
        self, phone: str, chat: str = "tg:1", **extra: Any
    ) -> tuple[int, dict[str, Any]]:
        body = {"chat": chat, "phone": phone, "channel": "sms", "locale": "lv", **extra}
        return await self.call("POST", "/api/v1/verifications", body)

    async def resend(self, vid: str) -> tuple[int, dict[str, Any]]:
        return await self.call("POST", f"/api/v1/verifications/{vid}/resend", {"locale": "lv"})

    async def check(self, vid: str, code: str) -> tuple[int, dict[str, Any]]:
        return await self.call("POST", f"/api/v1/verifications/{vid}/check", {"code": code})

    async def code_for(self, phone: str, nth: int = 1) -> str:
        """The ``nth`` code (1-based, overall count) the sink received for ``phone``."""
        while len(self.sink.codes_for(phone)) < nth:
            await self.sink.wait_for(len(self.sink.messages) + 1)
        return self.sink.codes_for(phone)[nth - 1]

    async def verify(self, phone: str = ANNA, chat: str = "tg:1") -> str:
        """Verify ``chat`` as the holder of ``phone``; the session token."""
        sent = len(self.sink.codes_for(phone))
        status, body = await self.start(phone, chat)
        assert status == 202, body
        code = await self.code_for(phone, sent + 1)
        status, body = await self.check(body["verification_id"], code)
        assert status == 200, body
        self.session_chats[body["session_token"]] = chat
        return str(body["session_token"])


@pytest.fixture
async def world(backend: LiveBackend, clock: FakeClock) -> AsyncIterator[World]:
    """The live backend sending codes to an SMS sink, with the demo's well-known customers."""
    async with running_sms_sink() as sink:
        backend.services.sms = HttpSmsGateway(sink.url, sink.token, backoff=0.01)
        await seed(backend.services)
        yield World(backend, sink, clock)
