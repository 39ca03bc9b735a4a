"""Updates from one chat strictly in order, updates from different chats concurrently.

PTB's default processor either runs everything serially (one slow chat holds
up every customer) or, with ``concurrent_updates``, runs updates of one chat
concurrently too, so "confirm" could overtake the answer before it. Here each
chat has a FIFO lock; an update waits for its chat's turn *before* it takes one
of the ``workers`` slots, so a burst from one chat never starves the others.

PTB starts one task per update in the order it fetched them, and
``asyncio.Lock`` wakes its waiters first-come first-served, so a chat's
updates run in the order Telegram sent them. ``serialized(key)`` lets other
work for a chat (outcome notifications) take the same turn-taking.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

# Updates held in memory at once (waiting or running); PTB's own bound.
MAX_PENDING_UPDATES = 4096


def chat_key(update: object) -> int | None:
    """The chat an update belongs to, or None when it has none (those run unordered)."""
    if isinstance(update, Update) and update.effective_chat is not None:
        return update.effective_chat.id
    return None


class PerChatUpdateProcessor(BaseUpdateProcessor):
    """At most ``workers`` updates run at once; per chat, one at a time, in arrival order."""

    def __init__(self, workers: int = 64) -> None:
        super().__init__(max_concurrent_updates=MAX_PENDING_UPDATES)
        self.workers = workers
        self._slots = asyncio.Semaphore(workers)
        self._locks: dict[int, asyncio.Lock] = {}
        self._holders: dict[int, int] = {}

    @contextlib.asynccontextmanager
    async def serialized(self, key: int | None) -> AsyncIterator[None]:
        """Run the body in ``key``'s turn and in one of the worker slots."""
        if key is None:
            async with self._slots:
                yield
            return
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        self._holders[key] = self._holders.get(key, 0) + 1
        try:
            async with lock, self._slots:
                yield
        finally:
            # Forget idle chats so memory follows active chats, not every chat ever seen.
            self._holders[key] -= 1
            if not self._holders[key]:
                del self._holders[key]
                del self._locks[key]

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Await ``coroutine`` in its chat's turn."""
        try:
            async with self.serialized(chat_key(update)):
                await coroutine
        finally:
            # Cancelled while waiting its turn (shutdown): close it so Python does not warn.
            if (
                inspect.iscoroutine(coroutine)
                and inspect.getcoroutinestate(coroutine) == "CORO_CREATED"
            ):
                coroutine.close()

    async def initialize(self) -> None:
        """Nothing to allocate: locks are made per chat on demand."""

    async def shutdown(self) -> None:
        """Nothing to release."""

    @property
    def chats_in_turn(self) -> frozenset[int]:
        """Chats with something running or waiting in this process."""
        return frozenset(self._locks)

    @property
    def active_chats(self) -> int:
        """Chats with an update running or waiting; for metrics and tests."""
        return len(self._locks)
