"""Several bot processes in webhook mode behind a load balancer: one chat, in order, once.

Two real channels (each as a ``datadesk bot`` process would run it, with its
own process name, registry row and webhook listener) share one bot database.
The test plays Telegram, POSTing one chat's updates to either bot, the same
update to both at the same moment too. Every update is applied once, in
``update_id`` order, whichever bot received it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from fakes.botapi import TOKEN, BotApiStandIn

from bot.channel import Text
from bot.state_key import StateKey
from bot.telegram.app import ChannelOptions, TelegramChannel
from bot.telegram.webhook import SECRET_HEADER
from e2e.conftest import free_port
from e2e.scripted import ScriptedConversations

CHAT = 7007
SECRET = "scale-out-webhook-secret"
KEY = StateKey("scale-out-bot-key-for-tests-only")


@pytest.fixture
async def api() -> AsyncIterator[BotApiStandIn]:
    async with BotApiStandIn() as stand_in:
        yield stand_in


def bot_process(
    api: BotApiStandIn, dialogs: ScriptedConversations, bot_db_url: str, *, order_wait: float = 0.2
) -> TelegramChannel:
    port = free_port()
    options = ChannelOptions(
        mode="webhook",
        webhook_url=f"http://127.0.0.1:{port}/telegram/hook",
        webhook_secret=SECRET,
        webhook_port=port,
        notifications_wait=1,
        rate_limit=0,
        bot_database_url=bot_db_url,
        state_key=KEY,
        inbox_sweep=0.2,
        registry_heartbeat=0.2,
        order_wait=order_wait,
    )
    return TelegramChannel(token=TOKEN, api_url=api.url, conversations=dialogs, options=options)


_ids = itertools.count(900_001)


def text_update(text: str, update_id: int | None = None) -> dict[str, Any]:
    """What Telegram POSTs for a customer typing ``text`` in ``CHAT``."""
    update_id = next(_ids) if update_id is None else update_id
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id - 900_000,
            "date": 1_700_000_000,
            "chat": {"id": CHAT, "type": "private", "first_name": "Customer"},
            "from": {"id": CHAT, "is_bot": False, "first_name": "Customer", "language_code": "en"},
            "text": text,
        },
    }


async def post(http: aiohttp.ClientSession, bot: TelegramChannel, update: dict[str, Any]) -> int:
    assert bot.options.webhook_url is not None
    async with http.post(
        bot.options.webhook_url, json=update, headers={SECRET_HEADER: SECRET}
    ) as response:
        return response.status


def texts(dialogs: ScriptedConversations) -> list[str]:
    return [e.text for chat, e in dialogs.events if isinstance(e, Text)]


async def test_one_chat_s_updates_spread_over_two_bots_are_applied_once_and_in_order(
    api: BotApiStandIn, bot_db_url: str
) -> None:
    dialogs = ScriptedConversations()
    # The first update waits in the dialogs until the rest have reached either bot.
    dialogs.gates[f"tg:{CHAT}"] = asyncio.Event()
    updates = [text_update(f"wait {n}") for n in range(1, 13)]
    async with contextlib.AsyncExitStack() as running:
        one = await running.enter_async_context(bot_process(api, dialogs, bot_db_url))
        two = await running.enter_async_context(bot_process(api, dialogs, bot_db_url))
        http = await running.enter_async_context(aiohttp.ClientSession())
        assert await post(http, one, updates[0]) == 200
        await asyncio.wait_for(_until(lambda: texts(dialogs) == ["wait 1"]), 10)
        # The rest at the same moment, alternately to each bot; each also to both at once.
        statuses = await asyncio.gather(
            *(
                post(http, bot, u)
                for n, u in enumerate(updates[1:])
                for bot in ((one, two)[n % 2],)
            ),
            *(post(http, bot, u) for u in updates[4:7] for bot in (one, two)),
        )
        assert set(statuses) == {200}
        dialogs.gates[f"tg:{CHAT}"].set()
        await api.wait_until(lambda: len(api.messages(CHAT)) == len(updates), timeout=20)
        await asyncio.sleep(0.5)  # room for a second application, were there one
    assert texts(dialogs) == [f"wait {n}" for n in range(1, 13)]
    assert api.transcript(CHAT) == [f"done wait {n}" for n in range(1, 13)]
    assert not dialogs.overlapped


async def test_an_update_another_bot_stores_a_moment_after_a_later_one_is_applied_first(
    api: BotApiStandIn, bot_db_url: str
) -> None:
    # Sent at once, stored 0.3 s apart: the later one reached its bot first.
    dialogs = ScriptedConversations()
    first, second = text_update("first"), text_update("second")
    async with contextlib.AsyncExitStack() as running:
        one = await running.enter_async_context(bot_process(api, dialogs, bot_db_url, order_wait=1))
        two = await running.enter_async_context(bot_process(api, dialogs, bot_db_url, order_wait=1))
        await asyncio.wait_for(_until(lambda: _sees_each_other(one, two)), 10)
        http = await running.enter_async_context(aiohttp.ClientSession())
        assert await post(http, two, second) == 200
        await asyncio.sleep(0.3)
        assert await post(http, one, first) == 200
        await api.wait_until(lambda: len(api.messages(CHAT)) == 2, timeout=10)
    assert texts(dialogs) == ["first", "second"]
    assert api.transcript(CHAT) == ["you said first", "you said second"]


async def test_a_lone_bot_does_not_wait_for_updates_other_bots_might_store(
    api: BotApiStandIn, bot_db_url: str
) -> None:
    dialogs = ScriptedConversations()
    async with contextlib.AsyncExitStack() as running:
        bot = await running.enter_async_context(bot_process(api, dialogs, bot_db_url, order_wait=5))
        http = await running.enter_async_context(aiohttp.ClientSession())
        assert await post(http, bot, text_update("alone")) == 200
        # Were it waiting for another bot, the answer would come after 5 s.
        await api.wait_for_message(CHAT, "you said alone", timeout=2.5)


def _sees_each_other(*bots: TelegramChannel) -> bool:
    return all(bot.drains is not None and bot.drains.others == 1 for bot in bots)


async def test_an_update_left_by_a_bot_that_died_is_applied_by_another(
    api: BotApiStandIn, bot_db_url: str
) -> None:
    dialogs = ScriptedConversations()
    async with bot_process(api, dialogs, bot_db_url) as survivor:
        # Stored by a process that died before applying it (no drain ran).
        assert survivor.inbox is not None
        late = text_update("left behind")
        await survivor.inbox.put(late["update_id"], str(CHAT), late)
        await api.wait_for_message(CHAT, "you said left behind", timeout=10)
    assert texts(dialogs) == ["left behind"]


async def _until(predicate: Any) -> None:
    # The state polled is the channel's, which no event announces.
    while not predicate():  # noqa: ASYNC110
        await asyncio.sleep(0.05)
