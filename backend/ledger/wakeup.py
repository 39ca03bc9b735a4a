"""Waking idle workers when a request becomes due, instead of polling for it.

A transaction that queues a request calls ``announce(session)``. When it
commits, every worker waiting in this process wakes at once (an in-process
event, set by SQLAlchemy's ``after_commit`` hook, so a worker never wakes to a
row it cannot see yet). On PostgreSQL ``announce`` also issues ``NOTIFY`` in
the same transaction, which the server delivers at commit to every worker
process that ``LISTEN``s (``Waiter``, on a dedicated asyncpg connection).

Workers still look every ``POLL_SECONDS``: a lost notification (a listener
connection that dropped, a SQLite writer in another process) only delays a
request, and retries whose back-off ends and leases that run out are found
that way too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from common.db import is_sqlite

log = logging.getLogger(__name__)

CHANNEL = "datadesk_requests"
POLL_SECONDS = 5.0
_PENDING = "datadesk_wake_workers"

# Every waiter of every event loop in this process (tests run many loops).
_waiters: weakref.WeakSet[Waiter] = weakref.WeakSet()


async def announce(session: AsyncSession) -> None:
    """Wake the workers when ``session``'s transaction commits (once per transaction)."""
    if session.info.get(_PENDING):
        return
    session.info[_PENDING] = True
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


def _committed(session: Session) -> None:
    if session.info.pop(_PENDING, False):
        for waiter in list(_waiters):
            waiter.wake_soon()


def _rolled_back(session: Session) -> None:
    session.info.pop(_PENDING, None)


event.listen(Session, "after_commit", _committed)
event.listen(Session, "after_rollback", _rolled_back)


class Waiter:
    """One worker's wake-up: ``wait()`` returns when work was announced, or after a poll interval.

    ``start()`` listens on PostgreSQL (a failure to connect is logged and the
    waiter falls back to polling); ``close()`` releases the connection.
    """

    def __init__(self, database_url: str, poll_seconds: float = POLL_SECONDS) -> None:
        self._url = database_url
        self.poll_seconds = poll_seconds
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self._connection: Any = None
        _waiters.add(self)

    def wake_soon(self) -> None:
        """Wake ``wait()``; safe from any thread."""
        if self._loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._event.set()
        else:
            self._loop.call_soon_threadsafe(self._event.set)

    async def start(self) -> None:
        """Listen for ``NOTIFY`` on PostgreSQL; nothing to do on SQLite."""
        if is_sqlite(self._url) or self._connection is not None:
            return
        import asyncpg

        dsn = make_url(self._url).set(drivername="postgresql").render_as_string(False)
        try:
            connection = await asyncpg.connect(dsn, timeout=10)
            await connection.add_listener(CHANNEL, self._notified)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            # The type only: a connection error can quote the address and user.
            log.warning("worker wake-ups: cannot listen (%s); polling", type(exc).__name__)
            return
        connection.add_termination_listener(self._lost)
        self._connection = connection

    def _notified(self, *_: object) -> None:
        self._event.set()

    def _lost(self, *_: object) -> None:
        self._connection = None

    async def wait(self) -> bool:
        """Wait for an announcement or the poll interval; True when woken by an announcement."""
        if self._connection is None:
            await self.start()
        try:
            await asyncio.wait_for(self._event.wait(), timeout=self.poll_seconds)
        except TimeoutError:
            return False
        finally:
            self._event.clear()
        return True

    def clear(self) -> None:
        """Forget announcements so far: called before looking for work."""
        self._event.clear()

    async def close(self) -> None:
        """Stop listening and release the connection."""
        _waiters.discard(self)
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close(timeout=5)
