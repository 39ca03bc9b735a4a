"""What every request kind provides: checking a payload, and carrying it out against the CRM.

A kind is data (``Kind``): its id from ``common.vocabulary.request_kinds``, a
``validate`` that turns the submitted payload into what is stored (encrypted
at rest) and a masked preview for the review queue, raising ``Invalid`` with
one code per field, and a ``carry_out`` that applies a claimed request
through the CRM with ``idempotency_key=reference`` and answers its
``Outcome``. ``carry_out`` raises on a failure worth retrying (the CRM is
down); what will never work (no such customer) is an outcome, ``rejected``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backend.crm.connector import CrmConnector
from backend.ledger.claims import Claimed
from backend.services import Services
from common.vocabulary.request_kinds import RequestKind
from common.vocabulary.request_states import RequestState

Stored = dict[str, Any]
Shown = dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    """How a carried-out request ended: a final state, a reason code, details for the customer."""

    state: RequestState
    reason: str | None
    details: dict[str, Any]


Validate = Callable[
    [AsyncSession, Services, str, dict[str, Any], datetime], Awaitable[tuple[Stored, Shown]]
]
CarryOut = Callable[[Services, CrmConnector, Claimed], Awaitable[Outcome]]


@dataclass(frozen=True)
class Kind:
    """One request kind: ``validate(session, services, customer_ref, payload, now)`` and
    ``carry_out(services, crm, job)``."""

    name: RequestKind
    validate: Validate
    carry_out: CarryOut
