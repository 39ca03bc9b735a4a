"""Request kinds, one module each: what a payload must be, and how a request is carried out.

``KINDS`` maps each id of ``common.vocabulary.request_kinds`` to its ``Kind``
(``base.py``). Adding a kind is a module with ``validate`` and ``carry_out``,
its id in the vocabulary, and one entry here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backend.crm.connector import CrmConnector, CustomerNotFound
from backend.errors import Invalid
from backend.ledger.claims import Claimed
from backend.ledger.kinds import access, erasure, marketing_opt_out, update_contact
from backend.ledger.kinds.base import Kind, Outcome, Shown, Stored
from backend.services import Services
from common.vocabulary.request_states import REJECTED

KINDS: Mapping[str, Kind] = {
    kind.name: kind
    for kind in (update_contact.KIND, marketing_opt_out.KIND, erasure.KIND, access.KIND)
}

__all__ = ["KINDS", "Kind", "Outcome", "carry_out", "validate_payload"]


async def validate_payload(
    session: AsyncSession,
    services: Services,
    customer_ref: str,
    kind: str,
    payload: Any,
    now: datetime,
) -> tuple[Stored, Shown]:
    """The payload to store and the masked preview a reviewer sees; ``Invalid`` per field."""
    if not isinstance(payload, dict):
        raise Invalid({"payload": "invalid"})
    return await KINDS[kind].validate(session, services, customer_ref, payload, now)


async def carry_out(services: Services, crm: CrmConnector, job: Claimed) -> Outcome:
    """Apply a claimed request through the CRM; raise on a failure worth retrying."""
    kind = KINDS.get(job.kind)
    if kind is None:
        return Outcome(REJECTED, "unknown_kind", {})
    try:
        return await kind.carry_out(services, crm, job)
    except CustomerNotFound:
        return Outcome(REJECTED, "customer_not_found", {})
