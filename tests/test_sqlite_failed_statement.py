"""A failed SQLite statement leaves nothing that can freeze the process later.

SQLAlchemy's aiosqlite adapter left the sqlite3 cursor of a failed statement
open, held by the error's traceback until the garbage collector freed it on
the event loop's thread. Freeing an open cursor resets its statement, which
waits for its connection's mutex; when that connection was by then waiting in
SQLite's busy handler for another process's write lock (up to the 30 s busy
timeout), the whole process stopped, including whichever of its own
transactions held the lock the others waited for. Two ``datadesk backend``
processes on one SQLite file then answered nothing for 30 s at a time
(``make bench``, row "2 bots 30/s"; py-spy showed the event loop in
``gc_collect_main → cursor_clear → sqlite3_reset → pthread_mutex_lock``).
"""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import threading
import time
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, Table, insert
from sqlalchemy.exc import IntegrityError

from common.db import make_engine

HOLD = 3.0  # seconds another process holds the write lock


async def test_the_event_loop_runs_on_while_a_connection_whose_statement_failed_waits_for_the_lock(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db.sqlite3"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True))
    async with engine.begin() as connection:
        await connection.run_sync(table.metadata.create_all)
        await connection.execute(insert(table).values(id=1))

    # The collector runs when the test says so, and on what the test made only:
    # the rest of the process's heap (a whole suite's) is left out of it.
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        async with engine.connect() as connection:
            failed: list[BaseException] = []
            try:
                await connection.execute(insert(table).values(id=1))  # a duplicate key
            except IntegrityError as error:
                failed.append(error)
            await connection.rollback()

            # Another process takes the write lock and keeps it for HOLD seconds.
            other = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            threading.Timer(HOLD, other.execute, ["COMMIT"]).start()
            # The same connection now waits for the lock in its thread.
            waiting = asyncio.ensure_future(connection.execute(insert(table).values(id=2)))
            await asyncio.sleep(0.3)

            # The failure is forgotten and collected on the event loop's thread.
            began = time.monotonic()
            failed.clear()
            gc.collect()
            collected_in = time.monotonic() - began

            await waiting
            await connection.commit()
            other.close()
    finally:
        gc.enable()
        gc.unfreeze()
        await engine.dispose()
    # Freeing the failed statement did not wait for the other process's commit.
    assert collected_in < HOLD / 2, f"the event loop stopped {collected_in:.1f} s"
