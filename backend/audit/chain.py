"""The chain's one formula: an entry's MAC over its fields and its predecessor's MAC."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

GENESIS = "0" * 64


def stamp(at: datetime) -> str:
    """The MAC-ed form of a timestamp: UTC, microseconds (what both engines store)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_mac(
    key: bytes,
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    subject: str | None,
    outcome: str | None,
    data: str,
    prev_hash: str,
) -> str:
    """HMAC-SHA256 (hex) over the canonical JSON of one entry and its predecessor's MAC."""
    fields = [seq, stamp(at), actor, action, subject, outcome, data, prev_hash]
    raw = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(key, raw.encode(), hashlib.sha256).hexdigest()
