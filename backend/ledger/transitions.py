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

A move's row is either a loaded ``Request`` (the ORM writes it at the next
flush) or a ``Held`` snapshot read with Core (``held``): a batch of snapshots
is written as a few statements whatever its size (the rows' updates as one
executemany per shape of change, the notifications and the audit entries as
one insert each), which is what the workers' hot path uses: under
``make bench`` py-spy put the ORM's unit of work for one object per row at
about a third of a worker's busy time. One batch is all one kind or the other.

The audit entries are written last, after every row of the batch: the rows'
updates and notifications then go to the database together (one flush), and
an audit log that orders its writers holds them for the shortest time.

Neither commits: the caller decides what else belongs to the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend import audit, notifications
from backend.crypto import for_row
from backend.errors import IllegalTransition
from backend.ledger import states, wakeup
from backend.models.ledger import SCRUBBED, Request
from common.vocabulary.request_states import QUEUED, RUNNING, SUBMITTED, RequestState

_REQUESTS: Table = Request.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class Lease:
    """Who holds a running request, and until when."""

    owner: str
    until: datetime


@dataclass(frozen=True)
class Held:
    """What a move needs of a request, read without the ORM (``held``)."""

    id: int
    reference: str
    customer_ref: str
    chat: str
    locale: str
    kind: str
    state: RequestState
    attempts: int
    max_attempts: int


HELD_COLUMNS = (
    Request.id,
    Request.reference,
    Request.customer_ref,
    Request.chat,
    Request.locale,
    Request.kind,
    Request.state,
    Request.attempts,
    Request.max_attempts,
)


async def held(session: AsyncSession, ids: Sequence[int], owner: str) -> dict[int, Held]:
    """The requests of ``ids`` that ``owner`` still runs, locked for this transaction, by id."""
    if not ids:
        return {}
    rows = await session.execute(
        select(*HELD_COLUMNS)
        .where(Request.id.in_(ids), Request.lease_owner == owner, Request.state == RUNNING)
        .order_by(Request.id)
        .with_for_update()
    )
    return {row.id: Held(*row) for row in rows}


@dataclass(frozen=True)
class Move:
    """One request's move to ``to``; see ``transition`` for what the other fields mean."""

    row: Request | Held
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
) -> list[Request | Held]:
    """Make every move of ``moves`` as ``actor`` at ``at`` (see ``transition``); no commit.

    Answers the rows as they are now, in the order of ``moves``: a ``Request``
    is the same object, changed; a ``Held`` a new snapshot.
    """
    actions = [_check(move) for move in moves]
    if not moves:
        return []
    if all(isinstance(move.row, Held) for move in moves):
        after: list[Request | Held] = list(await _apply_held(session, moves, at))
    else:
        after = []
        for move in moves:
            after.append(await _apply(session, move, at))
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
    entries = []
    for move, action, row in zip(moves, actions, after, strict=True):
        facts: dict[str, audit.Scalar] = {"kind": row.kind, "attempt": row.attempts or 0}
        if move.reason is not None:
            facts["reason"] = move.reason
        facts.update(move.data or {})
        entries.append(
            audit.Entry(
                action=action, actor=actor, subject=row.reference, outcome=move.to, data=facts
            )
        )
    if isinstance(after[0], Held):
        await audit.record_all(session, entries, at=at)
    else:
        for entry in entries:
            await audit.record(
                session,
                action=entry.action,
                actor=entry.actor,
                subject=entry.subject,
                outcome=entry.outcome,
                data=entry.data,
                at=at,
            )
    return after


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


def _changes(move: Move, at: datetime) -> tuple[dict[str, Any], notifications.Outgoing | None]:
    """What a move writes: the row's new column values (``payload`` in clear) and its notification."""
    row, to = move.row, move.to
    values: dict[str, Any] = {"state": to, "updated_at": at}
    if move.lease is not None and to == RUNNING:
        values.update(
            lease_owner=move.lease.owner,
            lease_expires_at=move.lease.until,
            attempts=(row.attempts or 0) + 1,
        )
    else:
        values.update(lease_owner=None, lease_expires_at=None)
    if to == QUEUED:
        values["next_run_at"] = move.run_at or at
    if to in states.FINAL:
        values.update(
            next_run_at=None,
            reason=move.reason,
            result=json.dumps(dict(move.details or {}), ensure_ascii=False),
        )
    if states.scrubs(to, move.reason):
        # Data minimisation: the new phone, email or address was needed to
        # carry the request out, not to remember it afterwards.
        values["payload"] = SCRUBBED
    told = None
    if to in states.TOLD and not move.quiet:
        told = notifications.Outgoing(
            id=0,
            chat=row.chat,
            locale=row.locale,
            type="request_outcome",
            reference=row.reference,
            outcome=to,
            reason=move.reason,
            details=dict(move.details or {}),
            created_at=at,
        )
    return values, told


async def _apply(session: AsyncSession, move: Move, at: datetime) -> Request:
    """The row's new state and bookkeeping (the ORM writes them), and the customer's notification."""
    row = move.row
    if not isinstance(row, Request):
        raise TypeError("a batch of moves is all Request rows or all Held snapshots")
    values, told = _changes(move, at)
    for column, value in values.items():
        setattr(row, column, value)  # the payload's column type seals it
    if move.to == QUEUED and values["next_run_at"] <= at:
        await wakeup.announce(session)
    if told is not None:
        notifications.add(
            session,
            chat=told.chat,
            locale=told.locale,
            type=told.type,
            at=at,
            reference=told.reference,
            outcome=told.outcome,
            reason=told.reason,
            details=told.details,
        )
    return row


async def _apply_held(session: AsyncSession, moves: Sequence[Move], at: datetime) -> list[Held]:
    """``_apply`` for a batch of ``Held`` snapshots, in a few Core statements; the new snapshots."""
    # One executemany per set of columns changed (a scrubbed payload or not, …).
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    told: list[notifications.Outgoing] = []
    after: list[Held] = []
    due_now = False
    for move in moves:
        row = move.row
        if not isinstance(row, Held):
            raise TypeError("a batch of moves is all Request rows or all Held snapshots")
        values, notification = _changes(move, at)
        if move.to == QUEUED:
            due_now = due_now or values["next_run_at"] <= at
        if "payload" in values:
            # Core bypasses the column type: sealed here as the ORM would.
            values["payload"] = for_row(values["payload"], "requests", "payload", [row.reference])
        shapes.setdefault(tuple(values), []).append(
            {"b_id": row.id, **{f"v_{k}": v for k, v in values.items()}}
        )
        if notification is not None:
            told.append(notification)
        after.append(replace(row, state=move.to, attempts=values.get("attempts", row.attempts)))
    for columns, params in shapes.items():
        await session.execute(
            update(_REQUESTS)
            .where(_REQUESTS.c.id == bindparam("b_id"))
            .values({c: bindparam(f"v_{c}", type_=_REQUESTS.c[c].type) for c in columns}),
            params,
        )
    if due_now:
        await wakeup.announce(session)
    await notifications.add_all(session, told)
    return after
