"""Dialog reloads through the bot database, so a request reaches the bots on every host.

``datadesk dialogs reload`` adds a row to ``dialog_reloads`` (``request_reload``).
Every bot process watches that table (``watch_reloads``): every
``POLL_SECONDS`` it reads the newest request's number, and when it has grown
since the last look, the bot re-reads its own ``DIALOGS_DIR`` and
``LOCALES_DIR`` (``Conversations.reload``: a broken set is refused, logged,
and the last good one kept). A bot that starts reads the newest number
*before* it loads the files (``latest_or_none``) and watches from there, so a
request made while it was loading is not lost. The same polling works on
SQLite and PostgreSQL; one ``max()`` over the primary key a second per bot
costs next to nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import BigInteger, Integer, func, insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from bot.state import BotBase
from common.clock import Clock, SystemClock
from common.db import UTCDateTime

log = logging.getLogger(__name__)

# How often a bot looks for a new request: a reload reaches every bot within this.
POLL_SECONDS = 1.0


class DialogReloadRow(BotBase):
    """One ``datadesk dialogs reload``: its number, and when it was asked for."""

    __tablename__ = "dialog_reloads"

    # SQLite numbers rows itself only for an INTEGER primary key.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)


async def request_reload(engine: AsyncEngine, clock: Clock | None = None) -> int:
    """Ask every bot using this database to reload its dialogs; the request's number."""
    now = (clock or SystemClock()).now()
    async with engine.begin() as connection:
        result = await connection.execute(
            insert(DialogReloadRow).values(requested_at=now).returning(DialogReloadRow.id)
        )
        return int(result.scalar_one())


async def latest_request(engine: AsyncEngine) -> int:
    """The newest request's number; 0 when none was ever made."""
    async with engine.connect() as connection:
        latest = await connection.scalar(select(func.max(DialogReloadRow.id)))
    return int(latest or 0)


async def latest_or_none(engine: AsyncEngine) -> int | None:
    """``latest_request``, or None when the database cannot be read yet."""
    try:
        return await latest_request(engine)
    except (SQLAlchemyError, OSError):
        return None


async def watch_reloads(
    engine: AsyncEngine,
    reload: Callable[[], Awaitable[bool]],
    *,
    seen: int | None = None,
    poll_seconds: float = POLL_SECONDS,
) -> None:
    """Call ``reload()`` whenever a request newer than ``seen`` appears; runs until cancelled.

    ``seen`` is the newest request when the dialogs were loaded; None takes
    the first one read as seen. A database that cannot be read is logged and
    tried again at the next poll: the bot keeps serving the dialogs it has.
    """
    while True:
        try:
            latest = await latest_request(engine)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("dialog reload requests not read (%s); trying again", type(exc).__name__)
        else:
            if seen is not None and latest > seen:
                log.info("dialog reload request %d: reloading dialog files", latest)
                await reload()
            seen = latest
        await asyncio.sleep(poll_seconds)
