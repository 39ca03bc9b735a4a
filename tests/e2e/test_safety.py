"""The promises that protect customers, end to end: codes, lockout, enumeration, restarts,
double presses and card numbers typed where they should not be.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import select

from backend.models.console import Escalation
from e2e.conftest import Stack
from e2e.steps import (
    AGENT_WAITING,
    ASK_PHONE,
    CODE_SENT,
    ERASURE_SUBMITTED,
    HYGIENE_CARD,
    LOCKED_OUT,
    PHONES,
    PREVIEW_HEAD,
    VERIFIED,
    WRONG_CODE,
    choose,
    reference_in,
    requests_of,
    start,
    transcript_of,
    verify,
)

CHAT = 6001
CARD = "4111 1111 1111 1111"


def wrong(code: str) -> str:
    """A six-digit code that is not ``code``."""
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def ask_for_a_code(stack: Stack, chat: int, locale: str, phone: str) -> None:
    """From the menu to "a code is on its way" for ``phone``."""
    api = stack.api
    await choose(stack, chat, "marketing_opt_out")
    await api.wait_for_message(chat, stack.t(locale, ASK_PHONE))
    await api.share_contact(chat, phone.lstrip("+"))
    await api.wait_for_message(chat, buttons="sms")
    await choose(stack, chat, "sms")
    await api.wait_for_message(chat, stack.t(locale, CODE_SENT))
    await api.wait_for_message(chat, buttons="resend")


@pytest.mark.parametrize("locale", ["en", "lv"])
async def test_a_wrong_code_says_how_many_tries_are_left_and_the_right_one_then_verifies(
    stack: Stack, locale: str
) -> None:
    api = stack.api
    phone = PHONES[locale]
    await start(stack, CHAT, locale)
    await ask_for_a_code(stack, CHAT, locale, phone)
    code = await stack.code_for(phone)
    first = await api.send_text(CHAT, wrong(code))
    translator = stack.catalogs.translator(locale)
    four_left = translator.format(
        translator.ngettext(
            "That code isn't right. You have {attempts_left} try left.", WRONG_CODE, 4
        ),
        attempts_left=4,
    )
    await api.wait_for_message(CHAT, four_left)
    second = await api.send_text(CHAT, code)
    await api.wait_for_message(CHAT, stack.t(locale, VERIFIED))
    # Both codes, wrong and right, are taken out of the chat.
    await api.wait_for_deleted(CHAT, first)
    await api.wait_for_deleted(CHAT, second)


@pytest.mark.parametrize("locale", ["ru", "en"])
async def test_too_many_codes_lock_the_chat_out_and_offer_a_person(
    stack: Stack, locale: str
) -> None:
    api = stack.api
    phone = PHONES[locale]
    await start(stack, CHAT, locale)
    await ask_for_a_code(stack, CHAT, locale, phone)
    for sent in range(2, 7):
        # Past the 30-second resend cooldown, without waiting for it.
        stack.clock.advance(31)
        await choose(stack, CHAT, "resend")
        if sent <= 5:
            await api.wait_for_message(CHAT, stack.t(locale, CODE_SENT))
            await api.wait_for_message(CHAT, buttons="resend")
    offer = await api.wait_for_message(CHAT, buttons="agent")
    locked = api.since_last_action(CHAT)
    assert any(stack.t(locale, LOCKED_OUT) in m.text for m in locked)
    assert len(stack.codes_sent_to(phone)) == 5
    await api.press(CHAT, offer.message_id, "agent")
    await api.wait_for_message(CHAT, stack.t(locale, AGENT_WAITING))
    async with stack.services.sessions() as session:
        escalation = await session.scalar(select(Escalation).where(Escalation.chat == f"tg:{CHAT}"))
    assert escalation is not None
    assert escalation.reason == "lockout"


async def test_an_unknown_number_gets_the_same_answers_as_a_known_one_and_no_code(
    stack: Stack,
) -> None:
    api = stack.api
    known, unknown = CHAT, CHAT + 1
    for chat, phone in ((known, PHONES["en"]), (unknown, "+37120009999")):
        await start(stack, chat, "en")
        await ask_for_a_code(stack, chat, "en", phone)
    await stack.code_for(PHONES["en"])
    assert api.transcript(known) == api.transcript(unknown)
    assert [m.to for m in stack.sms.messages] == [PHONES["en"]]
    # A guess at a code gets the same answer too.
    for chat in (known, unknown):
        await api.send_text(chat, "000000")
        await api.wait_for_message(chat, "That code isn't right")
        await api.wait_for_message(chat, buttons="resend")
    assert api.transcript(known) == api.transcript(unknown)


@pytest.mark.parametrize("locale", ["lv", "en"])
async def test_the_bot_restarted_mid_journey_carries_on_at_the_same_step(
    stack: Stack, locale: str
) -> None:
    api = stack.api
    await start(stack, CHAT, locale)
    await choose(stack, CHAT, "erasure")
    await verify(stack, CHAT, locale, PHONES[locale])
    scope = await api.wait_for_message(CHAT, buttons="marketing")
    await stack.stop_bot()
    # The customer presses while the bot is down; Telegram keeps the update.
    await api.press(CHAT, scope.message_id, "marketing")
    await stack.start_bot()
    await api.wait_for_message(CHAT, stack.t(locale, PREVIEW_HEAD))
    await api.wait_for_message(CHAT, buttons="yes")
    await choose(stack, CHAT, "yes")
    submitted = await api.wait_for_message(CHAT, stack.t(locale, ERASURE_SUBMITTED))
    [request] = await requests_of(stack, CHAT)
    assert request.reference == reference_in(submitted)


@pytest.mark.parametrize("locale", ["en", "ru"])
async def test_confirm_pressed_twice_makes_one_request(stack: Stack, locale: str) -> None:
    api = stack.api
    await start(stack, CHAT, locale)
    await choose(stack, CHAT, "erasure")
    await verify(stack, CHAT, locale, PHONES[locale])
    await api.wait_for_message(CHAT, buttons="marketing")
    await choose(stack, CHAT, "marketing")
    confirm = await api.wait_for_message(CHAT, buttons="yes")
    # Two taps before the bot answered the first.
    taps = await asyncio.gather(
        api.press(CHAT, confirm.message_id, "yes"), api.press(CHAT, confirm.message_id, "yes")
    )
    first = await api.wait_for_message(CHAT, stack.t(locale, ERASURE_SUBMITTED))
    await api.send_text(CHAT, "/status")
    # Updates of a chat are handled in order: once /status is answered, so are both taps.
    await api.wait_for_message(CHAT, reference_in(first))
    assert all(tap in api.answered_callbacks for tap in taps)
    submitted = [m for m in api.messages(CHAT) if stack.t(locale, ERASURE_SUBMITTED) in m.text]
    assert len(submitted) == 1
    assert len(await requests_of(stack, CHAT)) == 1


@pytest.mark.parametrize("locale", ["lv", "en"])
async def test_a_card_number_typed_mid_flow_is_deleted_explained_and_kept_only_masked(
    stack: Stack, locale: str, caplog: pytest.LogCaptureFixture
) -> None:
    api = stack.api
    # Everything at DEBUG, as an operator chasing a problem would log.
    caplog.set_level(logging.DEBUG)
    await start(stack, CHAT, locale)
    await choose(stack, CHAT, "marketing_opt_out")
    await api.wait_for_message(CHAT, stack.t(locale, ASK_PHONE))
    typed = await api.send_text(CHAT, f"my card is {CARD}")
    await api.wait_for_deleted(CHAT, typed)
    await api.wait_for_message(CHAT, stack.t(locale, HYGIENE_CARD))
    stored = " ".join(await transcript_of(stack, CHAT))
    assert "411111••••••1111" in stored
    assert CARD not in stored
    assert CARD.replace(" ", "") not in stored
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert CARD not in logged
    assert CARD.replace(" ", "") not in logged
    # The journey goes on where it was.
    await api.share_contact(CHAT, PHONES[locale].lstrip("+"))
    await api.wait_for_message(CHAT, buttons="sms")
