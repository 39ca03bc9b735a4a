"""Was this you? The old contact hears of a contact change at once and can undo it for 72 hours.

The life of one change (an ``update_contact`` request; ``docs/security.md``, "Undo links"):

1. ``prepare`` (the worker, before the CRM call): the contact as it is now and
   where the notice goes are kept in a ``contact_undos`` row, sealed, with a new
   link token (256 bits; only its SHA-256 digest is stored in the clear). A
   retried run finds the row and keeps it: the old contact is read only once.
2. ``arm`` (once the CRM has the new contact): the notice is due now.
   A worker's batch on the built-in CRM does both at once for all its changes
   (``prepare_armed``), in the transaction that makes them.
3. ``backend.undo_notices`` (every worker) sends it, retrying until the
   gateway or mail server takes it; once sent, the sealed notice (and with it
   the token) is dropped.
4. ``undo`` (the page's button, ``backend/undo_page/``): within 72 hours and
   once, restores the old contact as the primary one (the connector's
   ``update_*`` with ``idempotency_key="{reference}:undo"``, which also removes
   the new one), moves the request ``done → reverted`` (audit entry, the
   customer told in the chat, the chat escalated to an agent as
   ``possible_fraud``). A contact erased since then is not brought back
   (``undo`` answers ``erased`` and still brings the chat to an agent).

Where the notice goes: the old contact of the kind that changed (a phone's to
the old phone by SMS, an email's to the old email); a new postal address, or
a first phone or email, to the phone on file, else the email on file. A
customer with no contact on file gets none and no row is kept.

A row, with the old contact in it, is deleted by the daily purge a day after
its link expired (``purge_expired``); the audit log keeps what happened.

No log line carries a contact or a token: references only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend import audit, undo_notices
from backend.crm.builtin_bulk import OnFile
from backend.crm.connector import Address, CrmConnector
from backend.crypto import for_row, new_row_uid
from backend.ledger.claims import Claimed
from backend.ledger.transitions import transition
from backend.models.ledger import Request
from backend.models.undo import ContactUndo
from backend.services import Services
from common.masking import mask_email, mask_phone, mask_text
from common.vocabulary.request_states import DONE, REVERTED

log = logging.getLogger(__name__)

UNDO_WINDOW = timedelta(hours=72)
_UNDOS: Table = ContactUndo.__table__  # type: ignore[assignment]
# An unguessable link: 32 random bytes (256 bits), URL-safe base64.
TOKEN_BYTES = 32
ACTOR = "customer:undo-link"

# A row outlives its link by a day (a complaint raised that day still finds it), then goes.
KEPT_AFTER_EXPIRY = timedelta(days=1)

UndoOutcome = Literal["reverted", "erased", "invalid"]


def token_digest(token: str) -> str:
    """What is stored of a link token: SHA-256 in hex (256 random bits need no slow hash)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _masked_new(field: str, payload: dict[str, Any]) -> str:
    if field == "phone":
        return mask_phone(str(payload["value"]))
    if field == "email":
        return mask_email(str(payload["value"]))
    address = payload["address"]
    return f"{mask_text(str(address.get('line1') or ''))}, {address.get('city') or ''}"


async def _before(
    crm: CrmConnector, ref: str, field: str
) -> tuple[str | None, str | None, str | None]:
    """The contact about to change (an address as JSON), and the phone and email on file."""
    if field == "address":
        # Not ``crm.get``: the built-in CRM reads a whole record in eleven queries
        # (py-spy: 7% of a worker's time under ``make bench``), these need three.
        on_file, found = await crm.contact_and_address(ref)
        address = None if found is None else json.dumps(vars(found))
        return address, on_file.phone, on_file.email
    on_file = await crm.contact_on_file(ref)
    return (on_file.phone if field == "phone" else on_file.email), on_file.phone, on_file.email


def _notice_to(
    services: Services, field: str, phone: str | None, email: str | None
) -> tuple[Literal["sms", "email"], str] | None:
    """Where the notice goes: the old contact of the same kind, else the phone, else the email."""
    mail_on = services.mailer is not None
    if field == "email" and email is not None and mail_on:
        return "email", email
    if phone is not None:
        return "sms", phone
    if email is not None and mail_on:
        return "email", email
    return None


async def prepare(services: Services, crm: CrmConnector, job: Claimed) -> None:
    """Keep the contact as it is and the notice to send, before ``job`` changes it (once per request)."""
    async with services.sessions() as session:
        found = await session.scalar(
            select(ContactUndo.id).where(ContactUndo.reference == job.reference)
        )
    if found is not None:
        return
    field = str(job.payload["field"])
    previous, phone, email = await _before(crm, job.customer_ref, field)
    target = _notice_to(services, field, phone, email)
    if target is None:
        log.info("request %s: no contact on file to notify of the change", job.reference)
        return
    now = services.clock.now()
    token = secrets.token_urlsafe(TOKEN_BYTES)
    channel, to = target
    notice = {"channel": channel, "to": to, "token": token}
    try:
        async with services.sessions() as session, session.begin():
            session.add(
                ContactUndo(
                    reference=job.reference,
                    token_digest=token_digest(token),
                    customer_ref=job.customer_ref,
                    chat=job.chat,
                    locale=job.locale,
                    field=field,
                    previous=previous,
                    masked_new=_masked_new(field, job.payload),
                    notice=json.dumps(notice, ensure_ascii=False),
                    notice_due_at=None,
                    notice_attempts=0,
                    created_at=now,
                    expires_at=now + UNDO_WINDOW,
                )
            )
    except IntegrityError:
        # A second worker on the same request (a lease take-over) stored it first.
        log.info("request %s: undo already prepared", job.reference)


async def prepare_armed(
    services: Services,
    session: AsyncSession,
    changes: Sequence[tuple[Claimed, OnFile]],
) -> None:
    """``prepare`` and ``arm`` for a batch of changes made in ``session``'s transaction.

    Each item is a job and its customer's contact before the change
    (``builtin_bulk.on_file``). A job whose row exists already (a retried run)
    keeps it and has its notice armed; the others get theirs, due now, in one
    insert. The caller commits, then wakes the notices (``undo_notices.wake``).
    """
    if not changes:
        return
    now = services.clock.now()
    references = [job.reference for job, _ in changes]
    existing = set(
        await session.scalars(
            select(ContactUndo.reference).where(ContactUndo.reference.in_(references))
        )
    )
    rows = []
    for job, before in changes:
        if job.reference in existing:
            continue
        field = str(job.payload["field"])
        if field == "address":
            previous = None if before.address is None else json.dumps(vars(before.address))
        else:
            previous = before.phone if field == "phone" else before.email
        target = _notice_to(services, field, before.phone, before.email)
        if target is None:
            log.info("request %s: no contact on file to notify of the change", job.reference)
            continue
        token = secrets.token_urlsafe(TOKEN_BYTES)
        channel, to = target
        notice = json.dumps({"channel": channel, "to": to, "token": token}, ensure_ascii=False)
        rows.append(
            {
                "id": new_row_uid(),
                "reference": job.reference,
                "token_digest": token_digest(token),
                "customer_ref": job.customer_ref,
                "chat": job.chat,
                "locale": job.locale,
                "field": field,
                "previous": None
                if previous is None
                else for_row(previous, "contact_undos", "previous", [job.reference]),
                "masked_new": _masked_new(field, job.payload),
                "notice": for_row(notice, "contact_undos", "notice", [job.reference]),
                "notice_due_at": now,
                "notice_attempts": 0,
                "created_at": now,
                "expires_at": now + UNDO_WINDOW,
            }
        )
    if rows:
        await session.execute(insert(_UNDOS), rows)
    if existing:
        await session.execute(
            update(ContactUndo)
            .where(
                ContactUndo.reference.in_(existing),
                ContactUndo.notice.is_not(None),
                ContactUndo.notice_due_at.is_(None),
                ContactUndo.notice_sent_at.is_(None),
            )
            .values(notice_due_at=now)
        )


async def arm(services: Services, reference: str) -> None:
    """The change is made: its notice is due now (a retried run changes nothing)."""
    now = services.clock.now()
    async with services.sessions() as session, session.begin():
        await session.execute(
            update(ContactUndo)
            .where(
                ContactUndo.reference == reference,
                ContactUndo.notice.is_not(None),
                ContactUndo.notice_due_at.is_(None),
                ContactUndo.notice_sent_at.is_(None),
            )
            .values(notice_due_at=now)
        )
    undo_notices.wake()


@dataclass(frozen=True)
class Offer:
    """What the undo page shows for a live link: which field changed, to what, and when."""

    locale: str
    field: str
    new: str
    changed_on: date


async def find(services: Services, token: str) -> tuple[ContactUndo | None, Offer | None]:
    """The row of a live link (unused, not expired) and what its page shows; (None, None) otherwise."""
    now = services.clock.now()
    async with services.sessions() as session:
        row = await session.scalar(
            select(ContactUndo).where(ContactUndo.token_digest == token_digest(token))
        )
    if row is None or row.used_at is not None or now >= row.expires_at:
        return None, None
    return row, Offer(row.locale, row.field, row.masked_new, row.created_at.date())


async def _restore(crm: CrmConnector, row: ContactUndo) -> None:
    """The old contact back as the primary one; the connector removes the new primary."""
    key = f"{row.reference}:undo"
    if row.previous is None:
        return
    if row.field == "phone":
        await crm.update_phone(row.customer_ref, row.previous, idempotency_key=key)
    elif row.field == "email":
        await crm.update_email(row.customer_ref, row.previous, idempotency_key=key)
    else:
        await crm.update_address(
            row.customer_ref, Address(**json.loads(row.previous)), idempotency_key=key
        )


async def undo(services: Services, crm: CrmConnector, token: str) -> UndoOutcome:
    """Undo the change ``token`` names, once, within 72 hours; ``invalid`` for any other token.

    Raises what the CRM raises when it cannot be reached: the link stays usable.
    """
    row, _ = await find(services, token)
    if row is None:
        return "invalid"
    record = await crm.get(row.customer_ref)
    erased = record is None or "contact" in record.erased_categories
    if not erased:
        await _restore(crm, row)
    now = services.clock.now()
    outcome: UndoOutcome = "erased" if erased else "reverted"
    async with services.sessions() as session, session.begin():
        used = await session.execute(
            update(ContactUndo)
            .where(ContactUndo.id == row.id, ContactUndo.used_at.is_(None))
            .values(used_at=now, outcome=outcome, notice=None, notice_due_at=None)
        )
        if getattr(used, "rowcount", 0) != 1:
            # Pressed twice at once: the other press did it (the CRM change is keyed once).
            return "invalid"
        request = await session.scalar(
            select(Request).where(Request.reference == row.reference).with_for_update()
        )
        facts: dict[str, audit.Scalar] = {"field": row.field, "customer": row.customer_ref}
        if request is not None and request.state == DONE and not erased:
            await transition(
                session,
                request,
                REVERTED,
                actor=ACTOR,
                at=now,
                details={"field": row.field},
                data=facts,
            )
        else:
            # Nothing to restore (erased since), or the request is not done: an agent looks at it.
            from backend.escalations import open_escalation

            await open_escalation(
                session,
                chat=row.chat,
                reason="possible_fraud",
                locale=row.locale,
                verified=True,
                customer_ref=row.customer_ref,
                at=now,
            )
            await audit.record(
                session,
                action="contact_undo",
                actor=ACTOR,
                subject=row.reference,
                outcome=outcome,
                data=facts,
                at=now,
            )
    log.info("request %s: contact change undo: %s", row.reference, outcome)
    return outcome


async def purge_expired(services: Services) -> int:
    """Delete rows whose link expired more than ``KEPT_AFTER_EXPIRY`` ago; answer how many."""
    cutoff = services.clock.now() - KEPT_AFTER_EXPIRY
    async with services.sessions() as session, session.begin():
        gone = await session.execute(delete(ContactUndo).where(ContactUndo.expires_at < cutoff))
    return int(getattr(gone, "rowcount", 0) or 0)
