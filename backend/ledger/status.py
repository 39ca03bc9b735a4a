"""What ``/status`` shows: the open requests of the customer verified in the chat."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.ledger.submit import SUBMITTER, answer
from backend.models.ledger import Request
from common.vocabulary.request_states import OPEN_STATES, QUEUED, RUNNING


async def open_requests(session: AsyncSession, customer_ref: str) -> list[dict[str, Any]]:
    """Open requests of the customer, from whichever chat, newest first.

    Not by chat: a chat verified as one customer must not see the requests
    another customer submitted from it earlier.
    """
    rows = await session.scalars(
        select(Request)
        .where(Request.customer_ref == customer_ref, Request.state.in_(OPEN_STATES))
        .order_by(Request.received_at.desc(), Request.id.desc())
    )
    return [
        # An opt-out its submitter is still applying is reported queued, as its answer was.
        answer(row, QUEUED if row.state == RUNNING and row.lease_owner == SUBMITTER else None)
        for row in rows
    ]
