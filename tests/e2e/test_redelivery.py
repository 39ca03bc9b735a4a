"""An update Telegram delivers again after a restart (its offset was never confirmed) is not handled twice."""

from __future__ import annotations

import pytest

from e2e.conftest import Stack
from e2e.steps import ASK_PHONE, CODE_SENT, PHONES, VERIFIED, WRONG_CODE, choose, start

CHAT = 6201
CODE_DELETED = "I've deleted your message with the code from this chat, to keep it safe."


async def test_a_wrong_code_delivered_again_after_a_restart_costs_one_try_not_two(
    stack: Stack,
) -> None:
    api = stack.api
    phone = PHONES["en"]
    await start(stack, CHAT, "en")
    await choose(stack, CHAT, "marketing_opt_out")
    await api.wait_for_message(CHAT, stack.t("en", ASK_PHONE))
    await api.share_contact(CHAT, phone.lstrip("+"))
    await api.wait_for_message(CHAT, buttons="sms")
    await choose(stack, CHAT, "sms")
    await api.wait_for_message(CHAT, stack.t("en", CODE_SENT))
    code = await stack.code_for(phone)
    await api.send_text(CHAT, f"{(int(code) + 1) % 1_000_000:06d}")
    wrong_code = api.last_update_id
    translator = stack.catalogs.translator("en")
    four_left = translator.format(
        translator.ngettext(
            "That code isn't right. You have {attempts_left} try left.", WRONG_CODE, 4
        ),
        attempts_left=4,
    )
    # One step is one message: the "try again" carries the resend button.
    await api.wait_for_message(CHAT, four_left, buttons="resend")
    answered = len(api.messages(CHAT))

    # The bot dies before Telegram learns the wrong code was handled.
    await stack.stop_bot()
    await api.redeliver(wrong_code)
    await stack.start_bot()
    await api.send_text(CHAT, code)
    verified = await api.wait_for_message(CHAT, stack.t("en", VERIFIED))
    # Updates of a chat are handled in order: nothing was said about the code delivered again.
    said = [m.text for m in api.messages(CHAT)[answered:]]
    assert said[0] == verified.text, said
    assert verified.text.startswith(stack.t("en", CODE_DELETED)), said
    assert all("isn't right" not in text for text in said), said


@pytest.mark.parametrize("telegram_mode", ["webhook"])
async def test_an_update_telegram_delivers_late_is_answered_not_skipped(stack: Stack) -> None:
    """Webhook: an update older than one handled already reached the bot late; it was never handled."""
    api = stack.api
    chat = CHAT + 1
    await start(stack, chat, "en")
    api.withhold_next()
    await api.send_text(chat, "/help")
    late = api.last_update_id
    await choose(stack, chat, "marketing_opt_out")  # a later update, handled first
    await api.wait_for_message(chat, stack.t("en", ASK_PHONE))
    answered = len(api.messages(chat))

    await api.redeliver(late)
    helped = await api.wait_for_message(chat, "/cancel to stop")
    # One answer, to the late one (the help, then the question under way again);
    # the press handled before it was not handled a second time.
    said = [m.text for m in api.messages(chat)[answered:]]
    assert said == [helped.text], said
    assert stack.t("en", ASK_PHONE) in helped.text, said
