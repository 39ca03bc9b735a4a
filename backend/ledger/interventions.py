"""A supervisor's hand on a request from the console: retry a failed one, cancel a queued one.

Both go through ``transitions.transition`` (``failed → queued`` is
``request_retried``; ``queued | failed → rejected`` is ``request_cancelled``),
so the state machine, the customer's notification and the audit entry are the
ledger's own. The supervisor's typed reason is kept in the audit entry, masked
(the chain is never erased); a cancellation also carries a reason code the
customer is told in their language (``review_rejected:{code}``, the review
queue's codes). Neither commits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.errors import Conflict, Invalid, NotFound
from backend.ledger.transitions import transition
from backend.models.ledger import SCRUBBED, Request
from common.vocabulary.request_states import FAILED, QUEUED, REJECTED

# Long enough to say why; short enough for an audit entry.
REASON_MIN, REASON_MAX = 10, 200
# The customer is told these in their language (``reason.review_rejected.{code}``).
CANCEL_CODES = ("identity_not_confirmed", "legal_obligation", "open_dispute", "duplicate_request")


def _reason(reason: str) -> str:
    from backend.transcripts import mask_personal_data

    reason = reason.strip()
    if len(reason) < REASON_MIN or len(reason) > REASON_MAX:
        raise Invalid({"reason": "reason_required"})
    return mask_personal_data(reason)


async def _request(session: AsyncSession, reference: str) -> Request:
    # Locked: a worker claiming it meanwhile waits for our decision (PostgreSQL).
    row = await session.scalar(
        select(Request).where(Request.reference == reference).with_for_update()
    )
    if row is None:
        raise NotFound("no such request", code="not_found")
    return row


async def retry(
    session: AsyncSession, reference: str, *, actor: str, reason: str, at: datetime
) -> Request:
    """Queue a failed request again, to run now; 409 ``not_failed`` for any other state."""
    said = _reason(reason)
    row = await _request(session, reference)
    if row.state != FAILED:
        raise Conflict(f"the request is {row.state}, not failed", code="not_failed")
    if row.payload == SCRUBBED:
        # Its details were dropped (failed before failed requests kept them, or
        # ``purge.FAILED_KEPT`` ago): nothing is left to carry out.
        raise Conflict("the request's details are no longer kept", code="payload_gone")
    await transition(session, row, QUEUED, actor=actor, at=at, data={"note": said})
    await session.flush()
    return row


async def cancel(
    session: AsyncSession, reference: str, *, actor: str, code: str, reason: str, at: datetime
) -> Request:
    """Cancel a queued (or failed) request; the customer is told why, by ``code``."""
    said = _reason(reason)
    if code not in CANCEL_CODES:
        raise Invalid({"code": "invalid_reason"})
    row = await _request(session, reference)
    if row.state not in (QUEUED, FAILED):
        raise Conflict(f"the request is {row.state}, not queued", code="not_queued")
    await transition(
        session,
        row,
        REJECTED,
        actor=actor,
        at=at,
        reason=f"review_rejected:{code}",
        data={"note": said, "cancelled": True},
    )
    await session.flush()
    return row
