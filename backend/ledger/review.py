"""The back-office review step, for kinds in ``settings.review_kinds``: list, approve, reject.

Each works in the caller's session and does not commit; the console commits
the decision. An approved request is queued to run now, a rejected one tells
the customer the reviewer's reason code (``review_rejected:{code}``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.errors import Conflict, Invalid, NotFound
from backend.ledger.transitions import transition
from backend.models.ledger import Request
from common.vocabulary.request_states import AWAITING_REVIEW, QUEUED, REJECTED


@dataclass(frozen=True)
class ReviewItem:
    """A request waiting for a back-office decision, with the masked preview stored at submit."""

    reference: str
    kind: str
    customer_ref: str
    received_at: datetime
    due_date: str
    preview: dict[str, Any]


async def awaiting_review(session: AsyncSession) -> list[ReviewItem]:
    """Requests waiting for review, the oldest first."""
    rows = await session.scalars(
        select(Request)
        .where(Request.state == AWAITING_REVIEW)
        .order_by(Request.received_at, Request.id)
    )
    return [
        ReviewItem(
            reference=row.reference,
            kind=row.kind,
            customer_ref=row.customer_ref,
            received_at=row.received_at,
            due_date=row.due_date.isoformat(),
            preview=json.loads(row.review_preview or "{}"),
        )
        for row in rows
    ]


async def _awaiting(session: AsyncSession, reference: str) -> Request:
    row = (
        await session.execute(select(Request).where(Request.reference == reference))
    ).scalar_one_or_none()
    if row is None:
        raise NotFound("no such request", code="not_found")
    if row.state != AWAITING_REVIEW:
        raise Conflict(
            f"the request is {row.state}, not awaiting review", code="not_awaiting_review"
        )
    return row


async def approve(session: AsyncSession, reference: str, *, agent: str, at: datetime) -> None:
    """Send a reviewed request on to the queue (does not commit)."""
    row = await _awaiting(session, reference)
    await transition(session, row, QUEUED, actor=agent, at=at)
    await session.flush()


async def reject(
    session: AsyncSession, reference: str, *, agent: str, reason_code: str, at: datetime
) -> None:
    """Reject a reviewed request and tell the customer (does not commit)."""
    if not reason_code or len(reason_code) > 40 or not reason_code.replace("_", "").isalnum():
        raise Invalid({"reason_code": "invalid_reason"})
    row = await _awaiting(session, reference)
    reason = f"review_rejected:{reason_code}"
    await transition(session, row, REJECTED, actor=agent, at=at, reason=reason)
    await session.flush()
