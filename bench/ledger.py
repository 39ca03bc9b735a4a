"""The requests ledger under load: requests per second submitted, claimed and completed.

On SQLite (a file, WAL) and, when ``DATADESK_BENCH_POSTGRES_URL`` or
``DATADESK_TEST_POSTGRES_URL`` names a server, on a fresh PostgreSQL database;
each with 1 and 4 workers (claim loops in one process, as ``datadesk worker
--concurrency N`` runs them). Every case is bounded by ``SECONDS`` and
``REQUESTS``, and runs the real code: ``ledger.submit`` (validation, reference,
audit entry), ``worker.claim`` (the claim transaction with its audit entry)
and ``worker.run_workers`` against the built-in CRM (address changes).

- submitted: ``N`` concurrent submitters, each a new request.
- claimed: claims alone (rows go to ``running``), then put back.
- completed: claim, CRM change, outcome, audit and notification; by claim
  loops in this process, and by as many separate ``python -m backend.worker``
  processes (timed from the first claim to the last outcome in the audit log).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url

from backend import ledger
from backend.crm import importer
from backend.models.audit import AuditEntry
from backend.models.base import BACKEND_MIGRATIONS
from backend.models.ledger import Request
from backend.services import Services, open_services
from backend.settings import Settings
from backend.worker import claim, run_workers, worker_name
from common.clock import SystemClock
from common.db import admin_execute, upgrade
from common.vocabulary.request_states import QUEUED

REPO = Path(__file__).resolve().parent.parent
REQUESTS = 400
# Requests drained by separate worker processes in the last case of each row.
PROCESS_BATCH = 100
SECONDS = 3.0
# One request per customer at most, so per-customer ordering never holds a claim back.
CUSTOMERS = REQUESTS
ADDRESS = {"line1": "Elizabetes iela 2", "city": "Rīga", "postcode": "LV-1010", "country": "LV"}


@dataclass
class Row:
    engine: str
    workers: int
    submitted: float
    claimed: float
    completed: float
    processes: float


async def _bounded(loops: int, step: Callable[[int], Awaitable[bool]]) -> tuple[int, float]:
    """Run ``loops`` concurrent loops of ``step(n)`` (n counts up from 1) until REQUESTS,
    SECONDS or a step finds nothing left."""
    count = 0
    started = time.perf_counter()
    deadline = started + SECONDS

    issued = 0

    async def loop() -> None:
        nonlocal count, issued
        while issued < REQUESTS and time.perf_counter() < deadline:
            issued += 1
            if not await step(issued):
                return
            count += 1

    await asyncio.gather(*(loop() for _ in range(loops)))
    return count, time.perf_counter() - started


async def _customers(services: Services) -> list[str]:
    refs = [f"B-{i:04d}" for i in range(CUSTOMERS)]
    document = {
        "customers": [
            {
                "ref": ref,
                "name": "Bench Customer",
                "language": "en",
                "phones": [{"number": f"+3712{i:07d}", "primary": True}],
                "emails": [],
                "address": None,
                "marketing": {"email": True, "sms": True, "phone": True, "post": True},
                "products": [],
                "transactions": [],
                "documents": [],
            }
            for i, ref in enumerate(refs)
        ]
    }
    valid, problems = importer.validate(document)
    if problems:
        raise RuntimeError("; ".join(problems[:3]))
    await importer.apply(services.sessions, valid, services.clock)
    return refs


async def _case(services: Services, refs: list[str], workers: int) -> tuple[float, float, float]:
    """Submitted, claimed and completed per second with ``workers`` loops."""

    async def submit_one(i: int) -> bool:
        await ledger.submit(
            services,
            customer_ref=refs[i % len(refs)],
            chat=f"bench:{i}",
            locale="en",
            kind="update_contact",
            payload={"field": "address", "address": ADDRESS},
            idempotency_key=uuid.uuid4().hex,
        )
        return True

    submitted, s_time = await _bounded(workers, submit_one)

    async def claim_one(i: int) -> bool:
        return await claim(services, worker_name(i % workers)) is not None

    claimed, c_time = await _bounded(workers, claim_one)
    async with services.sessions() as session:
        # Put the claimed rows back so the completion case starts from the same queue.
        await session.execute(
            update(Request)
            .where(Request.state == "running")
            .values(state=QUEUED, lease_owner=None, lease_expires_at=None, attempts=0)
        )
        await session.commit()
    started = time.perf_counter()
    stop = asyncio.Event()
    # Bounded like the other cases: stop after SECONDS, or earlier when the queue is empty.
    timer = asyncio.get_running_loop().call_later(SECONDS, stop.set)
    crm = ledger.connector(services)
    done = await run_workers(services, crm, concurrency=workers, stop=stop, once=True, purge=False)
    timer.cancel()
    d_time = time.perf_counter() - started
    return submitted / s_time, claimed / c_time, done / d_time


async def _processes(services: Services, refs: list[str], workers: int) -> float:
    """Completed per second by ``workers`` separate ``python -m backend.worker`` processes.

    Timed from the first claim to the last outcome in the audit log, so process
    start-up (imports, connections) is not counted.
    """
    async with services.sessions() as session:
        # Whatever the bounded in-process case left behind is not part of this batch.
        await session.execute(
            update(Request).where(Request.state == QUEUED).values(state="done", reason="bench_skip")
        )
        await session.commit()
    for i in range(PROCESS_BATCH):
        await ledger.submit(
            services,
            customer_ref=refs[i % len(refs)],
            chat=f"bench:p{i}",
            locale="en",
            kind="update_contact",
            payload={"field": "address", "address": ADDRESS},
            idempotency_key=uuid.uuid4().hex,
        )
    since = services.clock.now()
    settings = services.settings
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATADESK_DATABASE_URL": settings.database_url,
        "DATADESK_DATA_DIR": str(settings.data_dir),
        "DATADESK_SECRET_KEY": settings.secret_key or "",
        "DATADESK_SERVICE_TOKEN": settings.service_token,
        "DATADESK_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "backend.worker", "--once"]
    procs = [
        await asyncio.create_subprocess_exec(*command, env=env, cwd=REPO) for _ in range(workers)
    ]
    await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), timeout=300)
    async with services.sessions() as session:
        first = await session.scalar(
            select(func.min(AuditEntry.at)).where(
                AuditEntry.action == "request_claimed", AuditEntry.at >= since
            )
        )
        last = await session.scalar(
            select(func.max(AuditEntry.at)).where(
                AuditEntry.action == "request_done", AuditEntry.at >= since
            )
        )
        done = await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "request_done", AuditEntry.at >= since)
        )
    if first is None or last is None or last <= first:
        return 0.0
    return float(done or 0) / (last - first).total_seconds()


async def _engine(name: str, url: str, workdir: Path) -> list[Row]:
    await upgrade(url, BACKEND_MIGRATIONS)
    settings = replace(
        Settings.from_env({}),
        data_dir=workdir,
        database_url=url,
        secret_key="bench-secret-key-not-for-production",  # noqa: S106  (throw-away data)
        service_token="bench",  # noqa: S106
    )
    services = await open_services(settings, clock=SystemClock())
    try:
        refs = await _customers(services)
        rows = []
        for workers in (1, 4):
            submitted, claimed, completed = await _case(services, refs, workers)
            separate = await _processes(services, refs, workers)
            rows.append(Row(name, workers, submitted, claimed, completed, separate))
        return rows
    finally:
        await services.close()


async def measure() -> list[Row]:
    """Every engine available, 1 and 4 workers each."""
    workdir = Path(tempfile.mkdtemp(prefix="dd-bench-"))
    rows: list[Row] = []
    try:
        rows += await _engine("sqlite", f"sqlite+aiosqlite:///{workdir / 'bench.sqlite3'}", workdir)
        base = os.environ.get("DATADESK_BENCH_POSTGRES_URL") or os.environ.get(
            "DATADESK_TEST_POSTGRES_URL"
        )
        if base:
            name = f"dd_bench_{uuid.uuid4().hex[:10]}"
            await admin_execute(base, f'CREATE DATABASE "{name}"')
            try:
                url = make_url(base).set(database=name).render_as_string(hide_password=False)
                rows += await _engine("postgresql", url, workdir)
            finally:
                await admin_execute(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return rows


def _ratio(a: float, b: float) -> str:
    return f"{a / b:>9.2f}×" if b else f"{'-':>10}"


def report(rows: list[Row]) -> str:
    """The figures, with each 4-worker row as a multiple of the same engine's 1-worker row."""
    head = ("engine", "workers", "submitted", "claimed", "completed", "completed")
    lines = [
        f"ledger: up to {REQUESTS} requests or {SECONDS:.0f} s per case (requests per second);",
        f"workers as claim loops in one process, and as {PROCESS_BATCH} requests for separate processes",
        f"{head[0]:<11} {head[1]:>7} {head[2]:>10} {head[3]:>10} {head[4]:>10} {head[5]:>10}",
        f"{'':<11} {'':>7} {'':>10} {'':>10} {'(loops)':>10} {'(procs)':>10}",
    ]
    single = {r.engine: r for r in rows if r.workers == 1}
    for r in rows:
        lines.append(
            f"{r.engine:<11} {r.workers:>7} {r.submitted:>10.0f} {r.claimed:>10.0f}"
            f" {r.completed:>10.0f} {r.processes:>10.0f}"
        )
        base = single.get(r.engine)
        if base is not None and r is not base:
            lines.append(
                f"{'':<11} {'÷1':>7} {_ratio(r.submitted, base.submitted)}"
                f" {_ratio(r.claimed, base.claimed)} {_ratio(r.completed, base.completed)}"
                f" {_ratio(r.processes, base.processes)}"
            )
    if "sqlite" in single and "postgresql" in single:
        q, p = single["sqlite"], single["postgresql"]
        lines.append(
            f"{'pg÷sqlite':<11} {1:>7} {_ratio(p.submitted, q.submitted)}"
            f" {_ratio(p.claimed, q.claimed)} {_ratio(p.completed, q.completed)}"
            f" {_ratio(p.processes, q.processes)}"
        )
    return "\n".join(lines)


def main() -> int:
    """Run the bench and print its table."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    rows = asyncio.run(measure())
    print(report(rows))
    return 0 if rows and all(r.completed > 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
