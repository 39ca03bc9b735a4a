"""Delivers the backend's notifications (outcomes, agent messages) to Telegram chats.

Long-polls ``GET /api/v1/notifications?prefix=tg:``, lets the conversation
service render each one in the customer's language, sends it in the chat's
turn (so it never overtakes an answer being given), chats at once and each
chat's notifications in order, then acknowledges. A
notification that could not be sent is not acknowledged: the backend hands it
out again when its lease ends, and the conversation service shows each id
once. The backend or Telegram being down only slows this loop, never ends it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from telegram.error import Forbidden, TelegramError

from bot.channel import Outgoing, Send
from bot.telegram.events import telegram_chat_id
from bot.telegram.limiter import as_notice

log = logging.getLogger(__name__)

PREFIX = "tg:"
MAX_BACKOFF = 60.0
BATCH = 100  # notifications taken at once without a flood limit
# Chats shown at once: each holds database connections while it is shown, and
# every bot, backend and worker process of a deployment shares the server's.
CHATS_AT_ONCE = 8


class NotificationSource(Protocol):
    """The outbox side of ``bot.backend_client.BackendClient``."""

    async def poll_notifications(
        self, *, prefix: str, wait: float = 30, limit: int = 100
    ) -> list[dict[str, Any]]: ...

    async def ack_notifications(self, ids: list[int]) -> None: ...


class Renderer(Protocol):
    async def notify(
        self, notification: dict[str, Any], send: Send | None = None
    ) -> list[Outgoing]: ...


class ChatTurns(Protocol):
    def serialized(self, key: int | None) -> AbstractAsyncContextManager[None]: ...


Deliver = Callable[[int, list[Outgoing]], Awaitable[object]]


async def _show(deliver: Deliver, chat_id: int, outgoing: list[Outgoing]) -> None:
    await deliver(chat_id, outgoing)


async def deliver_one(
    notification: dict[str, Any], renderer: Renderer, deliver: Deliver, turns: ChatTurns
) -> bool:
    """Show one notification; True when it is done with (shown, or can never be)."""
    ident = notification.get("id")
    chat_id = telegram_chat_id(str(notification.get("chat", "")))
    if chat_id is None:
        log.error("notification %s names no Telegram chat; dropped", ident)
        return True
    try:
        async with turns.serialized(chat_id):
            # Marked shown only after Telegram took it: a failed send is retried.
            # Its calls wait behind customers' replies for the token's budget.
            with as_notice():
                await renderer.notify(notification, functools.partial(_show, deliver, chat_id))
    except Forbidden:
        # The customer blocked the bot: no retry will reach them.
        log.warning("notification %s: chat %s blocked the bot", ident, chat_id)
        return True
    except TelegramError as exc:
        log.warning("notification %s to chat %s not sent (%s); will retry", ident, chat_id, exc)
        return False
    except Exception:
        log.exception("notification %s to chat %s failed; will retry", ident, chat_id)
        return False
    return True


async def deliver_batch(
    batch: list[dict[str, Any]], renderer: Renderer, deliver: Deliver, turns: ChatTurns
) -> list[Any]:
    """Show a batch, chats at once and each chat's notifications in order; the ids done with.

    One at a time, a batch of 100 outcomes took 100 × (its database writes and
    a send) before the last customer heard (5 s at 100 customers in
    ``bench/bot.py``); up to ``CHATS_AT_ONCE`` chats now go at once. A chat
    stops at its first failure: the rest wait for redelivery, so they are not
    shown before the one that failed.
    """
    chats: dict[object, list[dict[str, Any]]] = {}
    for notification in batch:
        chats.setdefault(notification.get("chat"), []).append(notification)
    at_once = asyncio.Semaphore(CHATS_AT_ONCE)

    async def chat_in_order(notifications: list[dict[str, Any]]) -> list[Any]:
        done = []
        async with at_once:
            for notification in notifications:
                if not await deliver_one(notification, renderer, deliver, turns):
                    break
                done.append(notification["id"])
        return done

    shown = await asyncio.gather(*(chat_in_order(n) for n in chats.values()))
    done_ids = {ident for idents in shown for ident in idents}
    return [n["id"] for n in batch if n["id"] in done_ids]


async def deliver_notifications(
    source: NotificationSource,
    renderer: Renderer,
    deliver: Deliver,
    turns: ChatTurns,
    *,
    wait: float = 30.0,
    prefix: str = PREFIX,
    batch_size: Callable[[], int] = lambda: BATCH,
) -> None:
    """Poll, show, acknowledge, until cancelled; up to ``batch_size()`` at a time."""
    delay = 1.0
    while True:
        try:
            limit = max(1, batch_size())
            batch = await source.poll_notifications(prefix=prefix, wait=wait, limit=limit)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Jitter spreads many bot processes' retries after a backend restart.
            pause = delay * random.uniform(0.5, 1.0)  # noqa: S311 - not a secret
            log.warning(
                "notifications unavailable (%s); retrying in %.1fs", type(exc).__name__, pause
            )
            await asyncio.sleep(pause)
            delay = min(delay * 2, MAX_BACKOFF)
            continue
        delay = 1.0
        done = await deliver_batch(batch, renderer, deliver, turns)
        if not done:
            continue
        try:
            await source.ack_notifications(done)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Redelivered after the lease; shown once all the same.
            log.warning("ack of %d notifications failed (%s)", len(done), type(exc).__name__)
