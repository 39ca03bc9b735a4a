"""Workers: claim due requests in batches, carry them out through the CRM, record the outcomes.

A worker process runs one ``Worker`` with ``concurrency`` slots: at most that
many requests are being carried out at once. The slots share a buffer that is
refilled by one batch claim (``claims.py``) of up to ``BATCH_PER_SLOT`` per
slot, doubling while claims come back full up to ``JOINED_PER_SLOT`` per slot
on the built-in CRM, and share the transactions that record outcomes
(``outcomes.GroupCommit``).
On the built-in CRM a slot takes up to ``JOINED_PER_SLOT`` contact changes and
opt-outs of a claim at once and commits their changes with their outcomes in
one transaction of a few statements whatever their number (``one_commit.py``).
On SQLite, which has one write lock for the whole database, the worker's
claims and joined batches take turns in the process (``common.db.write_turn``,
shared with the "Was this you?" notices it sends) instead of queuing on that
lock: a writer that finds it taken sleeps in SQLite's busy handler (up to
100 ms a try) and four slots ran slower than one (``make bench``: 63 against
170 requests/s; with the notices apart, 185 to 500 against 616 to 718 without
them).
When nothing is due the worker sleeps until a request is queued
(``wakeup.py``: in-process at once, on PostgreSQL ``LISTEN/NOTIFY`` from any
process) or ``wakeup.POLL_SECONDS`` pass.

Effects go to the CRM with ``idempotency_key=reference``: a worker that dies
after the effect and before recording it leaves the request ``running`` under
its lease, and whoever takes it over applies nothing twice. On a graceful stop
the slots finish the request in hand and the claimed requests not yet started
go back to the queue at once.

``python -m backend.worker`` (or ``datadesk worker``) runs one worker;
``--once`` drains what is due and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select

from backend import undo_notices
from backend.crm.builtin import BuiltinCrm
from backend.crm.connector import CrmConnector
from backend.ledger import one_commit
from backend.ledger.claims import Claimed, claim
from backend.ledger.kinds import carry_out
from backend.ledger.outcomes import GroupCommit, Settled
from backend.ledger.purge import purge_daily
from backend.ledger.transitions import Move, transition_all
from backend.ledger.wakeup import POLL_SECONDS, Waiter
from backend.metrics import WORKER_ATTEMPTS, WORKER_SECONDS
from backend.models.ledger import Request
from backend.services import Services
from common.db import begin_write, write_turn
from common.vocabulary.request_states import QUEUED, RUNNING

log = logging.getLogger(__name__)

# Requests claimed ahead per slot: one claim transaction serves several requests,
# while a stopping worker has few to hand back and none waits in the buffer long
# enough for its lease to run out behind slow CRM calls.
BATCH_PER_SLOT = 4
# On the built-in CRM a joined batch (one_commit) costs about as many statements
# for 64 requests as for one, and takes milliseconds: claims are that much larger.
JOINED_PER_SLOT = 64
MAX_BATCH = 256

AfterEffect = Callable[[Claimed], None]


def worker_name(index: int = 0) -> str:
    """A name unique to this process and worker, recorded as the lease owner."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{index}"


async def _carry_out(
    services: Services,
    crm: CrmConnector,
    job: Claimed,
    commit: GroupCommit,
    after_effect: AfterEffect | None,
) -> None:
    """Carry ``job`` out and record what became of it: the change, then the outcome."""
    started = time.perf_counter()
    try:
        outcome = await carry_out(services, crm, job)
    except Exception as exc:
        await _failed(job, exc, commit)
        return
    WORKER_ATTEMPTS.labels(kind=job.kind, result=outcome.state.value).inc()
    WORKER_SECONDS.labels(kind=job.kind).observe(time.perf_counter() - started)
    if after_effect is not None:
        after_effect(job)
    await commit.settle(Settled(job, outcome=outcome))


async def _failed(job: Claimed, exc: Exception, commit: GroupCommit) -> None:
    """Record a failed attempt: it is retried after a back-off, or fails after the last."""
    # Whatever went wrong (CRM down, a bug) is retried; the type only, as
    # exception texts can carry personal data.
    log.warning("request %s attempt %d failed: %s", job.id, job.attempts, type(exc).__name__)
    WORKER_ATTEMPTS.labels(kind=job.kind, result="error").inc()
    await commit.settle(Settled(job, error=type(exc).__name__))


async def _carry_out_group(
    services: Services,
    crm: CrmConnector,
    jobs: Sequence[Claimed],
    commit: GroupCommit,
    after_effect: AfterEffect | None,
) -> None:
    """Carry ``jobs`` out: together in one commit where ``one_commit`` joins them, else one by one."""
    if not one_commit.joins(crm, jobs[0]):
        for job in jobs:
            await _carry_out(services, crm, job, commit, after_effect)
        return
    started = time.perf_counter()
    try:
        results = await one_commit.carry_out(services, crm, jobs, commit.owner, after_effect)
    except Exception as exc:
        # The batch's transaction failed (a database error): none of it is kept.
        for job in jobs:
            await _failed(job, exc, commit)
        return
    seconds = (time.perf_counter() - started) / len(jobs)
    for result in results:
        if result.error is not None:
            await _failed(result.job, result.error, commit)
        elif result.outcome is not None:
            WORKER_ATTEMPTS.labels(kind=result.job.kind, result=result.outcome.state.value).inc()
            WORKER_SECONDS.labels(kind=result.job.kind).observe(seconds)


async def run_one(
    services: Services, crm: CrmConnector, owner: str, *, after_effect: AfterEffect | None = None
) -> bool:
    """Claim and carry out one request; False when nothing was due."""
    jobs = await claim(services, owner, 1)
    if not jobs:
        return False
    await _carry_out_group(services, crm, jobs, GroupCommit(services, owner), after_effect)
    return True


async def release(services: Services, owner: str, jobs: Sequence[Claimed]) -> None:
    """Put claimed requests that were never started back in the queue, due now."""
    if not jobs:
        return
    now = services.clock.now()
    async with services.sessions() as session:
        await begin_write(session)
        rows = await session.scalars(
            select(Request)
            .where(
                Request.id.in_([job.id for job in jobs]),
                Request.lease_owner == owner,
                Request.state == RUNNING,
            )
            .with_for_update()
        )
        moves = []
        for row in rows:
            # Not tried: the attempt it was claimed for is not counted.
            row.attempts -= 1
            moves.append(Move(row, QUEUED, data={"released": True}))
        await transition_all(session, moves, actor=f"worker:{owner}", at=now)
        await session.commit()


class Worker:
    """``concurrency`` slots carrying out requests for one lease owner; see the module docstring."""

    def __init__(
        self,
        services: Services,
        crm: CrmConnector,
        *,
        owner: str,
        concurrency: int = 1,
        after_effect: AfterEffect | None = None,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.services = services
        self.crm = crm
        self.owner = owner
        self.concurrency = max(1, concurrency)
        # A claim starts at BATCH_PER_SLOT a slot and doubles while claims come back
        # full (work is plentiful), up to ``max_batch``; one that comes back short
        # starts it over, so workers starting together share the queue.
        per_slot = JOINED_PER_SLOT if isinstance(crm, BuiltinCrm) else BATCH_PER_SLOT
        self.max_batch = min(MAX_BATCH, self.concurrency * per_slot)
        self.first_batch = min(self.max_batch, self.concurrency * BATCH_PER_SLOT)
        self.batch = self.first_batch
        self.after_effect = after_effect
        self.poll_seconds = poll_seconds
        self._buffer: deque[Claimed] = deque()
        self._refill = asyncio.Lock()
        self._drained = False
        # Slots carrying a request out, and a signal each time one finishes: with
        # ``once``, a finished request can make its customer's next one due.
        self._busy = 0
        self._finished = asyncio.Event()
        self._completions = 0

    def _write_turn(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """This process's turn at SQLite's write lock; on PostgreSQL (row locks) no wait."""
        return write_turn(self.services.settings.database_url)

    async def run(self, stop: asyncio.Event, *, once: bool = False) -> int:
        """Carry out requests until ``stop`` is set (with ``once``, until none is due); count them."""
        waiter = Waiter(self.services.settings.database_url, self.poll_seconds)
        await waiter.start()
        commit = GroupCommit(self.services, self.owner)
        stopping = asyncio.ensure_future(stop.wait())
        counts = [0] * self.concurrency

        async def slot(index: int) -> None:
            while (jobs := await self._next(waiter, stop, stopping, once)) is not None:
                self._busy += 1
                try:
                    # Joined batches only: other kinds wait on the CRM between their writes.
                    turn = self._write_turn() if one_commit.joins(self.crm, jobs[0]) else None
                    async with turn or contextlib.nullcontext():
                        await _carry_out_group(
                            self.services, self.crm, jobs, commit, self.after_effect
                        )
                    counts[index] += len(jobs)
                except Exception as exc:
                    # A database hiccup must not end the slot; the lease protects the requests.
                    # The type only: database errors can quote the values they were given.
                    log.error(
                        "worker %s: requests %s: %s",
                        self.owner,
                        ",".join(str(job.id) for job in jobs),
                        type(exc).__name__,
                    )
                finally:
                    self._busy -= 1
                    self._completions += 1
                    self._finished.set()

        try:
            await asyncio.gather(*(slot(i) for i in range(self.concurrency)))
        finally:
            stopping.cancel()
            left, self._buffer = list(self._buffer), deque()
            try:
                await release(self.services, self.owner, left)
            except Exception as exc:
                # Their leases run out and another worker takes them then.
                log.error(
                    "worker %s: could not hand back requests: %s", self.owner, type(exc).__name__
                )
            await waiter.close()
        return sum(counts)

    async def _next(
        self, waiter: Waiter, stop: asyncio.Event, stopping: asyncio.Future[Any], once: bool
    ) -> list[Claimed] | None:
        """The next claimed requests for a slot; None when the worker is to stop.

        One request, or up to ``JOINED_PER_SLOT`` that ``one_commit`` carries out
        together (the slots share the buffer: each takes its part of a claim).
        """
        async with self._refill:
            while not self._buffer:
                if stop.is_set() or self._drained:
                    return None
                waiter.clear()
                completions = self._completions
                try:
                    async with self._write_turn():
                        taken = await claim(self.services, self.owner, self.batch)
                    self._buffer.extend(taken)
                    full = len(taken) == self.batch
                    self.batch = min(self.max_batch, 2 * self.batch) if full else self.first_batch
                except Exception as exc:
                    log.error("worker %s: claim failed: %s", self.owner, type(exc).__name__)
                if self._buffer:
                    break
                if once and (self._busy or self._completions != completions):
                    if self._completions == completions:
                        self._finished.clear()
                        await self._finished.wait()
                    continue
                if once:
                    self._drained = True
                    return None
                woken = asyncio.ensure_future(waiter.wait())
                await asyncio.wait({woken, stopping}, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await woken
            if stop.is_set():
                return None
            first = self._buffer.popleft()
            jobs = [first]
            if one_commit.joins(self.crm, first):
                while (
                    self._buffer
                    and len(jobs) < JOINED_PER_SLOT
                    and one_commit.joins(self.crm, self._buffer[0])
                ):
                    jobs.append(self._buffer.popleft())
            return jobs


async def run_workers(
    services: Services,
    crm: CrmConnector,
    *,
    concurrency: int,
    stop: asyncio.Event,
    once: bool = False,
    purge: bool = True,
    after_effect: AfterEffect | None = None,
    poll_seconds: float = POLL_SECONDS,
) -> int:
    """A worker with ``concurrency`` slots (the daily purge, the undo notices) until ``stop``;
    return requests run.

    ``after_effect(job)`` runs after each CRM effect, before its outcome is
    recorded (the kill tests end the process there); ``poll_seconds`` is how
    long an idle worker waits for a wake-up before it looks anyway.
    """
    worker = Worker(
        services,
        crm,
        owner=worker_name(),
        concurrency=concurrency,
        after_effect=after_effect,
        poll_seconds=poll_seconds,
    )
    purger = asyncio.create_task(purge_daily(services, crm, stop)) if purge and not once else None
    # "Was this you?" notices go out from every worker (backend/undo_notices.py).
    notices = None if once else asyncio.create_task(undo_notices.run_notices(services, stop))
    try:
        count = await worker.run(stop, once=once)
        if once:
            await undo_notices.send_due(services)
        return count
    finally:
        if purger is not None or notices is not None:
            stop.set()
        for task in (purger, notices):
            if task is not None:
                await task


def main() -> int:
    """``python -m backend.worker [--once] [--concurrency N] [--now ISO]``."""
    import argparse

    from backend.runner import worker_main

    parser = argparse.ArgumentParser(prog="python -m backend.worker")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--once", action="store_true")
    # A fixed clock, so tests can make a lease expire without waiting for it.
    parser.add_argument("--now", default=None, help=argparse.SUPPRESS)
    return worker_main(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
