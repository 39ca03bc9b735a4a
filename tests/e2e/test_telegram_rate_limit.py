"""Telegram's flood limit: shared by every bot process of a token, replies first, chats in turn.

The real channel (PTB, ``bot.telegram.limiter``, the process registry in a
real bot database) against the Bot API stand-in over HTTP. Limits here are
low (a few calls a second) so the order of the calls shows who waited.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from fakes.botapi import TOKEN, BotApiStandIn

from bot.channel import Reply
from bot.telegram.app import ChannelOptions, TelegramChannel
from bot.telegram.limiter import as_notice
from bot.telegram.registry import share
from e2e.scripted import ScriptedConversations

LIMIT = 10.0


@pytest.fixture
async def api() -> AsyncIterator[BotApiStandIn]:
    async with BotApiStandIn() as stand_in:
        yield stand_in


def bot_process(
    api: BotApiStandIn, *, rate: float, bot_db_url: str | None = None
) -> TelegramChannel:
    """One ``datadesk bot`` process's channel (each has its own registry row)."""
    options = ChannelOptions(
        poll_timeout=1,
        rate_limit=rate,
        bot_database_url=bot_db_url,
        registry_heartbeat=0.2,
    )
    return TelegramChannel(
        token=TOKEN, api_url=api.url, conversations=ScriptedConversations(), options=options
    )


def sent_texts(api: BotApiStandIn) -> list[str]:
    return [str(params.get("text")) for method, params in api.calls if method == "sendMessage"]


def most_in_one_second(times: list[float]) -> int:
    """The largest number of ``times`` inside any one-second window."""
    times = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


async def test_two_bot_processes_of_one_token_together_stay_within_its_limit(
    api: BotApiStandIn, bot_db_url: str
) -> None:
    async with contextlib.AsyncExitStack() as running:
        one = await running.enter_async_context(bot_process(api, rate=LIMIT, bot_db_url=bot_db_url))
        two = await running.enter_async_context(bot_process(api, rate=LIMIT, bot_db_url=bot_db_url))
        assert one.limiter is not None
        assert two.limiter is not None
        await asyncio.wait_for(
            _until(lambda: one.limiter.rate == two.limiter.rate == share(LIMIT, 2)), 5
        )
        began = len(api.calls)
        await asyncio.gather(
            *(p.deliver(100 + n, [Reply(f"message {n}")]) for p in (one, two) for n in range(15))
        )
        times = [
            at
            for (method, _), at in zip(api.calls[began:], api.call_times[began:], strict=True)
            if method == "sendMessage"
        ]
        assert len(times) == 30
        assert most_in_one_second(times) <= LIMIT

        await running.aclose()


async def test_when_one_bot_process_leaves_the_other_takes_the_whole_limit(
    api: BotApiStandIn, bot_db_url: str
) -> None:
    async with bot_process(api, rate=LIMIT, bot_db_url=bot_db_url) as one:
        assert one.limiter is not None
        async with bot_process(api, rate=LIMIT, bot_db_url=bot_db_url):
            await asyncio.wait_for(_until(lambda: one.limiter.rate == share(LIMIT, 2)), 5)
        await asyncio.wait_for(_until(lambda: one.limiter.rate == share(LIMIT, 1)), 5)


async def test_a_customer_s_reply_overtakes_queued_outcome_notices(api: BotApiStandIn) -> None:
    async with bot_process(api, rate=5) as bot:
        with as_notice():
            notices = [
                asyncio.create_task(bot.deliver(200 + n, [Reply(f"notice {n}")])) for n in range(8)
            ]
        await asyncio.sleep(0.05)
        await api.send_text(300, "hello")
        await api.wait_for_message(300, "you said hello", timeout=10)
        await asyncio.gather(*notices)
    order = sent_texts(api)
    # At most the notice already granted a turn goes first; the other seven wait.
    assert order.index("you said hello") <= 1, order


async def test_one_busy_chat_does_not_hold_up_another(api: BotApiStandIn) -> None:
    async with bot_process(api, rate=5) as bot:
        busy = [asyncio.create_task(bot.deliver(400, [Reply(f"busy {n}")])) for n in range(8)]
        await asyncio.sleep(0.05)
        await api.send_text(500, "hello")
        await api.wait_for_message(500, "you said hello", timeout=10)
        await asyncio.gather(*busy)
    order = sent_texts(api)
    # Chats take turns: the other chat's answer waits for one busy message at most.
    assert order.index("you said hello") <= 2, order


async def _until(predicate: object) -> None:
    assert callable(predicate)
    # The state polled is the channel's, which no event announces.
    while not predicate():  # noqa: ASYNC110
        await asyncio.sleep(0.05)
