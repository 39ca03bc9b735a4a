"""What ``/status`` shows: the requests of the customer verified in the chat, of the last 12 months.

Each entry is ``submit.answer`` (reference, kind, state, due date, received)
plus ``finished_at`` (when it reached a final state; None while open) and, for
a finished erasure, ``holds``: what was kept, on which basis, until when (as
the outcome message told it).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.ledger.submit import SUBMITTER, answer, stamp
from backend.models.ledger import Request
from common.vocabulary.request_kinds import ERASURE
from common.vocabulary.request_states import FINAL_STATES, OPEN_STATES, QUEUED, RUNNING

# "The last 12 months": a year and a day, so a request from this day last year still shows.
LOOKBACK = timedelta(days=366)


def _holds(row: Request) -> list[dict[str, Any]]:
    try:
        result = json.loads(row.result or "{}")
    except ValueError:
        return []
    holds = result.get("holds") if isinstance(result, dict) else None
    return [h for h in holds if isinstance(h, dict)] if isinstance(holds, list) else []


def _entry(row: Request) -> dict[str, Any]:
    # An opt-out its submitter is still applying is reported queued, as its answer was.
    shown = answer(row, QUEUED if row.state == RUNNING and row.lease_owner == SUBMITTER else None)
    finished = row.state in FINAL_STATES
    shown["finished_at"] = stamp(row.updated_at) if finished else None
    if finished and row.kind == ERASURE:
        shown["holds"] = _holds(row)
    return shown


async def recent_requests(
    session: AsyncSession, customer_ref: str, now: datetime
) -> list[dict[str, Any]]:
    """The customer's requests received in the last 12 months, from whichever chat, newest first.

    Not by chat: a chat verified as one customer must not see the requests
    another customer submitted from it earlier.
    """
    rows = await session.scalars(
        select(Request)
        .where(Request.customer_ref == customer_ref, Request.received_at >= now - LOOKBACK)
        .order_by(Request.received_at.desc(), Request.id.desc())
    )
    return [_entry(row) for row in rows]


async def open_requests(session: AsyncSession, customer_ref: str) -> list[dict[str, Any]]:
    """Open requests of the customer, from whichever chat, newest first."""
    rows = await session.scalars(
        select(Request)
        .where(Request.customer_ref == customer_ref, Request.state.in_(OPEN_STATES))
        .order_by(Request.received_at.desc(), Request.id.desc())
    )
    return [_entry(row) for row in rows]
