"""What a customer can ask for through the requests ledger (``POST /api/v1/requests`` ``kind``)."""

from __future__ import annotations

from typing import Literal

RequestKind = Literal["update_contact", "marketing_opt_out", "erasure"]
UPDATE_CONTACT: RequestKind = "update_contact"
MARKETING_OPT_OUT: RequestKind = "marketing_opt_out"
ERASURE: RequestKind = "erasure"
REQUEST_KINDS: tuple[RequestKind, ...] = (UPDATE_CONTACT, MARKETING_OPT_OUT, ERASURE)
