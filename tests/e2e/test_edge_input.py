"""Input a customer's app can send that the rest of datadesk could not hold.

A language tag CLDR knows but Babel ships no data for (``no``), and text with
a lone surrogate or NUL (valid JSON escapes, not Unicode): the customer still
gets the usual answers, and the backend only ever stores text it can hold.
"""

from __future__ import annotations

import asyncio

import pytest

from e2e.conftest import Stack
from e2e.steps import AGENT_WAITING, MENU, choose, start, transcript_of

CHAT = 6101
WENT_WRONG = "Sorry, something went wrong"


@pytest.mark.parametrize("language_code", ["no", "no-NO", "nb-NO"])
async def test_a_customer_whose_telegram_reports_norwegian_gets_the_english_menu(
    stack: Stack, language_code: str
) -> None:
    api = stack.api
    await api.send_text(CHAT, "/start", language_code=language_code)
    await api.wait_for_message(CHAT, stack.t("en", MENU), buttons="update_contact")
    # And the next turn is answered as well, not only the first.
    await choose(stack, CHAT, "agent")
    await api.wait_for_message(CHAT, stack.t("en", AGENT_WAITING))
    assert not any(WENT_WRONG in m.text for m in api.messages(CHAT))


async def test_a_message_with_a_lone_surrogate_at_the_menu_gets_the_usual_answer(
    stack: Stack,
) -> None:
    api = stack.api
    await start(stack, CHAT, "en")
    before = len(api.messages(CHAT))
    await api.send_text(CHAT, "hello \ud800 there\x00")
    await api.wait_for_message(CHAT, since=before, buttons="update_contact")
    assert not any(WENT_WRONG in m.text for m in api.messages(CHAT))


async def test_a_lone_surrogate_reaches_the_agents_transcript_as_a_replacement_character(
    stack: Stack,
) -> None:
    api = stack.api
    await start(stack, CHAT, "lv")
    await choose(stack, CHAT, "agent")
    await api.wait_for_message(CHAT, stack.t("lv", AGENT_WAITING))
    await api.send_text(CHAT, "Sveiki \udc80 un\x00 paldies")
    stored: list[str] = []
    async with asyncio.timeout(15):
        while not stored:
            await asyncio.sleep(0.05)
            stored = [t for t in await transcript_of(stack, CHAT) if t.startswith("Sveiki")]
    assert stored == ["Sveiki \ufffd un\ufffd paldies"]
    assert not any(WENT_WRONG in m.text for m in api.messages(CHAT))
