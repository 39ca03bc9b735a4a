"""Telegram's budget after a shared contact: the hidden one-time keyboard costs no message.

Telegram hides a one-time keyboard as soon as it is used, so the answer to a
shared contact is one message even when it also asks for the keyboard to be
taken away and offers buttons; that keeps a marketing opt-out at nine
flood-limited calls, outcome included.
"""

from __future__ import annotations

import pytest

from e2e.conftest import Stack
from e2e.steps import (
    ASK_PHONE,
    CODE_SENT,
    OPT_OUT_DONE,
    OUTCOME_DONE,
    PHONES,
    choose,
    reference_in,
    start,
    verify,
)

CHAT = 5201

pytestmark = pytest.mark.parametrize("bot_in_process", [False])


async def _without_mail(stack: Stack) -> None:
    """No mail server: a shared number gets its SMS code at once, no channel to choose."""
    stack.services.mailer = None
    await stack.start_bot()


async def test_the_answer_to_a_shared_contact_is_one_message_with_its_buttons(
    stack: Stack,
) -> None:
    await _without_mail(stack)
    api = stack.api
    await start(stack, CHAT, "en")
    await choose(stack, CHAT, "marketing_opt_out")
    asking = await api.wait_for_message(CHAT, stack.t("en", ASK_PHONE))
    await api.share_contact(CHAT, PHONES["en"].lstrip("+"))
    answer = await api.wait_for_message(CHAT, stack.t("en", CODE_SENT), buttons="resend")
    assert api.since_last_action(CHAT) == [answer]
    assert asking.reply_markup is not None
    assert asking.reply_markup["one_time_keyboard"]


async def test_a_marketing_opt_out_costs_nine_limited_calls_outcome_included(
    stack: Stack,
) -> None:
    await _without_mail(stack)
    api = stack.api
    await start(stack, CHAT, "en")
    await choose(stack, CHAT, "marketing_opt_out")
    await verify(stack, CHAT, "en", PHONES["en"], mail=False)
    await api.wait_for_message(CHAT, buttons="all")
    await choose(stack, CHAT, "email")
    await api.wait_for_message(CHAT, buttons="yes")
    await choose(stack, CHAT, "yes")
    done = await api.wait_for_message(CHAT, stack.t("en", OPT_OUT_DONE))
    outcome = stack.says("en", OUTCOME_DONE, reference=reference_in(done))
    await api.wait_for_message(CHAT, outcome, since=0)
    assert api.limited_calls(CHAT) <= 9, [m for m, _ in api.calls]
