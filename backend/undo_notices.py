"""Was this you? notices: sent from their outbox row until the SMS gateway or mail server takes one.

``backend.contact_undo`` writes the notice (sealed, with the link's token) when
it prepares a change and makes it due once the change is made (``wake``
tells this process's sender at once). ``run_notices`` (every worker) and
``send_due`` (``datadesk worker --once``) send what is due: by SMS, or by email
when an email changed and SMTP is on, in the customer's language, from
``BANK_NAME``, with the date, the field, the new contact masked and the link
``{PUBLIC_URL}/undo/{token}?lang={locale}``. A refused notice is tried again
after ``backoff`` until its link expires; a sent one loses its sealed notice,
and with it the token. Several workers may send: a notice is claimed by a
conditional update (a lease) before it is sent.

No log line carries a contact, a token or a text: references and counts only.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from babel.dates import format_date
from sqlalchemy import select, update

from backend import messages
from backend.models.undo import ContactUndo
from backend.services import Services
from common.db import write_turn
from common.loop_events import LoopEvents

log = logging.getLogger(__name__)

# A claimed notice belongs to its sender this long; a sender that dies leaves it due again.
NOTICE_LEASE = timedelta(minutes=5)
# Notices claimed, read and written back together: four round trips a batch.
NOTICE_BATCH = 100
# Batches in one pass at most: what is left waits for the next pass.
MAX_BATCHES = 10
NOTICE_POLL_SECONDS = 5.0

# Wakes this process's own waiter at once (common/loop_events.py).
_wakeup = LoopEvents().get


def wake() -> None:
    """A notice is due now: this process's sender looks at once."""
    _wakeup().set()


def backoff(attempts: int) -> timedelta:
    """How long a notice waits after its ``attempts``-th failure: 30 s, 1 min, 2 min, … at most 1 h."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


@lru_cache(maxsize=256)
def localized_date(day: date, locale: str) -> str:
    """``day`` as the customer's locale writes it in a sentence (``22 November 2026``).

    Kept per day and locale: a batch of notices shares a few, and babel's
    formatting was an eighth of the notices' time under ``make bench``.
    """
    return format_date(day, format="long", locale=locale)


def field_name(locale: str, field: str) -> str:
    """The name of ``field`` (phone, email, address) in ``locale``, as the notice and page show it."""
    return messages.render(locale, f"undo_field_{field}")


def link(services: Services, token: str, locale: str) -> str:
    """The undo page's address for ``token`` under ``PUBLIC_URL``; ``lang``: the page's language
    however the link turns out (used and unknown links have no row to tell it)."""
    return f"{services.settings.undo_base_url}/undo/{token}?lang={locale}"


async def _send(services: Services, row: ContactUndo, notice: dict[str, Any]) -> None:
    """Send one notice; raises whatever the gateway or mail server raised."""
    bank = services.settings.bank_name
    values = {
        "date": localized_date(row.created_at.date(), row.locale),
        "field": field_name(row.locale, row.field),
        "new": row.masked_new,
        "link": link(services, str(notice["token"]), row.locale),
    }
    reference = f"{row.reference}-notice"
    if notice["channel"] == "email":
        if services.mailer is None:
            raise RuntimeError("the email channel is off")
        subject = messages.render(row.locale, "undo_email_subject", bank=bank, **values)
        body = messages.render(row.locale, "undo_email", bank=bank, **values)
        await services.mailer.send(str(notice["to"]), subject, body, reference)
    else:
        text = messages.render(row.locale, "undo_sms", bank=bank, **values)
        await services.sms.send(str(notice["to"]), text, reference)


async def _claim(services: Services, row_ids: list[str], now: datetime) -> list[str]:
    """Take those of ``row_ids`` still due for this sender, in one conditional update.

    A notice another sender claimed meanwhile is leased into the future, so no
    longer due: each goes to one sender.
    """
    if not row_ids:
        return []
    async with (
        write_turn(services.settings.database_url),
        services.sessions() as session,
        session.begin(),
    ):
        taken = await session.scalars(
            update(ContactUndo)
            .where(
                ContactUndo.id.in_(row_ids),
                ContactUndo.notice_due_at <= now,
                ContactUndo.notice.is_not(None),
            )
            .values(notice_due_at=now + NOTICE_LEASE)
            .returning(ContactUndo.id)
        )
        return list(taken)


async def send_due(services: Services) -> int:
    """Send every notice that is due, a batch at a time; answer how many went out."""
    sent = 0
    for _ in range(MAX_BATCHES):
        tried, went = await _send_batch(services)
        sent += went
        if tried < NOTICE_BATCH:
            break
    return sent


async def _send_batch(services: Services) -> tuple[int, int]:
    """Send up to ``NOTICE_BATCH`` due notices; answer how many were due and how many went out.

    A notice tried here is not due again in the same pass: sent, it is done;
    refused, it waits for its back-off; claimed by another sender, it is leased.
    """
    now = services.clock.now()
    async with services.sessions() as session:
        due = list(
            await session.scalars(
                select(ContactUndo.id)
                .where(ContactUndo.notice_due_at <= now, ContactUndo.notice.is_not(None))
                .order_by(ContactUndo.notice_due_at)
                .limit(NOTICE_BATCH)
            )
        )
    # One claim, one read and one write for the batch: a transaction per notice
    # was most of the notices' cost under ``make bench`` (py-spy).
    taken = set(await _claim(services, due, now))
    async with services.sessions() as session:
        loaded = {
            row.id: row
            for row in await session.scalars(
                select(ContactUndo).where(
                    ContactUndo.id.in_(taken), ContactUndo.notice.is_not(None)
                )
            )
        }
    tried = [loaded[row_id] for row_id in due if row_id in loaded]
    sent = 0
    for row in tried:
        notice = json.loads(row.notice or "{}")
        try:
            await _send(services, row, notice)
        except Exception as exc:
            row.notice_attempts += 1
            if now >= row.expires_at:
                # The link has expired: the notice has nothing left to offer.
                row.notice, row.notice_due_at = None, None
                log.error(
                    "undo notice %s given up after %d attempts: %s",
                    row.reference,
                    row.notice_attempts,
                    type(exc).__name__,
                )
            else:
                row.notice_due_at = now + backoff(row.notice_attempts)
                log.warning(
                    "undo notice %s attempt %d failed: %s",
                    row.reference,
                    row.notice_attempts,
                    type(exc).__name__,
                )
            continue
        # Sent: the token leaves the database with the notice.
        row.notice, row.notice_due_at, row.notice_sent_at = None, None, now
        row.notice_attempts += 1
        sent += 1
    if tried:
        # Under the lease: a sender that dies before this leaves them due again when
        # it runs out, so a notice goes out at least once. A statement for the notices
        # dropped (sent, or given up) and one for those kept, whatever their number.
        changes: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
        for row in tried:
            change = {
                "id": row.id,
                "notice_due_at": row.notice_due_at,
                "notice_sent_at": row.notice_sent_at,
                "notice_attempts": row.notice_attempts,
            }
            dropped = row.notice is None
            if dropped:
                change["notice"] = None
            changes[dropped].append(change)
        async with (
            write_turn(services.settings.database_url),
            services.sessions() as session,
            session.begin(),
        ):
            for rows in changes.values():
                if rows:
                    await session.execute(update(ContactUndo), rows)
    return len(due), sent


async def run_notices(
    services: Services, stop: asyncio.Event, poll_seconds: float = NOTICE_POLL_SECONDS
) -> None:
    """Send due notices until ``stop``: at once when this process arms one, else every poll."""
    wakeup = _wakeup()
    while not stop.is_set():
        wakeup.clear()
        try:
            await send_due(services)
        except Exception as exc:
            # A database hiccup must not end the loop; the rows stay due.
            log.error("undo notices: %s", type(exc).__name__)
        waits = {asyncio.ensure_future(wakeup.wait()), asyncio.ensure_future(stop.wait())}
        _, pending = await asyncio.wait(
            waits, timeout=poll_seconds, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
