"""Workers: claim queued requests, carry them out through the CRM, record the outcome.

Claiming is one write: the row goes to ``running`` with this worker's name and
a lease expiry in the transaction that picked it. On PostgreSQL the pick is
``SELECT … FOR UPDATE SKIP LOCKED``, so workers never wait on each other; on
SQLite the transaction starts with ``BEGIN IMMEDIATE``, taking the single
write lock before reading, so two workers cannot pick the same row.

A customer's requests run one at a time in the order received. A request
whose lease ran out (its worker died) is claimed again. Effects go
to the CRM with ``idempotency_key=reference``, so a second run applies nothing
twice. A failure is retried with exponential back-off and jitter; after the
last attempt the request is ``failed``, the customer is told and the chat is
escalated to an agent.

``python -m backend.worker`` runs one worker (``--once`` drains the queue);
``DATADESK_WORKER_EXIT_AFTER_EFFECT=1`` makes it exit abruptly right after a
CRM effect, before recording it, which is how the tests kill a worker mid-request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from backend import audit, notifications
from backend.crm.connector import Address, CrmConnector
from backend.erasure import purge_daily
from backend.models.ledger import SCRUBBED, Request
from backend.services import Services
from common.db import is_sqlite
from common.vocabulary.request_kinds import ERASURE, MARKETING_OPT_OUT, UPDATE_CONTACT
from common.vocabulary.request_states import DONE, FAILED, PARTLY_DONE, QUEUED, REJECTED, RUNNING

log = logging.getLogger(__name__)

LEASE_SECONDS = 120
BACKOFF_BASE_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 3600.0
IDLE_SECONDS = 0.5
EXIT_AFTER_EFFECT = "DATADESK_WORKER_EXIT_AFTER_EFFECT"


def worker_name(index: int = 0) -> str:
    """A name unique to this process and loop, recorded as the lease owner."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{index}"


def backoff(attempt: int, rng: random.Random | None = None) -> timedelta:
    """Delay before retry ``attempt`` (1-based): exponential, capped, with full jitter on half."""
    ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    # Half fixed, half random: retries of many requests spread out, none comes back at once.
    return timedelta(seconds=ceiling / 2 + (rng or random).uniform(0, ceiling / 2))


@dataclass(frozen=True)
class Claimed:
    """A request this worker now holds."""

    id: int
    reference: str
    customer_ref: str
    chat: str
    locale: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int


async def _begin_for_claim(session: AsyncSession, sqlite: bool) -> None:
    if sqlite:
        # pysqlite would open a deferred transaction on the first write; take the
        # write lock now instead, before reading which row is due.
        connection = await session.connection()
        await connection.exec_driver_sql("BEGIN IMMEDIATE")


async def claim(services: Services, owner: str) -> Claimed | None:
    """Take the next due request (queued and due, or running with an expired lease)."""
    now = services.clock.now()
    sqlite = is_sqlite(services.settings.database_url)
    earlier = aliased(Request)
    # One customer's requests run one at a time, in the order received: a second
    # address change must not overtake (or race) the first.
    waits_its_turn = exists().where(
        earlier.customer_ref == Request.customer_ref,
        earlier.id < Request.id,
        earlier.state.in_((QUEUED, RUNNING)),
    )
    due = (
        or_(
            (Request.state == QUEUED) & (Request.next_run_at <= now),
            (Request.state == RUNNING) & (Request.lease_expires_at <= now),
        )
        & ~waits_its_turn
    )
    async with services.sessions() as session:
        await _begin_for_claim(session, sqlite)
        row = (
            await session.execute(
                select(Request)
                .where(due)
                .order_by(Request.next_run_at, Request.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
        ).scalar_one_or_none()
        if row is None:
            await session.rollback()
            return None
        taken_over = row.state == RUNNING
        if taken_over and row.attempts >= row.max_attempts:
            # Its workers keep dying on it (a request that crashes the process would
            # otherwise be retried for ever): give up on it as on any last failure.
            await _give_up(session, row, owner, now)
            await session.commit()
            return await claim(services, owner)
        row.state = RUNNING
        row.lease_owner = owner
        row.lease_expires_at = now + timedelta(seconds=LEASE_SECONDS)
        row.attempts += 1
        row.updated_at = now
        await audit.record(
            session,
            action="request_claimed",
            actor=f"worker:{owner}",
            subject=row.reference,
            outcome=RUNNING,
            data={"attempt": row.attempts, "lease_expired": taken_over},
            at=now,
        )
        await session.commit()
        return Claimed(
            id=row.id,
            reference=row.reference,
            customer_ref=row.customer_ref,
            chat=row.chat,
            locale=row.locale,
            kind=row.kind,
            payload=json.loads(row.payload),
            attempts=row.attempts,
            max_attempts=row.max_attempts,
        )


@dataclass(frozen=True)
class Outcome:
    state: str
    reason: str | None
    details: dict[str, Any]


async def carry_out(services: Services, crm: CrmConnector, job: Claimed) -> Outcome:
    """Apply the request's effect through the CRM; raise on a failure worth retrying."""
    from backend.crm.connector import CustomerNotFound

    key = job.reference
    try:
        if job.kind == MARKETING_OPT_OUT:
            consent = {channel: False for channel in job.payload["channels"]}
            await crm.set_marketing(job.customer_ref, consent, idempotency_key=key)
            return Outcome(DONE, None, {"channels": job.payload["channels"]})
        if job.kind == UPDATE_CONTACT:
            field = job.payload["field"]
            if field == "phone":
                await crm.update_phone(job.customer_ref, job.payload["value"], idempotency_key=key)
            elif field == "email":
                await crm.update_email(job.customer_ref, job.payload["value"], idempotency_key=key)
            else:
                address = Address(**job.payload["address"])
                await crm.update_address(job.customer_ref, address, idempotency_key=key)
            return Outcome(DONE, None, {"field": field})
        if job.kind == ERASURE:
            from backend.erasure import load_plan, plan_result

            async with services.sessions() as session:
                plan = await load_plan(session, job.payload["preview_id"])
            if plan is None:
                return Outcome(REJECTED, "preview_missing", {})
            await crm.erase(job.customer_ref, plan.erase, plan.holds, idempotency_key=key)
            return Outcome(PARTLY_DONE if plan.holds else DONE, None, plan_result(plan))
    except CustomerNotFound:
        return Outcome(REJECTED, "customer_not_found", {})
    return Outcome(REJECTED, "unknown_kind", {})


async def _finish(services: Services, job: Claimed, owner: str, outcome: Outcome) -> bool:
    """Record a final outcome, if this worker still holds the lease; tell the customer."""
    now = services.clock.now()
    async with services.sessions() as session:
        changed = await session.execute(
            update(Request)
            .where(Request.id == job.id, Request.lease_owner == owner, Request.state == RUNNING)
            .values(
                state=outcome.state,
                reason=outcome.reason,
                result=json.dumps(outcome.details),
                # Data minimisation: the new phone, email or address was needed to
                # carry the request out, not to remember it afterwards.
                payload=SCRUBBED,
                lease_owner=None,
                lease_expires_at=None,
                next_run_at=None,
                updated_at=now,
            )
        )
        if getattr(changed, "rowcount", 0) != 1:
            # The lease ran out and another worker has it; that one records the outcome.
            await session.rollback()
            log.warning("request %s: lease lost before recording the outcome", job.id)
            return False
        await notifications.enqueue(
            session,
            chat=job.chat,
            locale=job.locale,
            type="request_outcome",
            at=now,
            reference=job.reference,
            outcome=outcome.state,
            reason=outcome.reason,
            details=outcome.details,
        )
        if outcome.state == FAILED:
            await _escalate(session, job, now)
        # Last: the chain's head stays locked from here to the commit, so keep that short.
        await audit.record(
            session,
            action=f"request_{outcome.state}",
            actor=f"worker:{owner}",
            subject=job.reference,
            outcome=outcome.state,
            data={"kind": job.kind, "reason": outcome.reason, "attempts": job.attempts},
            at=now,
        )
        await session.commit()
    return True


async def _give_up(session: AsyncSession, row: Request, owner: str, now: datetime) -> None:
    """Fail a request whose lease ran out on its last attempt; tell the customer, call an agent."""
    row.state, row.reason, row.updated_at = FAILED, "attempts_exhausted", now
    row.payload = SCRUBBED
    row.lease_owner = row.lease_expires_at = row.next_run_at = None
    job = Claimed(
        id=row.id,
        reference=row.reference,
        customer_ref=row.customer_ref,
        chat=row.chat,
        locale=row.locale,
        kind=row.kind,
        payload={},
        attempts=row.attempts,
        max_attempts=row.max_attempts,
    )
    await notifications.enqueue(
        session,
        chat=row.chat,
        locale=row.locale,
        type="request_outcome",
        at=now,
        reference=row.reference,
        outcome=FAILED,
        reason=row.reason,
        details={},
    )
    await _escalate(session, job, now)
    await audit.record(
        session,
        action="request_failed",
        actor=f"worker:{owner}",
        subject=row.reference,
        outcome=FAILED,
        data={"kind": row.kind, "reason": row.reason, "attempts": row.attempts},
        at=now,
    )


async def _escalate(session: AsyncSession, job: Claimed, now: datetime) -> None:
    from backend.escalations import open_escalation

    await open_escalation(
        session,
        chat=job.chat,
        reason="failed_request",
        locale=job.locale,
        verified=True,
        customer_ref=job.customer_ref,
        at=now,
    )


async def _retry_or_fail(services: Services, job: Claimed, owner: str, error: str) -> None:
    """After a failed attempt: back off and queue again, or give up after the last one."""
    if job.attempts >= job.max_attempts:
        await _finish(services, job, owner, Outcome(FAILED, "attempts_exhausted", {}))
        return
    now = services.clock.now()
    async with services.sessions() as session:
        changed = await session.execute(
            update(Request)
            .where(Request.id == job.id, Request.lease_owner == owner, Request.state == RUNNING)
            .values(
                state=QUEUED,
                lease_owner=None,
                lease_expires_at=None,
                next_run_at=now + backoff(job.attempts),
                updated_at=now,
            )
        )
        if getattr(changed, "rowcount", 0) == 1:
            await audit.record(
                session,
                action="request_retry",
                actor=f"worker:{owner}",
                subject=job.reference,
                outcome=QUEUED,
                data={"attempt": job.attempts, "error": error},
                at=now,
            )
        await session.commit()


async def run_one(services: Services, crm: CrmConnector, owner: str) -> bool:
    """Claim and carry out one request; False when nothing was due."""
    job = await claim(services, owner)
    if job is None:
        return False
    try:
        outcome = await carry_out(services, crm, job)
    except Exception as exc:
        # Type only: exception texts can carry personal data.
        log.warning("request %s attempt %d failed: %s", job.id, job.attempts, type(exc).__name__)
        await _retry_or_fail(services, job, owner, type(exc).__name__)
        return True
    if os.environ.get(EXIT_AFTER_EFFECT) == "1":
        os._exit(17)
    await _finish(services, job, owner, outcome)
    return True


async def work(
    services: Services,
    crm: CrmConnector,
    *,
    owner: str,
    stop: asyncio.Event,
    once: bool = False,
) -> int:
    """Claim and run requests until ``stop`` is set (or, with ``once``, the queue is empty)."""
    done = 0
    while not stop.is_set():
        try:
            ran = await run_one(services, crm, owner)
        except Exception as exc:
            # A database hiccup must not end the loop; the lease protects the request.
            # The type only: database errors can quote the values they were given.
            log.error("worker %s: claim loop error: %s", owner, type(exc).__name__)
            ran = False
        done += ran
        if ran:
            continue
        if once:
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=IDLE_SECONDS)
    return done


async def run_workers(
    services: Services,
    crm: CrmConnector,
    *,
    concurrency: int,
    stop: asyncio.Event,
    once: bool = False,
    purge: bool = True,
) -> int:
    """``concurrency`` claim loops (and the daily purge) until ``stop``; return requests run."""
    loops = [
        work(services, crm, owner=worker_name(i), stop=stop, once=once)
        for i in range(max(1, concurrency))
    ]
    purger = asyncio.create_task(purge_daily(services, crm, stop)) if purge and not once else None
    try:
        counts = await asyncio.gather(*loops)
    finally:
        if purger is not None:
            stop.set()
            await purger
    return sum(counts)


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
