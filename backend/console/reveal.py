"""Showing an agent one customer field in clear: who may, when, how often, and the audit entry.

- Only while the escalation is open (waiting or taken): a closed chat's
  customer is nobody's business in the console any more.
- Only the agent holding the chat, or a supervisor: an agent who has not
  taken a chat is not talking to its customer.
- At most ``PER_HOUR`` reveals per agent in an hour (a fixed window from the
  first). An agent works a handful of chats an hour and needs a field or two
  in a few of them; 20 leaves room for a busy hour (five customers with all
  four fields each) while an agent harvesting records is stopped within
  minutes, and every reveal is in the audit log for someone to notice.
  The count is taken atomically (``limits``), so parallel posts cannot pass it.
- Every reveal, and every refusal, is an audit entry ``console.reveal``:
  a reveal with the field, the escalation and the typed reason (masked),
  a refusal with its code as the outcome.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from backend import audit, escalations, transcripts
from backend.console import limits
from backend.console.auth import Me
from backend.console.limits import Rule
from backend.crm.connector import CustomerRecord
from backend.errors import Conflict, Forbidden, Invalid, TooManyRequests
from backend.models.console import OPEN_STATES, Escalation
from backend.services import Services

FIELDS = ("name", "phone", "email", "address")
MIN_REASON = 10
PER_HOUR = 20
RATE = Rule(window=timedelta(hours=1), limit=PER_HOUR)


class ReasonRequired(Invalid):
    """422: the typed reason is shorter than MIN_REASON characters."""

    default_code = "reason_required"

    def __init__(self) -> None:
        super().__init__({"reason": "reason_required"}, "type why the field is needed")


class UnknownField(Invalid):
    """422: not a field the console can reveal."""

    default_code = "invalid_field"

    def __init__(self) -> None:
        super().__init__({"field": "invalid_field"}, "that field cannot be revealed")


def _refusal(row: Escalation, me: Me) -> Forbidden | None:
    """Why ``me`` may not reveal on ``row`` now, or None when they may."""
    if row.state not in OPEN_STATES:
        return Forbidden("the chat is no longer open", code="reveal_not_open")
    if not me.supervisor and not (row.state == "taken" and row.taken_by == me.id):
        return Forbidden(
            "only the agent holding the chat or a supervisor", code="reveal_not_holder"
        )
    return None


def may_reveal(row: Escalation, me: Me) -> bool:
    """Whether the chat page should offer ``me`` the reveal buttons."""
    return _refusal(row, me) is None


def clear_field(record: CustomerRecord, field: str) -> str:
    """The customer's ``field`` in clear: the primary phone or email, the full address."""
    if field == "name":
        return str(record.name)
    if field == "phone":
        return next((p for p, primary in record.phones if primary), "")
    if field == "email":
        return next((e for e, primary in record.emails if primary), "")
    address = record.address
    if address is None:
        return ""
    parts = [address.line1, address.line2, address.city, address.postcode, address.country]
    return ", ".join(p for p in parts if p)


async def _audit(
    session: AsyncSession,
    svc: Services,
    me: Me,
    row: Escalation,
    field: str,
    *,
    outcome: str | None = None,
    reason: str | None = None,
) -> None:
    data: dict[str, str | int | bool | None] = {"field": field, "escalation": row.id}
    if reason is not None:
        # The reason is for compliance readers; masked, since the chain is never erased.
        data["reason"] = transcripts.mask_personal_data(reason)[:200]
    await audit.record(
        session,
        action="console.reveal",
        actor=escalations.actor(me.id),
        subject=row.customer_ref,
        outcome=outcome,
        data=data,
        at=svc.clock.now(),
    )


async def _refuse(svc: Services, me: Me, row: Escalation, field: str, exc: Exception) -> None:
    code = getattr(exc, "code", "refused")
    async with svc.sessions() as session, session.begin():
        await _audit(session, svc, me, row, field, outcome=code)


async def reveal(svc: Services, escalation_id: str, me: Me, field: str, reason: str) -> str:
    """``field`` of the escalated chat's customer in clear, audited; or raise an ApiError.

    Raises UnknownField, ReasonRequired (422), NotFound (404), Forbidden
    ``reveal_not_open`` / ``reveal_not_holder`` (403), Conflict
    ``customer_unknown`` (409), TooManyRequests ``reveal_limit`` (429, with
    ``retry_after``). Refusals past the first two checks are audited.
    """
    reason = reason.strip()
    if field not in FIELDS:
        raise UnknownField()
    if len(reason) < MIN_REASON:
        raise ReasonRequired()
    async with svc.sessions() as session:
        row = await escalations.get(session, escalation_id)
    refused = _refusal(row, me)
    if refused is not None:
        await _refuse(svc, me, row, field, refused)
        raise refused
    # The CRM may be a remote service: ask it before the write transaction, not in it.
    record = await svc.crm.get(row.customer_ref) if row.customer_ref else None
    if record is None:
        raise Conflict("the customer is not verified", code="customer_unknown")
    now = svc.clock.now()
    try:
        async with svc.sessions() as session, session.begin():
            # The slot first: a write, so SQLite takes its lock before the re-read below.
            await limits.take(session, [(f"reveal:{me.id}", RATE)], now)
            # Re-read inside the transaction: the chat may have closed since.
            row = await escalations.get(session, escalation_id)
            refused = _refusal(row, me)
            if refused is not None:
                raise refused
            await _audit(session, svc, me, row, field, reason=reason)
    except limits.LimitReached as reached:
        limited = TooManyRequests(
            f"at most {PER_HOUR} reveals an hour",
            code="reveal_limit",
            details={"retry_after": reached.retry_after},
        )
        await _refuse(svc, me, row, field, limited)
        raise limited from None
    except Forbidden as exc:
        await _refuse(svc, me, row, field, exc)
        raise
    return clear_field(record, field)
