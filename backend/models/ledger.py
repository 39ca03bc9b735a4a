"""Tables of the ledger feature (see backend/models/__init__.py).

``requests`` is both the record of what a customer asked for and the work
queue: a row's ``state``, lease and ``next_run_at`` are its place in the queue,
so submitting a request and queueing it are one write. ``erasure_previews``
keeps the plan a customer was shown, so the worker carries out exactly that.
``notifications`` is the outbox the bot long-polls.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Index, String, Text, UniqueConstraint, text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from backend.crypto import Encrypted, new_row_uid
from backend.models.base import Base
from common.db import UTCDateTime
from common.vocabulary.request_states import RequestState

# What a finished request's payload becomes: its personal values are not kept.
SCRUBBED = "{}"


class StateColumn(TypeDecorator[RequestState]):
    """A ``RequestState`` stored as its string, so the stored values are the contract's ids."""

    impl = String(16)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else RequestState(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> RequestState | None:
        return None if value is None else RequestState(value)


# Queued or running: what a customer's later request waits behind.
_UNDER_WAY = text("state IN ('queued', 'running')")


class Request(Base):
    """One customer request: its content, its state and its place in the queue."""

    __tablename__ = "requests"
    __table_args__ = (
        UniqueConstraint("customer_ref", "idempotency_key", name="uq_requests_idempotency"),
        Index("ix_requests_queue", "state", "next_run_at"),
        # A claim skips a request while an earlier one of its customer is
        # queued or running (``ledger.claims._in_turn``): one probe per customer.
        Index(
            "ix_requests_turns",
            "customer_ref",
            "id",
            postgresql_where=_UNDER_WAY,
            sqlite_where=_UNDER_WAY,
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    customer_ref: Mapped[str] = mapped_column(String(64), index=True)
    chat: Mapped[str] = mapped_column(String(128), index=True)
    locale: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    # JSON; holds new phones, emails and addresses, hence encrypted at rest.
    payload: Mapped[str] = mapped_column(Encrypted(row=("reference",)))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    body_hash: Mapped[str] = mapped_column(String(64))
    # The first answer given, replayed byte for byte for a repeated key (JSON).
    response: Mapped[str] = mapped_column(Text)
    # What a reviewer sees: masked values only (JSON).
    review_preview: Mapped[str | None] = mapped_column(Text)
    # Changed only by backend.ledger.transitions; a new row starts submitted.
    state: Mapped[RequestState] = mapped_column(StateColumn(), default=RequestState.SUBMITTED)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=5)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_date: Mapped[date] = mapped_column(Date())
    # Outcome details (categories erased, holds), JSON; no raw personal values.
    result: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(String(64))


class ErasurePreview(Base):
    """A retention plan as shown to the customer; an erasure request names one."""

    __tablename__ = "erasure_previews"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer_ref: Mapped[str] = mapped_column(String(64), index=True)
    jurisdiction: Mapped[str] = mapped_column(String(16))
    # The plan as JSON; names product ids that keep data, hence encrypted.
    plan: Mapped[str] = mapped_column(Encrypted(row=("id",)))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_by: Mapped[str | None] = mapped_column(String(16))


class Notification(Base):
    """One message for a chat, held until the channel acknowledges it."""

    __tablename__ = "notifications"
    # Ids are never reused on SQLite either: channels show each id once.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(primary_key=True)
    chat: Mapped[str] = mapped_column(String(128), index=True)
    locale: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(32))
    reference: Mapped[str | None] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    # JSON; may carry an agent's message text, hence encrypted.
    # Names the row in its encrypted values' associated data (backend/crypto.py).
    row_uid: Mapped[str] = mapped_column(String(32), default=new_row_uid)
    details: Mapped[str | None] = mapped_column(Encrypted(row=("row_uid",)))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
