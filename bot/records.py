"""Load and save: one chat's record around one update, and the locks that serialise a chat.

``Records`` loads a chat's record (``bot.state``), decides whether an update
was handled already (``claim``), turns the stored state into the engine's
and saves it back with the update's transcript lines in one write, waking
the transcript filer (``bot.transcript.Filer``) when there are lines.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from bot.channel import ChannelEvent
from bot.engine_adapter import EngineAdapter
from bot.i18n import negotiate
from bot.state import ChatRecord, StateStore
from bot.transcript import Filer
from common.clock import Clock

log = logging.getLogger(__name__)

# A conversation idle this long starts again at the menu; what it collected is deleted.
IDLE_RETENTION = timedelta(days=30)
# Notifications are redelivered within minutes; their "shown" marks need not live long.
SHOWN_RETENTION = timedelta(days=7)
PRUNE_EVERY = timedelta(hours=6)
# Telegram keeps an unconfirmed update for 24 hours, and after a week without
# updates starts its ids afresh (lower, perhaps): an older chat compares no ids.
REDELIVERY_WINDOW = timedelta(hours=24)


class Records:
    """The chats' records in the bot database, one update at a time per chat in this process.

    ``exact``: only the last update handled counts as handled already (webhook
    mode). There the inbox drops a redelivered update by its id, and hands
    the handler each update once, except the last one handled when its bot
    died before marking it applied. An older update than the last one handled
    is one that reached a bot late (Telegram may deliver a chat's updates
    out of order, two bots may store them in either order): it was never
    handled, and is answered now rather than dropped. When polling,
    ``getUpdates`` redelivers every update after the last offset confirmed, so
    any update up to the last one handled was handled.
    """

    def __init__(
        self,
        store: StateStore,
        engine: EngineAdapter,
        clock: Clock,
        filer: Filer,
        *,
        exact: bool = False,
    ) -> None:
        self.exact = exact
        self.store = store
        self.engine = engine
        self.clock = clock
        self.filer = filer
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._pruned_at: datetime | None = None

    @asynccontextmanager
    async def lock(self, chat: str) -> AsyncIterator[None]:
        """One event at a time per chat in this process; the version check covers other processes."""
        lock, users = self._locks.get(chat, (asyncio.Lock(), 0))
        self._locks[chat] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[chat]
            if users <= 1:
                del self._locks[chat]
            else:
                self._locks[chat] = (lock, users - 1)

    def busy(self) -> int:
        """How many chats have an update in hand or waiting in this process."""
        return len(self._locks)

    async def load(self, chat: str) -> ChatRecord:
        """The chat's record as saved last."""
        return await self.store.load(chat)

    def claim(self, record: ChatRecord, event: ChannelEvent) -> bool:
        """False if ``event`` was handled in the chat already; else note it as the last one."""
        update_id = event.update_id
        if update_id is None:
            return True
        last, saved = record.last_update_id, record.updated_at
        if (
            last is not None
            and saved is not None
            and self.clock.now() - saved < REDELIVERY_WINDOW
            and (update_id == last if self.exact else update_id <= last)
        ):
            return False
        # Webhook: the one handled most recently, a late one included (the
        # inbox has marked the later ones applied: they never come back).
        record.last_update_id = update_id
        return True

    def state(self, record: ChatRecord, event: ChannelEvent | None) -> Any:
        """The chat's engine state; a new chat starts in the locale its platform reports."""
        if record.state is not None:
            try:
                return self.engine.state_from_json(record.state)
            except Exception:
                log.warning(
                    "chat %s: stored state unreadable, starting again", record.chat, exc_info=True
                )
        return self.engine.new_state(negotiate(getattr(event, "language_code", None)))

    async def save(
        self, record: ChatRecord, state: Any, lines: Sequence[tuple[str, str]] = ()
    ) -> None:
        """Save ``state`` and the update's transcript lines in one write (StaleState if raced)."""
        record.state = self.engine.state_to_json(state)
        await self.store.save(record, self.clock.now(), lines)
        if lines:
            self.filer.wake()

    async def prune(self) -> None:
        """Delete idle conversations and old shown marks (at most every few hours)."""
        now = self.clock.now()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        idle, marks = await self.store.prune(
            idle_before=now - IDLE_RETENTION, shown_before=now - SHOWN_RETENTION
        )
        if idle or marks:
            log.info("pruned %d idle conversations and %d shown marks", idle, marks)
