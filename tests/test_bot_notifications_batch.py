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
