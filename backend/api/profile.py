"""The verified customer's profile as the bot may show it: masked contacts, consent, products.

``GET /api/v1/me`` answers it, and a successful code check carries it too
(``profile``), so the bot's next step needs no second round trip.
"""

from __future__ import annotations

import re
from typing import Any

from backend.crm.connector import Address
from backend.errors import ConnectorError, NotFound, ServiceUnavailable
from backend.services import Services
from common.masking import DOT, mask_email, mask_phone


def mask_address(address: Address) -> str:
    """House and flat numbers hidden, the rest kept so the owner recognises it."""
    lines = [address.line1, address.line2]
    masked = [re.sub(r"\d+", DOT, line) for line in lines if line]
    return ", ".join([*masked, address.city, address.postcode, address.country])


async def profile(svc: Services, ref: str) -> dict[str, Any]:
    """The ``Me`` answer for customer ``ref``: masked contacts, consent, open products."""
    try:
        record = await svc.crm.get(ref)
    except ConnectorError as exc:
        raise ServiceUnavailable("the CRM is not reachable", code="crm_unavailable") from exc
    if record is None:
        raise NotFound("the customer is no longer on file", code="customer_not_found")
    return {
        "language": record.language,
        "phones": [{"masked": mask_phone(n), "primary": p} for n, p in record.phones],
        "emails": [{"masked": mask_email(a), "primary": p} for a, p in record.emails],
        "address": {"masked": mask_address(record.address)} if record.address else None,
        "marketing": dict(record.marketing),
        "open_products": sum(1 for p in record.products if p.closed is None),
    }
