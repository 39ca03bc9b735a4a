"""Closed chats, findable for as long as the retention policy keeps their transcripts.

A chat handed back or closed stays findable in the console's history until
``chat_history_kept`` (``backend/policies/retention.yaml``, per jurisdiction)
has passed since the day it closed, in the bank's local time; a customer's
erasure of ``chat_history`` removes the transcript sooner (the chat is still
listed, with nothing left to read). ``search`` finds them by customer
reference, request reference or the day they closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.models.console import Escalation
from backend.models.ledger import Request
from backend.retention import Jurisdiction, add_period

CLOSED_STATES = ("handed_back", "closed")
LIMIT = 100
# Enough days to reach back one unit of a period, whatever the month or year.
_UNIT_DAYS = {"years": 366, "months": 31, "days": 1}


@dataclass(frozen=True)
class Query:
    """What an agent searched for; empty fields do not narrow the search."""

    customer_ref: str = ""
    reference: str = ""
    day: date | None = None

    @property
    def empty(self) -> bool:
        return not (self.customer_ref or self.reference or self.day)


def local_day(jurisdiction: Jurisdiction, at: datetime) -> date:
    """The bank's local date at ``at``."""
    return at.astimezone(ZoneInfo(jurisdiction.timezone)).date()


def still_kept(jurisdiction: Jurisdiction, closed_at: datetime, now: datetime) -> bool:
    """Whether a chat closed at ``closed_at`` is still in the history at ``now``."""
    if jurisdiction.chat_history_kept is None:
        return True
    unit, amount = jurisdiction.chat_history_kept
    closed_on = local_day(jurisdiction, closed_at)
    return add_period(closed_on, unit, amount) >= local_day(jurisdiction, now)


def _earliest(jurisdiction: Jurisdiction, now: datetime) -> datetime | None:
    # A bound for the database; ``still_kept`` decides exactly.
    if jurisdiction.chat_history_kept is None:
        return None
    unit, amount = jurisdiction.chat_history_kept
    return now - timedelta(days=_UNIT_DAYS[unit] * amount + 1)


async def search(
    session: AsyncSession, jurisdiction: Jurisdiction, query: Query, now: datetime
) -> list[Escalation]:
    """Closed chats matching ``query`` that are still kept, the latest closed first."""
    stmt = select(Escalation).where(Escalation.state.in_(CLOSED_STATES))
    earliest = _earliest(jurisdiction, now)
    if earliest is not None:
        stmt = stmt.where(Escalation.closed_at >= earliest)
    if query.customer_ref:
        stmt = stmt.where(Escalation.customer_ref == query.customer_ref)
    if query.reference:
        chats = select(Request.chat).where(Request.reference == query.reference)
        stmt = stmt.where(Escalation.chat.in_(chats))
    if query.day is not None:
        zone = ZoneInfo(jurisdiction.timezone)
        start = datetime.combine(query.day, time(), zone)
        stmt = stmt.where(
            Escalation.closed_at >= start, Escalation.closed_at < start + timedelta(days=1)
        )
    found = await session.scalars(
        stmt.order_by(Escalation.closed_at.desc(), Escalation.id).limit(LIMIT)
    )
    return [row for row in found if row.closed_at and still_kept(jurisdiction, row.closed_at, now)]


async def closed_chat(
    session: AsyncSession, jurisdiction: Jurisdiction, escalation_id: str, now: datetime
) -> Escalation | None:
    """The closed chat ``escalation_id`` if the history still keeps it, else None."""
    row = await session.get(Escalation, escalation_id)
    if row is None or row.state not in CLOSED_STATES or row.closed_at is None:
        return None
    return row if still_kept(jurisdiction, row.closed_at, now) else None
