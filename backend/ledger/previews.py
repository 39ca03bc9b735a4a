"""Erasure previews: a customer's plan, computed from the retention policy and stored unchanged.

``make_preview`` computes a ``retention.Plan`` for one customer and scope and
stores it (``erasure_previews``); an erasure request names the preview and the
worker carries out exactly that plan (``load_plan``, ``kinds/erasure.py``).
``plan_to_api`` is the HTTP shape, with product ids masked. What happens to
held data later is ``purge.py``.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backend import audit
from backend.crm.connector import CustomerRecord, Product
from backend.models.ledger import ErasurePreview
from backend.retention import CategoryPlan, Plan, load_policy, preview
from common.masking import DOT, mask_iban, mask_pan


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
