"""``erasure``: carry out exactly the retention plan the customer was shown and confirmed.

The payload names a stored preview (``previews.py``) of this customer that no
other request used; the reviewer sees the plan itself. Carried out, the
plan's categories are erased and its holds recorded: ``partly_done`` when
something must be kept, with what and until when in the details.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backend.crm.connector import CrmConnector
from backend.errors import Invalid
from backend.ledger.claims import Claimed
from backend.ledger.kinds.base import Kind, Outcome, Shown, Stored
from backend.ledger.previews import load_plan, plan_from_storage, plan_result, plan_to_api
from backend.models.ledger import ErasurePreview
from backend.services import Services
from common.vocabulary.request_kinds import ERASURE
from common.vocabulary.request_states import DONE, PARTLY_DONE, REJECTED


async def validate(
    session: AsyncSession,
    services: Services,
    customer_ref: str,
    payload: dict[str, Any],
    now: datetime,
) -> tuple[Stored, Shown]:
    """``{"preview_id": …}``: the customer's own preview, not used by another request."""
    preview_id = payload.get("preview_id")
    if not isinstance(preview_id, str):
        raise Invalid({"preview_id": "unknown_preview"})
    row = await session.get(ErasurePreview, preview_id)
    if row is None or row.customer_ref != customer_ref:
        raise Invalid({"preview_id": "unknown_preview"})
    if row.used_by is not None:
        raise Invalid({"preview_id": "preview_used"})
    return {"preview_id": preview_id}, plan_to_api(plan_from_storage(row.plan), preview_id)


async def carry_out(services: Services, crm: CrmConnector, job: Claimed) -> Outcome:
    """Erase what the plan erases and record its holds."""
    async with services.sessions() as session:
        plan = await load_plan(session, job.payload["preview_id"])
    if plan is None:
        return Outcome(REJECTED, "preview_missing", {})
    await crm.erase(job.customer_ref, plan.erase, plan.holds, idempotency_key=job.reference)
    return Outcome(PARTLY_DONE if plan.holds else DONE, None, plan_result(plan))


KIND = Kind(ERASURE, validate, carry_out)
