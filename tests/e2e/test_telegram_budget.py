"""Telegram's budget: a journey costs as few flood-limited Bot API calls as a good bot needs.

Telegram lets one bot token send about 30 messages a second in all, so every
sent, edited or deleted message counts. A pressed button's message is edited
into the answer (its spent keyboard goes with it), and one step is one message.
"""

from __future__ import annotations

from e2e.conftest import Stack
from e2e.steps import (
    CODE_SENT,
    OPT_OUT_DONE,
    OUTCOME_DONE,
    PHONES,
    choose,
    reference_in,
    start,
    verify,
)

CHAT = 5101


async def test_a_marketing_opt_out_costs_at_most_ten_limited_calls_outcome_included(
    stack: Stack,
) -> None:
    api = stack.api
    await start(stack, CHAT, "en")
    await choose(stack, CHAT, "marketing_opt_out")
    await verify(stack, CHAT, "en", PHONES["en"])
    await api.wait_for_message(CHAT, buttons="all")
    await choose(stack, CHAT, "email")
    await api.wait_for_message(CHAT, buttons="yes")
    await choose(stack, CHAT, "yes")
    done = await api.wait_for_message(CHAT, stack.t("en", OPT_OUT_DONE))
    outcome = stack.says("en", OUTCOME_DONE, reference=reference_in(done))
    await api.wait_for_message(CHAT, outcome, since=0)
    assert done.button_data, "the menu rides on the reference's message"
    assert api.limited_calls(CHAT) <= 10, [m for m, _ in api.calls]


async def test_a_pressed_button_s_message_becomes_the_answer_and_loses_its_spent_keyboard(
    stack: Stack,
) -> None:
    api = stack.api
    await start(stack, CHAT, "en")
    await choose(stack, CHAT, "marketing_opt_out")
    await verify(stack, CHAT, "en", PHONES["en"])
    asked = await api.wait_for_message(CHAT, buttons="all")
    await choose(stack, CHAT, "email")
    confirm = await api.wait_for_message(CHAT, buttons="yes")
    # The same message, now asking to confirm: the channel buttons are gone with the question.
    assert confirm.message_id == asked.message_id
    assert "all" not in confirm.button_data
    assert [m.message_id for m in api.since_last_action(CHAT)] == [asked.message_id]


async def test_one_step_with_several_sentences_is_one_message(stack: Stack) -> None:
    api = stack.api
    await start(stack, CHAT, "en")
    assert len(api.messages(CHAT)) == 1
    await choose(stack, CHAT, "marketing_opt_out")
    await api.share_contact(CHAT, PHONES["en"].lstrip("+"))
    await api.wait_for_message(CHAT, buttons="sms")
    await choose(stack, CHAT, "sms")
    # "A code is on its way" and "type it here" arrive together, with nothing after.
    told = await api.wait_for_message(CHAT, stack.t("en", CODE_SENT))
    assert api.since_last_action(CHAT) == [told]
