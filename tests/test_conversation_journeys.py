"""Whole journeys through ``Conversations.handle``: the real engine, dialogs, catalogs and backend.

The customer's side is played event by event; codes are read where a phone
or a mailbox would get them (the SMS sink and the SMTP capture); the worker
runs the submitted request and its outcome comes back as a notification.
Every test runs with the backend and the bot database on SQLite and on
PostgreSQL.
"""

from __future__ import annotations

import logging

import pytest
from fakes.customer import (
    Customer,
    Opener,
    mail_code,
    open_conversations,
    options,
    ours,
    reference_in,
    said,
    smtp,
    verify,
)
from fakes.smtp import SmtpCapture
from fakes.verification_world import ANNA, World, world

from backend import escalations
from backend.ledger.worker import run_one
from bot.channel import Delete

__all__ = ["open_conversations", "smtp", "world"]


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
    code = await mail_code(smtp, "anna.new@example.lv")
    out = await customer.type(code)
    assert isinstance(out[0], Delete)
    assert "a•••@example.lv" in said(out), said(out)
    assert "yes" in options(out)

    out = await customer.press("yes")
    reference = reference_in(said(out))

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
    await customer.conversations.flush()
    async with world.services.sessions() as session:
        kept = " ".join(e.text for e in await escalations.transcript(session, "term:anna"))
    assert code not in kept
    assert "••••" in kept


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
    reference = reference_in(said(first))
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
    await customer.conversations.flush()
    async with world.services.sessions() as session:
        entries = await escalations.transcript(session, "term:card")
    inbound = [e.text for e in entries if e.direction == "in"]
    assert "411111••••••1111" in inbound
    assert not any("4111 1111 1111 1111" in e.text for e in entries)
    assert "1111 1111" not in ours(caplog)


async def test_what_a_waiting_customer_types_reaches_the_agent_and_is_acknowledged_once(
    open_conversations: Opener, world: World
) -> None:
    customer = Customer(await open_conversations(), "term:wait")
    await customer.start("en")
    await customer.press("erasure")
    out = await customer.press("agent")
    assert options(out) == ["stop_waiting"], said(out)
    first = await customer.type("Hello, I need help with a payment")
    second = await customer.type("It was 40 euros on Monday")
    assert "A colleague will read this" in said(first)
    assert said(second) == ""
    await customer.conversations.flush()
    async with world.services.sessions() as session:
        entries = await escalations.transcript(session, "term:wait")
        waiting = await escalations.open_for_chat(session, "term:wait")
    inbound = [e.text for e in entries if e.direction == "in"]
    assert "Hello, I need help with a payment" in inbound
    assert "It was 40 euros on Monday" in inbound
    assert waiting is not None
    assert waiting.state == "waiting"

    out = await customer.press("stop_waiting")
    assert "First I need to check it's really you" in said(out), said(out)
    async with world.services.sessions() as session:
        assert await escalations.open_for_chat(session, "term:wait") is None
