"""The one place that moves a request from state to state.

``transition`` (one request) and ``transition_all`` (a batch: a claim, a
group of outcomes) check each move against ``states.MOVES``
(``IllegalTransition`` otherwise, before anything changes) and, in the
caller's transaction, write everything a move means: the state and its
bookkeeping (lease, attempts, next run time), the outcome notification for a
final state, the escalation for a failure, the wake-up for a request queued
to run now, and the audit entry. Nothing else assigns ``Request.state``
(``tests/test_ledger_transitions.py`` holds every module to that), so a
request's history is the audit log's.

The audit entries are written last, after every row of the batch: the rows'
updates and notifications then go to the database together (one flush), and
an audit log that orders its writers holds them for the shortest time.

Neither commits: the caller decides what else belongs to the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backend import audit, notifications
from backend.errors import IllegalTransition
from backend.ledger import states, wakeup
from backend.models.ledger import SCRUBBED, Request
from common.vocabulary.request_states import QUEUED, RUNNING, SUBMITTED, RequestState


@dataclass(frozen=True)
class Lease:
    """Who holds a running request, and until when."""

    owner: str
    until: datetime


@dataclass(frozen=True)
class Move:
    """One request's move to ``to``; see ``transition`` for what the other fields mean."""

    row: Request
    to: RequestState
    reason: str | None = None
    details: Mapping[str, Any] | None = None
    lease: Lease | None = None
    run_at: datetime | None = None
    data: Mapping[str, audit.Scalar] | None = None
    # The customer was answered in the chat already (an access request's copy): no notification.
    quiet: bool = False


async def transition(
    session: AsyncSession,
    row: Request,
    to: RequestState,
    *,
    actor: str,
    at: datetime,
    reason: str | None = None,
    details: Mapping[str, Any] | None = None,
    lease: Lease | None = None,
    run_at: datetime | None = None,
    data: Mapping[str, audit.Scalar] | None = None,
    quiet: bool = False,
) -> None:
    """Move ``row`` to ``to`` as ``actor`` at ``at``, with all that goes with it; no commit.

    - to ``running``: ``lease`` is required; the attempt count goes up by one.
    - to ``queued``: runs at ``run_at`` (default ``at``); workers are woken when it is due now.
    - to a final state: ``reason`` and ``details`` are the outcome, the payload is
      scrubbed, the customer is told, and a failure (or an undone contact change,
      as possible fraud) is escalated to an agent.
    - ``data`` adds facts (scalars, no personal data) to the audit entry.
    - ``quiet``: the chat already told the customer; a final state sends no notification.
    """
    move = Move(row, to, reason, details, lease, run_at, data, quiet)
    await transition_all(session, [move], actor=actor, at=at)


async def transition_all(
    session: AsyncSession, moves: Sequence[Move], *, actor: str, at: datetime
) -> None:
    """Make every move of ``moves`` as ``actor`` at ``at`` (see ``transition``); no commit."""
    actions = [_check(move) for move in moves]
    for move in moves:
        await _apply(session, move, at)
    for move in moves:
        if move.to in states.ESCALATED:
            from backend.escalations import open_escalation

            await open_escalation(
                session,
                chat=move.row.chat,
                reason=states.ESCALATED[move.to],
                locale=move.row.locale,
                verified=True,
                customer_ref=move.row.customer_ref,
                at=at,
            )
    for move, action in zip(moves, actions, strict=True):
        row = move.row
        facts: dict[str, audit.Scalar] = {"kind": row.kind, "attempt": row.attempts or 0}
        if move.reason is not None:
            facts["reason"] = move.reason
        facts.update(move.data or {})
        await audit.record(
            session,
            action=action,
            actor=actor,
            subject=row.reference,
            outcome=move.to,
            data=facts,
            at=at,
        )


def _check(move: Move) -> str:
    """The audit action of an allowed move; ``IllegalTransition`` for any other."""
    row = move.row
    current = RequestState(row.state) if row.state is not None else SUBMITTED
    action = states.MOVES.get((current, move.to))
    if action is None:
        raise IllegalTransition(row.reference, current, move.to)
    if move.to == RUNNING and move.lease is None:
        raise ValueError("a request moves to running only with a lease")
    return action


async def _apply(session: AsyncSession, move: Move, at: datetime) -> None:
    """The row's new state and bookkeeping, and the customer's notification."""
    row, to = move.row, move.to
    row.state = to
    row.updated_at = at
    if move.lease is not None and to == RUNNING:
        row.lease_owner, row.lease_expires_at = move.lease.owner, move.lease.until
        row.attempts = (row.attempts or 0) + 1
    else:
        row.lease_owner = row.lease_expires_at = None
    if to == QUEUED:
        row.next_run_at = move.run_at or at
        if row.next_run_at <= at:
            await wakeup.announce(session)
    if to in states.FINAL:
        row.next_run_at = None
        row.reason = move.reason
        row.result = json.dumps(dict(move.details or {}), ensure_ascii=False)
    if states.scrubs(to, move.reason):
        # Data minimisation: the new phone, email or address was needed to
        # carry the request out, not to remember it afterwards.
        row.payload = SCRUBBED
    if to in states.TOLD and not move.quiet:
        notifications.add(
            session,
            chat=row.chat,
            locale=row.locale,
            type="request_outcome",
            at=at,
            reference=row.reference,
            outcome=to,
            reason=move.reason,
            details=move.details or {},
        )
