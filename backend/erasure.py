"""Erasure previews: a customer's plan, computed from the retention policy and stored unchanged.

``make_preview`` computes a ``retention.Plan`` for one customer and scope and
stores it (``erasure_previews``); an erasure request names the preview and the
worker carries out exactly that plan (``load_plan``). ``plan_to_api`` is the
HTTP shape, with product ids masked; ``purge_once`` erases held data whose
hold has ended (``datadesk purge``), and ``purge_daily`` runs it in every
worker at start and once a day.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backend import audit
from backend.crm.connector import CrmConnector, CustomerRecord, Product
from backend.models.ledger import ErasurePreview
from backend.retention import CategoryPlan, Plan, load_policy, preview
from backend.services import Services
from common.masking import DOT, mask_iban, mask_pan
from common.vocabulary.categories import Category
from common.vocabulary.request_kinds import ERASURE

log = logging.getLogger(__name__)

PURGE_EVERY = timedelta(days=1)
# An unused preview is kept this long: enough to confirm it, not to keep its contents.
PREVIEW_KEPT = timedelta(days=1)


def mask_product_id(product_id: str) -> str:
    """An IBAN as ``LV80 •••• 5001``, a card as BIN + last 4, anything else by its last 4."""
    compact = re.sub(r"\s", "", product_id)
    if re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{8,}", compact.upper()):
        return mask_iban(compact)
    if compact.isdigit() and len(compact) >= 12:
        return mask_pan(compact)
    return DOT * 3 + compact[-4:] if len(compact) > 4 else DOT * len(compact)


def plan_to_api(plan: Plan, preview_id: str) -> dict[str, Any]:
    """The ``POST /api/v1/erasure-preview`` answer (``docs/backend-api.md``)."""
    categories: list[dict[str, Any]] = []
    for item in plan.categories:
        entry: dict[str, Any] = {"category": item.category, "action": item.action}
        if item.action == "keep":
            entry["basis"] = item.basis
            entry["until"] = item.until.isoformat() if item.until else None
            if item.while_open is not None:
                entry["while_open"] = {
                    "kind": item.while_open.kind,
                    "masked": mask_product_id(item.while_open.id),
                }
        categories.append(entry)
    return {
        "preview_id": preview_id,
        "jurisdiction": plan.jurisdiction,
        "categories": categories,
        "warnings": list(plan.warnings),
    }


def plan_to_storage(plan: Plan) -> str:
    """The plan as stored (encrypted): everything needed to carry it out unchanged."""
    return json.dumps(
        {
            "jurisdiction": plan.jurisdiction,
            "warnings": list(plan.warnings),
            "categories": [
                {
                    "category": c.category,
                    "action": c.action,
                    "basis": c.basis,
                    "until": c.until.isoformat() if c.until else None,
                    "while_open": None
                    if c.while_open is None
                    else {
                        "kind": c.while_open.kind,
                        "id": c.while_open.id,
                        "opened": c.while_open.opened.isoformat(),
                    },
                }
                for c in plan.categories
            ],
        },
        ensure_ascii=False,
    )


def plan_from_storage(text: str) -> Plan:
    """The inverse of ``plan_to_storage``."""
    raw = json.loads(text)
    items = []
    for c in raw["categories"]:
        product = c["while_open"]
        items.append(
            CategoryPlan(
                category=c["category"],
                action=c["action"],
                basis=c["basis"],
                until=date.fromisoformat(c["until"]) if c["until"] else None,
                while_open=None
                if product is None
                else Product(
                    product["kind"], product["id"], date.fromisoformat(product["opened"]), None
                ),
            )
        )
    return Plan(raw["jurisdiction"], tuple(items), tuple(raw["warnings"]))


def plan_result(plan: Plan) -> dict[str, Any]:
    """The outcome ``details`` of a carried-out plan: what was erased, what is held."""
    return {
        "erased": sorted(plan.erase),
        "holds": [
            {
                "category": h.category,
                "basis": h.basis,
                "until": h.until.isoformat() if h.until else None,
                "while_open": None
                if h.while_open is None
                else {
                    "kind": next(
                        c.while_open.kind
                        for c in plan.categories
                        if c.category == h.category and c.while_open is not None
                    ),
                    "masked": mask_product_id(h.while_open),
                },
            }
            for h in plan.holds
        ],
    }


async def make_preview(
    session: AsyncSession,
    *,
    record: CustomerRecord,
    scope: Sequence[str],
    jurisdiction: str,
    at: datetime,
) -> tuple[str, Plan]:
    """Compute and store the plan for ``record``; return the new preview id and the plan."""
    plan = preview(record, scope, load_policy().get(jurisdiction), at.date())
    preview_id = "pv_" + secrets.token_urlsafe(16)
    session.add(
        ErasurePreview(
            id=preview_id,
            customer_ref=record.ref,
            jurisdiction=jurisdiction,
            plan=plan_to_storage(plan),
            created_at=at,
            used_by=None,
        )
    )
    await audit.record(
        session,
        action="erasure_previewed",
        actor=f"customer:{record.ref}",
        subject=record.ref,
        data={"preview": preview_id, "erase": len(plan.erase), "keep": len(plan.holds)},
        at=at,
    )
    return preview_id, plan


async def load_plan(session: AsyncSession, preview_id: str) -> Plan | None:
    """The stored plan of a preview, or None when there is no such preview."""
    row = await session.get(ErasurePreview, preview_id)
    return None if row is None else plan_from_storage(row.plan)


async def replan_closed_products(services: Services, crm: CrmConnector) -> int:
    """Replace holds kept "while product X is open" once X has closed; return how many changed.

    Such a hold has no end date, so the purge never ends it; when the product
    closes, the policy gives the category a dated hold (or lets it go), computed
    exactly as a preview would be on that day.
    """
    from sqlalchemy import select

    from backend.models.ledger import Request
    from common.vocabulary.request_states import DONE, PARTLY_DONE

    now = services.clock.now()
    async with services.sessions() as session:
        refs = (
            await session.scalars(
                select(Request.customer_ref)
                .where(Request.kind == ERASURE, Request.state.in_((DONE, PARTLY_DONE)))
                .distinct()
            )
        ).all()
    jurisdiction = load_policy().get(services.settings.jurisdiction)
    changed = 0
    for ref in refs:
        record = await crm.get(ref)
        if record is None:
            continue
        open_ids = {p.id for p in record.products if p.closed is None}
        ended = [h.category for h in record.holds if h.while_open and h.while_open not in open_ids]
        if not ended:
            continue
        plan = preview(record, ended, jurisdiction, now.date())
        key = f"replan:{ref}:{now.date().isoformat()}"
        await crm.erase(ref, plan.erase, plan.holds, idempotency_key=key)
        async with services.sessions() as session:
            await audit.record(
                session,
                action="hold_replanned",
                actor="system:purge",
                subject=ref,
                data={"erased": len(plan.erase), "held": len(plan.holds)},
                at=now,
            )
            await session.commit()
        changed += 1
    return changed


async def drop_stale_previews(services: Services) -> int:
    """Delete previews no request used within ``PREVIEW_KEPT``: they name the customer's products."""
    from sqlalchemy import delete

    cutoff = services.clock.now() - PREVIEW_KEPT
    async with services.sessions() as session:
        gone = await session.execute(
            delete(ErasurePreview).where(
                ErasurePreview.used_by.is_(None), ErasurePreview.created_at < cutoff
            )
        )
        await session.commit()
    return int(getattr(gone, "rowcount", 0) or 0)


async def purge_once(
    services: Services, crm: CrmConnector | None = None
) -> list[tuple[str, Category]]:
    """Replan holds whose product closed, then erase held data whose hold ended; audit each."""
    crm = crm or services.crm
    await replan_closed_products(services, crm)
    now = services.clock.now()
    await drop_stale_previews(services)
    purged = await crm.purge_expired_holds(now.date())
    if purged:
        async with services.sessions() as session:
            for ref, category in purged:
                await audit.record(
                    session,
                    action="hold_purged",
                    actor="system:purge",
                    subject=ref,
                    data={"category": category},
                    at=now,
                )
            await session.commit()
    log.info("purge: %d held categories erased", len(purged))
    return purged


async def purge_daily(services: Services, crm: CrmConnector, stop: asyncio.Event) -> None:
    """Run the held-data purge at start and then once a day, until ``stop`` is set."""
    last: datetime | None = None
    while not stop.is_set():
        now = services.clock.now()
        if last is None or now - last >= PURGE_EVERY:
            try:
                await purge_once(services, crm)
            except Exception as exc:
                log.error("purge failed (%s); trying again later", type(exc).__name__)
            last = now
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=60)
