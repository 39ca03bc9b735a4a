"""Submitting a request: validated, stored once per idempotency key, answered as the contract says.

``submit`` checks the payload (``kinds``), stores the request and its first
move (``awaiting_review`` for kinds under review, else ``queued``) in one
transaction, and answers; a replay with the same body gets the first answer,
a different body ``409 idempotency_mismatch``. A ``marketing_opt_out`` is
applied before the answer (an objection to direct marketing is effective at
once, GDPR Art. 21): the submitter holds it ``running`` under a lease while it
calls the CRM, and if it fails or dies a worker takes the request up. An
``access`` request is held the same way while ``backend.access`` builds the copy.
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

from backend import references, retention
from backend.crm.connector import CrmConnector
from backend.errors import ApiError, BadRequest, Conflict, Invalid
from backend.ledger.kinds import validate_payload
from backend.ledger.kinds.marketing_opt_out import apply as apply_opt_out
from backend.ledger.transitions import Lease, transition
from backend.models.ledger import ErasurePreview, Request
from backend.services import Services
from common.db import begin_write
from common.vocabulary.request_kinds import ACCESS, ERASURE, MARKETING_OPT_OUT, REQUEST_KINDS
from common.vocabulary.request_states import AWAITING_REVIEW, QUEUED, RUNNING, RequestState

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
# How long a submitting process holds an opt-out it is applying itself; if it
# dies, a worker takes the request up once this lease runs out.
SUBMIT_LEASE_SECONDS = 60
SUBMITTER = "submit"


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


def answer(row: Request, state: RequestState | None = None) -> dict[str, Any]:
    """The public view of a request (submit answer and ``/status`` entries)."""
    return {
        "reference": row.reference,
        "kind": row.kind,
        "state": str(state or row.state),
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
                row = Request(
                    reference=references.new_reference(),
                    customer_ref=customer_ref,
                    chat=chat,
                    locale=locale,
                    kind=kind,
                    payload=json.dumps(stored, ensure_ascii=False),
                    idempotency_key=idempotency_key,
                    body_hash=digest,
                    response="",
                    review_preview=json.dumps(shown, ensure_ascii=False),
                    attempts=0,
                    max_attempts=MAX_ATTEMPTS,
                    next_run_at=now,
                    received_at=now,
                    updated_at=now,
                    due_date=retention.due_date(policy, now),
                    result=None,
                    reason=None,
                )
                await _store(session, services, row, stored, now)
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


async def _store(
    session: AsyncSession, services: Services, row: Request, stored: dict[str, Any], now: datetime
) -> None:
    """Add the row, move it to its first state with its audit entry, and flush."""
    session.add(row)
    if row.kind == ERASURE:
        # Conditional, so two requests racing for one preview cannot both have it.
        claimed = await session.execute(
            update(ErasurePreview)
            .where(ErasurePreview.id == stored["preview_id"], ErasurePreview.used_by.is_(None))
            .values(used_by=row.reference)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            raise Invalid({"preview_id": "preview_used"})
    await session.flush()
    actor = f"customer:{row.customer_ref}"
    data = {"request_id": row.id}
    if row.kind in (MARKETING_OPT_OUT, ACCESS):
        # Held by this process while it applies the opt-out itself (see _apply_opt_out),
        # or builds the copy of an access request (``backend.access``);
        # the answer a replay gets reports it queued until it is applied.
        lease = Lease(SUBMITTER, now + timedelta(seconds=SUBMIT_LEASE_SECONDS))
        await transition(session, row, RUNNING, actor=actor, at=now, lease=lease, data=data)
        row.response = json.dumps(answer(row, QUEUED))
    else:
        first = AWAITING_REVIEW if row.kind in services.settings.review_kinds else QUEUED
        await transition(session, row, first, actor=actor, at=now, data=data)
        row.response = json.dumps(answer(row))
    await session.flush()


async def _held_by_submitter(session: AsyncSession, request_id: int) -> Request | None:
    await begin_write(session)
    return (
        await session.scalars(
            select(Request)
            .where(
                Request.id == request_id,
                Request.lease_owner == SUBMITTER,
                Request.state == RUNNING,
            )
            .with_for_update()
        )
    ).one_or_none()


async def _apply_opt_out(
    services: Services, row: Request, stored: dict[str, Any]
) -> dict[str, Any]:
    """Apply an opt-out now and mark it done; on a CRM failure leave it to the workers."""
    actor = "system:submit"
    try:
        # Outside any ledger transaction: on SQLite the CRM needs the write lock.
        outcome = await apply_opt_out(connector(services), row.customer_ref, stored, row.reference)
    except Exception as exc:
        # Whatever went wrong (CRM down, a bug), the request is not lost: a worker retries it.
        # The type only: exception texts can carry personal data.
        log.warning(
            "opt-out %s not applied at submit (%s); queued for a worker",
            row.id,
            type(exc).__name__,
        )
        async with services.sessions() as session:
            held = await _held_by_submitter(session, row.id)
            if held is not None:
                await transition(
                    session,
                    held,
                    QUEUED,
                    actor=actor,
                    at=services.clock.now(),
                    data={"error": type(exc).__name__},
                )
            await session.commit()
        queued: dict[str, Any] = json.loads(row.response)
        return queued
    async with services.sessions() as session:
        held = await _held_by_submitter(session, row.id)
        public = {**json.loads(row.response), "state": str(outcome.state)}
        if held is not None:
            await transition(
                session,
                held,
                outcome.state,
                actor=actor,
                at=services.clock.now(),
                reason=outcome.reason,
                details=outcome.details,
            )
            held.response = json.dumps(public)
        await session.commit()
    return public
