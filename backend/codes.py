"""One-time codes and their limits: generation, the rolling-hour counters, answer shapes.

The numbers are the contract of issue 2 and ``docs/backend-api.md``: 6-digit
codes valid 5 minutes, 5 checks per code, 30 s between codes of one
challenge, at most 5 codes per rolling hour per chat and per customer.
``backend.verification`` builds the operations on these pieces.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyotp
from sqlalchemy import false, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend import messages
from backend.errors import TooManyRequests
from backend.models.verification import CodeIssue
from backend.services import Services
from common.masking import mask_email, mask_phone

log = logging.getLogger(__name__)

CODE_TTL = 300
MAX_CHECKS = 5
RESEND_AFTER = 30
CODES_PER_HOUR = 5
WINDOW = timedelta(hours=1)
SESSION_TTL = 900
PROOF_TTL = 900


@dataclass(frozen=True)
class Delivery:
    """A code to send after the answer: to the customer on file, or to a new contact."""

    reference: str
    channel: str
    locale: str
    template: str
    code: str
    customer_ref: str | None = None  # whose code it is
    to: str | None = None  # where it goes; None: the customer's contact on file


@dataclass(frozen=True)
class Started:
    """A code was issued (or pretended issued): what the API answers and what to send."""

    verification_id: str
    channel: str
    delivery: Delivery | None
    masked: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The 202 body; identical in shape whether or not anything is sent."""
        body: dict[str, Any] = {
            "verification_id": self.verification_id,
            "channel": self.channel,
            "expires_in": CODE_TTL,
            "resend_after": RESEND_AFTER,
        }
        if self.masked is not None:
            body["masked"] = self.masked
        return body


def new_code() -> str:
    """A fresh 6-digit code from a one-off pyotp secret; the secret is never kept."""
    return str(pyotp.HOTP(pyotp.random_base32(), digits=6).at(0))


def seconds_until(delta: timedelta) -> int:
    """Whole seconds, rounded up and at least 1, for ``retry_after``."""
    return max(1, math.ceil(delta.total_seconds()))


def locked_out(retry_after: int) -> TooManyRequests:
    """The lockout answer: the bot offers an agent."""
    return TooManyRequests(
        "too many codes in the last hour",
        code="locked_out",
        details={"retry_after": retry_after, "offer_agent": True},
    )


async def _window(session: AsyncSession, column: Any, value: str, now: datetime) -> list[datetime]:
    rows = await session.execute(
        select(CodeIssue.issued_at)
        .where(column == value, CodeIssue.issued_at > now - WINDOW)
        .order_by(CodeIssue.issued_at)
    )
    return list(rows.scalars())


async def lockout_retry_after(
    session: AsyncSession, chat: str | None, subject: str, now: datetime
) -> int | None:
    """Seconds until a code may be sent again, when the chat or customer used up the hour."""
    waits = []
    for column, value in ((CodeIssue.chat, chat), (CodeIssue.subject, subject)):
        if value is None:
            continue
        issued = await _window(session, column, value, now)
        if len(issued) >= CODES_PER_HOUR:
            waits.append(seconds_until(issued[len(issued) - CODES_PER_HOUR] + WINDOW - now))
    return max(waits) if waits else None


async def lock_limits(session: AsyncSession, keys: list[str | None]) -> None:
    """Serialise writers that count and add codes for the same chat or customer.

    Without this, parallel requests could all read "4 codes this hour" and all
    send one. PostgreSQL: transaction-scoped advisory locks per key, taken in
    sorted order so two writers cannot deadlock. SQLite: a first write takes
    the database's one write lock before anything is read (the driver starts
    the transaction only at the first write, so earlier reads are not
    isolated); call it before the transaction's first read.
    """
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(update(CodeIssue).where(false()).values(id=CodeIssue.id))
        return
    for key in sorted({k for k in keys if k}):
        number = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": number})


async def count_codes(session: AsyncSession, subject: str, now: datetime) -> int:
    """Codes issued for ``subject`` in the last hour (for tests and the console)."""
    result = await session.execute(
        select(func.count())
        .select_from(CodeIssue)
        .where(CodeIssue.subject == subject, CodeIssue.issued_at > now - WINDOW)
    )
    return int(result.scalar_one())


def mask_contact(kind: str | None, value: str) -> str:
    """A phone or email as the customer may see it."""
    return mask_phone(value) if kind == "phone" else mask_email(value)


async def deliver(services: Services, delivery: Delivery) -> None:
    """Send a code; failures are logged with the reference only, never raised."""
    try:
        to = delivery.to
        if to is None and delivery.customer_ref is not None:
            on_file = await services.crm.contact_on_file(delivery.customer_ref)
            to = on_file.phone if delivery.channel == "sms" else on_file.email
        if to is None:
            log.info("verification %s: no %s on file", delivery.reference, delivery.channel)
            return
        bank = services.settings.bank_name
        text = messages.render(delivery.locale, delivery.template, bank=bank, code=delivery.code)
        if delivery.channel == "sms":
            await services.sms.send(to, text, delivery.reference)
        elif services.mailer is not None:
            subject = messages.render(delivery.locale, "email_subject", bank=bank)
            await services.mailer.send(to, subject, text, delivery.reference)
    except Exception:
        log.exception("verification %s: code not delivered", delivery.reference)
