"""Escalated chats: opening them, an agent's take-over, reply and hand-back.

An escalation moves ``waiting → taken → handed_back``, or ``waiting → closed``
when it is dismissed before anyone takes it. At most one escalation per chat is
open (waiting or taken) at a time; opening another returns that one. While an
escalation is taken the chat's ``agent_active`` is true and the bot stays quiet.

Every function here works inside the caller's session and does not commit, so
the worker can open an escalation in the same transaction that fails a request.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend import audit, notifications
from backend.errors import Conflict, Forbidden, Invalid, NotFound
from backend.models.console import OPEN_STATES, Escalation, TranscriptEntry

# Transcripts moved to backend.transcripts; these names stay importable from here,
# where the bot's tests and the CRM wiring first found them.
from backend.transcripts import chat_history_eraser as chat_history_eraser
from backend.transcripts import mask_personal_data as mask_personal_data
from backend.transcripts import record_message
from backend.transcripts import transcript as transcript

MAX_TEXT = 4096  # Telegram's own limit for one message


@dataclass(frozen=True)
class Opened:
    """The escalation for a chat, and whether this call created it."""

    id: str
    state: str
    created: bool


def new_escalation_id() -> str:
    """An opaque, unguessable escalation id: ``es_`` and 16 url-safe characters."""
    return "es_" + secrets.token_urlsafe(12)


async def open_for_chat(session: AsyncSession, chat: str) -> Escalation | None:
    """The chat's open (waiting or taken) escalation, if any."""
    found = await session.scalars(
        select(Escalation).where(Escalation.chat == chat, Escalation.state.in_(OPEN_STATES))
    )
    return found.first()


async def open_or_reuse(
    session: AsyncSession,
    *,
    chat: str,
    reason: str,
    locale: str,
    verified: bool,
    customer_ref: str | None,
    at: datetime,
    actor: str = "system",
) -> Opened:
    """Open an escalation for ``chat`` (audited as ``actor``), or return the one already open."""
    existing = await open_for_chat(session, chat)
    if existing is not None:
        if reason != existing.reason:
            # The latest reason stands: a customer who now asks outright is no lockout case.
            await audit.record(
                session,
                action="escalation.reason",
                actor=actor,
                subject=existing.id,
                data={"from": existing.reason, "reason": reason},
                at=at,
            )
            existing.reason = reason
        if customer_ref and existing.customer_ref is None:
            # The customer verified after asking; the agent should see that.
            existing.customer_ref = customer_ref
            existing.verified = True
        return Opened(existing.id, existing.state, created=False)
    row = Escalation(
        id=new_escalation_id(),
        chat=chat,
        reason=reason,
        locale=locale,
        verified=verified,
        customer_ref=customer_ref,
        state="waiting",
        created_at=at,
    )
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        # Another process opened one between our look and our insert; the
        # partial unique index on open escalations per chat made us lose.
        winner = await open_for_chat(session, chat)
        if winner is None:
            raise
        return Opened(winner.id, winner.state, created=False)
    await audit.record(
        session,
        action="escalation.open",
        actor=actor,
        subject=row.id,
        data={"reason": reason, "verified": verified},
        at=at,
    )
    return Opened(row.id, row.state, created=True)


async def open_escalation(
    session: AsyncSession,
    *,
    chat: str,
    reason: str,
    locale: str,
    verified: bool,
    customer_ref: str | None,
    at: datetime,
) -> str:
    """Open an escalation for ``chat`` (or reuse the open one) and return its id."""
    opened = await open_or_reuse(
        session,
        chat=chat,
        reason=reason,
        locale=locale,
        verified=verified,
        customer_ref=customer_ref,
        at=at,
    )
    return opened.id


async def agent_active(session: AsyncSession, chat: str) -> bool:
    """Whether an agent has taken ``chat``, so the bot must not answer it."""
    found = await session.scalar(
        select(Escalation.id).where(Escalation.chat == chat, Escalation.state == "taken")
    )
    return found is not None


async def take(session: AsyncSession, escalation_id: str, *, agent_id: int, at: datetime) -> bool:
    """Give a waiting escalation to ``agent_id``; False when someone else was first.

    One conditional UPDATE decides: whichever transaction changes the row wins,
    on SQLite and PostgreSQL alike, so two agents can never both take a chat.
    """
    result = await session.execute(
        update(Escalation)
        .where(
            Escalation.id == escalation_id,
            Escalation.state == "waiting",
            Escalation.taken_by.is_(None),
        )
        .values(state="taken", taken_by=agent_id, taken_at=at)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def actor(agent_id: int) -> str:
    """How an agent is named in the audit log: an internal id, never a name."""
    return f"agent:{agent_id}"


async def get(session: AsyncSession, escalation_id: str) -> Escalation:
    """The escalation with this id, or 404 not_found."""
    row = await session.get(Escalation, escalation_id)
    if row is None:
        raise NotFound("no such escalation", code="not_found")
    return row


async def take_over(
    session: AsyncSession, escalation_id: str, *, agent_id: int, at: datetime
) -> Escalation:
    """Take a waiting chat, tell the customer a person joined; 409 already_taken if late."""
    # The UPDATE comes first, so on SQLite the transaction starts by taking
    # the write lock rather than reading a snapshot that might go stale.
    taken = await take(session, escalation_id, agent_id=agent_id, at=at)
    row = await get(session, escalation_id)
    if not taken:
        await audit.record(
            session,
            action="escalation.take",
            actor=actor(agent_id),
            subject=escalation_id,
            outcome="already_taken",
            at=at,
        )
        raise Conflict("someone else took this chat first", code="already_taken")
    await session.refresh(row)
    await notifications.enqueue(
        session, chat=row.chat, locale=row.locale, type="agent_joined", at=at
    )
    await audit.record(
        session,
        action="escalation.take",
        actor=actor(agent_id),
        subject=escalation_id,
        outcome="taken",
        data={"reason": row.reason},
        at=at,
    )
    return row


async def _held_by(
    session: AsyncSession, escalation_id: str, agent_id: int, *, override: bool = False
) -> Escalation:
    row = await get(session, escalation_id)
    if row.state != "taken":
        raise Conflict("this chat is not taken", code="not_taken")
    if row.taken_by != agent_id and not override:
        raise Forbidden("another agent holds this chat", code="not_your_chat")
    return row


async def reply(
    session: AsyncSession, escalation_id: str, *, agent_id: int, text: str, at: datetime
) -> TranscriptEntry:
    """Send the agent's ``text`` to the customer and keep it (masked) in the transcript."""
    text = text.strip()
    if not text:
        raise Invalid({"text": "empty"})
    if len(text) > MAX_TEXT:
        raise Invalid({"text": "too_long"})
    row = await _held_by(session, escalation_id, agent_id)
    entry = await record_message(
        session, chat=row.chat, direction="agent", text=text, at=at, agent_id=agent_id
    )
    # The customer gets the words as typed: a hotline number is not a leak.
    await notifications.enqueue(
        session,
        chat=row.chat,
        locale=row.locale,
        type="agent_message",
        at=at,
        details={"text": text},
    )
    await audit.record(
        session,
        action="escalation.reply",
        actor=actor(agent_id),
        subject=escalation_id,
        data={"entry": entry.id},
        at=at,
    )
    return entry


RESUME = ("where_left_off", "menu")


async def hand_back(
    session: AsyncSession,
    escalation_id: str,
    *,
    agent_id: int,
    resume: str,
    at: datetime,
    override: bool = False,
) -> Escalation:
    """Give the chat back to the bot, which resumes ``where_left_off`` or at the ``menu``.

    ``override`` lets a supervisor release a chat another agent left holding.
    """
    if resume not in RESUME:
        raise Invalid({"resume": "invalid_resume"})
    row = await _held_by(session, escalation_id, agent_id, override=override)
    held_by = row.taken_by
    row.state, row.resume, row.closed_at = "handed_back", resume, at
    await notifications.enqueue(
        session,
        chat=row.chat,
        locale=row.locale,
        type="agent_left",
        at=at,
        details={"resume": resume},
    )
    await audit.record(
        session,
        action="escalation.hand_back",
        actor=actor(agent_id),
        subject=escalation_id,
        outcome=resume,
        data={"held_by": held_by} if held_by != agent_id else None,
        at=at,
    )
    return row


async def close(
    session: AsyncSession, escalation_id: str, *, agent_id: int, at: datetime
) -> Escalation:
    """Dismiss a waiting escalation nobody took; the bot carries on where it was."""
    result = await session.execute(
        update(Escalation)
        .where(Escalation.id == escalation_id, Escalation.state == "waiting")
        .values(state="closed", closed_at=at, resume="where_left_off")
        .execution_options(synchronize_session=False)
    )
    row = await get(session, escalation_id)
    if getattr(result, "rowcount", 0) != 1:
        raise Conflict("only a waiting chat can be closed", code="not_waiting")
    await session.refresh(row)
    await notifications.enqueue(
        session,
        chat=row.chat,
        locale=row.locale,
        type="agent_left",
        at=at,
        details={"resume": "where_left_off"},
    )
    await audit.record(
        session, action="escalation.close", actor=actor(agent_id), subject=escalation_id, at=at
    )
    return row


async def withdraw(session: AsyncSession, chat: str, *, at: datetime) -> bool:
    """The customer stopped waiting: close ``chat``'s waiting escalation; False if none waited.

    A chat an agent has taken already stays with the agent. No ``agent_left``
    notification: the bot moved on itself.
    """
    row = await open_for_chat(session, chat)
    if row is None or row.state != "waiting":
        return False
    result = await session.execute(
        update(Escalation)
        .where(Escalation.id == row.id, Escalation.state == "waiting")
        .values(state="closed", closed_at=at, resume="where_left_off")
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return False
    await audit.record(session, action="escalation.withdraw", actor="bot", subject=row.id, at=at)
    return True


async def open_escalations(session: AsyncSession, limit: int = 500) -> list[Escalation]:
    """Waiting and taken escalations, the longest-waiting first (at most ``limit``)."""
    found = await session.scalars(
        select(Escalation)
        .where(Escalation.state.in_(OPEN_STATES))
        .order_by(Escalation.created_at, Escalation.id)
        .limit(limit)
    )
    return list(found)


async def reassign(
    session: AsyncSession,
    escalation_id: str,
    *,
    to_agent: int,
    by_agent: int,
    reason: str,
    at: datetime,
) -> Escalation:
    """Give a taken chat to another active agent (a supervisor's move), audited with its reason.

    The customer is not told: a person is still with them. 409 ``not_taken``
    when nobody holds the chat, 422 ``invalid_agent`` for an unknown or disabled agent.
    """
    from backend.models.console import Agent

    said = reason.strip()
    if len(said) < 10 or len(said) > 200:
        raise Invalid({"reason": "reason_required"})
    target = await session.get(Agent, to_agent)
    if target is None or not target.active:
        raise Invalid({"agent": "invalid_agent"})
    row = await get(session, escalation_id)
    if row.state != "taken":
        raise Conflict("this chat is not taken", code="not_taken")
    held_by = row.taken_by
    # Conditional, like ``take``: a chat handed back meanwhile is not taken again.
    result = await session.execute(
        update(Escalation)
        .where(Escalation.id == escalation_id, Escalation.state == "taken")
        .values(taken_by=to_agent, taken_at=at)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise Conflict("this chat is not taken", code="not_taken")
    await session.refresh(row)
    await audit.record(
        session,
        action="escalation.reassign",
        actor=actor(by_agent),
        subject=escalation_id,
        outcome=actor(to_agent),
        data={"held_by": held_by, "reason": mask_personal_data(said)},
        at=at,
    )
    return row
