"""More journeys through ``Conversations`` with the real engine, dialogs and backend.

Marketing opt-out, erasure with its retention preview and partly-done outcome,
/status, a wrong code, lockout and the agent hand-over, and a backend that
goes away mid-journey.
"""

from __future__ import annotations

import re

from fakes.customer import (
    Customer,
    Opener,
    open_conversations,
    options,
    reference_in,
    replies,
    said,
    smtp,
    verify,
)
from fakes.verification_world import UNKNOWN, World, world

from backend import escalations
from backend.ledger.worker import run_one
from backend.models.console import Agent
from bot.backend_client import BackendClient
from bot.channel import Command, Delete

__all__ = ["open_conversations", "smtp", "world"]

OLGA = "+37120000007"  # ru; current account and card closed on 2026-09-30


async def _outcome(customer: Customer, world: World, reference: str) -> str:
    """Run the worker, fetch the chat's notifications and show them; what the customer read."""
    while await run_one(world.services, world.services.crm, "w1"):
        pass
    polled = await customer.conversations.backend.poll_notifications(prefix=customer.chat, wait=0)
    shown = []
    for note in polled:
        if note.get("reference") == reference:
            shown += await customer.conversations.notify(note)
    return said(shown)


async def test_marketing_stops_everywhere_at_once_in_russian(
    open_conversations: Opener, world: World
) -> None:
    customer = Customer(await open_conversations(), "term:olga-marketing")
    await customer.start("ru")
    out = await verify(customer, world, "marketing_opt_out", OLGA)
    assert "all" in options(out), said(out)
    out = await customer.press("all")
    out = await customer.press("yes")
    reference_in(said(out))
    assert re.search("[а-я]", said(out)), said(out)
    # Effective at once: no worker needed.
    record = await world.services.crm.get("C-1007")
    assert record is not None
    assert not any(record.marketing.values())


async def test_an_erasure_shows_what_is_kept_until_when_and_reports_partly_done(
    open_conversations: Opener, world: World
) -> None:
    customer = Customer(await open_conversations(), "term:olga-erasure")
    await customer.start("ru")
    await verify(customer, world, "erasure", OLGA)
    out = await customer.press("all")
    preview = said(out)
    # The end date is written the Russian way (e.g. "30 сентября 2031 г.").
    assert re.search(r"\d{1,2} [а-я]+ \d{4}", preview), preview
    assert "yes" in options(out)
    out = await customer.press("yes")
    reference = reference_in(said(out))
    outcome = await _outcome(customer, world, reference)
    assert reference in outcome
    assert re.search(r"\d{1,2} [а-я]+ \d{4}", outcome), outcome


async def test_status_lists_open_requests_with_reference_and_due_date(
    open_conversations: Opener, world: World
) -> None:
    customer = Customer(await open_conversations(), "term:status")
    await customer.start("en")
    await verify(customer, world)
    await customer.press("address")
    await customer.type("Krišjāņa Barona iela 5, Rīga, LV-1011, Latvia")
    reference = reference_in(said(await customer.press("yes")))
    out = await customer.send(Command("status"))
    assert reference in said(out), said(out)
    assert "2026" in said(out)


async def test_a_wrong_code_says_how_many_tries_are_left_then_the_right_one_verifies(
    open_conversations: Opener, world: World
) -> None:
    customer = Customer(await open_conversations(), "term:wrong")
    await customer.start("en")
    await customer.press("update_contact")
    await customer.share("+37120000003")
    await customer.press("sms")
    code = await world.code_for("+37120000003")
    wrong = "000000" if code != "000000" else "111111"
    out = await customer.type(wrong)
    assert isinstance(out[0], Delete)
    assert "4" in said(out), said(out)
    out = await customer.type(code)
    assert options(out) == ["phone", "email", "address"], said(out)


async def test_an_unknown_number_gets_the_same_answer_as_a_known_one(
    open_conversations: Opener, world: World
) -> None:
    known = Customer(await open_conversations(), "term:known")
    unknown = Customer(known.conversations, "term:unknown")
    answers = []
    for customer, phone in ((known, "+37120000003"), (unknown, UNKNOWN)):
        await customer.start("en")
        await customer.press("update_contact")
        await customer.share(phone)
        answers.append(said(await customer.press("sms")))
    assert answers[0] == answers[1]
    assert world.sink.codes_for(UNKNOWN) == []


async def test_a_lockout_queues_the_chat_for_an_agent_and_offers_a_person(
    open_conversations: Opener, world: World
) -> None:
    customer = Customer(await open_conversations(), "term:locked")
    await customer.start("lv")
    await customer.press("update_contact")
    await customer.share("+37120000006")
    out = await customer.press("sms")
    for _ in range(5):
        world.clock.advance(31)
        out = await customer.press("resend")
    assert "agent" in options(out), said(out)
    # The chat is already in the agents' queue; accepting the offer keeps that one.
    async with world.services.sessions() as session:
        queued = await escalations.open_for_chat(session, "term:locked")
    assert queued is not None
    assert (queued.reason, queued.locale) == ("lockout", "lv")
    await customer.press("agent")
    async with world.services.sessions() as session:
        found = await escalations.open_for_chat(session, "term:locked")
    assert found is not None
    assert found.id == queued.id


async def test_an_agent_takes_over_and_hands_back_where_the_customer_left_off(
    open_conversations: Opener, world: World
) -> None:
    customer = Customer(await open_conversations(), "term:handover")
    await customer.start("lv")
    await verify(customer, world)
    await customer.send(Command("agent"))
    async with world.services.sessions() as session, session.begin():
        agent = Agent(name="ilze", password_hash="-", role="agent", created_at=world.clock.now())
        session.add(agent)
    async with world.services.sessions() as session, session.begin():
        found = await escalations.open_for_chat(session, "term:handover")
        assert found is not None
        await escalations.take_over(session, found.id, agent_id=agent.id, at=world.clock.now())
    notes = await customer.conversations.backend.poll_notifications(prefix="term:handover", wait=0)
    joined = [o for n in notes for o in await customer.conversations.notify(n)]
    assert said(joined)
    assert await customer.type("vai kāds ir?") == []
    async with world.services.sessions() as session, session.begin():
        await escalations.hand_back(
            session, found.id, agent_id=agent.id, resume="where_left_off", at=world.clock.now()
        )
    notes = await customer.conversations.backend.poll_notifications(prefix="term:handover", wait=0)
    back = [o for n in notes for o in await customer.conversations.notify(n)]
    assert options(back) == ["phone", "email", "address"], said(back)


async def test_a_backend_gone_mid_journey_tells_the_customer_to_try_later(
    open_conversations: Opener, world: World
) -> None:
    customer = Customer(await open_conversations(), "term:down")
    await customer.start("en")
    await customer.press("update_contact")
    await customer.share("+37120000003")
    gone = BackendClient("http://127.0.0.1:9", "token", timeout=1)
    customer.conversations.backend, live = gone, customer.conversations.backend
    try:
        out = await customer.press("sms")
    finally:
        customer.conversations.backend = live
        await gone.close()
    # The dialogs' "something went wrong, try again in a few minutes", in English, and the menu.
    assert "try again" in said(out), said(out)
    assert "update_contact" in options(out), said(out)


async def test_a_session_that_timed_out_asks_the_customer_to_verify_again(
    open_conversations: Opener, world: World
) -> None:
    customer = Customer(await open_conversations(), "term:timeout")
    await customer.start("en")
    await verify(customer, world)
    await customer.press("address")
    await customer.type("Krišjāņa Barona iela 5, Rīga, LV-1011, Latvia")
    world.clock.advance(minutes=16)
    out = await customer.press("yes")
    assert any(r.contact_button for r in replies(out)), said(out)
    assert "DD-" not in said(out)
    assert await _requests(world) == 0


async def _requests(world: World) -> int:
    from sqlalchemy import func, select

    from backend.models.ledger import Request

    async with world.services.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Request)) or 0)


async def test_a_rejection_after_review_tells_the_customer_the_reviewers_reason(
    open_conversations: Opener, world: World
) -> None:
    customer = Customer(await open_conversations(), "term:rejected")
    note = {
        "id": 9001,
        "chat": customer.chat,
        "locale": "en",
        "type": "request_outcome",
        "reference": "DD-7K2Q9M",
        "outcome": "rejected",
        "reason": "review_rejected:open_dispute",
        "details": {},
    }
    text = said(await customer.conversations.notify(note))
    assert "DD-7K2Q9M" in text
    assert "dispute or complaint about your account" in text
    # A reason the dialogs have no words for falls back to the general sentence.
    note |= {"id": 9002, "reason": "review_rejected:something_new"}
    text = said(await customer.conversations.notify(note))
    assert "Our team reviewed it and couldn't approve it." in text
