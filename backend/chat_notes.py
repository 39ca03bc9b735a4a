"""Agents' internal notes on a chat: written in the console, audited, never sent to the customer.

A note belongs to the chat (so it shows again when the chat is escalated
later, and in its history) and names the escalation it was written in. The
text is encrypted at rest and masked like a transcript line; the audit entry
records that a note was written, not what it says. Erasing a customer's
``chat_history`` deletes the notes with the transcripts.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend import audit
from backend.errors import Invalid
from backend.models.console import ChatNote, Escalation
from backend.transcripts import mask_personal_data

MAX_NOTE = 2000


async def add(
    session: AsyncSession, escalation: Escalation, *, agent_id: int, text: str, at: datetime
) -> ChatNote:
    """Keep ``text`` as an internal note on ``escalation``'s chat (no commit)."""
    from backend.escalations import actor

    text = text.strip()
    if not text:
        raise Invalid({"text": "empty"})
    if len(text) > MAX_NOTE:
        raise Invalid({"text": "too_long"})
    note = ChatNote(
        chat=escalation.chat,
        escalation_id=escalation.id,
        agent_id=agent_id,
        text=mask_personal_data(text, direction="agent"),
        at=at,
    )
    session.add(note)
    await session.flush()
    await audit.record(
        session,
        action="escalation.note",
        actor=actor(agent_id),
        subject=escalation.id,
        data={"note": note.id},
        at=at,
    )
    return note


async def for_chat(session: AsyncSession, chat: str) -> list[ChatNote]:
    """The chat's notes, oldest first."""
    found = await session.scalars(
        select(ChatNote).where(ChatNote.chat == chat).order_by(ChatNote.at, ChatNote.id)
    )
    return list(found)
