"""The "Was this you?" table: one row per carried-out contact change (``backend/contact_undo.py``).

A row is written before the CRM changes (it needs the contact as it was), its
notice is armed once the change is made, and the notice goes out through the
row's own retry schedule. The undo link's token is stored only as its
SHA-256 digest; the token itself is inside the sealed ``notice`` until the
notice is sent, then the notice is dropped.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from backend.crypto import Encrypted, new_row_uid
from backend.models.base import Base
from common.db import UTCDateTime


class ContactUndo(Base):
    """A contact change that its old contact can undo within ``expires_at``."""

    __tablename__ = "contact_undos"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_row_uid)
    # The update_contact request this undoes (one row per request: a retried run reuses it).
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    # sha256(token) in hex; the token itself is never stored in the clear.
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    customer_ref: Mapped[str] = mapped_column(String(64), index=True)
    chat: Mapped[str] = mapped_column(String(128))
    locale: Mapped[str] = mapped_column(String(16))
    field: Mapped[str] = mapped_column(String(16))
    # The contact before the change: a phone, an email, or the address as JSON; None: there was none.
    previous: Mapped[str | None] = mapped_column(Encrypted(row=("reference",)))
    # The new contact as the notice and the undo page show it, masked (``+371 2••••••99``).
    masked_new: Mapped[str] = mapped_column(String(320))
    # The notice waiting to go (JSON: channel, to, token, masked new contact); None once sent.
    notice: Mapped[str | None] = mapped_column(Encrypted(row=("reference",)))
    # When to try the notice (next); None while the change is not made yet, or once sent.
    notice_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    notice_attempts: Mapped[int] = mapped_column(default=0)
    notice_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When the link was used, and what came of it (reverted, erased, gone).
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(String(16))
