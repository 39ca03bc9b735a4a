"""What the chat page and the history page show about a chat, besides its transcript.

The heading (customer reference, masked name, language, verification, who
holds the chat and since when, how long it waited), the customer's requests
with what a supervisor may do to each, and the agents' internal notes.
Handlers in ``pages`` (an open chat) and ``history`` (a closed one) build their
context from here, so both read the same.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend import chat_notes
from backend.crm.connector import CustomerRecord
from backend.errors import ConnectorError
from backend.models.console import Agent, Escalation
from backend.models.ledger import SCRUBBED, Request
from backend.services import Services
from common.masking import mask_text
from common.vocabulary.request_states import FAILED, QUEUED

log = logging.getLogger(__name__)


def waited(since: datetime, until: datetime) -> str:
    """How long a chat has waited, as an agent reads it at a glance: ``4 min``, ``2 h 5 min``."""
    minutes = max(int((until - since).total_seconds() // 60), 0)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def wait_of(row: Escalation, now: datetime) -> str:
    """The chat's wait for a person: it stops when someone took it (or it closed untaken)."""
    return waited(row.created_at, row.taken_at or row.closed_at or now)


async def customer_record(services: Services, customer_ref: str | None) -> CustomerRecord | None:
    """The customer's record for the page; None when unverified or the CRM cannot answer now.

    A CRM that is down costs the page its masked fields, never the page itself.
    """
    if not customer_ref:
        return None
    try:
        return await services.crm.get(customer_ref)
    except ConnectorError:
        log.warning("console: the CRM did not answer; customer fields not shown", exc_info=True)
        return None


async def agent_names(session: AsyncSession, ids: Iterable[int | None]) -> dict[int, str]:
    """Agents' login names by id (the console shows who holds a chat)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await session.execute(select(Agent.id, Agent.name).where(Agent.id.in_(wanted)))
    return {agent_id: name for agent_id, name in rows.tuples()}


async def active_agents(session: AsyncSession) -> list[tuple[int, str]]:
    """Every agent who may hold a chat, by name: whom a supervisor can reassign one to."""
    rows = await session.execute(
        select(Agent.id, Agent.name).where(Agent.active.is_(True)).order_by(Agent.name)
    )
    return list(rows.tuples())


@dataclass(frozen=True)
class Heading:
    """Who the chat is with and where it stands."""

    customer_ref: str | None
    name: str  # masked; "" when nothing is on file
    holder: str | None
    since: datetime | None
    waited: str


@dataclass(frozen=True)
class RequestRow:
    """One of the customer's requests, and what a supervisor may do to it."""

    reference: str
    kind: str
    state: str
    reason: str | None
    due_date: str
    can_retry: bool
    can_cancel: bool


async def heading(
    session: AsyncSession, row: Escalation, record: CustomerRecord | None, now: datetime
) -> Heading:
    """The chat page's heading for ``row``."""
    names = await agent_names(session, [row.taken_by])
    return Heading(
        customer_ref=row.customer_ref,
        name=mask_text(record.name) if record is not None else "",
        holder=names.get(row.taken_by) if row.taken_by is not None else None,
        since=row.taken_at,
        waited=wait_of(row, now),
    )


async def requests_of(session: AsyncSession, row: Escalation) -> list[RequestRow]:
    """The customer's newest requests (this chat's, and any others they made), newest first."""
    where = Request.chat == row.chat
    if row.customer_ref:
        where = or_(where, Request.customer_ref == row.customer_ref)
    found = await session.scalars(
        select(Request)
        .where(where)
        .order_by(Request.received_at.desc(), Request.id.desc())
        .limit(20)
    )
    return [
        RequestRow(
            reference=r.reference,
            kind=r.kind,
            state=r.state,
            reason=r.reason,
            due_date=r.due_date.isoformat(),
            can_retry=r.state == FAILED and r.payload != SCRUBBED,
            can_cancel=r.state in (QUEUED, FAILED),
        )
        for r in found
    ]


@dataclass(frozen=True)
class NoteRow:
    """An internal note as the page shows it."""

    text: str
    by: str
    at: datetime


async def notes_of(session: AsyncSession, chat: str) -> list[NoteRow]:
    """The chat's internal notes with their authors' names, oldest first."""
    found = await chat_notes.for_chat(session, chat)
    names = await agent_names(session, [n.agent_id for n in found])
    return [NoteRow(n.text, names.get(n.agent_id, "?"), n.at) for n in found]
