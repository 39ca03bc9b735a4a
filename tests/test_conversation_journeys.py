"""Whole journeys through ``Conversations.handle``: the real engine, dialogs, catalogs and backend.

The customer's side is played event by event; codes are read where a phone
or a mailbox would get them (the SMS sink and the SMTP capture); the worker
runs the submitted request and its outcome comes back as a notification.
Every test runs with the backend and the bot database on SQLite and on
PostgreSQL.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace

import pytest
from conftest import SERVICE_TOKEN
from fakes.smtp import SmtpCapture, running_smtp
from fakes.verification_world import ANNA, World, world

from backend.mailer import SmtpMailer
from backend.settings import Settings
from backend.worker import run_one
from bot.backend_client import BackendClient
from bot.channel import Contact, Delete, Event, Outgoing, Press, Reply, Start, Text
from bot.conversation import Conversations

__all__ = ["world"]

Opener = Callable[[], Awaitable[Conversations]]


@pytest.fixture
def smtp() -> Iterator[SmtpCapture]:
    with running_smtp() as capture:
        yield capture


@pytest.fixture
async def open_conversations(
    world: World, smtp: SmtpCapture, settings: Settings, bot_db_url: str
) -> AsyncIterator[Opener]:
    """Opens Conversations as a (re)started bot process would, on the shared bot database."""
    world.services.mailer = SmtpMailer(smtp.host, smtp.port, "datadesk@bank.test")
    bot_settings = replace(settings, backend_url=world.backend.url, bot_database_url=bot_db_url)
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


async def verify(customer: Customer, world: World) -> list[Outgoing]:
    """From the menu: choose to update contact details and prove the phone on file."""
    out = await customer.press("update_contact")
    assert any(r.contact_button for r in replies(out)), said(out)
    out = await customer.share(ANNA)
    assert options(out) == ["sms", "email"], said(out)
    sent = len(world.sink.codes_for(ANNA))
    await customer.press("sms")
    code = await world.code_for(ANNA, sent + 1)
    return await customer.type(code)


@pytest.mark.parametrize("language", ["lv", "en"])
async def test_a_customer_verifies_and_changes_their_email_and_hears_the_outcome(
    open_conversations: Opener,
    world: World,
    smtp: SmtpCapture,
    language: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    customer = Customer(await open_conversations(), "term:anna")
    menu = await customer.start(language)
    assert "update_contact" in options(menu)

    out = await verify(customer, world)
    # The code is deleted from the chat once read, and the customer is told why.
    assert isinstance(out[0], Delete)
    assert options(out) == ["phone", "email", "address"], said(out)

    await customer.press("email")
    out = await customer.type("anna.new@example.lv")
    code = await _mail_code(smtp, "anna.new@example.lv")
    out = await customer.type(code)
    assert isinstance(out[0], Delete)
    assert "a•••@example.lv" in said(out), said(out)
    assert "yes" in options(out)

    out = await customer.press("yes")
    reference = _reference(said(out))

    assert await run_one(world.services, world.services.crm, "w1") is True
    polled = await customer.conversations.backend.poll_notifications(prefix="term:", wait=0)
    [note] = [n for n in polled if n.get("reference") == reference]
    shown = await customer.conversations.notify(note)
    assert reference in said(shown)
    assert await customer.conversations.notify(note) == []
    logged = ours(caplog)
    assert "anna.new@example.lv" not in logged
    assert code not in logged
    assert ANNA not in logged


async def _mail_code(smtp: SmtpCapture, address: str) -> str:
    await smtp.wait_for(1)
    codes = smtp.codes_for(address)
    assert codes, "no code was mailed"
    return codes[-1]


def _reference(text: str) -> str:
    import re

    found = re.search(r"DD-[0-9A-HJKMNP-TV-Z]{6}", text)
    assert found, text
    return found.group(0)


async def _requests(world: World) -> int:
    from sqlalchemy import func, select

    from backend.models.ledger import Request

    async with world.services.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Request)) or 0)


async def test_a_bot_restarted_mid_journey_resumes_at_the_same_step(
    open_conversations: Opener, world: World
) -> None:
    before = Customer(await open_conversations(), "term:restart")
    await before.start("ru")
    await before.press("update_contact")
    await before.share(ANNA)
    await before.press("sms")
    code = await world.code_for(ANNA)
    await before.conversations.close()

    after = Customer(await open_conversations(), "term:restart")
    out = await after.type(code)
    assert isinstance(out[0], Delete)
    assert options(out) == ["phone", "email", "address"], said(out)


async def test_confirm_pressed_twice_makes_one_request(
    open_conversations: Opener, world: World
) -> None:
    customer = Customer(await open_conversations(), "term:twice")
    await customer.start("en")
    await verify(customer, world)
    await customer.press("address")
    out = await customer.type("Krišjāņa Barona iela 5, Rīga, LV-1011, Latvia")
    assert "yes" in options(out), said(out)
    first = await customer.press("yes")
    again = await customer.press("yes")
    reference = _reference(said(first))
    assert reference not in said(again)
    assert await _requests(world) == 1


async def test_confirm_pressed_in_two_bot_processes_at_once_makes_one_request(
    open_conversations: Opener, world: World
) -> None:
    import asyncio

    customer = Customer(await open_conversations(), "term:race")
    other = Customer(await open_conversations(), "term:race")
    await customer.start("lv")
    await verify(customer, world)
    await customer.press("address")
    await customer.type("Brīvības iela 10, Rīga, LV-1010, Latvija")
    await asyncio.gather(customer.press("yes"), other.press("yes"))
    assert await _requests(world) == 1


async def test_a_card_number_typed_mid_flow_is_deleted_and_kept_masked(
    open_conversations: Opener, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    customer = Customer(await open_conversations(), "term:card")
    await customer.start("lv")
    await verify(customer, world)
    await customer.press("email")
    out = await customer.type("4111 1111 1111 1111")
    assert out[0] == Delete(customer.next_id, "card")
    # The customer is still asked for the email, and can give it.
    out = await customer.type("anna.b@example.lv")
    assert not any(isinstance(o, Delete) for o in out)
    async with world.services.sessions() as session:
        from backend import escalations

        entries = await escalations.transcript(session, "term:card")
    inbound = [e.text for e in entries if e.direction == "in"]
    assert "411111••••••1111" in inbound
    assert not any("4111 1111 1111 1111" in e.text for e in entries)
    assert "1111 1111" not in ours(caplog)
