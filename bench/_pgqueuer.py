"""The ledger bench's baseline: pgqueuer draining no-op jobs on the same PostgreSQL server.

pgqueuer (PyPI) is a job queue on PostgreSQL built for throughput: batch
dequeues with ``FOR UPDATE SKIP LOCKED``, ``LISTEN/NOTIFY`` wake-ups, and
buffered status writes. Its jobs here do nothing, so the figure is the
queue's own cost: what a request of datadesk's, with its real effect, is
compared with.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

from sqlalchemy.engine import make_url

from common.db import admin_execute

JOBS = 10_000
ENQUEUE_CHUNK = 1_000
# pgqueuer's own default batch size.
BATCH = 10
TIMEOUT = 60.0


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def drain(base_url: str, workers: int = 4, jobs: int = JOBS) -> tuple[int, float]:
    """Enqueue ``jobs`` no-op jobs in a fresh database, drain them with ``workers`` queue
    managers (one connection each, in this process); return (jobs done, seconds)."""
    import asyncpg
    from pgqueuer import Job, Queries, QueueManager
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.domain.types import QueueExecutionMode

    name = f"dd_bench_pgq_{uuid.uuid4().hex[:10]}"
    await admin_execute(base_url, f'CREATE DATABASE "{name}"')
    dsn = _dsn(make_url(base_url).set(database=name).render_as_string(hide_password=False))
    connections: list[asyncpg.Connection] = []
    try:
        setup = await asyncpg.connect(dsn)
        connections.append(setup)
        queries = Queries(AsyncpgDriver(setup))
        await queries.install()
        for start in range(0, jobs, ENQUEUE_CHUNK):
            size = min(ENQUEUE_CHUNK, jobs - start)
            await queries.enqueue(["noop"] * size, [None] * size, [0] * size)
        done = 0
        managers = []
        for _ in range(workers):
            connection = await asyncpg.connect(dsn)
            connections.append(connection)
            manager = QueueManager(Queries(AsyncpgDriver(connection)))

            @manager.entrypoint("noop")
            async def noop(job: Job) -> None:
                nonlocal done
                done += 1

            managers.append(manager)
        started = time.perf_counter()
        runs = [
            manager.run(
                mode=QueueExecutionMode.drain,
                batch_size=BATCH,
                dequeue_timeout=timedelta(seconds=1),
                log_aggregation_interval=timedelta(0),
            )
            for manager in managers
        ]
        await asyncio.wait_for(asyncio.gather(*runs), timeout=TIMEOUT)
        return done, time.perf_counter() - started
    finally:
        for connection in connections:
            await connection.close()
        await admin_execute(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    import os

    count, seconds = asyncio.run(drain(os.environ["DATADESK_TEST_POSTGRES_URL"]))
    print(f"pgqueuer: {count} no-op jobs in {seconds:.2f} s = {count / seconds:.0f} jobs/s")
