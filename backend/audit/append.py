"""Appending audit entries: an insert in the caller's transaction, nothing more.

The entry commits or rolls back with the action it records. It is inserted
unsealed (no ``seq``, no MAC): nothing here reads or locks a shared row, so
concurrent transactions never wait for one another to audit. The sealer
(``sealer.py``) chains it once it has committed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.models.audit import AuditEntry

Scalar = str | int | bool | None

_ENTRIES: Table = AuditEntry.__table__  # type: ignore[assignment]


def canonical_data(data: Mapping[str, Scalar] | None) -> str:
    """The stored, MAC-ed form of an entry's ``data``: sorted keys, no spaces."""
    for key, value in (data or {}).items():
        if not isinstance(value, str | int | bool) and value is not None:
            raise TypeError(f"audit data {key!r} must be a scalar, got {type(value).__name__}")
    return json.dumps(dict(data or {}), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


async def record(
    session: AsyncSession,
    *,
    action: str,
    actor: str,
    subject: str | None = None,
    outcome: str | None = None,
    data: Mapping[str, Scalar] | None = None,
    at: datetime,
) -> None:
    """Add one unsealed entry to the caller's transaction (the caller commits)."""
    session.add(
        AuditEntry(
            at=at.astimezone(UTC),
            actor=actor,
            action=action,
            subject=subject,
            outcome=outcome,
            data=canonical_data(data),
        )
    )


@dataclass(frozen=True)
class Entry:
    """One entry of ``record_all``: ``record``'s arguments but the time."""

    action: str
    actor: str
    subject: str | None = None
    outcome: str | None = None
    data: Mapping[str, Scalar] | None = None


async def record_all(session: AsyncSession, entries: Sequence[Entry], *, at: datetime) -> None:
    """Add ``entries``, all at ``at``, to the caller's transaction in one insert; no ORM objects."""
    if not entries:
        return
    when = at.astimezone(UTC)
    await session.execute(
        insert(_ENTRIES),
        [
            {
                "at": when,
                "actor": entry.actor,
                "action": entry.action,
                "subject": entry.subject,
                "outcome": entry.outcome,
                "data": canonical_data(entry.data),
            }
            for entry in entries
        ],
    )
