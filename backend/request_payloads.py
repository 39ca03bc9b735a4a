"""Request payloads: checked per kind, turned into what is stored and what a reviewer sees.

``validate_payload`` answers ``Invalid`` with one code per field, redeems a
contact proof inside the caller's transaction (so it is spent only if the
request is stored), and returns the payload to store (encrypted at rest) and a
masked preview for the back-office review queue.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backend.errors import Invalid
from backend.models.ledger import ErasurePreview
from backend.services import Services
from common.errors import DatadeskError
from common.masking import mask_email, mask_phone, mask_text
from common.vocabulary.contact_kinds import PROVEN_CONTACT_KINDS
from common.vocabulary.marketing_channels import MARKETING_CHANNELS
from common.vocabulary.request_kinds import ERASURE, MARKETING_OPT_OUT


async def validate_payload(
    session: AsyncSession,
    services: Services,
    customer_ref: str,
    kind: str,
    payload: Any,
    now: datetime,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The payload to store and the masked preview a reviewer sees; Invalid per field."""
    if not isinstance(payload, dict):
        raise Invalid({"payload": "invalid"})
    if kind == MARKETING_OPT_OUT:
        channels = payload.get("channels")
        if (
            not isinstance(channels, list)
            or not channels
            or any(c not in (*MARKETING_CHANNELS, "all") for c in channels)
        ):
            raise Invalid({"channels": "invalid_channels"})
        chosen = list(MARKETING_CHANNELS) if "all" in channels else sorted(set(channels))
        return {"channels": chosen}, {"channels": chosen}
    if kind == ERASURE:
        preview_id = payload.get("preview_id")
        if not isinstance(preview_id, str):
            raise Invalid({"preview_id": "unknown_preview"})
        row = await session.get(ErasurePreview, preview_id)
        if row is None or row.customer_ref != customer_ref:
            raise Invalid({"preview_id": "unknown_preview"})
        if row.used_by is not None:
            raise Invalid({"preview_id": "preview_used"})
        from backend.erasure import plan_from_storage, plan_to_api

        return {"preview_id": preview_id}, plan_to_api(plan_from_storage(row.plan), preview_id)
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
