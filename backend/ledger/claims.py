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
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Text, exists, or_, select, type_coerce
from sqlalchemy.orm import aliased

from backend.crypto import CryptoError, open_for_row
from backend.ledger import states
from backend.ledger.transitions import HELD_COLUMNS, Held, Lease, Move, transition_all
from backend.models.ledger import Request
from backend.services import Services
from common.db import begin_write
from common.vocabulary.request_states import FAILED, QUEUED, RUNNING

log = logging.getLogger(__name__)

LEASE_SECONDS = 120


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


def _due(now: Any) -> Any:
    earlier = aliased(Request)
    waits_its_turn = exists().where(
        earlier.customer_ref == Request.customer_ref,
        earlier.id < Request.id,
        earlier.state.in_((QUEUED, RUNNING)),
    )
    return (
        or_(
            (Request.state == QUEUED) & (Request.next_run_at <= now),
            (Request.state == RUNNING) & (Request.lease_expires_at <= now),
        )
        & ~waits_its_turn
    )


async def claim(services: Services, owner: str, limit: int = 1) -> list[Claimed]:
    """Take up to ``limit`` due requests for ``owner``, the longest-waiting first; commit."""
    now = services.clock.now()
    lease = Lease(owner, now + timedelta(seconds=LEASE_SECONDS))
    async with services.sessions() as session:
        await begin_write(session)
        pick = (
            select(*HELD_COLUMNS, type_coerce(Request.payload, Text))
            .where(_due(now))
            .order_by(Request.next_run_at, Request.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows: list[Held] = []
        payloads: dict[int, dict[str, Any]] = {}
        unreadable: set[int] = set()
        for *columns, stored in await session.execute(pick):
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
