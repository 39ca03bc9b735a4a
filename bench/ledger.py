"""The requests ledger under load, next to pgqueuer on the same PostgreSQL server.

Every case is bounded (``SUBMIT_SECONDS``, ``REQUESTS``, ``DRAIN_TIMEOUT``) and
runs the real code against the built-in CRM (address changes, one customer
per request so per-customer ordering never holds a claim back):

- pgqueuer: ``bench/_pgqueuer.py`` drains 10,000 no-op jobs with 4 queue
  managers on a fresh database of the same server: the baseline, measured
  in the same run (only when a PostgreSQL server is named).
- submitted: requests per second through ``ledger.submit`` (validation,
  reference, audit entry) by ``SUBMITTERS`` concurrent submitters.
- completed (slots): those requests carried out by one worker of 1 or 4
  slots (``run_workers``, as ``datadesk worker --concurrency N``), each with
  its real effect: the CRM change, the outcome notification, the audit
  entries and the "Was this you?" notice to the old contact, which the
  worker sends beside its requests as deployed. Timed from the first claim
  to the moment every request has its outcome and every notice is out.
- completed (procs): ``PROCESS_BATCH`` more, drained by 1 or 4 separate
  ``python -m backend.worker`` processes, timed the same way and stopped
  (SIGTERM) once done. Process start-up is not counted: the
  processes start while the bench holds every claim, and it lets go once all
  of them are up (each serves its metrics), so they start claiming together;
  a claim that waited for the hold counts from the moment it was let go.
- max seal lag: the longest any audit entry of the case waited between its
  commit and its sealing (``LagWatch``), with this process and the worker
  processes each running a sealer, as deployed.

On SQLite (a file, WAL) and, when ``DATADESK_BENCH_POSTGRES_URL`` or
``DATADESK_TEST_POSTGRES_URL`` names a server, on a fresh PostgreSQL database.
The last lines are the ratios issue 10 sets targets for.

Until 2026-12-02 a case ended with a run of ``--once``: its notices were sent
after its last request (some after the clock stopped), and a case's figure
moved with its size (700 requests at 417/s, 3,000 at 693/s, one 4-slot
worker on PostgreSQL), half a second of each case being the notices' tail.
Timed to the last notice, the two sizes measured 590 and 545/s.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from backend import audit, ledger, messages
from backend.crm import importer
from backend.ledger.worker import run_workers
from backend.models.audit import AuditEntry
from backend.models.base import BACKEND_MIGRATIONS
from backend.models.ledger import Request
from backend.models.undo import ContactUndo
from backend.services import Services, open_services
from backend.settings import Settings
from backend.sms import ConsoleSmsGateway
from bench import _pgqueuer
from common.clock import SystemClock
from common.db import admin_execute, begin_write, is_sqlite, upgrade
from common.vocabulary.request_states import QUEUED

REPO = Path(__file__).resolve().parent.parent
# Enough that a case's drain takes a second or more: with 500 requests and 200
# for the processes it took a fifth to half of one, and the 4 ÷ 1 ratios moved
# by 0.4× from one run to the next.
REQUESTS = 1500
SUBMIT_SECONDS = 5.0
SUBMITTERS = 8
PROCESS_BATCH = 1000
DRAIN_TIMEOUT = 60.0
WATCH_SECONDS = 0.05
START_SECONDS = 0.5
# One customer per request: every case's requests are due at once.
CUSTOMERS = 2 * (REQUESTS + PROCESS_BATCH)
ADDRESS = {"line1": "Elizabetes iela 2", "city": "Rīga", "postcode": "LV-1010", "country": "LV"}


@dataclass
class Row:
    engine: str
    workers: int
    submitted: float
    completed: float
    processes: float
    seal_lag: float = 0.0


async def _customers(services: Services) -> list[str]:
    refs = [f"B-{i:05d}" for i in range(CUSTOMERS)]
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


async def _submit(services: Services, refs: list[str], limit: int, seconds: float) -> float:
    """Submit address changes for the next unused customers; return requests per second."""
    count = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def loop() -> None:
        nonlocal count
        while count < limit and time.perf_counter() < deadline:
            ref = refs.pop()
            count += 1
            await ledger.submit(
                services,
                customer_ref=ref,
                chat=f"bench:{ref}",
                locale="en",
                kind="update_contact",
                payload={"field": "address", "address": ADDRESS},
                idempotency_key=uuid.uuid4().hex,
            )

    await asyncio.gather(*(loop() for _ in range(SUBMITTERS)))
    return count / (time.perf_counter() - started)


async def _slots(services: Services, workers: int, expected: int) -> float:
    """Completed per second by one worker of ``workers`` slots draining ``expected`` requests.

    The worker runs as ``datadesk worker`` does, its "Was this you?" notices
    sent beside its requests, until every request has its outcome and every
    notice is out; timed from its first claim to that moment (seen within
    ``WATCH_SECONDS``).
    """
    since = services.clock.now()
    stop = asyncio.Event()
    crm = ledger.connector(services)
    running = asyncio.create_task(
        run_workers(services, crm, concurrency=workers, stop=stop, purge=False)
    )
    try:
        end = await _drained(services, since, expected, running.done)
    finally:
        stop.set()
        await running
    return await _rate(services, since, since, end)


async def _drained(
    services: Services, since: datetime, expected: int, ended: Callable[[], bool]
) -> datetime:
    """The moment ``expected`` requests have their outcome since ``since`` and every notice is out.

    Seen within ``WATCH_SECONDS``; or when the workers ``ended`` or
    ``DRAIN_TIMEOUT`` ran out, whichever comes first.
    """
    deadline = time.perf_counter() + DRAIN_TIMEOUT
    while not ended() and time.perf_counter() < deadline:
        if await _finished(services, since) >= expected and not await _notices_due(services):
            break
        await asyncio.sleep(WATCH_SECONDS)
    return services.clock.now()


async def _count(services: Services, model: type[Any], *where: Any) -> int:
    """Rows of ``model`` that meet ``where``."""
    async with services.sessions() as session:
        count = await session.scalar(select(func.count()).select_from(model).where(*where))
    return int(count or 0)


async def _notices_due(services: Services) -> int:
    """ "Was this you?" notices not sent yet."""
    return await _count(services, ContactUndo, ContactUndo.notice_due_at.is_not(None))


async def _queued(services: Services) -> int:
    """Requests waiting for a worker."""
    return await _count(services, Request, Request.state == QUEUED)


async def _finished(services: Services, since: datetime) -> int:
    """Requests given an outcome since ``since``."""
    return await _count(
        services, AuditEntry, AuditEntry.action == "request_done", AuditEntry.at >= since
    )


async def _first_claim(services: Services, since: datetime) -> datetime | None:
    """When the first request was claimed since ``since``."""
    async with services.sessions() as session:
        first: datetime | None = await session.scalar(
            select(func.min(AuditEntry.at)).where(
                AuditEntry.action == "request_claimed", AuditEntry.at >= since
            )
        )
    return first


async def _rate(services: Services, since: datetime, released: datetime, end: datetime) -> float:
    """Outcomes since ``since`` per second, from the first claim (not before ``released``) to ``end``."""
    first = await _first_claim(services, since)
    if first is None:
        return 0.0
    first = max(first, released)
    if end <= first:
        return 0.0
    return await _finished(services, since) / (end - first).total_seconds()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _listening(port: int, proc: asyncio.subprocess.Process) -> None:
    """Wait until ``proc`` serves its metrics on ``port``: it is about to claim."""
    while True:
        if proc.returncode is not None:
            raise RuntimeError(f"a worker process exited with status {proc.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return


@contextlib.asynccontextmanager
async def _claims_held(services: Services) -> AsyncIterator[None]:
    """Hold every claim (the write lock on SQLite, a lock on ``requests`` on PostgreSQL)."""
    async with services.sessions() as session:
        if is_sqlite(services.settings.database_url):
            await begin_write(session)
        else:
            await session.execute(text("LOCK TABLE requests IN EXCLUSIVE MODE"))
        try:
            yield
        finally:
            await session.commit()


async def _processes(services: Services, refs: list[str], workers: int) -> float:
    """Completed per second by ``workers`` separate ``python -m backend.worker`` processes.

    The processes start while the bench holds every claim; it lets go once each
    serves its metrics (its next step is its first claim) and a moment more, so
    one process's start-up does not compete with another's work.
    """
    await _submit(services, refs, PROCESS_BATCH, DRAIN_TIMEOUT)
    since = services.clock.now()
    settings = services.settings
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATADESK_DATABASE_URL": settings.database_url,
        "DATADESK_DATA_DIR": str(settings.data_dir),
        "DATADESK_SECRET_KEY": settings.secret_key or "",
        "DATADESK_SERVICE_TOKEN": settings.service_token,
        "DATADESK_LOG_LEVEL": "WARNING",
        "DATADESK_HTTP_HOST": "127.0.0.1",
    }
    command = [sys.executable, "-m", "backend.worker"]
    ports = [_free_port() for _ in range(workers)]
    # Sealed now: nothing waits to be sealed behind the hold.
    await audit.seal_pending(services)
    async with _claims_held(services):
        procs = [
            # stdout: the console SMS gateway prints each change's "Was this you?" notice.
            await asyncio.create_subprocess_exec(
                *command,
                env={**env, "DATADESK_WORKER_METRICS_PORT": str(port)},
                cwd=REPO,
                stdout=asyncio.subprocess.DEVNULL,
            )
            for port in ports
        ]
        await asyncio.wait_for(
            asyncio.gather(*(_listening(port, p) for port, p in zip(ports, procs, strict=True))),
            timeout=DRAIN_TIMEOUT,
        )
        # From serving metrics to asking for the lock: the waiter's set-up, no more.
        await asyncio.sleep(START_SECONDS)
    # A claim's audit entry is dated when it asked, before it waited for the hold.
    released = services.clock.now()
    try:
        end = await _drained(
            services, since, PROCESS_BATCH, lambda: any(p.returncode is not None for p in procs)
        )
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()  # as an operator stops a worker: it finishes what it holds
        await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), timeout=DRAIN_TIMEOUT)
    return await _rate(services, since, released, end)


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
    # As a worker process does at start (backend/runner.py): the notices' texts, read.
    messages.load()
    messages.catalogs()
    # Each address change sends a "Was this you?" notice: printed nowhere, still sent.
    services.sms = ConsoleSmsGateway(io.StringIO())
    # As in a backend process: this process takes its turn at sealing, beside the workers.
    sealing_stop = asyncio.Event()
    sealing = asyncio.create_task(audit.Sealer(services).run(sealing_stop))
    try:
        refs = await _customers(services)
        rows = []
        for workers in (1, 4):
            watch = LagWatch(services)
            watching = asyncio.create_task(watch.run())
            submitted = await _submit(services, refs, REQUESTS, SUBMIT_SECONDS)
            completed = await _slots(services, workers, await _queued(services))
            separate = await _processes(services, refs, workers)
            await audit.seal_pending(services)
            watching.cancel()
            lag = await watch.worst()
            rows.append(Row(name, workers, submitted, completed, separate, lag))
        return rows
    finally:
        sealing_stop.set()
        await sealing
        await services.close()


class LagWatch:
    """How long committed audit entries wait to be sealed, seen from outside.

    Every ``WATCH_SECONDS`` it notes the unsealed entries it sees for the first
    time: they have committed by then. An entry's wait is its ``sealed_at``
    minus that moment (so at most ``WATCH_SECONDS`` short); one sealed before
    the watch saw it waited less than that. Measured from commit, not from
    the action's ``at``: a transaction waiting for SQLite's write lock has not
    given the sealer anything to seal yet.
    """

    def __init__(self, services: Services) -> None:
        self.services = services
        self.seen: dict[int, datetime] = {}

    async def run(self) -> None:
        while True:
            async with self.services.sessions() as session:
                ids = (
                    await session.scalars(select(AuditEntry.id).where(AuditEntry.seq.is_(None)))
                ).all()
            now = self.services.clock.now()
            for entry in ids:
                self.seen.setdefault(entry, now)
            await asyncio.sleep(WATCH_SECONDS)

    async def worst(self) -> float:
        """The longest wait, in seconds, of the entries the watch saw unsealed."""
        sealed: dict[int, datetime | None] = {}
        ids = list(self.seen)
        async with self.services.sessions() as session:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                rows = await session.execute(
                    select(AuditEntry.id, AuditEntry.sealed_at).where(AuditEntry.id.in_(chunk))
                )
                sealed.update({row.id: row.sealed_at for row in rows})
        waits = [
            (at - self.seen[entry]).total_seconds()
            for entry, at in sealed.items()
            if at is not None
        ]
        return max(waits, default=0.0)


async def measure() -> tuple[list[Row], float | None]:
    """Every engine available, 1 and 4 workers each; and pgqueuer's jobs/s where PostgreSQL is."""
    workdir = Path(tempfile.mkdtemp(prefix="dd-bench-"))
    rows: list[Row] = []
    baseline = None
    try:
        rows += await _engine("sqlite", f"sqlite+aiosqlite:///{workdir / 'bench.sqlite3'}", workdir)
        base = os.environ.get("DATADESK_BENCH_POSTGRES_URL") or os.environ.get(
            "DATADESK_TEST_POSTGRES_URL"
        )
        if base:
            jobs, seconds = await _pgqueuer.drain(base)
            baseline = jobs / seconds
            name = f"dd_bench_{uuid.uuid4().hex[:10]}"
            await admin_execute(base, f'CREATE DATABASE "{name}"')
            try:
                url = make_url(base).set(database=name).render_as_string(hide_password=False)
                rows += await _engine("postgresql", url, workdir)
            finally:
                await admin_execute(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return rows, baseline


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b else "-"


def report(rows: list[Row], baseline: float | None) -> str:
    """The figures, then the ratios the targets name."""
    lines = [
        f"ledger: requests per second; up to {REQUESTS} requests or {SUBMIT_SECONDS:.0f} s of"
        f" submits per case, then drained; {PROCESS_BATCH} more for separate processes",
        f"{'engine':<11} {'workers':>7} {'submitted':>10} {'completed':>10} {'completed':>10}"
        f" {'max seal':>9}",
        f"{'':<11} {'':>7} {'':>10} {'(slots)':>10} {'(procs)':>10} {'lag (s)':>9}",
    ]
    for r in rows:
        lines.append(
            f"{r.engine:<11} {r.workers:>7} {r.submitted:>10.0f} {r.completed:>10.0f}"
            f" {r.processes:>10.0f} {r.seal_lag:>9.2f}"
        )
    if baseline is not None:
        lines.append(f"{'pgqueuer':<11} {4:>7} {'':>10} {baseline:>10.0f}   (no-op jobs)")
    by = {(r.engine, r.workers): r for r in rows}
    pg1, pg4 = by.get(("postgresql", 1)), by.get(("postgresql", 4))
    lite1, lite4 = by.get(("sqlite", 1)), by.get(("sqlite", 4))
    lines.append("targets (slots; procs in brackets):")
    if pg4 is not None and baseline is not None:
        lines.append(
            f"  postgresql 4 ÷ pgqueuer 4    {_ratio(pg4.completed, baseline):>7}"
            f"  [{_ratio(pg4.processes, baseline)}]   target ≥ 0.5×"
        )
    if pg1 is not None and pg4 is not None:
        lines.append(
            f"  postgresql 4 ÷ postgresql 1  {_ratio(pg4.completed, pg1.completed):>7}"
            f"  [{_ratio(pg4.processes, pg1.processes)}]   target ≥ 1.5×"
        )
    for lite, pg in ((lite1, pg1), (lite4, pg4)):
        if lite is not None and pg is not None:
            lines.append(
                f"  sqlite {lite.workers} ÷ postgresql {pg.workers}      "
                f"{_ratio(lite.completed, pg.completed):>7}"
                f"  [{_ratio(lite.processes, pg.processes)}]   target ≥ 0.5×"
            )
    if rows:
        worst = max(r.seal_lag for r in rows)
        lines.append(f"  max audit seal lag           {worst:>6.2f} s   target ≤ 1 s")
    return "\n".join(lines)


def main() -> int:
    """Run the bench and print its table."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    rows, baseline = asyncio.run(measure())
    print(report(rows, baseline))
    return 0 if rows and all(r.completed > 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
