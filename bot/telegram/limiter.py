"""Telegram's flood limit for one bot token, spent replies first and chat by chat.

Telegram lets a token make about 30 message calls a second in all (sending,
editing, deleting a message); answering a button press, fetching updates and
the like are not counted. ``TurnTakingRateLimiter`` is this process's share of
that budget (``set_rate``: the token's limit divided among the live bot
processes, ``bot.telegram.registry``), handed out one call at a time:

- a customer's reply to what they just did goes before queued outcome notices
  and broadcasts (``Priority``; the notifications loop runs under
  ``as_notice()``);
- within a priority, chats take turns round robin, so one chat with many
  messages queued cannot hold up the others;
- a ``RetryAfter`` answer pauses every call of this process for as long as
  Telegram asks, then the call is tried again (``max_retries`` times).

It replaces PTB's ``AIORateLimiter``, which keeps one FIFO for everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import enum
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

log = logging.getLogger(__name__)

# The Bot API methods Telegram counts against the token's message budget.
LIMITED_METHODS = frozenset(
    {
        "sendMessage",
        "editMessageText",
        "editMessageReplyMarkup",
        "editMessageCaption",
        "deleteMessage",
        "sendDocument",
        "sendPhoto",
        "sendChatAction",
        "copyMessage",
        "forwardMessage",
    }
)


def _seconds(period: int | dt.timedelta) -> float:
    """A Bot API period in seconds: a ``timedelta`` (``bot.settings.use_timedelta_periods``)."""
    return period.total_seconds() if isinstance(period, dt.timedelta) else float(period)


class Priority(enum.IntEnum):
    """Lower goes first."""

    REPLY = 0  # the answer to what a customer just did
    NOTICE = 1  # outcome notices, agent messages, broadcasts


_priority: contextvars.ContextVar[Priority] = contextvars.ContextVar(
    "telegram_call_priority", default=Priority.REPLY
)


@contextlib.contextmanager
def as_notice() -> Iterator[None]:
    """Calls made inside wait behind customers' replies."""
    token = _priority.set(Priority.NOTICE)
    try:
        yield
    finally:
        _priority.reset(token)


class TurnTakingRateLimiter(BaseRateLimiter[None]):
    """At most ``rate`` limited calls a second from this process; replies first, chats in turn."""

    def __init__(
        self,
        rate: float,
        *,
        max_retries: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive; use no limiter for 'no limit'")
        self.rate = float(rate)
        self.max_retries = max_retries
        self._clock = clock
        self._next_free = 0.0  # when the next call may start (monotonic seconds)
        self._paused_until = 0.0  # Telegram's RetryAfter, for every call
        # Per priority: chat → its calls waiting, in order; chats in turn order.
        self._waiting: dict[Priority, OrderedDict[object, deque[asyncio.Future[None]]]] = {
            p: OrderedDict() for p in Priority
        }
        self._wakeup = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None

    def set_rate(self, rate: float) -> None:
        """This process's share changed (a bot process came or went)."""
        if rate > 0 and rate != self.rate:
            log.info("Telegram calls per second for this process: %.2f", rate)
            self.rate = float(rate)
            self._wakeup.set()

    @property
    def queued(self) -> int:
        """Calls waiting for their turn; for metrics and tests."""
        return sum(len(q) for chats in self._waiting.values() for q in chats.values())

    async def initialize(self) -> None:
        """Start handing out turns."""
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch(), name="telegram-rate-limiter")

    async def shutdown(self) -> None:
        """Stop handing out turns; calls still waiting are cancelled."""
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
            self._dispatcher = None
        for chats in self._waiting.values():
            for queue in chats.values():
                for future in queue:
                    future.cancel()
            chats.clear()

    def _next(self) -> asyncio.Future[None] | None:
        """The next waiting call: highest priority, the chat whose turn it is."""
        for priority in Priority:
            chats = self._waiting[priority]
            while chats:
                chat, queue = next(iter(chats.items()))
                future = queue.popleft()
                if queue:
                    chats.move_to_end(chat)  # the chat goes to the back of the line
                else:
                    del chats[chat]
                if not future.done():  # a caller that gave up (cancelled) takes no turn
                    return future
        return None

    async def _dispatch(self) -> None:
        while True:
            if not self.queued:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            now = self._clock()
            start = max(self._next_free, self._paused_until)
            if start > now:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    # Woken early by a new rate or a pause; the turn is worked out again.
                    async with asyncio.timeout(start - now):
                        await self._wakeup.wait()
                continue
            future = self._next()
            if future is None:
                continue
            future.set_result(None)
            self._next_free = max(now, self._next_free) + 1.0 / self.rate

    async def _turn(self, chat: object) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[_priority.get()].setdefault(chat, deque()).append(future)
        self._wakeup.set()
        await future

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        """Make the call in its turn; wait out ``RetryAfter`` and try again."""
        if endpoint not in LIMITED_METHODS:
            return await callback(*args, **kwargs)
        chat = data.get("chat_id")
        for attempt in range(self.max_retries + 1):
            await self._turn(chat)
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                if attempt == self.max_retries:
                    raise
                pause = _seconds(exc.retry_after)
                # Telegram counts the whole token: every call of this process waits it out.
                self._paused_until = max(self._paused_until, self._clock() + pause)
                self._wakeup.set()
                log.warning("Telegram asked to wait %.0fs (%s)", pause, endpoint)
        raise AssertionError("unreachable")
