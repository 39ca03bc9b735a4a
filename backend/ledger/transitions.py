"""The one function that moves a request from state to state.

``transition`` checks the move against ``states.MOVES`` (``IllegalTransition``
otherwise) and, in the caller's transaction, writes everything the move
means: the state and its bookkeeping (lease, attempts, next run time), the
audit entry, the outcome notification for a final state, the escalation for
a failure, and the wake-up for a request queued to run now. Nothing else
assigns ``Request.state`` (``tests/test_ledger_transitions.py`` holds every
module to that), so a request's history is the audit log's.

It does not commit: the caller decides what else belongs to the same
transaction (a claim's other rows, a batch of outcomes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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
) -> None:
    """Move ``row`` to ``to`` as ``actor`` at ``at``, with all that goes with it; no commit.

    - to ``running``: ``lease`` is required; the attempt count goes up by one.
    - to ``queued``: runs at ``run_at`` (default ``at``); workers are woken when it is due now.
    - to a final state: ``reason`` and ``details`` are the outcome, the payload is
      scrubbed, the customer is told, and a failure is escalated to an agent.
    - ``data`` adds facts (scalars, no personal data) to the audit entry.
    """
    current = RequestState(row.state) if row.state is not None else SUBMITTED
    action = states.MOVES.get((current, to))
    if action is None:
        raise IllegalTransition(row.reference, current, to)
    row.state = to
    row.updated_at = at
    if to == RUNNING:
        if lease is None:
            raise ValueError("a request moves to running only with a lease")
        row.lease_owner, row.lease_expires_at = lease.owner, lease.until
        row.attempts = (row.attempts or 0) + 1
    else:
        row.lease_owner = row.lease_expires_at = None
    if to == QUEUED:
        row.next_run_at = run_at or at
        if row.next_run_at <= at:
            await wakeup.announce(session)
    if to in states.SCRUBBED_IN:
        # Data minimisation: the new phone, email or address was needed to
        # carry the request out, not to remember it afterwards.
        row.payload = SCRUBBED
        row.next_run_at = None
        row.reason = reason
        row.result = json.dumps(dict(details or {}), ensure_ascii=False)
    if to in states.TOLD:
        notifications.add(
            session,
            chat=row.chat,
            locale=row.locale,
            type="request_outcome",
            at=at,
            reference=row.reference,
            outcome=to,
            reason=reason,
            details=details or {},
        )
    if to in states.ESCALATED:
        from backend.escalations import open_escalation

        await open_escalation(
            session,
            chat=row.chat,
            reason="failed_request",
            locale=row.locale,
            verified=True,
            customer_ref=row.customer_ref,
            at=at,
        )
    facts: dict[str, audit.Scalar] = {"kind": row.kind, "attempt": row.attempts or 0}
    if reason is not None:
        facts["reason"] = reason
    facts.update(data or {})
    await audit.record(
        session,
        action=action,
        actor=actor,
        subject=row.reference,
        outcome=to,
        data=facts,
        at=at,
    )
