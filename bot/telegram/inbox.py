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

An update whose applying raised is not marked applied: its ``attempts`` go
up, and the drain, still holding the lease, tries it again after a back-off
while the chat's later updates wait behind it; after the last attempt it is
given up (``bot.telegram.retries``: where the retry boundary is, and why that
keeps applying exactly-once): the customer is asked to send it again, and the
row is marked applied and ``given_up_at``, without its body.

Order is update_id order among the updates stored when the drain reads
them. Two updates of a chat sent at the same moment may reach two bots, and
the one with the later id may be stored first: while other bot processes of
the token are live (``bot.telegram.registry``), a drain started by a stored
update waits ``order_wait`` first (0.2 s as shipped, ``WEBHOOK_ORDER_WAIT``),
so an update another bot stores within that window is applied in its place
in the order. A lone bot does not wait: its updates are stored in the order
Telegram's requests reach it. One that reaches the inbox later still, after
a later update of its chat was applied (Telegram, too, may deliver a chat's
updates out of order), is applied late, never dropped: the conversation
skips only the update it handled last (``bot.records``).

A process that dies holding a lease holds it no longer than ``LEASE``; its
chats' pending updates are then taken by the sweep every process runs, their
attempts counted so far kept. An applied row keeps no body, and is deleted
after ``KEEP_APPLIED`` (Telegram redelivers for 24 hours): a redelivery of an
applied update is dropped here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

from sqlalchemy import (
    BigInteger,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.dml import Update

from bot.state import BotBase
from bot.state_key import StateKey
from bot.telegram import retries
from common.clock import Clock, SystemClock
from common.db import Autocommit, UTCDateTime

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
KEEP_APPLIED = timedelta(hours=25)
# A pending update this old with nobody on its chat is taken by the sweep.
SWEEP_AFTER = timedelta(seconds=2)
PENDING_BATCH = 50  # a chat's pending updates read at once
# Seconds a stored update waits, with other bots live, for one stored beside it.
ORDER_WAIT = 0.2


class InboxRow(BotBase):
    """One update Telegram delivered; ``body`` sealed until applied, then emptied."""

    __tablename__ = "telegram_inbox"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chat: Mapped[str] = mapped_column(String(64), index=True)
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Attempts at applying it that raised; one given up is applied (no body) with given_up_at.
    attempts: Mapped[int] = mapped_column(server_default="0")
    given_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Pending(NamedTuple):
    """One update waiting in a chat: its id, the update (None if unreadable), failed attempts."""

    update_id: int
    data: dict[str, Any] | None
    attempts: int = 0


class ChatLeaseRow(BotBase):
    """Which bot process applies a chat's updates right now, and until when at most."""

    __tablename__ = "telegram_chat_leases"

    chat: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    until: Mapped[datetime] = mapped_column(UTCDateTime)


_INBOX: Table = InboxRow.__table__  # type: ignore[assignment]
_LEASES: Table = ChatLeaseRow.__table__  # type: ignore[assignment]

# The two upserts of every update, as SQL both engines take. SQLAlchemy 2.0
# does not cache its dialects' INSERT ... ON CONFLICT constructs (their
# ``inherit_cache`` is False): built with them, both were compiled afresh at
# every update, about a tenth of the bot's CPU under ``bench/bot.py``.
_PUT = text(
    "INSERT INTO telegram_inbox (update_id, chat, body, received_at, applied_at) "
    "VALUES (:update_id, :chat, :body, :at, NULL) ON CONFLICT (update_id) DO NOTHING"
).bindparams(bindparam("at", type_=UTCDateTime()))
_TAKE = text(
    "INSERT INTO telegram_chat_leases (chat, holder, until) VALUES (:chat, :holder, :until) "
    "ON CONFLICT (chat) DO UPDATE SET holder = excluded.holder, until = excluded.until "
    "WHERE telegram_chat_leases.until < :now OR telegram_chat_leases.holder = excluded.holder"
).bindparams(bindparam("until", type_=UTCDateTime()), bindparam("now", type_=UTCDateTime()))


class Inbox:
    """The bot database's inbox and chat leases, as one bot process (``holder``) sees them.

    Every call is single statements in autocommit, each its own transaction:
    no BEGIN, COMMIT or ORM session around them. py-spy on the bot process
    under ``bench/bot.py`` (PostgreSQL) found the inbox's five sessions per
    update (store, take, read pending, mark applied, release) at about 60% of
    the bot's samples, three times what handling the update cost, mostly in
    BEGIN and COMMIT round trips; now each is one round trip per statement.
    On SQLite they go through ``Autocommit.execute``: the statements of all
    the chats draining at once reach the database's thread in one hop and
    commit together (py-spy had put a quarter of the bot's samples in
    aiosqlite's per-call hops).
    """

    def __init__(
        self, engine: AsyncEngine, key: StateKey, holder: str, *, clock: Clock | None = None
    ) -> None:
        self.key = key
        self.holder = holder
        self.clock = clock or SystemClock()
        self._postgresql = engine.dialect.name == "postgresql"
        self._auto = Autocommit(engine)

    async def close(self) -> None:
        """Release the connections of its own (SQLite)."""
        await self._auto.close()

    def _seal(self, update_id: int, chat: str, body: dict[str, Any]) -> str:
        return self.key.seal(json.dumps(body), bound_to=f"inbox\x00{chat}\x00{update_id}")

    def _open(self, update_id: int, chat: str, body: str) -> dict[str, Any]:
        opened = json.loads(self.key.open(body, bound_to=f"inbox\x00{chat}\x00{update_id}"))
        assert isinstance(opened, dict)
        return opened

    async def put(self, update_id: int, chat: str, body: dict[str, Any]) -> bool:
        """Store one update; False when it was stored before (a redelivery)."""
        sealed = self._seal(update_id, chat, body)
        params = {"update_id": update_id, "chat": chat, "body": sealed, "at": self.clock.now()}
        return bool((await self._auto.execute(_PUT, params)).rowcount)

    async def take(self, chat: str) -> bool:
        """Hold ``chat``'s lease (or renew it); False while another process holds it."""
        now = self.clock.now()
        params = {"chat": chat, "holder": self.holder, "until": now + LEASE, "now": now}
        return bool((await self._auto.execute(_TAKE, params)).rowcount)

    async def take_pending(self, chat: str) -> list[Pending] | None:
        """``take`` then ``pending``: None while another process holds the lease.

        Two statements, not one: the pending updates must be read after the
        lease is ours. On PostgreSQL a single statement (the lease's upsert in
        a CTE, the pending updates read beside it) reads with the snapshot its
        start took; when its upsert waited for the holder's release (which
        marks the last update applied and deletes the lease in one commit), it
        got the lease and still saw that update pending, and applied it a
        second time (``tests/e2e/test_telegram_scale_out.py`` caught it).
        """
        return await self.pending(chat) if await self.take(chat) else None

    async def release(self, chat: str, applied: int | None = None) -> bool:
        """Let ``chat``'s lease go; whether updates of the chat are pending (stored meanwhile).

        ``applied``: an update to mark applied first (on PostgreSQL in the same
        statement as letting the lease go). The lease is gone (committed) before
        the inbox is looked at: an update stored after the look finds the lease
        free and its storer drains it; one stored before is seen here.
        """
        inbox, leases = _INBOX.c, _LEASES.c
        let_go = delete(_LEASES).where(leases.chat == chat, leases.holder == self.holder)
        if applied is not None:
            if self._postgresql:
                let_go = let_go.add_cte(self._applied(applied).cte("applied"))
            else:
                await self.applied(applied)
        await self._auto.execute(let_go)
        waiting = await self._auto.execute(
            select(inbox.update_id).where(inbox.chat == chat, inbox.applied_at.is_(None)).limit(1)
        )
        return bool(waiting.rows)

    async def pending(self, chat: str) -> list[Pending]:
        """The chat's updates not yet applied, oldest first: (update_id, update or None if unreadable)."""
        inbox = _INBOX.c
        rows = (
            await self._auto.execute(
                select(inbox.update_id, inbox.body, inbox.attempts)
                .where(inbox.chat == chat, inbox.applied_at.is_(None))
                .order_by(inbox.update_id)
                .limit(PENDING_BATCH)
            )
        ).rows
        return self._opened(chat, [(row.update_id, row.body, row.attempts) for row in rows])

    def _opened(self, chat: str, rows: list[tuple[int, str, int]]) -> list[Pending]:
        out: list[Pending] = []
        for update_id, body, attempts in rows:
            try:
                out.append(Pending(update_id, self._open(update_id, chat, body), attempts))
            except Exception:
                # Sealed under another key (BOT_SECRET_KEY changed) or damaged: skipped, not retried forever.
                log.error("inbox update %s in chat %s unreadable; skipped", update_id, chat)
                out.append(Pending(update_id, None, attempts))
        return out

    async def applied(self, update_id: int) -> None:
        """Mark one update applied; its body is dropped at once."""
        await self._auto.execute(self._applied(update_id))

    async def failed(self, update_id: int, attempts: int) -> None:
        """Note that applying an update raised, ``attempts`` times so far; it stays pending."""
        await self._auto.execute(
            update(_INBOX).where(_INBOX.c.update_id == update_id).values(attempts=attempts)
        )

    async def given_up(self, update_id: int, attempts: int) -> None:
        """Mark an update given up after ``attempts``: out of the pending ones, its body dropped."""
        now = self.clock.now()
        await self._auto.execute(
            update(_INBOX)
            .where(_INBOX.c.update_id == update_id)
            .values(applied_at=now, given_up_at=now, attempts=attempts, body="")
        )

    def _applied(self, update_id: int) -> Update:
        return (
            update(_INBOX)
            .where(_INBOX.c.update_id == update_id)
            .values(applied_at=self.clock.now(), body="")
        )

    async def waiting_chats(self) -> list[str]:
        """Chats with an update pending for a while: their drain may have died with a process."""
        now = self.clock.now()
        inbox = _INBOX.c
        await self._auto.execute(delete(_INBOX).where(inbox.applied_at < now - KEEP_APPLIED))
        rows = await self._auto.execute(
            select(inbox.chat)
            .where(inbox.applied_at.is_(None), inbox.received_at < now - SWEEP_AFTER)
            .group_by(inbox.chat)
            .order_by(func.min(inbox.update_id))
        )
        return [row.chat for row in rows.rows]


class ChatTurns(Protocol):
    """``bot.telegram.processor.PerChatUpdateProcessor``: a chat's turn in this process."""

    def serialized(self, key: int | None) -> AbstractAsyncContextManager[None]: ...

    @property
    def chats_in_turn(self) -> frozenset[int]: ...


class InboxDrains:
    """Applies each chat's inbox updates in this process, under the chat's lease.

    ``store`` keeps a webhook update and starts draining its chat, after
    ``order_wait`` seconds while other bots are live (``peers``); a sweep
    every ``sweep_every`` seconds drains chats whose updates wait with nobody
    applying them (their process died). ``apply`` runs one update through the
    Telegram handlers and raises when it should be tried again
    (``bot.telegram.retries``); ``give_up`` answers one tried ``len(backoff) + 1``
    times, and must not raise.
    """

    def __init__(
        self,
        inbox: Inbox,
        apply: Callable[[dict[str, Any]], Awaitable[None]],
        turns: ChatTurns,
        *,
        give_up: Callable[[dict[str, Any]], Awaitable[None]],
        backoff: tuple[float, ...] = retries.BACKOFF,
        sweep_every: float = SWEEP_AFTER.total_seconds(),
        order_wait: float = ORDER_WAIT,
    ) -> None:
        self.inbox = inbox
        self.apply = apply
        self.give_up = give_up
        self.backoff = backoff
        self.turns = turns
        self.sweep_every = sweep_every
        self._drains: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        # Chats whose drain waits to try a failed update again (it keeps their lease).
        self._backing_off: set[int] = set()
        self._stopping = asyncio.Event()
        self.order_wait = order_wait
        self._others = 0  # other bot processes of the token live, by the registry

    def peers(self, others: int) -> None:
        """How many other bot processes of the token are live now."""
        self._others = max(0, others)

    @property
    def others(self) -> int:
        """Other bot processes of the token live, when the registry last counted."""
        return self._others

    async def store(self, update_id: int, chat: int, data: dict[str, Any]) -> None:
        """Keep one update (raises if the database would not), then apply its chat's pending ones."""
        if await self.inbox.put(update_id, str(chat), data):
            self._drain_soon(chat, wait=self.order_wait if self._others else 0.0)

    def start(self) -> None:
        """Start sweeping."""
        self._stopping.clear()
        self._sweeper = asyncio.create_task(self._sweep(), name="telegram-inbox-sweep")

    async def stop(self) -> None:
        """Stop sweeping; let the drains running finish (one backing off lets its chat go)."""
        self._stopping.set()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._drains:
            await asyncio.gather(*self._drains, return_exceptions=True)

    def _drain_soon(self, chat: int, *, wait: float = 0.0) -> None:
        if chat in self._backing_off:
            # Its drain applies this update too once it is back, in order.
            return
        task = asyncio.create_task(self._drain(chat, wait), name=f"telegram-inbox-{chat}")
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    async def _drain(self, chat: int, wait: float = 0.0) -> None:
        """After ``wait`` seconds, apply ``chat``'s pending updates in order holding its lease.

        In this process the chat's turn keeps drains of one chat apart; across
        processes the lease does. Letting the lease go also looks for updates
        stored meanwhile: whoever stored one while the lease was held left it
        to the holder. While a failed update waits to be tried again the lease
        stays held, so the chat's later updates wait behind it everywhere, but
        the chat's turn and its worker slot are let go.
        """
        key = str(chat)
        try:
            if wait > 0:
                # For an update of the chat that another bot stores meanwhile.
                await asyncio.sleep(wait)
            while True:
                async with self.turns.serialized(chat):
                    back_off = await self._apply_pending(key)
                if back_off is None:
                    return
                self._backing_off.add(chat)
                try:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), back_off)
                finally:
                    self._backing_off.discard(chat)
                if self._stopping.is_set():
                    # The update stays pending: a process running on (or this one
                    # started again) tries it once the lease is free.
                    await self.inbox.release(key)
                    return
        except asyncio.CancelledError:
            raise
        except Exception:
            # The bot database is away: the sweep tries again.
            log.exception("chat %s: inbox not drained", chat)

    async def _apply_pending(self, key: str) -> float | None:
        """Apply the chat's pending updates; seconds to wait before trying a failed one again.

        None when the chat has nothing pending any more (the lease let go) or
        another process holds it; a number when an update failed and the lease
        is kept (renewed) for the back-off.
        """
        inbox = self.inbox
        while (pending := await inbox.take_pending(key)) is not None:
            renewed = time.monotonic()
            last: int | None = None  # applied, marked so as the lease goes
            wait: float | None = None
            more = False
            try:
                for item in pending:
                    if last is not None:
                        await inbox.applied(last)
                        last = None
                    error = None if item.data is None else await self._attempt(item.data)
                    if error is None:
                        last = item.update_id
                    elif (wait := await self._failed(key, item, error)) is not None:
                        return wait
                    if time.monotonic() - renewed > LEASE.total_seconds() / 3:
                        await inbox.take(key)
                        renewed = time.monotonic()
            finally:
                if wait is None:
                    more = await inbox.release(key, applied=last)
            if not more:
                return None
        return None

    async def _attempt(self, data: dict[str, Any]) -> Exception | None:
        """Apply one update; what it raised, if anything."""
        try:
            await self.apply(data)
        except Exception as exc:
            return exc
        return None

    async def _failed(self, key: str, item: Pending, error: Exception) -> float | None:
        """Count a failed attempt; the back-off before the next, or None once given up."""
        assert item.data is not None
        attempt = item.attempts + 1
        wait = retries.after_failure(item.update_id, attempt, error, self.backoff)
        if wait is not None:
            await self.inbox.failed(item.update_id, attempt)
            await self.inbox.take(key)  # the lease outlasts the back-off
            return wait
        await self.give_up(item.data)
        await self.inbox.given_up(item.update_id, attempt)
        return None

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_every)
            try:
                chats = await self.inbox.waiting_chats()
            except Exception as exc:
                log.warning("inbox sweep failed (%s)", type(exc).__name__)
                continue
            for chat in chats:
                if int(chat) not in self.turns.chats_in_turn:
                    self._drain_soon(int(chat))
