"""Outcome notices of one batch: chats at once, each chat's in order, a failure keeps the rest."""

from __future__ import annotations

import asyncio
from typing import Any

from telegram.error import NetworkError

from bot.channel import Outgoing, Reply, Send
from bot.telegram.notifications import deliver_batch
from bot.telegram.processor import PerChatUpdateProcessor


class Renderer:
    """Shows each notification's ``text``; a chat in ``held`` waits until it is let go."""

    def __init__(self) -> None:
        self.shown: list[tuple[str, str]] = []
        self.held: dict[str, asyncio.Event] = {}
        self.failing: set[int] = set()

    async def notify(
        self, notification: dict[str, Any], send: Send | None = None
    ) -> list[Outgoing]:
        chat = str(notification["chat"])
        if chat in self.held:
            await self.held[chat].wait()
        if notification["id"] in self.failing:
            raise NetworkError("Telegram unreachable")
        self.shown.append((chat, str(notification["text"])))
        return [Reply(str(notification["text"]))]


async def _deliver(chat_id: int, outgoing: list[Outgoing]) -> None:
    return None


def _notice(ident: int, chat: int, text: str) -> dict[str, Any]:
    return {"id": ident, "chat": f"tg:{chat}", "text": text}


async def test_a_chat_slow_to_show_its_notice_does_not_hold_up_the_other_chats() -> None:
    renderer = Renderer()
    renderer.held["tg:1"] = asyncio.Event()
    batch = [_notice(1, 1, "slow"), *(_notice(n, n, f"outcome {n}") for n in range(2, 12))]
    delivering = asyncio.create_task(
        deliver_batch(batch, renderer, _deliver, PerChatUpdateProcessor())
    )
    async with asyncio.timeout(5):
        while len(renderer.shown) < 10:  # noqa: ASYNC110 - polls a list the tasks fill
            await asyncio.sleep(0.01)
    assert ("tg:1", "slow") not in renderer.shown
    renderer.held["tg:1"].set()
    assert await delivering == list(range(1, 12))
    assert renderer.shown[-1] == ("tg:1", "slow")


async def test_a_chat_s_notices_are_shown_in_order_and_stop_at_one_that_failed() -> None:
    renderer = Renderer()
    renderer.failing = {2}
    batch = [
        _notice(1, 7, "first"),
        _notice(2, 7, "second"),
        _notice(3, 8, "other chat"),
        _notice(4, 7, "third"),
    ]
    done = await deliver_batch(batch, renderer, _deliver, PerChatUpdateProcessor())
    # The failed one and the one after it in its chat wait for redelivery, in order.
    assert done == [1, 3]
    assert [text for chat, text in renderer.shown if chat == "tg:7"] == ["first"]


class Source:
    """The backend's outbox: 20 outcome notices waiting; remembers each poll's limit."""

    def __init__(self) -> None:
        self.pending = [
            {**_notice(n, 100 + n, f"outcome {n}"), "reference": f"DD-{n}", "outcome": "done"}
            for n in range(1, 21)
        ]
        self.limits: list[int] = []
        self.acked: list[int] = []

    async def poll_notifications(
        self, *, prefix: str, wait: float = 30, limit: int = 100
    ) -> list[dict[str, Any]]:
        self.limits.append(limit)
        if not self.pending:
            await asyncio.sleep(wait)
        return self.pending[:limit]

    async def ack_notifications(self, ids: list[int]) -> None:
        self.acked += ids
        self.pending = [n for n in self.pending if n["id"] not in ids]


async def test_with_a_flood_limit_a_bot_takes_about_a_second_of_its_share_per_poll() -> None:
    # The other bot processes of the token can take the rest meanwhile.
    from e2e.scripted import ScriptedConversations
    from fakes.botapi import TOKEN, BotApiStandIn

    from bot.telegram.app import ChannelOptions, TelegramChannel

    source = Source()
    async with BotApiStandIn() as api:
        options = ChannelOptions(poll_timeout=1, notifications_wait=1, rate_limit=8)
        channel = TelegramChannel(
            token=TOKEN,
            api_url=api.url,
            conversations=ScriptedConversations(),
            notifications=source,
            options=options,
        )
        async with channel, asyncio.timeout(10):
            while len(source.acked) < 20:  # noqa: ASYNC110 - the channel acks as it shows
                await asyncio.sleep(0.05)
    assert source.limits[:3] == [8, 8, 8]
    assert sorted(source.acked) == list(range(1, 21))
