"""Claiming due requests in batches: one short write transaction takes up to ``limit`` of them.

A request is due when it is ``queued`` and its ``next_run_at`` has come, or
``running`` with a lease that ran out (its worker died). A customer's
requests run one at a time, in the order received: a request waits while an
earlier one of the same customer is queued or running, so one batch never
holds two of the same customer and a second address change never overtakes
the first.

On PostgreSQL the pick is ``SELECT … FOR UPDATE SKIP LOCKED LIMIT n``, so
workers never wait on each other nor take the same row; on SQLite the
transaction starts with ``BEGIN IMMEDIATE``, taking the single write lock
before reading. The picked rows are read as ``transitions.Held`` snapshots
(Core, no ORM object: a claim of 256 is a handful of statements) and move to
``running`` with this worker's lease (``transitions.transition_all``, one
audit entry each) in the same transaction:
a request and its place in the queue are one write. A taken-over request
whose attempts are used up fails instead (its workers keep dying on it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ARRAY,
    Row,
    String,
    Text,
    any_,
    bindparam,
    func,
    literal,
    select,
    tuple_,
    type_coerce,
)
from sqlalchemy.ext.asyncio import AsyncSession

from backend.crypto import CryptoError, open_for_row
from backend.ledger import states
from backend.ledger.transitions import HELD_COLUMNS, Held, Lease, Move, transition_all
from backend.models.ledger import Request
from backend.services import Services
from common.db import UTCDateTime, begin_write
from common.vocabulary.request_states import FAILED, QUEUED, RUNNING

log = logging.getLogger(__name__)

LEASE_SECONDS = 120
# The queue is read a page at a time, each page twice the last, at most this
# many pages a claim (some 250 times its limit): requests waiting their turn
# are passed over, and a customer with a long run of them does not keep the
# other customers' requests waiting behind.
MAX_PAGES = 8


@dataclass(frozen=True)
class Claimed:
    """A request this worker now holds, with its payload decrypted."""

    id: int
    reference: str
    customer_ref: str
    chat: str
    locale: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int


async def _pick(session: AsyncSession, now: datetime, limit: int) -> list[Row[Any]]:
    """Up to ``limit`` due requests whose turn it is, locked, the longest-waiting first.

    A running request whose lease ran out (its worker died) comes first: they
    are few (a dead worker's batch). Then the queue, walked a page at a time in
    ``ix_requests_queue``'s order with ``FOR UPDATE SKIP LOCKED``; of each page,
    the requests whose customer has an earlier one queued or running wait their
    turn (``_in_turn``), and the walk goes on past them, up to ``MAX_PAGES``
    pages of twice the size each.

    The turn is checked apart, not as ``NOT EXISTS`` in the pick: PostgreSQL's
    plan for that depended on the table's statistics. With them it walked the
    queue (2 ms a claim at 45,000 queued); without them (a table that grew
    faster than autovacuum analyses it) it joined every queued row against
    every other: 0.7 s a claim at 1,800 queued, 17 s at 18,000. With the
    ``OR`` of expired leases in the same statement it sorted the whole queue
    for every claim (115 ms at 45,000). Apart, every statement is a walk of one
    index whatever the statistics.
    """
    # What ``claim`` reads of each: the snapshot, the sealed payload, the place in the queue.
    columns = (*HELD_COLUMNS, type_coerce(Request.payload, Text), Request.next_run_at)
    order = (Request.next_run_at, Request.id)
    expired = await session.execute(
        select(*columns)
        .where(Request.state == RUNNING, Request.lease_expires_at <= now)
        .order_by(*order)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    picked = await _in_turn(session, expired.all())
    after: tuple[datetime, int] | None = None
    for page_number in range(MAX_PAGES):
        want = limit - len(picked)
        if want <= 0:
            break
        size = want << page_number
        due = [Request.state == QUEUED, Request.next_run_at <= now]
        if after is not None:
            due.append(tuple_(*order) > tuple_(literal(after[0], UTCDateTime()), literal(after[1])))
        page = (
            await session.execute(
                select(*columns)
                .where(*due)
                .order_by(*order)
                .limit(size)
                .with_for_update(skip_locked=True)
            )
        ).all()
        picked += (await _in_turn(session, page))[:want]
        if len(page) < size:
            break
        after = (page[-1].next_run_at, page[-1].id)
    return picked


async def _in_turn(session: AsyncSession, rows: Sequence[Row[Any]]) -> list[Row[Any]]:
    """Those of ``rows`` that are their customer's earliest request queued or running."""
    if not rows:
        return []
    refs = sorted({row.customer_ref for row in rows})
    if session.get_bind().dialect.name == "postgresql":
        # One array parameter: the same statement (prepared once) for any number of
        # customers, where an IN list is a new statement to parse and plan for each.
        among = Request.customer_ref == any_(bindparam("refs", refs, type_=ARRAY(String)))
    else:
        among = Request.customer_ref.in_(refs)
    firsts = dict(
        (
            await session.execute(
                select(Request.customer_ref, func.min(Request.id))
                .where(among, Request.state.in_((QUEUED, RUNNING)))
                .group_by(Request.customer_ref)
            )
        )
        .tuples()
        .all()
    )
    return [row for row in rows if firsts.get(row.customer_ref) == row.id]


async def claim(services: Services, owner: str, limit: int = 1) -> list[Claimed]:
    """Take up to ``limit`` due requests for ``owner``, the longest-waiting first; commit."""
    now = services.clock.now()
    lease = Lease(owner, now + timedelta(seconds=LEASE_SECONDS))
    async with services.sessions() as session:
        await begin_write(session)
        picked = await _pick(session, now, limit)
        rows: list[Held] = []
        payloads: dict[int, dict[str, Any]] = {}
        unreadable: set[int] = set()
        for *columns, stored, _ in picked:
            row = Held(*columns)
            rows.append(row)
            # A payload altered in the database must not stop the queue: its request fails.
            try:
                payloads[row.id] = json.loads(
                    open_for_row(stored, "requests", "payload", [row.reference])
                )
            except CryptoError as exc:
                log.error("request id %d: %s; it fails instead of blocking the queue", row.id, exc)
                unreadable.add(row.id)
        moves = [
            Move(row, FAILED, reason="attempts_exhausted")
            if row.state == RUNNING and row.attempts >= row.max_attempts
            # Its workers keep dying on it: a request that crashes the process
            # would otherwise be retried for ever.
            else Move(row, RUNNING, lease=lease, data={"lease_expired": row.state == RUNNING})
            for row in rows
        ]
        after = await transition_all(session, moves, actor=f"worker:{owner}", at=now)
        if unreadable:
            # Taken, then failed at once: it reaches an agent, the others run.
            await transition_all(
                session,
                [
                    Move(now_held, FAILED, reason=states.UNREADABLE)
                    for move, now_held in zip(moves, after, strict=True)
                    if now_held.id in unreadable and move.to == RUNNING
                ],
                actor=f"worker:{owner}",
                at=now,
            )
        taken = [
            Claimed(
                id=row.id,
                reference=row.reference,
                customer_ref=row.customer_ref,
                chat=row.chat,
                locale=row.locale,
                kind=row.kind,
                payload=payloads[row.id],
                attempts=row.attempts,
                max_attempts=row.max_attempts,
            )
            for move, row in zip(moves, after, strict=True)
            if move.to == RUNNING and row.id not in unreadable
        ]
        await session.commit()
    if rows and not taken:
        # Every row picked was given up; others may be due behind them.
        return await claim(services, owner, limit)
    return taken
