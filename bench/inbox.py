"""The webhook inbox alone: what storing and applying one update costs a bot process.

In webhook mode every update goes through the bot database's inbox
(``bot.telegram.inbox``): stored before Telegram is answered, then taken under
its chat's lease, marked applied and the lease let go, as ``InboxDrains``
does. Here 40 chats at once each take 20 updates through it, one at a time,
with nothing else in the process, on SQLite (a file) and, when
``DATADESK_BENCH_POSTGRES_URL`` or ``DATADESK_TEST_POSTGRES_URL`` names a
server, on a fresh PostgreSQL database. Printed: updates per second and the
process's CPU per update (its own share only: aiosqlite's thread counts,
the database server does not).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import count
from pathlib import Path

from sqlalchemy.engine import make_url

from bot.state import BOT_MIGRATIONS
from bot.state_key import StateKey
from bot.telegram.inbox import Inbox
from common.db import admin_execute, make_engine, upgrade_sync

CHATS = 40
UPDATES_PER_CHAT = 20
ROUNDS = 2  # the first warms the connections and statement caches; the last is printed


@asynccontextmanager
async def database(kind: str, folder: Path) -> AsyncIterator[str]:
    """A migrated bot database: a SQLite file in ``folder``, or a fresh PostgreSQL one."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{folder / 'bot.sqlite3'}"
        await asyncio.to_thread(upgrade_sync, url, BOT_MIGRATIONS)
        yield url
        return
    name = f"dd_bench_inbox_{uuid.uuid4().hex[:8]}"
    await admin_execute(kind, f'CREATE DATABASE "{name}"')
    try:
        url = make_url(kind).set(database=name).render_as_string(hide_password=False)
        await asyncio.to_thread(upgrade_sync, url, BOT_MIGRATIONS)
        yield url
    finally:
        await admin_execute(kind, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def through(url: str) -> tuple[float, float]:
    """(updates/s, CPU ms per update) of the last round."""
    # As the channel opens it: one small pool for the registry and the inbox.
    engine = (
        make_engine(url)
        if url.startswith("sqlite")
        else make_engine(url, pool_size=4, max_overflow=4)
    )
    inbox = Inbox(engine, StateKey("bench-inbox-key-not-for-production"), "bench-bot")
    ids = count(1)

    async def chat(key: str) -> None:
        for _ in range(UPDATES_PER_CHAT):
            update_id = next(ids)
            assert await inbox.put(
                update_id, key, {"update_id": update_id, "message": {"text": "hi"}}
            )
            pending = await inbox.take_pending(key)
            assert pending, "a free chat's lease is taken with its update"
            await inbox.release(key, applied=pending[-1][0])

    try:
        rate = cpu = 0.0
        for round_ in range(ROUNDS):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await asyncio.gather(*(chat(f"{round_}{n:04d}") for n in range(CHATS)))
            cpu1, wall1 = time.process_time(), time.perf_counter()
            updates = CHATS * UPDATES_PER_CHAT
            rate, cpu = updates / (wall1 - wall0), (cpu1 - cpu0) / updates * 1000
        return rate, cpu
    finally:
        await inbox.close()
        await engine.dispose()


async def measure() -> list[tuple[str, float, float]]:
    kinds = ["sqlite"]
    pg = os.environ.get("DATADESK_BENCH_POSTGRES_URL") or os.environ.get(
        "DATADESK_TEST_POSTGRES_URL"
    )
    if pg:
        kinds.append(pg)
    rows = []
    with tempfile.TemporaryDirectory(prefix="datadesk-bench-inbox-") as folder:
        for kind in kinds:
            async with database(kind, Path(folder)) as url:
                rate, cpu = await through(url)
            rows.append(("SQLite" if kind == "sqlite" else "PostgreSQL", rate, cpu))
    return rows


def main() -> int:
    """Print the inbox's updates/s and CPU per update on each database."""
    print(
        f"inbox: {CHATS} chats at once, {UPDATES_PER_CHAT} updates each: store, take with pending, apply nothing, release"
    )
    for name, rate, cpu in asyncio.run(measure()):
        print(f"  {name:<12}{rate:8.0f} updates/s {cpu:6.2f} ms CPU per update in the bot process")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
