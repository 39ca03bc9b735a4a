"""Closed chats, findable for as long as the retention policy keeps their transcripts.

A chat handed back or closed stays findable in the console's history until
``chat_history_kept`` (``backend/policies/retention.yaml``, per jurisdiction)
has passed since the day it closed, in the bank's local time; a customer's
erasure of ``chat_history`` removes the transcript sooner (the chat is still
listed, with nothing left to read). ``search`` finds them by customer
reference, request reference or the day they closed. ``purge`` (run by the
workers' daily purge) deletes transcript lines and agents' notes older than
that period, so what the history no longer shows is not kept either.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend import audit
from backend.models.console import ChatNote, Escalation, TranscriptEntry
from backend.models.ledger import Request
from backend.retention import Jurisdiction, load_policy
from backend.services import Services

CLOSED_STATES = ("handed_back", "closed")
LIMIT = 100


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


def _minus(day: date, unit: str, amount: int) -> date:
    """``day`` less a period; the 31st becomes the month's last day when it has none."""
    if unit == "days":
        return day - timedelta(days=amount)
    months = amount * 12 if unit == "years" else amount
    year, month = divmod(day.month - 1 - months, 12)
    year, month = day.year + year, month + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def oldest_kept(jurisdiction: Jurisdiction, now: datetime) -> datetime | None:
    """The start of the first local day still kept at ``now``; None when no period is set."""
    if jurisdiction.chat_history_kept is None:
        return None
    unit, amount = jurisdiction.chat_history_kept
    first = _minus(local_day(jurisdiction, now), unit, amount)
    return datetime.combine(first, time(), ZoneInfo(jurisdiction.timezone))


def still_kept(jurisdiction: Jurisdiction, closed_at: datetime, now: datetime) -> bool:
    """Whether a chat closed at ``closed_at`` is still in the history at ``now``."""
    oldest = oldest_kept(jurisdiction, now)
    return oldest is None or closed_at >= oldest


async def search(
    session: AsyncSession, jurisdiction: Jurisdiction, query: Query, now: datetime
) -> list[Escalation]:
    """Closed chats matching ``query`` that are still kept, the latest closed first."""
    stmt = select(Escalation).where(Escalation.state.in_(CLOSED_STATES))
    oldest = oldest_kept(jurisdiction, now)
    if oldest is not None:
        stmt = stmt.where(Escalation.closed_at >= oldest)
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
    return list(found)


async def closed_chat(
    session: AsyncSession, jurisdiction: Jurisdiction, escalation_id: str, now: datetime
) -> Escalation | None:
    """The closed chat ``escalation_id`` if the history still keeps it, else None."""
    row = await session.get(Escalation, escalation_id)
    if row is None or row.state not in CLOSED_STATES or row.closed_at is None:
        return None
    return row if still_kept(jurisdiction, row.closed_at, now) else None


async def purge(services: Services) -> int:
    """Delete transcript lines and notes older than ``chat_history_kept``; audit the counts."""
    jurisdiction = load_policy().get(services.settings.jurisdiction)
    now = services.clock.now()
    oldest = oldest_kept(jurisdiction, now)
    if oldest is None:
        return 0
    async with services.sessions() as session, session.begin():
        lines = await session.execute(
            delete(TranscriptEntry)
            .where(TranscriptEntry.at < oldest)
            .execution_options(synchronize_session=False)
        )
        notes = await session.execute(
            delete(ChatNote)
            .where(ChatNote.at < oldest)
            .execution_options(synchronize_session=False)
        )
        gone = int(getattr(lines, "rowcount", 0) or 0), int(getattr(notes, "rowcount", 0) or 0)
        if any(gone):
            await audit.record(
                session,
                action="chat_history_purged",
                actor="system:purge",
                data={"lines": gone[0], "notes": gone[1]},
                at=now,
            )
    return gone[0]
