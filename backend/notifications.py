"""The notifications outbox: messages for a chat, held until the channel acknowledges them.

Anything that wants to tell a customer something (a request's outcome, an
agent joining) calls ``enqueue`` inside its own transaction, so the message
exists exactly when the change it reports does. Channels long-poll ``lease``:
returned notifications are theirs for ``LEASE_SECONDS``; unacknowledged, they
are handed out again (at least once). ``ack`` removes them.

Waking a long poll: ``enqueue`` sets an in-process event, so a poller in the
same process wakes at once; pollers also re-check the table every
``POLL_SECONDS``, so several backend processes on one database work without
extra parts.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.crypto import for_row, load_readable, new_row_uid
from backend.models.ledger import Notification
from common.clock import Clock
from common.loop_events import LoopEvents

log = logging.getLogger(__name__)

LEASE_SECONDS = 60
POLL_SECONDS = 0.2
TYPES = frozenset(
    {"request_outcome", "request_escalated", "agent_joined", "agent_message", "agent_left"}
)

_NOTIFICATIONS: Table = Notification.__table__  # type: ignore[assignment]

# Wakes this process's own waiter at once (common/loop_events.py).
_wakeup = LoopEvents().get


async def enqueue(
    session: AsyncSession,
    *,
    chat: str,
    locale: str,
    type: str,
    at: datetime,
    reference: str | None = None,
    outcome: str | None = None,
    reason: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> int:
    """Add a notification inside the caller's transaction; return its id."""
    row = add(
        session,
        chat=chat,
        locale=locale,
        type=type,
        at=at,
        reference=reference,
        outcome=outcome,
        reason=reason,
        details=details,
    )
    await session.flush()
    return row.id


def add(
    session: AsyncSession,
    *,
    chat: str,
    locale: str,
    type: str,
    at: datetime,
    reference: str | None = None,
    outcome: str | None = None,
    reason: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> Notification:
    """Add a notification inside the caller's transaction, written at its next flush.

    ``enqueue`` without the flush: a worker recording many outcomes at once
    writes all their notifications in one statement.
    """
    if type not in TYPES:
        raise ValueError(f"unknown notification type {type!r}")
    row = Notification(
        chat=chat,
        locale=locale,
        type=type,
        reference=reference,
        outcome=outcome,
        reason=reason,
        details=json.dumps(dict(details), ensure_ascii=False) if details is not None else None,
        created_at=at,
        leased_until=None,
    )
    session.add(row)
    _wakeup().set()
    return row


async def add_all(session: AsyncSession, items: Sequence[Outgoing]) -> None:
    """Add many notifications inside the caller's transaction, in one statement.

    ``add`` for a worker's batch, without an ORM object per row: each item's
    ``id`` is ignored (the database numbers them), its ``created_at`` kept.
    """
    if not items:
        return
    rows = []
    for item in items:
        if item.type not in TYPES:
            raise ValueError(f"unknown notification type {item.type!r}")
        uid = new_row_uid()
        details = json.dumps(item.details, ensure_ascii=False)
        rows.append(
            {
                "chat": item.chat,
                "locale": item.locale,
                "type": item.type,
                "reference": item.reference,
                "outcome": item.outcome,
                "reason": item.reason,
                "row_uid": uid,
                "details": for_row(details, "notifications", "details", [uid]),
                "created_at": item.created_at,
                "leased_until": None,
            }
        )
    await session.execute(insert(_NOTIFICATIONS), rows)
    _wakeup().set()


@dataclass(frozen=True)
class Outgoing:
    """A notification as the API hands it out."""

    id: int
    chat: str
    locale: str
    type: str
    reference: str | None
    outcome: str | None
    reason: str | None
    details: dict[str, Any]
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The contract's JSON shape (``docs/backend-api.md``)."""
        return {
            "id": self.id,
            "chat": self.chat,
            "locale": self.locale,
            "type": self.type,
            "reference": self.reference,
            "outcome": self.outcome,
            "reason": self.reason,
            "details": self.details,
            "created_at": self.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def _escape_like(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def lease(
    session: AsyncSession, *, now: datetime, limit: int = 100, prefix: str | None = None
) -> list[Outgoing]:
    """Lease up to ``limit`` due notifications to the caller and commit; oldest first."""
    due = or_(Notification.leased_until.is_(None), Notification.leased_until <= now)
    query = select(Notification.id).where(due)
    if prefix:
        query = query.where(Notification.chat.like(_escape_like(prefix) + "%", escape="\\"))
    # SKIP LOCKED: two pollers on PostgreSQL never lease the same row (ignored on SQLite,
    # where the single UPDATE below is atomic anyway).
    picked = query.order_by(Notification.id).limit(limit).with_for_update(skip_locked=True)
    until = now + timedelta(seconds=LEASE_SECONDS)
    ids = [
        int(i)
        for i in (
            await session.execute(
                update(Notification)
                .where(and_(Notification.id.in_(picked.scalar_subquery()), due))
                .values(leased_until=until)
                .returning(Notification.id)
            )
        ).scalars()
    ]
    rows = await _readable(session, ids) if ids else []
    await session.commit()
    return [
        Outgoing(
            id=row.id,
            chat=row.chat,
            locale=row.locale,
            type=row.type,
            reference=row.reference,
            outcome=row.outcome,
            reason=row.reason,
            details=json.loads(row.details) if row.details else {},
            created_at=row.created_at,
        )
        for row in rows
    ]


# Where a notification whose details no longer decrypt is parked: never leased again.
QUARANTINED = datetime(9999, 1, 1, tzinfo=UTC)


async def _readable(session: AsyncSession, ids: list[int]) -> list[Notification]:
    """The leased rows, oldest first; one whose details do not decrypt is parked, not returned."""
    query = select(Notification).where(Notification.id.in_(ids)).order_by(Notification.id)
    rows, unreadable = await load_readable(session, query, Notification.details)
    for notification_id, exc in unreadable.items():
        log.error("notification id %d: %s; parked, never delivered", notification_id, exc)
        await session.execute(
            update(Notification)
            .where(Notification.id == notification_id)
            .values(leased_until=QUARANTINED)
        )
    return [row for row in rows if row.id not in unreadable]


async def wait_and_lease(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    *,
    wait: float,
    limit: int = 100,
    prefix: str | None = None,
    closing: asyncio.Event | None = None,
    gone: Callable[[], bool] | None = None,
) -> list[Outgoing]:
    """Long-poll: lease what is due now, or wait up to ``wait`` seconds for something.

    ``closing`` set (the server is shutting down) ends the wait with what there is.
    ``gone()`` true (the caller hung up) ends it with nothing: leasing to a poller
    that is no longer there would hide those notifications for a whole lease.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0.0, wait)
    while True:
        if gone is not None and gone():
            return []
        _wakeup().clear()
        async with sessions() as session:
            found = await lease(session, now=clock.now(), limit=limit, prefix=prefix)
        remaining = deadline - loop.time()
        if found or remaining <= 0 or (closing is not None and closing.is_set()):
            return found
        try:
            await asyncio.wait_for(_wakeup().wait(), timeout=min(POLL_SECONDS, remaining))
            # The enqueuing transaction may not have committed yet; give it a moment.
            await asyncio.sleep(0.01)
        except TimeoutError:
            pass


async def ack(session: AsyncSession, ids: Sequence[int]) -> list[datetime]:
    """Remove acknowledged notifications and commit; return when each removed one was created."""
    if not ids:
        return []
    result = await session.execute(
        delete(Notification)
        .where(Notification.id.in_(list(ids)))
        .returning(Notification.created_at)
    )
    created = list(result.scalars())
    await session.commit()
    return created
