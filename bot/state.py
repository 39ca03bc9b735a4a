"""Conversation state kept in the bot database (see bot/migrations).

One row per chat holds the engine's state and the action context (session
token, pending verification, proof token), both sealed with the bot's own key
(``bot.state_key``) because they carry personal data the customer typed; a
row that does not open under it (sealed under another key, or damaged) is
read as no state, so the customer starts again at the menu. A
``version`` column gives optimistic concurrency: a writer that read version
``n`` only succeeds if the row is still at ``n``. Shown notification ids are
kept per chat so a redelivered notification is not shown twice; the last
platform update handled (``last_update_id``) so a redelivered update is not
handled twice.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, MetaData, String, Text, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bot.state_key import SealError, StateKey
from common.db import NAMING, UTCDateTime, make_engine, make_sessionmaker

# The bot database's Alembic migrations; ``datadesk db upgrade`` runs them.
BOT_MIGRATIONS = Path(__file__).resolve().parent / "migrations"

log = logging.getLogger(__name__)


class BotBase(DeclarativeBase):
    """Declarative base of the bot's own tables; they live apart from the backend's."""

    metadata = MetaData(naming_convention=NAMING)


class ConversationRow(BotBase):
    """One chat's conversation: engine state and action context, both encrypted."""

    __tablename__ = "conversations"

    chat: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[str] = mapped_column(Text)
    context: Mapped[str] = mapped_column(Text)
    agent_active: Mapped[bool]
    version: Mapped[int]
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_update_id: Mapped[int | None] = mapped_column(BigInteger)


class ShownNotificationRow(BotBase):
    """A backend notification already shown in a chat (delivery is at least once)."""

    __tablename__ = "shown_notifications"

    chat: Mapped[str] = mapped_column(String(128), primary_key=True)
    notification_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    shown_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StaleState(Exception):
    """Another writer saved this chat since it was loaded; load again and retry."""


@dataclass
class ChatRecord:
    """What the store keeps for one chat; ``version`` 0 means never saved.

    ``last_update_id`` is the channel's id of the last update handled in the
    chat (None: none yet, or a channel without ids); ``updated_at`` when the
    record was last saved, as loaded (None: never saved).
    """

    chat: str
    state: dict[str, Any] | None = None
    context: dict[str, Any] = field(default_factory=dict)
    agent_active: bool = False
    version: int = 0
    last_update_id: int | None = None
    updated_at: datetime | None = None


class StateStore:
    """Loads and saves ``ChatRecord``s in the bot database (SQLite or PostgreSQL)."""

    def __init__(self, engine: AsyncEngine, key: StateKey) -> None:
        self.engine = engine
        self.sessions: async_sessionmaker[AsyncSession] = make_sessionmaker(engine)
        self.key = key

    @classmethod
    def open(cls, url: str, key: StateKey) -> StateStore:
        """A store on the (already migrated) database at ``url``."""
        return cls(make_engine(url), key)

    async def close(self) -> None:
        """Release the database connections."""
        await self.engine.dispose()

    def _seal(self, chat: str, column: str, value: dict[str, Any] | None) -> str:
        plain = json.dumps(value, ensure_ascii=False, sort_keys=True)
        return self.key.seal(plain, bound_to=f"{chat}\x00{column}")

    def _open(self, chat: str, column: str, sealed: str) -> Any:
        return json.loads(self.key.open(sealed, bound_to=f"{chat}\x00{column}"))

    async def load(self, chat: str) -> ChatRecord:
        """The chat's record, or a fresh one; unreadable state starts over rather than crash."""
        async with self.sessions() as session:
            row = await session.get(ConversationRow, chat)
        if row is None:
            return ChatRecord(chat=chat)
        try:
            state = self._open(chat, "state", row.state)
            context = self._open(chat, "context", row.context)
        except (SealError, ValueError) as exc:
            # Sealed under another key (the shared key of earlier versions, a
            # changed bot key) or damaged: the customer starts again (keeping
            # the version so the next save still detects races).
            log.warning(
                "chat %s: saved conversation does not open (%s); it starts again at the menu",
                chat,
                type(exc).__name__,
            )
            return ChatRecord(
                chat=chat,
                agent_active=row.agent_active,
                version=row.version,
                last_update_id=row.last_update_id,
                updated_at=row.updated_at,
            )
        return ChatRecord(
            chat=chat,
            state=state if isinstance(state, dict) else None,
            context=context if isinstance(context, dict) else {},
            agent_active=row.agent_active,
            version=row.version,
            last_update_id=row.last_update_id,
            updated_at=row.updated_at,
        )

    async def save(self, record: ChatRecord, now: datetime | None = None) -> None:
        """Write ``record`` if nobody else did since it was loaded; bump its version."""
        now = now or datetime.now(UTC)
        values = {
            "state": self._seal(record.chat, "state", record.state),
            "context": self._seal(record.chat, "context", record.context),
            "agent_active": record.agent_active,
            "version": record.version + 1,
            "updated_at": now,
            "last_update_id": record.last_update_id,
        }
        async with self.sessions() as session:
            if record.version == 0:
                try:
                    await session.execute(
                        insert(ConversationRow).values(chat=record.chat, **values)
                    )
                    await session.commit()
                except IntegrityError as exc:
                    raise StaleState(record.chat) from exc
            else:
                result = await session.execute(
                    update(ConversationRow)
                    .where(ConversationRow.chat == record.chat)
                    .where(ConversationRow.version == record.version)
                    .values(**values)
                )
                await session.commit()
                if result.rowcount != 1:  # type: ignore[attr-defined]
                    raise StaleState(record.chat)
        record.version += 1
        record.updated_at = now

    async def mark_shown(
        self, chat: str, notification_id: int, now: datetime | None = None
    ) -> bool:
        """Record a notification as shown; False if it already was."""
        async with self.sessions() as session:
            try:
                await session.execute(
                    insert(ShownNotificationRow).values(
                        chat=chat,
                        notification_id=notification_id,
                        shown_at=now or datetime.now(UTC),
                    )
                )
                await session.commit()
            except IntegrityError:
                return False
        return True

    async def was_shown(self, chat: str, notification_id: int) -> bool:
        """Whether a notification was already shown in the chat."""
        async with self.sessions() as session:
            found = await session.scalar(
                select(ShownNotificationRow.notification_id)
                .where(ShownNotificationRow.chat == chat)
                .where(ShownNotificationRow.notification_id == notification_id)
            )
        return found is not None

    async def prune(self, *, idle_before: datetime, shown_before: datetime) -> tuple[int, int]:
        """Delete conversations idle since ``idle_before`` and older shown-notification marks.

        Conversation state holds what customers typed; it is kept only while a
        conversation may still resume. Returns (conversations, marks) deleted.
        """
        async with self.sessions() as session:
            idle = await session.execute(
                delete(ConversationRow).where(ConversationRow.updated_at < idle_before)
            )
            marks = await session.execute(
                delete(ShownNotificationRow).where(ShownNotificationRow.shown_at < shown_before)
            )
            await session.commit()
        return int(idle.rowcount or 0), int(marks.rowcount or 0)  # type: ignore[attr-defined]

    async def forget(self, chat: str) -> None:
        """Delete everything kept for a chat (its conversation and shown notifications)."""
        async with self.sessions() as session:
            await session.execute(delete(ConversationRow).where(ConversationRow.chat == chat))
            await session.execute(
                delete(ShownNotificationRow).where(ShownNotificationRow.chat == chat)
            )
            await session.commit()
