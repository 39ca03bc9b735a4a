"""The keys this database knows (see backend/keys.py and backend/crypto.py).

One row per key id ever used as the primary key. ``key_check`` is a keyed
digest of a fixed label under that key: a process can tell whether its key is
the one the data was written with without decrypting anything. ``retired_at``
is set when ``datadesk keys rotate`` has moved every value off the key.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from backend.models.base import Base
from common.db import UTCDateTime


class CryptoKey(Base):
    """A key id, its check, and when it stopped holding data."""

    __tablename__ = "crypto_keys"

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    key_check: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
