"""Tables of the verification feature (see backend/models/__init__.py).

No one-time code, session token or proof token is stored: only
``keyring.mac(...)`` of it. A challenge for a number that is not on file is a
row like any other, with no customer, so both cases cost the same writes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from backend.crypto import Encrypted
from backend.models.base import Base
from common.db import UTCDateTime


class Challenge(Base):
    """One verification or contact proof: the latest code's MAC, its expiry and attempts."""

    __tablename__ = "verification_challenges"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16))  # "customer" | "proof"
    chat: Mapped[str | None] = mapped_column(String(128))
    customer_ref: Mapped[str | None] = mapped_column(String(64))
    # Rate-limit key standing in for the customer: the phone's blind index, so a
    # number that is not on file is limited exactly like one that is.
    subject: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(8))
    target_kind: Mapped[str | None] = mapped_column(String(8))
    target: Mapped[str | None] = mapped_column(Encrypted(row=("id",)))
    locale: Mapped[str] = mapped_column(String(16))
    code_mac: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int]
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CodeIssue(Base):
    """One code sent (or pretended sent), counted for the per-hour limits."""

    __tablename__ = "verification_code_issues"
    __table_args__ = (
        Index("ix_verification_code_issues_chat_at", "chat", "issued_at"),
        Index("ix_verification_code_issues_subject_at", "subject", "issued_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    challenge_id: Mapped[str] = mapped_column(String(40))
    chat: Mapped[str | None] = mapped_column(String(128))
    subject: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CustomerSession(Base):
    """A verified chat's session, scoped to one customer."""

    __tablename__ = "verification_sessions"

    token_mac: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_ref: Mapped[str] = mapped_column(String(64), index=True)
    chat: Mapped[str | None] = mapped_column(String(128))
    challenge_id: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ContactProof(Base):
    """A proven new phone or email, redeemable once by the same customer's request."""

    __tablename__ = "verification_proofs"

    token_mac: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_ref: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    value: Mapped[str] = mapped_column(Encrypted(row=("token_mac",)))
    challenge_id: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
