"""An update Telegram delivers again after a restart (its offset was never confirmed) is not handled twice."""

from __future__ import annotations

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
