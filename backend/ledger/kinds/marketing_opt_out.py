"""``marketing_opt_out``: withdraw consent to direct marketing on some channels, or all.

Applied by the submitter before it answers (an objection to direct marketing
is effective at once, GDPR Art. 21, ``submit.py``); a worker applies it only
when that first try failed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backend.crm.connector import CrmConnector
from backend.errors import Invalid
from backend.ledger.claims import Claimed
from backend.ledger.kinds.base import Kind, Outcome, Shown, Stored
from backend.services import Services
from common.vocabulary.marketing_channels import MARKETING_CHANNELS, MarketingChannel
from common.vocabulary.request_kinds import MARKETING_OPT_OUT
from common.vocabulary.request_states import DONE


async def validate(
    session: AsyncSession,
    services: Services,
    customer_ref: str,
    payload: dict[str, Any],
    now: datetime,
) -> tuple[Stored, Shown]:
    """``{"channels": [...]}`` with known channels or ``all``; stored as the channels it means."""
    channels = payload.get("channels")
    if (
        not isinstance(channels, list)
        or not channels
        or any(c not in (*MARKETING_CHANNELS, "all") for c in channels)
    ):
        raise Invalid({"channels": "invalid_channels"})
    chosen = list(MARKETING_CHANNELS) if "all" in channels else sorted(set(channels))
    return {"channels": chosen}, {"channels": chosen}


async def apply(crm: CrmConnector, customer_ref: str, stored: Stored, reference: str) -> Outcome:
    """Withdraw consent on the stored channels (once per reference)."""
    consent: dict[MarketingChannel, bool] = {channel: False for channel in stored["channels"]}
    await crm.set_marketing(customer_ref, consent, idempotency_key=reference)
    return Outcome(DONE, None, {"channels": stored["channels"]})


async def carry_out(services: Services, crm: CrmConnector, job: Claimed) -> Outcome:
    """Apply the opt-out a submitter could not."""
    return await apply(crm, job.customer_ref, job.payload, job.reference)


KIND = Kind(MARKETING_OPT_OUT, validate, carry_out)
