"""``access``: a copy of the customer's data, built and handed out by ``backend.access``.

The submitter holds the request while it builds the copy and answers with it
(``POST /api/v1/access``); nothing of the copy is stored, so a worker that
finds one (the submitter died first) cannot send it: it fails the request,
which escalates the chat and an agent sends the copy.
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
from common.vocabulary.request_kinds import ACCESS
from common.vocabulary.request_states import FAILED

COPY_NOT_DELIVERED = "copy_not_delivered"


async def validate(
    session: AsyncSession,
    services: Services,
    customer_ref: str,
    payload: dict[str, Any],
    now: datetime,
) -> tuple[Stored, Shown]:
    """An access request carries nothing: ``{}``."""
    if payload:
        raise Invalid({"payload": "invalid"})
    return {}, {}


async def carry_out(services: Services, crm: CrmConnector, job: Claimed) -> Outcome:
    """The submitter died before answering: the copy is gone with it, a person takes over."""
    return Outcome(FAILED, COPY_NOT_DELIVERED, {})


KIND = Kind(ACCESS, validate, carry_out)
