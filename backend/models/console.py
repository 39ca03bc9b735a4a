"""Tables of the console feature (see backend/models/__init__.py).

- ``agents``: people who log in to the console, with an argon2id password hash.
  ``active`` false: disabled (or removed) and cannot log in; ``removed_at``
  set: removed, the row kept so audit entries (``agent:<id>``) stay
  attributable; ``must_change_password``: the next login goes to the
  change-password page first (see ``backend/console/agents.py``).
- ``console_sessions``: server-side login sessions; the cookie holds a random
  token and the row only its keyed digest, so a copy of the table logs no one in.
- ``console_limits``: one counter per limited key (a login name, a client, a
  name and client pair, a trusted device, an agent's reveals); see
  ``backend/console/limits.py``. Keys are keyed digests, never typed text.
- ``escalations``: a chat handed to people: waiting → taken → handed_back |
  closed. At most one open (waiting or taken) escalation per chat, enforced by
  a partial unique index on both engines.
- ``transcript_entries``: what was said in a chat, already masked, encrypted at rest.
- ``chat_notes``: agents' internal notes on a chat, encrypted at rest; never sent
  to the customer.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, false, text
from sqlalchemy.orm import Mapped, mapped_column

from backend.crypto import Encrypted, new_row_uid
from backend.models.base import Base
from common.db import UTCDateTime

ROLES = ("agent", "supervisor")
# Why a chat waits for a person. A channel may give these (POST /api/v1/escalations) …
CHANNEL_REASONS = ("asked", "lockout", "misunderstanding", "failed_request")
# … and the backend alone opens possible_fraud: a contact change was undone ("Was this you?").
REASONS = (*CHANNEL_REASONS, "possible_fraud")
OPEN_STATES = ("waiting", "taken")
STATES = (*OPEN_STATES, "handed_back", "closed")
DIRECTIONS = ("in", "out", "agent")


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    must_change_password: Mapped[bool] = mapped_column(default=False, server_default=false())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ConsoleSession(Base):
    __tablename__ = "console_sessions"

    # keyring.mac("console-session", token): the token itself lives only in the cookie.
    token_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LimitCounter(Base):
    __tablename__ = "console_limits"

    # "<kind>:<keyed digest>", e.g. "pair:3f…"; never a typed name or an address.
    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    # Events counted since window_start (reserved attempts included).
    count: Mapped[int]
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    # The next event may not be counted before this (progressive delay).
    next_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Escalation(Base):
    __tablename__ = "escalations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    chat: Mapped[str] = mapped_column(String(128), index=True)
    reason: Mapped[str] = mapped_column(String(32))
    locale: Mapped[str] = mapped_column(String(16))
    verified: Mapped[bool]
    customer_ref: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    taken_by: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    resume: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    taken_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index(
            "uq_escalations_open_chat",
            "chat",
            unique=True,
            sqlite_where=text("state IN ('waiting', 'taken')"),
            postgresql_where=text("state IN ('waiting', 'taken')"),
        ),
        Index("ix_escalations_state_created_at", "state", "created_at"),
        Index("ix_escalations_closed_at", "closed_at"),
    )


class TranscriptEntry(Base):
    __tablename__ = "transcript_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    chat: Mapped[str] = mapped_column(String(128))
    direction: Mapped[str] = mapped_column(String(8))
    # Names the row in its encrypted values' associated data (backend/crypto.py).
    row_uid: Mapped[str] = mapped_column(String(32), default=new_row_uid)
    text: Mapped[str] = mapped_column(Encrypted(row=("row_uid",)))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The channel's per-chat number of the line (``POST /api/v1/transcript``); None for agents'.
    seq: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_transcript_entries_chat_id", "chat", "id"),
        Index("ix_transcript_entries_chat_seq", "chat", "seq", unique=True),
    )


class ChatNote(Base):
    __tablename__ = "chat_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    chat: Mapped[str] = mapped_column(String(128), index=True)
    escalation_id: Mapped[str] = mapped_column(ForeignKey("escalations.id"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    row_uid: Mapped[str] = mapped_column(String(32), default=new_row_uid)
    text: Mapped[str] = mapped_column(Encrypted(row=("row_uid",)))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
