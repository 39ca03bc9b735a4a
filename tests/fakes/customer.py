"""A customer's side of a chat with the real conversation service, for journey tests.

``open_conversations`` (a fixture; import it into the test module) opens
``Conversations`` as a (re)started bot process would, with the real engine,
dialogs and catalogs, against the ``world`` backend (demo customers, SMS sink)
and an SMTP capture for codes sent by email.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import SERVICE_TOKEN, bot_settings_for

from backend.mailer import SmtpMailer
from bot.backend_client import BackendClient
from bot.channel import Contact, Event, Outgoing, Press, Reply, Start, Text
from bot.conversation import Conversations
from fakes.smtp import SmtpCapture, running_smtp
from fakes.verification_world import ANNA, World

Opener = Callable[[], Awaitable[Conversations]]


@pytest.fixture
def smtp() -> Iterator[SmtpCapture]:
    with running_smtp() as capture:
        yield capture


@pytest.fixture
async def open_conversations(
    world: World, smtp: SmtpCapture, bot_db_url: str, tmp_path: Path
) -> AsyncIterator[Opener]:
    """Opens Conversations as a (re)started bot process would, on the shared bot database."""
    world.services.mailer = SmtpMailer(smtp.host, smtp.port, "datadesk@bank.test")
    bot_settings = bot_settings_for(tmp_path, world.backend.url, bot_db_url)
    opened: list[tuple[Conversations, BackendClient]] = []

    async def open_one() -> Conversations:
        client = BackendClient(bot_settings.backend_url, SERVICE_TOKEN)
        conversations = await Conversations.open(bot_settings, backend=client)
        opened.append((conversations, client))
        return conversations

    yield open_one
    for conversations, client in opened:
        await conversations.close()
        await client.close()


@dataclass
class Customer:
    """One customer's side of a chat: what they send and what they see."""

    conversations: Conversations
    chat: str
    seen: list[Outgoing] = field(default_factory=list)
    next_id: int = 100

    async def send(self, event: Event) -> list[Outgoing]:
        out = await self.conversations.handle(self.chat, event)
        self.seen += out
        return out

    async def start(self, language: str) -> list[Outgoing]:
        return await self.send(Start(language_code=language))

    async def type(self, text: str) -> list[Outgoing]:
        self.next_id += 1
        return await self.send(Text(text, message_id=self.next_id))

    async def press(self, option: str) -> list[Outgoing]:
        return await self.send(Press(option))

    async def share(self, phone: str) -> list[Outgoing]:
        return await self.send(Contact(phone, own=True))


def replies(out: list[Outgoing]) -> list[Reply]:
    return [o for o in out if isinstance(o, Reply)]


def options(out: list[Outgoing]) -> list[str]:
    """The ids of the buttons of the last message that has any."""
    with_buttons = [r for r in replies(out) if r.buttons]
    return [b.data for row in with_buttons[-1].buttons for b in row] if with_buttons else []


def ours(caplog: pytest.LogCaptureFixture) -> str:
    """What this product logged (the test's own SMTP server logs addresses: it is the mailbox)."""
    return "\n".join(
        r.getMessage() for r in caplog.records if r.name.split(".")[0] in ("bot", "backend")
    )


def said(out: list[Outgoing]) -> str:
    return "\n".join(r.text for r in replies(out))


async def verify(
    customer: Customer, world: World, journey: str = "update_contact", phone: str = ANNA
) -> list[Outgoing]:
    """From the menu: choose ``journey`` and prove ``phone`` (shared) with the code it gets."""
    out = await customer.press(journey)
    assert any(r.contact_button for r in replies(out)), said(out)
    out = await customer.share(phone)
    assert options(out) == ["sms", "email"], said(out)
    sent = len(world.sink.codes_for(phone))
    await customer.press("sms")
    code = await world.code_for(phone, sent + 1)
    return await customer.type(code)


async def mail_code(smtp: SmtpCapture, address: str) -> str:
    await smtp.wait_for(1)
    codes = smtp.codes_for(address)
    assert codes, "no code was mailed"
    return codes[-1]


def reference_in(text: str) -> str:
    found = re.search(r"DD-[0-9A-HJKMNP-TV-Z]{6}", text)
    assert found, text
    return found.group(0)
