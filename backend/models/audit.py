"""Tables of the audit feature (see backend/models/__init__.py).

``audit_entries`` is a hash chain: each entry's ``hash`` covers its own fields
and the previous entry's hash, so an edited, inserted or removed entry shows up
when the chain is walked. ``audit_head`` is one row holding the newest sequence
number and hash; updating it first is what serialises appends across processes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from backend.models.base import Base
from common.db import UTCDateTime


class AuditEntry(Base):
    """One audited action; never updated or deleted by the application."""

    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str | None] = mapped_column(String(64), index=True)
    outcome: Mapped[str | None] = mapped_column(String(64))
    # Canonical JSON text (sorted keys): hashed exactly as stored.
    data: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's newest entry (one row, ``id`` 1); its row lock orders appends."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    seq: Mapped[int]
    hash: Mapped[str] = mapped_column(String(64))
