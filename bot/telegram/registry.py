"""The bot processes of one token, registered in the bot database, so they share Telegram's limit.

Every ``datadesk bot`` process of a token writes a row with a heartbeat every
``HEARTBEAT`` seconds; a row not renewed for ``LIVE_FOR`` counts as a process
that died. Each process takes ``share(limit, live processes)`` as its own rate
(``bot.telegram.limiter``), so together they stay within the token's limit in
every second: when one dies the others take its share after ``LIVE_FOR``; a
process that starts beside others waits one heartbeat before its first call,
so they have handed its share over by then. In webhook mode the inbox learns
the count too: with others live, a chat's update waits a moment for one
stored beside it by another bot (``bot.telegram.inbox``). The token itself is
not stored: rows name a digest of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import String, delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from bot.state import BotBase
from common.clock import Clock, SystemClock
from common.db import UTCDateTime, make_sessionmaker

log = logging.getLogger(__name__)

HEARTBEAT = 1.0  # seconds between a process's heartbeats (one small write)
LIVE_FOR = timedelta(seconds=3 * HEARTBEAT)  # a process silent this long is gone
FORGET_AFTER = timedelta(hours=1)  # rows of dead processes are deleted after this


class BotProcessRow(BotBase):
    """One running bot process of a token (by digest) and when it last said so."""

    __tablename__ = "bot_processes"

    process: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_digest: Mapped[str] = mapped_column(String(64), index=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


def share(limit: float, live: int) -> float:
    """One process's calls a second out of ``limit`` for the token, with ``live`` processes.

    Calls spaced ``1/rate`` apart can put ``rate + 1`` of them in one second
    (one at each edge), so every process leaves one call of headroom: the
    token's processes together stay within ``limit`` in any one second.
    """
    live = max(1, live)
    if limit > 2 * live:
        return (limit - live) / live
    return limit / (2 * live)


def process_name() -> str:
    """This process, unique among every bot process now and before (host, pid, random)."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def token_digest(token: str) -> str:
    """Names the token in the database without holding it."""
    return hashlib.sha256(f"datadesk-bot-registry:{token}".encode()).hexdigest()


class ProcessRegistry:
    """This process's row in ``bot_processes``; ``beat()`` renews it and counts the live ones."""

    def __init__(
        self, engine: AsyncEngine, token: str, process: str, *, clock: Clock | None = None
    ) -> None:
        self.sessions = make_sessionmaker(engine)
        self.digest = token_digest(token)
        self.process = process
        self.clock = clock or SystemClock()
        self._heartbeat: asyncio.Task[None] | None = None

    async def start(self, live: Callable[[int], None], *, every: float = HEARTBEAT) -> None:
        """Register, tell ``live`` how many processes are, renew and tell again every ``every`` s.

        Beside other live processes, returns only after one heartbeat: they
        learn of this one at their next, and until then their shares of the
        limit and this one's would add up to more than the limit.
        """
        count = await self.beat()
        live(count)
        self._heartbeat = asyncio.create_task(self._beat(live, every), name="telegram-registry")
        if count > 1:
            await asyncio.sleep(every)

    async def _beat(self, live: Callable[[int], None], every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                count = await self.beat()
            except Exception as exc:
                # The bot database is away: keep the last count until it is back.
                log.warning("bot registry heartbeat failed (%s)", type(exc).__name__)
                continue
            live(count)

    async def beat(self) -> int:
        """Renew this process's heartbeat; the number of live processes of the token (≥ 1)."""
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            row = await session.get(BotProcessRow, self.process)
            if row is None:
                session.add(
                    BotProcessRow(process=self.process, token_digest=self.digest, seen_at=now)
                )
            else:
                row.seen_at = now
            await session.execute(
                delete(BotProcessRow).where(BotProcessRow.seen_at < now - FORGET_AFTER)
            )
        async with self.sessions() as session:
            live = await session.scalar(
                select(func.count())
                .select_from(BotProcessRow)
                .where(
                    BotProcessRow.token_digest == self.digest,
                    BotProcessRow.seen_at >= now - LIVE_FOR,
                )
            )
        return max(1, int(live or 0))

    async def close(self) -> None:
        """Stop the heartbeat and leave: the others take this share at their next heartbeat."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        try:
            async with self.sessions() as session, session.begin():
                await session.execute(
                    delete(BotProcessRow).where(BotProcessRow.process == self.process)
                )
        except Exception as exc:
            # The row then simply ages out after LIVE_FOR.
            log.warning("bot process not unregistered (%s)", type(exc).__name__)
