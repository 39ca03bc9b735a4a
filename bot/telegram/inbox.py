"""Webhook updates through the bot database, so any number of bot processes can take them.

Behind a load balancer, Telegram's updates of one chat reach whichever bot
process it picks, two of them at the same moment perhaps. Each process:

1. stores the update in ``telegram_inbox`` keyed by ``update_id`` (sealed with
   the bot's key; a redelivered update is the same row) and only then answers
   Telegram 200, so an accepted update is never lost;
2. takes the chat's lease (``telegram_chat_leases``: one holder at a time, for
   ``LEASE`` at most, renewed while it works), applies every pending update of
   the chat in ``update_id`` order, marks each applied, and lets the lease go;
3. looks again as it lets go (same transaction): an update stored while it
   held the lease was left to it by the process that stored it.

A process that dies holding a lease holds it no longer than ``LEASE``; its
chats' pending updates are then taken by the sweep every process runs. An
applied row keeps no body, and is deleted after ``KEEP_APPLIED`` (Telegram
redelivers for 24 hours): a redelivery of an applied update is dropped here.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, String, Text, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from bot.state import BotBase
from bot.state_key import StateKey
from common.clock import Clock, SystemClock
from common.db import UTCDateTime, make_sessionmaker

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
KEEP_APPLIED = timedelta(hours=25)
# A pending update this old with nobody on its chat is taken by the sweep.
SWEEP_AFTER = timedelta(seconds=2)
PENDING_BATCH = 50  # a chat's pending updates read at once


class InboxRow(BotBase):
    """One update Telegram delivered; ``body`` sealed until applied, then emptied."""

    __tablename__ = "telegram_inbox"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chat: Mapped[str] = mapped_column(String(64), index=True)
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ChatLeaseRow(BotBase):
    """Which bot process applies a chat's updates right now, and until when at most."""

    __tablename__ = "telegram_chat_leases"

    chat: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    until: Mapped[datetime] = mapped_column(UTCDateTime)


class Inbox:
    """The bot database's inbox and chat leases, as one bot process (``holder``) sees them."""

    def __init__(
        self, engine: AsyncEngine, key: StateKey, holder: str, *, clock: Clock | None = None
    ) -> None:
        self.sessions = make_sessionmaker(engine)
        self.key = key
        self.holder = holder
        self.clock = clock or SystemClock()
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def _seal(self, update_id: int, chat: str, body: dict[str, Any]) -> str:
        return self.key.seal(json.dumps(body), bound_to=f"inbox\x00{chat}\x00{update_id}")

    def _open(self, row: InboxRow) -> dict[str, Any]:
        opened = json.loads(
            self.key.open(row.body, bound_to=f"inbox\x00{row.chat}\x00{row.update_id}")
        )
        assert isinstance(opened, dict)
        return opened

    async def put(self, update_id: int, chat: str, body: dict[str, Any]) -> bool:
        """Store one update; False when it was stored before (a redelivery)."""
        statement = (
            self._insert(InboxRow)
            .values(
                update_id=update_id,
                chat=chat,
                body=self._seal(update_id, chat, body),
                received_at=self.clock.now(),
                applied_at=None,
            )
            .on_conflict_do_nothing(index_elements=["update_id"])
        )
        async with self.sessions() as session, session.begin():
            result = await session.execute(statement)
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def take(self, chat: str) -> bool:
        """Hold ``chat``'s lease (or renew it); False while another process holds it."""
        now = self.clock.now()
        statement = (
            self._insert(ChatLeaseRow)
            .values(chat=chat, holder=self.holder, until=now + LEASE)
            .on_conflict_do_update(
                index_elements=["chat"],
                set_={"holder": self.holder, "until": now + LEASE},
                where=(ChatLeaseRow.until < now) | (ChatLeaseRow.holder == self.holder),
            )
        )
        async with self.sessions() as session, session.begin():
            result = await session.execute(statement)
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def release(self, chat: str) -> bool:
        """Let ``chat``'s lease go; whether updates of the chat are pending (stored meanwhile)."""
        async with self.sessions() as session, session.begin():
            await session.execute(
                delete(ChatLeaseRow).where(
                    ChatLeaseRow.chat == chat, ChatLeaseRow.holder == self.holder
                )
            )
            waiting = await session.scalar(
                select(InboxRow.update_id)
                .where(InboxRow.chat == chat, InboxRow.applied_at.is_(None))
                .limit(1)
            )
        return waiting is not None

    async def pending(self, chat: str) -> list[tuple[int, dict[str, Any] | None]]:
        """The chat's updates not yet applied, oldest first: (update_id, update or None if unreadable)."""
        async with self.sessions() as session:
            rows = list(
                await session.scalars(
                    select(InboxRow)
                    .where(InboxRow.chat == chat, InboxRow.applied_at.is_(None))
                    .order_by(InboxRow.update_id)
                    .limit(PENDING_BATCH)
                )
            )
        out: list[tuple[int, dict[str, Any] | None]] = []
        for row in rows:
            try:
                out.append((row.update_id, self._open(row)))
            except Exception:
                # Sealed under another key (BOT_SECRET_KEY changed) or damaged: skipped, not retried forever.
                log.error("inbox update %s in chat %s unreadable; skipped", row.update_id, chat)
                out.append((row.update_id, None))
        return out

    async def applied(self, update_id: int) -> None:
        """Mark one update applied; its body is dropped at once."""
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(InboxRow)
                .where(InboxRow.update_id == update_id)
                .values(applied_at=self.clock.now(), body="")
            )

    async def waiting_chats(self) -> list[str]:
        """Chats with an update pending for a while: their drain may have died with a process."""
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            await session.execute(delete(InboxRow).where(InboxRow.applied_at < now - KEEP_APPLIED))
            rows = await session.scalars(
                select(InboxRow.chat)
                .where(InboxRow.applied_at.is_(None), InboxRow.received_at < now - SWEEP_AFTER)
                .group_by(InboxRow.chat)
                .order_by(func.min(InboxRow.update_id))
            )
            return list(rows)
