"""Access requests (GDPR Art. 15 and 20): a copy of what the bank holds about a customer.

``fulfil`` answers ``POST /api/v1/access`` (``docs/backend-api.md``, "Access"):
the request is filed in the ledger as kind ``access`` (``submit.submit``, held
``running`` by the submitter), then the copy is built from the CRM at once and
returned in the HTTP answer only. Nothing of it is stored: the ledger row keeps
its reference, state and the list of categories held, the audit log the
moves and one ``access_copy_sent`` entry per copy handed out. A replay of the
same request (the bot retries after a lost answer) builds the copy again from
the CRM, so the customer gets it at least once.

A CRM that cannot export (``ExportUnsupported``, an HTTP CRM answering 501),
cannot be reached, or no longer has the customer fails the request: the transition opens an escalation,
and an agent sends the copy by other means.

The copy (``copy`` in the answer) is the ``crm export`` shape of the customer,
plus ``requests`` (every request of theirs, with dates) and
``marketing_history`` (each change of marketing consent through datadesk,
with its date). ``summary`` lists the categories held, and for each what the
retention policy keeps, on which basis and until when.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from typing import Any

from sqlalchemy import select

from backend import audit, retention
from backend.crm.connector import CustomerRecord, ExportUnsupported
from backend.crm.shape import record_from_export
from backend.errors import ConnectorError, NotFound
from backend.ledger.previews import mask_product_id
from backend.ledger.submit import SUBMITTER, Submitted, stamp, submit
from backend.ledger.transitions import transition
from backend.models.ledger import Request
from backend.services import Services
from common.vocabulary.categories import CATEGORIES, Category
from common.vocabulary.request_kinds import ACCESS, ERASURE, MARKETING_OPT_OUT
from common.vocabulary.request_states import DONE, FAILED, RUNNING

log = logging.getLogger(__name__)

# Reasons a copy could not be made; the chat is escalated so an agent sends it.
EXPORT_UNAVAILABLE = "export_unavailable"
CRM_UNAVAILABLE = "crm_unavailable"
CUSTOMER_NOT_FOUND = "customer_not_found"


def held_categories(export: dict[str, Any]) -> list[Category]:
    """The categories of which the export holds anything, in the policy's order.

    Chat history lives with the conversations, not in the CRM record, and is not
    part of this copy.
    """
    erased = set(export.get("erased_categories") or [])
    present: dict[Category, bool] = {
        "contact": bool(export.get("phones") or export.get("emails") or export.get("address")),
        "marketing": isinstance(export.get("marketing"), dict),
        "chat_history": False,
        "identity": bool(export.get("documents")),
        "products": bool(export.get("products")),
        "transactions": bool(export.get("transactions")),
    }
    return [c for c in CATEGORIES if present[c] and c not in erased]


def summary(
    export: dict[str, Any], record: CustomerRecord, services: Services, today: date
) -> list[dict[str, Any]]:
    """Per category held: what is kept for legal reasons (basis, until or the open product).

    A hold recorded by an earlier erasure is what applies; otherwise what the
    retention policy would keep were the customer to ask for erasure now.
    """
    policy = retention.load_policy().get(services.settings.jurisdiction)
    plan = {c.category: c for c in retention.preview(record, ["all"], policy, today).categories}
    holds = {h.category: h for h in record.holds}
    products = {p.id: p for p in record.products}
    entries: list[dict[str, Any]] = []
    for category in held_categories(export):
        entry: dict[str, Any] = {"category": category, "kept": None}
        hold, planned = holds.get(category), plan.get(category)
        if hold is not None:
            product = products.get(hold.while_open or "")
            entry["kept"] = {
                "basis": hold.basis,
                "until": hold.until.isoformat() if hold.until else None,
                "while_open": None
                if product is None
                else {"kind": product.kind, "masked": mask_product_id(product.id)},
            }
        elif planned is not None and planned.action == "keep":
            open_product = planned.while_open
            entry["kept"] = {
                "basis": planned.basis,
                "until": planned.until.isoformat() if planned.until else None,
                "while_open": None
                if open_product is None
                else {"kind": open_product.kind, "masked": mask_product_id(open_product.id)},
            }
        entries.append(entry)
    return entries


def _request_entry(row: Request) -> dict[str, Any]:
    return {
        "reference": row.reference,
        "kind": row.kind,
        "state": str(row.state),
        "received_at": stamp(row.received_at),
        "updated_at": stamp(row.updated_at),
        "due_date": row.due_date.isoformat(),
        "reason": row.reason,
    }


def _consent_changes(row: Request) -> list[dict[str, Any]]:
    """The consent changes a finished request made, from its recorded result."""
    try:
        result = json.loads(row.result or "{}")
    except ValueError:
        return []
    if not isinstance(result, dict):
        return []
    if row.kind == MARKETING_OPT_OUT:
        channels = result.get("channels") or []
    elif row.kind == ERASURE and "marketing" in (result.get("erased") or []):
        channels = ["email", "sms", "phone", "post"]
    else:
        return []
    return [
        {
            "date": stamp(row.updated_at),
            "channel": str(channel),
            "consent": False,
            "reference": row.reference,
        }
        for channel in channels
    ]


async def _history(services: Services, customer_ref: str) -> tuple[list[Any], list[Any]]:
    """The customer's requests, oldest first, and the marketing consent changes they made."""
    async with services.sessions() as session:
        rows = list(
            await session.scalars(
                select(Request)
                .where(Request.customer_ref == customer_ref)
                .order_by(Request.received_at, Request.id)
            )
        )
    requests = [_request_entry(row) for row in rows]
    changes = [c for row in rows if row.state == DONE for c in _consent_changes(row)]
    return requests, changes


async def build_copy(
    services: Services, customer_ref: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The copy and its summary; ``ExportUnsupported``, ``ConnectorError`` or ``NotFound``."""
    export = await services.crm.access_export(customer_ref)
    if export is None:
        raise NotFound("the customer is no longer on file", code="customer_not_found")
    try:
        record = record_from_export(export)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConnectorError("the CRM sent a customer in an unexpected shape") from exc
    requests, changes = await _history(services, customer_ref)
    copy = {**export, "requests": requests, "marketing_history": changes}
    return copy, summary(export, record, services, services.clock.now().date())


async def _row(services: Services, reference: str) -> Request:
    async with services.sessions() as session:
        row = (await session.scalars(select(Request).where(Request.reference == reference))).one()
        return row


async def _settle(
    services: Services, reference: str, state: Any, reason: str | None, details: dict[str, Any]
) -> None:
    """Move the request the submitter holds to its outcome (no-op when no longer held)."""
    async with services.sessions() as session:
        row = (
            await session.scalars(
                select(Request)
                .where(
                    Request.reference == reference,
                    Request.state == RUNNING,
                    Request.lease_owner == SUBMITTER,
                )
                .with_for_update()
            )
        ).one_or_none()
        if row is not None:
            await transition(
                session,
                row,
                state,
                actor="system:access",
                at=services.clock.now(),
                reason=reason,
                details=details,
                # The answer itself tells the customer (the copy, or that an agent sends it).
                quiet=True,
            )
            row.response = json.dumps({**json.loads(row.response), "state": str(state)})
        await session.commit()


async def fulfil(
    services: Services, *, customer_ref: str, chat: str, locale: str, idempotency_key: str
) -> Submitted:
    """File the access request (once per key) and answer it with the copy, or why not."""
    submitted = await submit(
        services,
        customer_ref=customer_ref,
        chat=chat,
        locale=locale,
        kind=ACCESS,
        payload={},
        idempotency_key=idempotency_key,
    )
    reference = submitted.body["reference"]
    row = await _row(services, reference)
    held = row.state == RUNNING and row.lease_owner == SUBMITTER
    if not held and row.state != DONE:
        # Failed already (an earlier try), or a worker gave up on it: an agent sends it.
        body = {**submitted.body, "state": str(row.state), "reason": row.reason}
        return Submitted(body, submitted.created)
    try:
        copy, categories = await build_copy(services, customer_ref)
    except (ExportUnsupported, ConnectorError, NotFound) as exc:
        reason = (
            EXPORT_UNAVAILABLE
            if isinstance(exc, ExportUnsupported)
            else CUSTOMER_NOT_FOUND
            if isinstance(exc, NotFound)
            else CRM_UNAVAILABLE
        )
        log.warning("access %s: no copy (%s)", row.id, reason)
        if held:
            await _settle(services, reference, FAILED, reason, {})
        body = {**submitted.body, "state": str(FAILED), "reason": reason}
        return Submitted(body, submitted.created)
    if held:
        await _settle(
            services, reference, DONE, None, {"categories": [c["category"] for c in categories]}
        )
    async with services.sessions() as session:
        await audit.record(
            session,
            action="access_copy_sent",
            actor="system:access",
            subject=reference,
            data={"categories": len(categories), "requests": len(copy["requests"])},
            at=services.clock.now(),
        )
        await session.commit()
    bank = services.settings.bank_name
    body = {
        **submitted.body,
        "state": str(DONE),
        "bank_name": bank,
        "generated_at": stamp(services.clock.now()),
        "jurisdiction": services.settings.jurisdiction,
        "summary": categories,
        "copy": copy,
    }
    return Submitted(body, submitted.created)
