"""Tables of the audit feature (see backend/models/__init__.py and docs/audit.md).

``audit_entries`` holds every audited action. A business transaction inserts
its entries *unsealed* (``seq``, ``prev_hash`` and ``hash`` empty), so writers
never wait for one another; the sealer (``backend/audit/sealer.py``) then
gives committed entries, in the order it finds them, the next ``seq`` and an
HMAC chaining each to its predecessor. ``id`` is the order of insertion,
``seq`` the order of the chain; they differ when transactions commit out of order.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from backend.models.base import Base
from common.db import UTCDateTime

# BIGINT on PostgreSQL (a sequence that outlives 2**31 entries); SQLite needs
# INTEGER for its rowid alias, which is as wide.
ENTRY_ID = BigInteger().with_variant(Integer(), "sqlite")


class AuditEntry(Base):
    """One audited action; the application inserts it and the sealer fills in its place in the chain."""

    __tablename__ = "audit_entries"
    __table_args__ = (
        # The sealer's one question: which committed entries wait? A partial
        # index keeps it as small as the backlog.
        Index(
            "ix_audit_entries_unsealed",
            "id",
            postgresql_where=text("seq IS NULL"),
            sqlite_where=text("seq IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(ENTRY_ID, primary_key=True, autoincrement=True)
    seq: Mapped[int | None] = mapped_column(unique=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str | None] = mapped_column(String(64), index=True)
    outcome: Mapped[str | None] = mapped_column(String(64))
    # Canonical JSON text (sorted keys): MAC-ed exactly as stored.
    data: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))
    # When the sealer chained it (not covered by the MAC: how late, not what).
    sealed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
