"""Held data after an erasure: replanned when its product closes, erased when its hold ends.

``purge_once`` replans holds kept "while product X is open" once X closed,
drops erasure previews nobody used and "Was this you?" rows a day after their
link expired, drops the details of a failed request nobody retried within
``FAILED_KEPT``, and erases held data whose hold has ended
(``datadesk purge``); ``purge_daily`` runs it, the purge of spent
verification rows (``backend.verification.purge_verification``) and of
transcripts past their period (``backend.chat_history.purge``), in every
worker at start and once a day. Each step is audited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from backend import audit, chat_history
from backend.crm.connector import CrmConnector
from backend.models.ledger import SCRUBBED, ErasurePreview, Request
from backend.retention import load_policy, preview
from backend.services import Services
from backend.verification import purge_verification
from common.vocabulary.categories import Category
from common.vocabulary.request_kinds import ERASURE
from common.vocabulary.request_states import DONE, FAILED, PARTLY_DONE

log = logging.getLogger(__name__)

PURGE_EVERY = timedelta(days=1)
# An unused preview is kept this long: enough to confirm it, not to keep its contents.
PREVIEW_KEPT = timedelta(days=1)
# A failed request keeps its details (the new phone, email or address, encrypted)
# so a supervisor can retry it from the console; this long after it failed,
# nobody will, and the details go. Its row, outcome and audit entries stay.
FAILED_KEPT = timedelta(days=30)


async def replan_closed_products(services: Services, crm: CrmConnector) -> int:
    """Replace holds kept "while product X is open" once X has closed; return how many changed.

    Such a hold has no end date, so the purge never ends it; when the product
    closes, the policy gives the category a dated hold (or lets it go), computed
    exactly as a preview would be on that day.
    """
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
    cutoff = services.clock.now() - PREVIEW_KEPT
    async with services.sessions() as session:
        gone = await session.execute(
            delete(ErasurePreview).where(
                ErasurePreview.used_by.is_(None), ErasurePreview.created_at < cutoff
            )
        )
        await session.commit()
    return int(getattr(gone, "rowcount", 0) or 0)


async def drop_failed_payloads(services: Services) -> int:
    """Scrub the details of requests that failed ``FAILED_KEPT`` ago; return how many.

    The payload is encrypted, so whether one is already scrubbed is read row by
    row; failed requests are few (each one brought a chat to an agent).
    """
    now = services.clock.now()
    async with services.sessions() as session:
        rows = (
            await session.scalars(
                select(Request)
                .where(Request.state == FAILED, Request.updated_at < now - FAILED_KEPT)
                .with_for_update()
            )
        ).all()
        dropped = [row for row in rows if row.payload != SCRUBBED]
        for row in dropped:
            row.payload = SCRUBBED
            await audit.record(
                session,
                action="request_details_purged",
                actor="system:purge",
                subject=row.reference,
                at=now,
            )
        await session.commit()
    return len(dropped)


async def purge_once(
    services: Services, crm: CrmConnector | None = None
) -> list[tuple[str, Category]]:
    """Replan holds whose product closed, then erase held data whose hold ended; audit each."""
    crm = crm or services.crm
    await replan_closed_products(services, crm)
    now = services.clock.now()
    await drop_stale_previews(services)
    await drop_failed_payloads(services)
    from backend.contact_undo import purge_expired

    await purge_expired(services)
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
                await purge_verification(services)
                await chat_history.purge(services)
            except Exception as exc:
                log.error("purge failed (%s); trying again later", type(exc).__name__)
            last = now
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=60)
