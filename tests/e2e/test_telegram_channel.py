"""The Telegram edge alone: the real channel and PTB against the Bot API stand-in over HTTP.

The dialogs are a scripted stand-in (``scripted.ScriptedConversations``) that
says what it received, so each test shows one promise of the channel from
the customer's side of the chat.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest
from fakes.botapi import TOKEN, BotApiStandIn

from bot.channel import Command, Contact, Press, Start, Text, Unsupported
from bot.telegram.app import ChannelOptions, TelegramChannel
from e2e.scripted import Outbox, ScriptedConversations

CHAT = 4242


@pytest.fixture
async def api() -> AsyncIterator[BotApiStandIn]:
    async with BotApiStandIn() as stand_in:
        yield stand_in


@pytest.fixture
def dialogs() -> ScriptedConversations:
    return ScriptedConversations()


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


def channel_for(
    api: BotApiStandIn,
    dialogs: ScriptedConversations,
    outbox: Outbox | None = None,
    **options: object,
) -> TelegramChannel:
    opts = ChannelOptions(poll_timeout=1, notifications_wait=1, **options)  # type: ignore[arg-type]
    return TelegramChannel(
        token=TOKEN, api_url=api.url, conversations=dialogs, notifications=outbox, options=opts
    )


@pytest.fixture
async def channel(
    api: BotApiStandIn, dialogs: ScriptedConversations, outbox: Outbox
) -> AsyncIterator[TelegramChannel]:
    async with channel_for(api, dialogs, outbox) as running:
        yield running


async def test_start_greets_in_escaped_html_with_the_menu_as_inline_buttons(
    api: BotApiStandIn, dialogs: ScriptedConversations, channel: TelegramChannel
) -> None:
    await api.send_text(CHAT, "/start", language_code="lv")
    greeting = await api.wait_for_message(CHAT, "Hello")
    assert greeting.text == "Hello <friend> & welcome (lv)"
    assert greeting.parse_mode == "HTML"
    assert greeting.buttons == [
        [("Update my details", "o:update_contact"), ("Delete my data", "o:erasure")],
        [("Talk to a person", "o:agent")],
    ]
    assert dialogs.events == [("tg:4242", Start("lv"))]


async def test_a_pressed_button_arrives_without_its_prefix_is_answered_and_its_keyboard_removed(
    api: BotApiStandIn, dialogs: ScriptedConversations, channel: TelegramChannel
) -> None:
    await api.send_text(CHAT, "/start")
    menu = await api.wait_for_message(CHAT, "Hello")
    query = await api.press(CHAT, menu.message_id, "o:erasure")
    await api.wait_for_message(CHAT, "pressed erasure")
    await api.wait_until(lambda: not api.messages(CHAT)[0].buttons)
    assert query in api.answered_callbacks
    assert dialogs.events[-1] == ("tg:4242", Press("erasure", menu.message_id, "en"))


async def test_a_stale_button_on_a_message_long_gone_is_answered_not_crashed_on(
    api: BotApiStandIn, channel: TelegramChannel
) -> None:
    query = await api.press(CHAT, 77, "o:yes")
    await api.wait_for_message(CHAT, "pressed yes")
    assert query in api.answered_callbacks
    await api.send_text(CHAT, "still there?")
    await api.wait_for_message(CHAT, "you said still there?")


async def test_a_text_over_4096_characters_arrives_in_parts_cut_at_line_ends(
    api: BotApiStandIn, channel: TelegramChannel
) -> None:
    await api.send_text(CHAT, "long")
    await api.wait_until(lambda: sum(len(m.text) for m in api.messages(CHAT)) >= 11_900)
    parts = api.messages(CHAT)
    assert len(parts) == 3
    assert all(len(p.text) <= 4096 for p in parts)
    assert all(p.text.endswith("end.") for p in parts)
    assert "\n".join(p.text for p in parts) == (("word " * 199 + "end.\n") * 12).rstrip("\n")
    assert sum(p.text.count("end.") for p in parts) == 12


async def test_own_shared_contact_is_told_apart_from_someone_elses(
    api: BotApiStandIn, dialogs: ScriptedConversations, channel: TelegramChannel
) -> None:
    await api.share_contact(CHAT, "37120000001", own=True)
    await api.wait_for_message(CHAT, "contact +37120000001 own=True")
    await api.share_contact(CHAT, "+37129999999", own=False)
    await api.wait_for_message(CHAT, "contact +37129999999 own=False")
    assert next(e for _, e in dialogs.events if isinstance(e, Contact)).message_id == 1


async def test_the_share_contact_button_is_a_one_time_reply_keyboard_later_removed(
    api: BotApiStandIn, channel: TelegramChannel
) -> None:
    await api.send_text(CHAT, "share")
    asking = await api.wait_for_message(CHAT, "Share your number")
    assert asking.contact_button == "Share my phone number"
    assert asking.reply_markup is not None
    assert asking.reply_markup["one_time_keyboard"]
    await api.send_text(CHAT, "shared")
    thanks = await api.wait_for_message(CHAT, "Thanks.")
    menu = await api.wait_for_message(CHAT, "Now choose:")
    assert thanks.removes_keyboard
    assert menu.button_data == ["o:update_contact", "o:erasure", "o:agent"]


async def test_global_commands_and_stickers_become_their_events(
    api: BotApiStandIn, dialogs: ScriptedConversations, channel: TelegramChannel
) -> None:
    await api.send_text(CHAT, "/status")
    await api.wait_for_message(CHAT, "command status")
    await api.send_text(CHAT, "/language@datadesk_test_bot ru")
    await api.wait_for_message(CHAT, "command language ru")
    await api.send_sticker(CHAT)
    await api.wait_for_message(CHAT, "cannot read a sticker")
    await api.send_text(CHAT, "/unknown")
    await api.wait_for_message(CHAT, "you said /unknown")
    kinds = [type(e) for _, e in dialogs.events]
    assert kinds == [Command, Command, Unsupported, Text]


async def test_a_card_number_is_deleted_and_a_failed_delete_is_shrugged_off(
    api: BotApiStandIn, channel: TelegramChannel
) -> None:
    typed = await api.send_text(CHAT, "card 4111 1111 1111 1111")
    await api.wait_for_deleted(CHAT, typed)
    await api.wait_for_message(CHAT, "411111••••••1111")
    await api.send_text(CHAT, "gone")
    await api.wait_for_message(CHAT, "still here")


async def test_the_command_menu_is_set_for_each_language_telegram_distinguishes(
    api: BotApiStandIn, channel: TelegramChannel
) -> None:
    assert api.commands[""] == [("help", "help (en)"), ("cancel", "cancel (en)")]
    assert api.commands["lv"][0] == ("help", "help (lv)")
    assert api.commands["ru"][0] == ("help", "help (ru)")
    assert api.commands["zh"][0] == ("help", "help (zh_Hans)")


async def test_one_chat_is_answered_in_order_while_another_is_not_held_up(
    api: BotApiStandIn, dialogs: ScriptedConversations, channel: TelegramChannel
) -> None:
    other = CHAT + 1
    dialogs.gates["tg:4242"] = asyncio.Event()
    for n in range(1, 6):
        await api.send_text(CHAT, f"wait {n}")
    await api.send_text(other, "hello")
    # The other chat is answered while the first chat's first update still waits.
    await api.wait_for_message(other, "you said hello")
    assert api.messages(CHAT) == []
    dialogs.gates["tg:4242"].set()
    await api.wait_until(lambda: len(api.messages(CHAT)) == 5)
    assert api.transcript(CHAT) == [f"done wait {n}" for n in range(1, 6)]
    assert not dialogs.overlapped


async def test_a_flood_limit_answer_is_waited_out_and_the_message_still_arrives(
    api: BotApiStandIn, channel: TelegramChannel
) -> None:
    api.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    started = time.monotonic()
    await api.send_text(CHAT, "hi")
    await api.wait_for_message(CHAT, "you said hi")
    # Telegram asked for a second: the reply comes no sooner, and only the second try lands.
    assert time.monotonic() - started >= 1.0
    assert [m for m, _ in api.calls].count("sendMessage") == 2


async def test_a_failure_in_the_dialogs_is_tried_again_then_apologised_for_and_the_chat_goes_on(
    api: BotApiStandIn, dialogs: ScriptedConversations, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.telegram"):
        async with channel_for(api, dialogs, update_backoff=(0.05, 0.1)):
            await api.send_text(CHAT, "boom")
            boom = api.last_update_id
            await api.send_text(CHAT, "after")
            await api.wait_for_message(CHAT, "you said after")
    # Three attempts, then the apology, and only then the chat's next update.
    said = [event.text for _, event in dialogs.events if isinstance(event, Text)]
    assert said == ["boom", "boom", "boom", "after"]
    assert api.transcript(CHAT) == ["sorry, tg:4242: send it again", "you said after"]
    logged = [r.getMessage() for r in caplog.records]
    assert f"update {boom} given up after 3 attempts (RuntimeError)" in logged, logged
    assert not any("boom" in line or "the dialogs failed" in line for line in logged), logged
    assert all(r.exc_info is None for r in caplog.records if "update" in r.getMessage())


async def test_outcomes_are_shown_in_the_chat_then_acknowledged_even_after_the_backend_was_down(
    api: BotApiStandIn, dialogs: ScriptedConversations, outbox: Outbox
) -> None:
    outbox.failures = 2
    outbox.add({"id": 17, "chat": "tg:4242", "reference": "DD-7K2Q9M", "outcome": "done"})
    async with channel_for(api, dialogs, outbox):
        await api.wait_for_message(CHAT, "Request DD-7K2Q9M: done", timeout=15)
        await outbox.wait_acked(17)
    assert outbox.polls >= 3


async def test_webhook_mode_takes_updates_with_the_secret_and_refuses_them_without(
    api: BotApiStandIn, dialogs: ScriptedConversations
) -> None:
    import aiohttp

    options = {
        "mode": "webhook",
        "webhook_url": "https://bot.example.lv/telegram/hook",
        "webhook_secret": "s3cret-token_value",
        "webhook_port": 0,
    }
    async with channel_for(api, dialogs, None, **options) as running:
        assert running._webhook is not None
        port = running._webhook.port
        # The stand-in delivers to the public URL; here that is the local listener.
        api.webhook_url = f"http://127.0.0.1:{port}/telegram/hook"
        await api.send_text(CHAT, "/start", language_code="ru")
        await api.wait_for_message(CHAT, "Hello")
        async with aiohttp.ClientSession() as http:
            forged = {
                "update_id": 1,
                "message": {
                    "message_id": 1,
                    "date": 0,
                    "chat": {"id": 1, "type": "private"},
                    "text": "/start",
                },
            }
            async with http.post(api.webhook_url, json=forged) as response:
                assert response.status == 403
            headers = {"X-Telegram-Bot-Api-Secret-Token": "s3cret-token_value"}
            async with http.post(api.webhook_url, data=b"not json", headers=headers) as response:
                assert response.status == 400
    assert api.webhook_secret == "s3cret-token_value"
    assert api.messages(1) == []
    assert dialogs.events == [("tg:4242", Start("ru"))]


async def test_a_long_text_full_of_markup_characters_arrives_whole_and_as_typed(
    api: BotApiStandIn, dialogs: ScriptedConversations, channel: TelegramChannel
) -> None:
    from bot.channel import Reply

    text = "<b>not bold</b> & " * 400  # 7,200 characters; each "<" takes 4 once escaped
    original = dialogs._answer

    async def answer(chat: str, event: object) -> list[Reply]:
        return [Reply(text)]

    dialogs._answer = answer  # type: ignore[assignment,method-assign]
    try:
        await api.send_text(CHAT, "anything")
        await api.wait_until(lambda: "".join(m.text for m in api.messages(CHAT)).count("&") == 400)
    finally:
        dialogs._answer = original  # type: ignore[method-assign]
    parts = api.messages(CHAT)
    assert len(parts) > 2
    assert all(len(p.html) <= 4096 for p in parts)
    assert " ".join(p.text for p in parts).split() == text.split()


async def test_an_answer_survives_telegram_failing_for_a_moment(
    api: BotApiStandIn, channel: TelegramChannel
) -> None:
    api.fail_next("sendMessage", 502, "Bad Gateway", times=2)
    await api.send_text(CHAT, "are you there")
    await api.wait_for_message(CHAT, "you said are you there")
    assert len(api.messages(CHAT)) == 1


async def test_messages_in_a_group_chat_are_not_answered_there(
    api: BotApiStandIn, dialogs: ScriptedConversations, channel: TelegramChannel
) -> None:
    # Personal data has no place in a group: the dialogs run in private chats only.
    await api.send_group_text(-100777, CHAT, "/start")
    await api.send_text(CHAT, "/start")
    await api.wait_for_message(CHAT, "Hello")
    await api.wait_until(lambda: api.confirmed_offset > api.last_update_id)
    assert api.messages(-100777) == []
    assert [chat for chat, _ in dialogs.events] == ["tg:4242"]


def test_webhook_settings_name_the_port_and_path_the_bot_listens_on() -> None:
    from bot.runner import channel_options
    from bot.settings import BotSettings

    settings = BotSettings.from_env(
        {
            "DATADESK_TELEGRAM_MODE": "webhook",
            "DATADESK_WEBHOOK_URL": "https://bot.bank.lv:88/tg/hook",
            "DATADESK_WEBHOOK_SECRET": "s3cret",
            "DATADESK_HTTP_HOST": "10.0.0.5",
        }
    )
    options = channel_options(settings)
    assert (options.mode, options.webhook_host, options.webhook_port) == ("webhook", "10.0.0.5", 88)
    default = channel_options(
        BotSettings.from_env(
            {"DATADESK_TELEGRAM_MODE": "webhook", "DATADESK_WEBHOOK_URL": "https://bot.bank.lv/tg"}
        )
    )
    assert default.webhook_port == 8443
    behind_a_proxy = channel_options(
        BotSettings.from_env(
            {
                "DATADESK_TELEGRAM_MODE": "webhook",
                "DATADESK_WEBHOOK_URL": "https://bot.bank.lv/tg",
                "DATADESK_WEBHOOK_PORT": "9001",
            }
        )
    )
    assert (behind_a_proxy.webhook_port, behind_a_proxy.webhook_url) == (
        9001,
        "https://bot.bank.lv/tg",
    )


async def test_a_press_is_handled_even_when_answering_the_button_fails(
    api: BotApiStandIn, channel: TelegramChannel
) -> None:
    api.fail_next("answerCallbackQuery", 502, "Bad Gateway")
    api.fail_next("editMessageReplyMarkup", 502, "Bad Gateway")
    await api.press(CHAT, 1, "o:no")
    await api.wait_for_message(CHAT, "pressed no")
