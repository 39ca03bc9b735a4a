"""Chat transcripts: what was said in a chat, masked again and encrypted at rest.

The channel files every message in and out already masked, in numbered batches
(``POST /api/v1/transcript``, ``file_lines``: each (chat, seq) is stored once,
so a batch filed again changes nothing) or one by one
(``POST /api/v1/chats/{chat}/messages``); ``mask_personal_data`` masks once more whatever still looks like
a phone number, email address, card number or IBAN, so a message the channel
did not recognise is never stored in clear. Agents read transcripts in the
console; erasing a customer's ``chat_history`` deletes the transcripts of the
chats linked to them (``chat_history_eraser`` is the CRM's hook).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, union
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models.console import ChatNote, Escalation, TranscriptEntry
from common.masking import mask_email, mask_iban, mask_pan, mask_phone

# The longest message kept: several Telegram messages' worth.
MAX_STORED_TEXT = 16 * 1024


async def record_message(
    session: AsyncSession,
    *,
    chat: str,
    direction: str,
    text: str,
    at: datetime,
    agent_id: int | None = None,
) -> TranscriptEntry:
    """Add one message to the chat's transcript, masked again on the way in."""
    entry = TranscriptEntry(
        chat=chat,
        direction=direction,
        text=mask_personal_data(text, direction=direction)[:MAX_STORED_TEXT],
        agent_id=agent_id,
        at=at,
    )
    session.add(entry)
    await session.flush()
    return entry


@dataclass(frozen=True)
class NumberedLine:
    """A channel's transcript line: ``seq`` numbers it within its chat."""

    chat: str
    seq: int
    direction: str
    text: str


async def file_lines(session: AsyncSession, lines: Sequence[NumberedLine], *, at: datetime) -> int:
    """Store each line not stored yet (by chat and seq), masked again; answer how many were new.

    Lines are stored in the order given, so a chat's lines keep their order.
    """
    if not lines:
        return 0
    wanted = {(line.chat, line.seq) for line in lines}
    chats = {chat for chat, _ in wanted}
    known = await session.execute(
        select(TranscriptEntry.chat, TranscriptEntry.seq).where(
            TranscriptEntry.chat.in_(chats),
            TranscriptEntry.seq.in_({seq for _, seq in wanted}),
        )
    )
    seen = {(chat, seq) for chat, seq in known.tuples()}
    new = 0
    for line in lines:
        if (line.chat, line.seq) in seen:
            continue
        seen.add((line.chat, line.seq))
        session.add(
            TranscriptEntry(
                chat=line.chat,
                seq=line.seq,
                direction=line.direction,
                text=mask_personal_data(line.text, direction=line.direction)[:MAX_STORED_TEXT],
                at=at,
            )
        )
        new += 1
    await session.flush()
    return new


# Defence in depth: the bot masks before sending, but a message it did not
# recognise (a card number typed mid-sentence) must still not be stored in clear.
# Masking keys on what is personal data, not on any run of digits: dates, amounts
# and references stay readable, and so does the bot's own text.
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_DIGITS = re.compile(r"(?<![\w•])\+?\d[\d ().-]{6,}\d(?![\w•])")
# Spans that are not personal data, left as written: dates the bot writes
# (retention end dates), amounts (``1 250 000.00``, ``€ 12 000``), request
# references (``DD-7K2Q9M``) and customer numbers (``C-1001``).
_AMOUNT = r"(?:\d{1,3}(?:[ ,.\u00a0]\d{3})+|\d+)(?:[.,]\d{1,2})?"
_CURRENCY = r"(?:[€$¥£元]|EUR|USD|CNY|RMB)"
_READABLE = re.compile(
    r"\b(?:\d{4}-\d{2}-\d{2}|\d{1,2}[./]\d{1,2}[./]\d{4})\b"
    r"|(?<![\w+])\d{1,3}(?:[ ,.\u00a0]\d{3})*[.,]\d{2}(?![\d.,])"
    rf"|{_CURRENCY}\s?{_AMOUNT}(?!\d)"
    rf"|(?<![\d+]){_AMOUNT}\s?{_CURRENCY}"
    r"|\b[A-Z]{1,3}-[0-9A-Z]{3,12}\b"
)
# The bot's own lines carry only its dialogs' text and values its dialogs
# already masked ("{masked}"); only what must never be stored is looked for there,
# so its examples ("for example +371 20000000") stay readable.
BOT = "out"


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _mask_digits(match: re.Match[str], *, phones: bool = True) -> str:
    raw = match.group(0)
    digits = re.sub(r"\D", "", raw)
    if 13 <= len(digits) <= 19 and _luhn(digits):
        return mask_pan(digits)
    if phones and len(digits) >= 7:
        return mask_phone(digits)
    return raw


def mask_personal_data(text: str, *, direction: str = "in") -> str:
    """Mask what in ``text`` is still an IBAN, card, email or phone number.

    Dates, amounts and references are kept as written. In the bot's own lines
    (``direction="out"``) only cards and IBANs are masked.
    """
    bot = direction == BOT
    text = _IBAN.sub(lambda m: mask_iban(m.group(0)), text)
    if not bot:
        text = _EMAIL.sub(lambda m: mask_email(m.group(0)), text)

    def digits(part: str) -> str:
        return _DIGITS.sub(lambda m: _mask_digits(m, phones=not bot), part)

    pieces, start = [], 0
    for kept in _READABLE.finditer(text):
        pieces += [digits(text[start : kept.start()]), kept.group(0)]
        start = kept.end()
    return "".join([*pieces, digits(text[start:])])


async def transcript(
    session: AsyncSession,
    chat: str,
    *,
    after: int = 0,
    limit: int = 500,
    until: datetime | None = None,
) -> list[TranscriptEntry]:
    """Up to ``limit`` entries after entry id ``after`` (0: the newest ones), oldest first.

    ``until`` leaves out what was said after that moment (a closed chat's history).
    """
    query = select(TranscriptEntry).where(TranscriptEntry.chat == chat, TranscriptEntry.id > after)
    if until is not None:
        query = query.where(TranscriptEntry.at <= until)
    if after == 0:
        newest = await session.scalars(query.order_by(TranscriptEntry.id.desc()).limit(limit))
        return list(reversed(list(newest)))
    return list(await session.scalars(query.order_by(TranscriptEntry.id).limit(limit)))


async def erase_chat_history(session: AsyncSession, customer_ref: str) -> int:
    """Delete the transcripts of every chat linked to ``customer_ref``; return lines deleted.

    A chat is linked when it was escalated as this verified customer or
    submitted a request for them. Running it again deletes nothing more.
    """
    from backend.models.ledger import Request

    chats = union(
        select(Escalation.chat).where(Escalation.customer_ref == customer_ref),
        select(Request.chat).where(Request.customer_ref == customer_ref),
    ).subquery()
    result = await session.execute(
        delete(TranscriptEntry)
        .where(TranscriptEntry.chat.in_(select(chats.c.chat)))
        .execution_options(synchronize_session=False)
    )
    # Agents' notes on those chats go with them.
    await session.execute(
        delete(ChatNote)
        .where(ChatNote.chat.in_(select(chats.c.chat)))
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def chat_history_eraser(
    sessions: async_sessionmaker[AsyncSession],
) -> Callable[[str], Awaitable[None]]:
    """The CRM's ``on_erase_chat_history`` hook: erase a customer's transcripts in one transaction."""

    async def erase(customer_ref: str) -> None:
        async with sessions() as session, session.begin():
            await erase_chat_history(session, customer_ref)

    return erase
