"""What a customer can ask for through the requests ledger (``POST /api/v1/requests`` ``kind``)."""

from __future__ import annotations

from typing import Literal

RequestKind = Literal["update_contact", "marketing_opt_out", "erasure", "access"]
UPDATE_CONTACT: RequestKind = "update_contact"
MARKETING_OPT_OUT: RequestKind = "marketing_opt_out"
ERASURE: RequestKind = "erasure"
# A copy of the customer's data (GDPR Art. 15 and 20), answered at once (``backend/access``).
ACCESS: RequestKind = "access"
REQUEST_KINDS: tuple[RequestKind, ...] = (UPDATE_CONTACT, MARKETING_OPT_OUT, ERASURE, ACCESS)
