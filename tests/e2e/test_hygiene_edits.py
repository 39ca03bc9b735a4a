"""A message edited after it was sent is screened like a new one, without moving the dialog."""

from __future__ import annotations

import logging

import pytest

from e2e.conftest import Stack
from e2e.steps import ASK_PHONE, HYGIENE_CARD, MENU, PHONES, choose, transcript_of

CHAT = 6101
CARD = "4111 1111 1111 1111"


@pytest.mark.parametrize("locale", ["en", "lv"])
async def test_a_card_number_added_by_an_edit_is_deleted_explained_and_kept_only_masked(
    stack: Stack, locale: str, caplog: pytest.LogCaptureFixture
) -> None:
    api = stack.api
    caplog.set_level(logging.DEBUG)
    greeting = await api.send_text(CHAT, "/start", language_code=locale.replace("_", "-"))
    await api.wait_for_message(CHAT, stack.t(locale, MENU), buttons="update_contact")
    await choose(stack, CHAT, "marketing_opt_out")
    await api.wait_for_message(CHAT, stack.t(locale, ASK_PHONE))

    await api.edit_text(CHAT, greeting, f"/start my card is {CARD}")
    await api.wait_for_deleted(CHAT, greeting)
    notice = await api.wait_for_message(CHAT, stack.t(locale, HYGIENE_CARD))
    # The edit is not an answer: the notice is all the bot said.
    assert [m.message_id for m in api.since_last_action(CHAT)] == [notice.message_id]
    stored = " ".join(await transcript_of(stack, CHAT))
    assert "411111••••••1111" in stored
    assert CARD not in stored
    assert CARD.replace(" ", "") not in stored
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert CARD not in logged
    assert CARD.replace(" ", "") not in logged

    # The dialog is still asking for the phone number.
    await api.share_contact(CHAT, PHONES[locale].lstrip("+"))
    await api.wait_for_message(CHAT, buttons="sms")


async def test_an_edit_without_anything_sensitive_changes_nothing(stack: Stack) -> None:
    api = stack.api
    greeting = await api.send_text(CHAT, "/start", language_code="en")
    await api.wait_for_message(CHAT, stack.t("en", MENU), buttons="update_contact")
    await choose(stack, CHAT, "marketing_opt_out")
    asking = await api.wait_for_message(CHAT, stack.t("en", ASK_PHONE))

    await api.edit_text(CHAT, greeting, "/start hello again")
    await api.share_contact(CHAT, PHONES["en"].lstrip("+"))
    await api.wait_for_message(CHAT, buttons="sms")
    assert greeting not in api.deleted(CHAT)
    # Updates of one chat are handled in order: nothing was said between the two.
    sent = [m.message_id for m in api.messages(CHAT)]
    after_asking = sent[sent.index(asking.message_id) + 1 :]
    assert len(after_asking) == 1
