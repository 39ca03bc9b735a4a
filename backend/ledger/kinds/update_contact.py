"""``update_contact``: a new primary phone or email (proven by a code sent to it), or a new address.

A phone or email is taken from a contact proof, redeemed inside the
submitting transaction so it is spent only if the request is stored; an
address is checked field by field. Reviewers see the new value masked.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backend.crm.connector import Address, CrmConnector
from backend.errors import Invalid
from backend.ledger.claims import Claimed
from backend.ledger.kinds.base import Kind, Outcome, Shown, Stored
from backend.services import Services
from common.errors import DatadeskError
from common.masking import mask_email, mask_phone, mask_text
from common.vocabulary.contact_kinds import PROVEN_CONTACT_KINDS
from common.vocabulary.request_kinds import UPDATE_CONTACT
from common.vocabulary.request_states import DONE


async def validate(
    session: AsyncSession,
    services: Services,
    customer_ref: str,
    payload: dict[str, Any],
    now: datetime,
) -> tuple[Stored, Shown]:
    """``{"field": "address", "address": {...}}`` or ``{"field": "phone"|"email", "proof_token": …}``."""
    field = payload.get("field")
    if field == "address":
        from backend.validation import check_address

        address, errors = check_address(payload.get("address"))
        if address is None:
            raise Invalid(errors or {"address": "invalid_address"})
        stored = {k: v for k, v in vars(address).items()}
        shown = {k: mask_text(v) if k in ("line1", "line2") and v else v for k, v in stored.items()}
        return {"field": "address", "address": stored}, {"field": "address", "new": shown}
    if field not in PROVEN_CONTACT_KINDS:
        raise Invalid({"field": "invalid_field"})
    token = payload.get("proof_token")
    if not isinstance(token, str) or not token:
        raise Invalid({"proof_token": "invalid_proof"})
    from backend.verification import redeem_proof

    try:
        proved_kind, value = await redeem_proof(session, services.keyring, token, customer_ref, now)
    except Invalid:
        raise
    except DatadeskError as exc:
        raise Invalid({"proof_token": "invalid_proof"}) from exc
    if proved_kind != field:
        raise Invalid({"proof_token": "invalid_proof"})
    masked = mask_phone(value) if field == "phone" else mask_email(value)
    return {"field": field, "value": value}, {"field": field, "new": masked}


async def carry_out(services: Services, crm: CrmConnector, job: Claimed) -> Outcome:
    """Write the new phone, email or address to the CRM; the old contact is told, with an undo link."""
    from backend import contact_undo

    key, field = job.reference, job.payload["field"]
    # Before the change: afterwards the CRM no longer knows the old contact.
    await contact_undo.prepare(services, crm, job)
    if field == "phone":
        await crm.update_phone(job.customer_ref, job.payload["value"], idempotency_key=key)
    elif field == "email":
        await crm.update_email(job.customer_ref, job.payload["value"], idempotency_key=key)
    else:
        address = Address(**job.payload["address"])
        await crm.update_address(job.customer_ref, address, idempotency_key=key)
    await contact_undo.arm(services, job.reference)
    return Outcome(DONE, None, {"field": field})


KIND = Kind(UPDATE_CONTACT, validate, carry_out)
