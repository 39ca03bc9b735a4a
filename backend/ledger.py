"""The requests ledger: submitting, reviewing and listing customer requests.

A request row is also its place in the queue (``backend.models.ledger``); the
worker (``backend.worker``) carries queued ones out. Here:

- ``submit`` validates a request, stores it once per idempotency key and
  answers; a replay with the same body gets the first answer, a different body
  ``409 idempotency_mismatch``. ``marketing_opt_out`` is applied before the
  answer (an objection to direct marketing is effective at once, GDPR Art. 21).
- ``approve`` / ``reject`` / ``awaiting_review`` are the back-office review
  step for kinds in ``settings.review_kinds``; they work in the caller's
  session and do not commit.
- ``open_requests`` is what ``/status`` shows.

Every state change writes an audit entry in the same transaction.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend import audit, notifications, references, retention
from backend.crm.connector import CrmConnector
from backend.errors import (
    ApiError,
    BadRequest,
    Conflict,
    Invalid,
    NotFound,
)
from backend.models.ledger import SCRUBBED, ErasurePreview, Request
from backend.request_payloads import validate_payload
from backend.services import Services
from common.vocabulary.request_kinds import ERASURE, MARKETING_OPT_OUT, REQUEST_KINDS
from common.vocabulary.request_states import (
    AWAITING_REVIEW,
    DONE,
    OPEN_STATES,
    QUEUED,
    REJECTED,
    RUNNING,
)

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
# How long a submitting process holds an opt-out it is applying itself; if it
# dies, a worker takes the request up once this lease runs out.
SUBMIT_LEASE_SECONDS = 60


def connector(services: Services) -> CrmConnector:
    """The process's CRM connector."""
    return services.crm


def body_hash(kind: str, chat: str, locale: str, payload: Any) -> str:
    """A digest of what was asked, to tell a replay from a different request with the same key."""
    raw = json.dumps([kind, chat, locale, payload], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


def stamp(at: datetime) -> str:
    """A UTC timestamp in the contract's form, ``2026-11-22T12:00:00Z``."""
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def answer(row: Request) -> dict[str, Any]:
    """The public view of a request (submit answer and ``/status`` entries)."""
    return {
        "reference": row.reference,
        "kind": row.kind,
        "state": row.state,
        "due_date": row.due_date.isoformat(),
        "received_at": stamp(row.received_at),
    }


@dataclass(frozen=True)
class Submitted:
    """The answer to a submit and whether this call created the request (201) or replayed (200)."""

    body: dict[str, Any]
    created: bool


async def _find(session: AsyncSession, customer_ref: str, key: str) -> Request | None:
    found = await session.execute(
        select(Request).where(Request.customer_ref == customer_ref, Request.idempotency_key == key)
    )
    return found.scalar_one_or_none()


def _replay(row: Request, digest: str) -> Submitted:
    if row.body_hash != digest:
        raise Conflict(
            "this Idempotency-Key was used with a different request", code="idempotency_mismatch"
        )
    return Submitted(json.loads(row.response), created=False)


async def submit(
    services: Services,
    *,
    customer_ref: str,
    chat: str,
    locale: str,
    kind: str,
    payload: Any,
    idempotency_key: str,
) -> Submitted:
    """Store a request once per (customer, key) and answer as the contract says."""
    if kind not in REQUEST_KINDS:
        raise BadRequest(
            f"unknown request kind; expected one of {', '.join(REQUEST_KINDS)}", code="unknown_kind"
        )
    digest = body_hash(kind, chat, locale, payload)
    policy = retention.load_policy().get(services.settings.jurisdiction)
    for _ in range(5):
        now = services.clock.now()
        try:
            async with services.sessions() as session:
                existing = await _find(session, customer_ref, idempotency_key)
                if existing is not None:
                    return _replay(existing, digest)
                stored, shown = await validate_payload(
                    session, services, customer_ref, kind, payload, now
                )
                row = await _insert(
                    session,
                    services,
                    policy,
                    customer_ref,
                    chat,
                    locale,
                    kind,
                    stored,
                    shown,
                    idempotency_key,
                    digest,
                    now,
                )
                await session.commit()
        except IntegrityError:
            # Either a concurrent submit with the same key won, or (rarely) the
            # reference collided; the first answers as a replay, the second retries.
            async with services.sessions() as session:
                existing = await _find(session, customer_ref, idempotency_key)
                if existing is not None:
                    return _replay(existing, digest)
            continue
        if kind == MARKETING_OPT_OUT:
            return Submitted(await _apply_opt_out(services, row, stored), created=True)
        return Submitted(json.loads(row.response), created=True)
    raise ApiError("could not allocate a request reference")


async def _insert(
    session: AsyncSession,
    services: Services,
    policy: retention.Jurisdiction,
    customer_ref: str,
    chat: str,
    locale: str,
    kind: str,
    stored: dict[str, Any],
    shown: dict[str, Any],
    key: str,
    digest: str,
    now: datetime,
) -> Request:
    """Add the request row in its first state, with its audit entry; flush."""
    reference = references.new_reference()
    if kind == MARKETING_OPT_OUT:
        # Held by this process while it applies the opt-out itself (see _apply_opt_out).
        state, owner = RUNNING, "submit"
    elif kind in services.settings.review_kinds:
        state, owner = AWAITING_REVIEW, None
    else:
        state, owner = QUEUED, None
    row = Request(
        reference=reference,
        customer_ref=customer_ref,
        chat=chat,
        locale=locale,
        kind=kind,
        payload=json.dumps(stored, ensure_ascii=False),
        idempotency_key=key,
        body_hash=digest,
        response="",
        review_preview=json.dumps(shown, ensure_ascii=False),
        state=state,
        attempts=1 if owner else 0,
        max_attempts=MAX_ATTEMPTS,
        next_run_at=now,
        lease_owner=owner,
        lease_expires_at=now + timedelta(seconds=SUBMIT_LEASE_SECONDS) if owner else None,
        received_at=now,
        updated_at=now,
        due_date=retention.due_date(policy, now.date()),
        result=None,
        reason=None,
    )
    # The answer a replay gets: an opt-out is reported as queued until it is applied.
    public = answer(row)
    if state == RUNNING:
        public["state"] = QUEUED
    row.response = json.dumps(public)
    session.add(row)
    if kind == ERASURE:
        # Conditional, so two requests racing for one preview cannot both have it.
        claimed = await session.execute(
            update(ErasurePreview)
            .where(ErasurePreview.id == stored["preview_id"], ErasurePreview.used_by.is_(None))
            .values(used_by=reference)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            raise Invalid({"preview_id": "preview_used"})
    await session.flush()
    await audit.record(
        session,
        action="request_submitted",
        actor=f"customer:{customer_ref}",
        subject=reference,
        outcome=public["state"],
        data={"kind": kind, "request_id": row.id},
        at=now,
    )
    return row


async def _apply_opt_out(
    services: Services, row: Request, stored: dict[str, Any]
) -> dict[str, Any]:
    """Apply an opt-out now and mark it done; on a CRM failure leave it to the workers."""
    consent = {channel: False for channel in stored["channels"]}
    try:
        # Outside any ledger transaction: on SQLite the CRM needs the write lock.
        await connector(services).set_marketing(
            row.customer_ref, consent, idempotency_key=row.reference
        )
    except Exception as exc:
        # Whatever went wrong (CRM down, a bug), the request is not lost: a worker retries it.
        # The type only: exception texts can carry personal data.
        log.warning(
            "opt-out %s not applied at submit (%s); queued for a worker",
            row.id,
            type(exc).__name__,
        )
        async with services.sessions() as session:
            await session.execute(
                update(Request)
                .where(Request.id == row.id, Request.lease_owner == "submit")
                .values(
                    state=QUEUED,
                    lease_owner=None,
                    lease_expires_at=None,
                    next_run_at=services.clock.now(),
                )
            )
            await session.commit()
        queued: dict[str, Any] = json.loads(row.response)
        return queued
    now = services.clock.now()
    async with services.sessions() as session:
        public = {**json.loads(row.response), "state": DONE}
        changed = await session.execute(
            update(Request)
            .where(Request.id == row.id, Request.lease_owner == "submit", Request.state == RUNNING)
            .values(
                state=DONE,
                lease_owner=None,
                lease_expires_at=None,
                updated_at=now,
                result=json.dumps({"channels": stored["channels"]}),
                payload=SCRUBBED,
                response=json.dumps(public),
            )
        )
        if getattr(changed, "rowcount", 0) == 1:
            await notifications.enqueue(
                session,
                chat=row.chat,
                locale=row.locale,
                type="request_outcome",
                at=now,
                reference=row.reference,
                outcome=DONE,
                details={"channels": stored["channels"]},
            )
            await audit.record(
                session,
                action="request_done",
                actor="system:submit",
                subject=row.reference,
                outcome=DONE,
                data={"kind": row.kind},
                at=now,
            )
        await session.commit()
    return public


@dataclass(frozen=True)
class ReviewItem:
    """A request waiting for a back-office decision, with the masked preview stored at submit."""

    reference: str
    kind: str
    customer_ref: str
    received_at: datetime
    due_date: str
    preview: dict[str, Any]


async def awaiting_review(session: AsyncSession) -> list[ReviewItem]:
    """Requests waiting for review, the oldest first."""
    rows = await session.scalars(
        select(Request)
        .where(Request.state == AWAITING_REVIEW)
        .order_by(Request.received_at, Request.id)
    )
    return [
        ReviewItem(
            reference=row.reference,
            kind=row.kind,
            customer_ref=row.customer_ref,
            received_at=row.received_at,
            due_date=row.due_date.isoformat(),
            preview=json.loads(row.review_preview or "{}"),
        )
        for row in rows
    ]


async def _awaiting(session: AsyncSession, reference: str) -> Request:
    row = (
        await session.execute(select(Request).where(Request.reference == reference))
    ).scalar_one_or_none()
    if row is None:
        raise NotFound("no such request", code="not_found")
    if row.state != AWAITING_REVIEW:
        raise Conflict(
            f"the request is {row.state}, not awaiting review", code="not_awaiting_review"
        )
    return row


async def approve(session: AsyncSession, reference: str, *, agent: str, at: datetime) -> None:
    """Send a reviewed request on to the queue (does not commit)."""
    row = await _awaiting(session, reference)
    row.state, row.next_run_at, row.updated_at = QUEUED, at, at
    await audit.record(
        session,
        action="request_approved",
        actor=agent,
        subject=reference,
        outcome=QUEUED,
        data={"kind": row.kind},
        at=at,
    )
    await session.flush()


async def reject(
    session: AsyncSession, reference: str, *, agent: str, reason_code: str, at: datetime
) -> None:
    """Reject a reviewed request and tell the customer (does not commit)."""
    if not reason_code or len(reason_code) > 40 or not reason_code.replace("_", "").isalnum():
        raise Invalid({"reason_code": "invalid_reason"})
    row = await _awaiting(session, reference)
    reason = f"review_rejected:{reason_code}"
    row.state, row.reason, row.updated_at, row.next_run_at = REJECTED, reason, at, None
    row.payload = SCRUBBED
    await notifications.enqueue(
        session,
        chat=row.chat,
        locale=row.locale,
        type="request_outcome",
        at=at,
        reference=reference,
        outcome=REJECTED,
        reason=reason,
    )
    await audit.record(
        session,
        action="request_rejected",
        actor=agent,
        subject=reference,
        outcome=REJECTED,
        data={"kind": row.kind, "reason": reason},
        at=at,
    )
    await session.flush()


async def open_requests(session: AsyncSession, chat: str) -> list[dict[str, Any]]:
    """Open requests of the customer(s) this chat has submitted for, newest first."""
    customers = select(Request.customer_ref).where(Request.chat == chat).distinct()
    rows = await session.scalars(
        select(Request)
        .where(Request.customer_ref.in_(customers), Request.state.in_(OPEN_STATES))
        .order_by(Request.received_at.desc(), Request.id.desc())
    )
    return [
        answer(row)
        | {"state": QUEUED if row.state == RUNNING and row.lease_owner == "submit" else row.state}
        for row in rows
    ]
