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

The row is also the chat's transcript outbox: the lines an update produced
are numbered per chat (``transcript_seq``) and saved, sealed, in the same
single-statement write as the state that answered them; ``transcript_filed``
is the last number the backend confirmed (``bot.transcript`` files them). A
save keeps only the lines after it. So a line exists exactly when its state
does: a bot killed before the write files nothing, after it files the line
(perhaps twice, which the backend ignores by number).
"""

from __future__ import annotations

import functools
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Index,
    MetaData,
    String,
    Table,
    Text,
    Update,
    bindparam,
    delete,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bot.state_key import SealError, StateKey
from common.db import NAMING, Autocommit, UTCDateTime, make_engine, make_sessionmaker

# The bot database's Alembic migrations; ``datadesk db upgrade`` runs them.
BOT_MIGRATIONS = Path(__file__).resolve().parent / "migrations"

log = logging.getLogger(__name__)


class BotBase(DeclarativeBase):
    """Declarative base of the bot's own tables; they live apart from the backend's."""

    metadata = MetaData(naming_convention=NAMING)


class ConversationRow(BotBase):
    """One chat's conversation: engine state, action context and unfiled lines, encrypted."""

    __tablename__ = "conversations"

    chat: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[str] = mapped_column(Text)
    context: Mapped[str] = mapped_column(Text)
    agent_active: Mapped[bool]
    version: Mapped[int]
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_update_id: Mapped[int | None] = mapped_column(BigInteger)
    transcript_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")
    transcript_filed: Mapped[int] = mapped_column(BigInteger, server_default="0")
    transcript_lines: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        # The flusher's question, "which chats have lines to file?", reads only these.
        Index(
            "ix_conversations_unfiled",
            "chat",
            sqlite_where=text("transcript_seq > transcript_filed"),
            postgresql_where=text("transcript_seq > transcript_filed"),
        ),
    )


class ShownNotificationRow(BotBase):
    """A backend notification already shown in a chat (delivery is at least once)."""

    __tablename__ = "shown_notifications"

    chat: Mapped[str] = mapped_column(String(128), primary_key=True)
    notification_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    shown_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StaleState(Exception):
    """Another writer saved this chat since it was loaded; load again and retry."""


@dataclass(frozen=True)
class Line:
    """One transcript line: ``seq`` numbers it within its chat, from 1."""

    chat: str
    seq: int
    direction: str
    text: str
    at: datetime

    def to_json(self) -> list[Any]:
        return [self.seq, self.direction, self.text, self.at.isoformat()]

    @functools.cached_property
    def encoded(self) -> str:
        """``to_json`` as JSON text, made once: every save writes all the unfiled lines again."""
        return orjson.dumps(self.to_json()).decode()

    @classmethod
    def from_json(cls, chat: str, raw: list[Any]) -> Line:
        seq, direction, said, at = raw
        return cls(chat, int(seq), str(direction), str(said), datetime.fromisoformat(at))


@dataclass
class ChatRecord:
    """What the store keeps for one chat; ``version`` 0 means never saved.

    ``last_update_id`` is the channel's id of the last update handled in the
    chat (None: none yet, or a channel without ids); ``updated_at`` when the
    record was last saved, as loaded (None: never saved); ``transcript_seq``
    the number of the chat's last transcript line, ``transcript_filed`` the
    last one the backend has, ``lines`` those after it, oldest first.
    """

    chat: str
    state: dict[str, Any] | None = None
    context: dict[str, Any] = field(default_factory=dict)
    agent_active: bool = False
    version: int = 0
    last_update_id: int | None = None
    updated_at: datetime | None = None
    transcript_seq: int = 0
    transcript_filed: int = 0
    lines: list[Line] = field(default_factory=list)
    # The state and context as last read or written (JSON): a save seals and
    # writes a column again only when it changed.
    stored: tuple[str | None, str | None] = (None, None)
    # Loaded from this process's memory, not read back from the database.
    remembered: bool = False


def _json(value: Any) -> str:
    # Sorted, so that an unchanged state gives the same text and is not sealed again.
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()


_CONVERSATION: Table = ConversationRow.__table__  # type: ignore[assignment]
_SHOWN: Table = ShownNotificationRow.__table__  # type: ignore[assignment]
_LOAD = select(
    _CONVERSATION.c.state,
    _CONVERSATION.c.context,
    _CONVERSATION.c.agent_active,
    _CONVERSATION.c.version,
    _CONVERSATION.c.last_update_id,
    _CONVERSATION.c.updated_at,
    _CONVERSATION.c.transcript_seq,
    _CONVERSATION.c.transcript_filed,
    _CONVERSATION.c.transcript_lines,
)
_LOAD_ONE = _LOAD.where(_CONVERSATION.c.chat == bindparam("key_chat"))

_FILED = (
    update(_CONVERSATION)
    .where(_CONVERSATION.c.chat == bindparam("key_chat"))
    .where(_CONVERSATION.c.transcript_filed < bindparam("seq"))
    .values(transcript_filed=bindparam("seq"))
)


@functools.cache
def _update_for(columns: frozenset[str]) -> Update:
    """The version-checked UPDATE of these columns, built once: a save costs no statement building."""
    return (
        update(_CONVERSATION)
        .where(_CONVERSATION.c.chat == bindparam("key_chat"))
        .where(_CONVERSATION.c.version == bindparam("key_version"))
        .values({name: bindparam(f"v_{name}") for name in sorted(columns)})
    )


class StateStore:
    """Loads and saves ``ChatRecord``s in the bot database (SQLite or PostgreSQL).

    The hot path (``load``, ``save``, the transcript outbox, shown marks) runs
    single statements through ``common.db.Autocommit.execute``: no BEGIN,
    COMMIT or reset round trips around them. Profiling ``bench/engine.py``
    showed the time went to round trips to aiosqlite's thread, not to SQL:
    the ORM session's load-then-save took 13 of them per update, single
    statements on aiosqlite 3; on SQLite a save now goes to the database
    thread with those of every chat saving at that moment, one hop and one
    commit for all of them, and a polling bot's load costs none.
    """

    def __init__(self, engine: AsyncEngine, key: StateKey, *, remember: int = 0) -> None:
        self.engine = engine
        self.sessions: async_sessionmaker[AsyncSession] = make_sessionmaker(engine)
        # Each hot-path statement is its own transaction.
        self._auto = Autocommit(engine)
        self.key = key
        # The records this process saved last, newest last: with one bot process per
        # token (polling) nobody else writes them, so a load need not read them back.
        # Should another writer have saved meanwhile, the save's version check fails,
        # the entry is dropped and the caller loads afresh (StaleState).
        self._remember = remember
        self._recent: OrderedDict[str, ChatRecord] = OrderedDict()

    @classmethod
    def open(cls, url: str, key: StateKey, *, remember: int = 0) -> StateStore:
        """A store on the (already migrated) database at ``url``.

        ``remember`` > 0 keeps that many chats' last saved records in memory;
        only for a process that is the only writer of its chats (polling mode).
        """
        return cls(make_engine(url), key, remember=remember)

    async def close(self) -> None:
        """Release the database connections."""
        await self._auto.close()
        await self.engine.dispose()

    def _seal(self, chat: str, column: str, plain: str) -> str:
        return self.key.seal(plain, bound_to=f"{chat}\x00{column}")

    def _open(self, chat: str, column: str, sealed: str) -> str:
        return self.key.open(sealed, bound_to=f"{chat}\x00{column}")

    def _lines(self, chat: str, sealed: str | None, filed: int) -> list[Line]:
        """The unfiled lines kept in a row; ones that do not open are dropped with a warning."""
        if not sealed:
            return []
        try:
            raw = orjson.loads(self._open(chat, "transcript", sealed))
            lines = [Line.from_json(chat, item) for item in raw]
        except (SealError, ValueError, TypeError) as exc:
            log.warning(
                "chat %s: unfiled transcript lines do not open (%s)", chat, type(exc).__name__
            )
            return []
        return [line for line in lines if line.seq > filed]

    async def load(self, chat: str) -> ChatRecord:
        """The chat's record, or a fresh one; unreadable state starts over rather than crash."""
        recent = self._recent.get(chat)
        if recent is not None:
            self._recent.move_to_end(chat)
            state_json, context_json = recent.stored
            return replace(
                recent,
                state=orjson.loads(state_json) if state_json else None,
                context=orjson.loads(context_json) if context_json else {},
                lines=list(recent.lines),
                remembered=True,
            )
        found = (await self._auto.execute(_LOAD_ONE, {"key_chat": chat})).rows
        if not found:
            return ChatRecord(chat=chat)
        row = found[0]
        record = ChatRecord(
            chat=chat,
            agent_active=bool(row.agent_active),
            version=row.version,
            last_update_id=row.last_update_id,
            updated_at=row.updated_at,
            transcript_seq=row.transcript_seq,
            transcript_filed=row.transcript_filed,
            lines=self._lines(chat, row.transcript_lines, row.transcript_filed),
        )
        try:
            state_json = self._open(chat, "state", row.state)
            context_json = self._open(chat, "context", row.context)
            state, context = orjson.loads(state_json), orjson.loads(context_json)
        except (SealError, ValueError) as exc:
            # Sealed under another key (the shared key of earlier versions, a
            # changed bot key) or damaged: the customer starts again (keeping
            # the version so the next save still detects races).
            log.warning(
                "chat %s: saved conversation does not open (%s); it starts again at the menu",
                chat,
                type(exc).__name__,
            )
            return record
        record.state = state if isinstance(state, dict) else None
        record.context = context if isinstance(context, dict) else {}
        record.stored = (state_json, context_json)
        return record

    async def save(
        self,
        record: ChatRecord,
        now: datetime | None = None,
        lines: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Write ``record`` if nobody else did since it was loaded; bump its version.

        ``lines`` (direction, text) join the chat's transcript outbox in the
        same statement, numbered after the chat's last line: they exist
        exactly when the state that answered them is saved.
        """
        now = now or datetime.now(UTC)
        chat = record.chat
        state_json, context_json = _json(record.state), _json(record.context)
        added = [
            Line(chat, record.transcript_seq + number, direction, said, now)
            for number, (direction, said) in enumerate(lines, start=1)
        ]
        unfiled = [line for line in record.lines if line.seq > record.transcript_filed] + added
        values: dict[str, Any] = {
            "agent_active": record.agent_active,
            "version": record.version + 1,
            "updated_at": now,
            "last_update_id": record.last_update_id,
            "transcript_seq": record.transcript_seq + len(added),
        }
        # Only what changed is sealed and written again: most updates leave the context be.
        if record.version == 0 or state_json != record.stored[0]:
            values["state"] = self._seal(chat, "state", state_json)
        if record.version == 0 or context_json != record.stored[1]:
            values["context"] = self._seal(chat, "context", context_json)
        if added or unfiled != record.lines:
            plain = "[" + ",".join(line.encoded for line in unfiled) + "]"
            values["transcript_lines"] = self._seal(chat, "transcript", plain) if unfiled else None
        try:
            if record.version == 0:
                await self._auto.execute(insert(_CONVERSATION).values(chat=chat, **values))
            else:
                params = {f"v_{name}": value for name, value in values.items()}
                result = await self._auto.execute(
                    _update_for(frozenset(values)),
                    {**params, "key_chat": chat, "key_version": record.version},
                )
                if result.rowcount != 1:
                    raise StaleState(chat)
        except IntegrityError as exc:
            self._recent.pop(chat, None)
            raise StaleState(chat) from exc
        except StaleState:
            self._recent.pop(chat, None)
            raise
        record.version += 1
        record.updated_at = now
        record.transcript_seq += len(added)
        record.lines = unfiled
        record.stored = (state_json, context_json)
        if self._remember:
            self._recent[chat] = replace(
                record, state=None, context={}, lines=list(unfiled), remembered=False
            )
            self._recent.move_to_end(chat)
            while len(self._recent) > self._remember:
                self._recent.popitem(last=False)

    async def unfiled_lines(self, chats: int = 100) -> list[Line]:
        """The lines not yet filed of up to ``chats`` chats, each chat's in order."""
        query = (
            select(
                _CONVERSATION.c.chat,
                _CONVERSATION.c.transcript_seq,
                _CONVERSATION.c.transcript_filed,
                _CONVERSATION.c.transcript_lines,
            )
            .where(_CONVERSATION.c.transcript_seq > _CONVERSATION.c.transcript_filed)
            .limit(chats)
        )
        rows = (await self._auto.execute(query)).rows
        found: list[Line] = []
        for row in rows:
            lines = self._lines(row.chat, row.transcript_lines, row.transcript_filed)
            if lines:
                found += lines
            else:
                # Nothing left that opens (the key changed): or the chat is asked about forever.
                await self.filed(row.chat, row.transcript_seq)
        return found

    async def filed(self, chat: str, seq: int) -> None:
        """The backend has the chat's lines up to ``seq``: later saves drop them.

        Only ``transcript_filed`` moves (never back), and the version does not:
        a conversation saved meanwhile is not disturbed.
        """
        await self.filed_many({chat: seq})

    async def filed_many(self, marks: dict[str, int]) -> None:
        """``filed`` for several chats (chat → seq) in one executemany.

        The transcript filer notes a whole batch at once: one statement per
        chat was one round trip per chat per batch (100 at 100 customers).
        """
        if not marks:
            return
        await self._auto.execute(
            _FILED, [{"key_chat": chat, "seq": seq} for chat, seq in marks.items()]
        )
        for chat, seq in marks.items():
            recent = self._recent.get(chat)
            if recent is not None and recent.transcript_filed < seq:
                recent.transcript_filed = seq

    async def mark_shown(
        self, chat: str, notification_id: int, now: datetime | None = None
    ) -> bool:
        """Record a notification as shown; False if it already was (one autocommit statement)."""
        try:
            await self._auto.execute(
                insert(_SHOWN).values(
                    chat=chat,
                    notification_id=notification_id,
                    shown_at=now or datetime.now(UTC),
                )
            )
        except IntegrityError:
            return False
        return True

    async def was_shown(self, chat: str, notification_id: int) -> bool:
        """Whether a notification was already shown in the chat (one autocommit statement)."""
        shown = _SHOWN.c
        found = await self._auto.execute(
            select(shown.notification_id)
            .where(shown.chat == chat)
            .where(shown.notification_id == notification_id)
        )
        return bool(found.rows)

    async def prune(self, *, idle_before: datetime, shown_before: datetime) -> tuple[int, int]:
        """Delete conversations idle since ``idle_before`` and older shown-notification marks.

        Conversation state holds what customers typed; it is kept only while a
        conversation may still resume. Returns (conversations, marks) deleted.
        """
        self._recent.clear()
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
        """Delete everything kept for a chat: conversation (unfiled lines too) and shown marks."""
        self._recent.pop(chat, None)
        async with self.sessions() as session:
            await session.execute(delete(ConversationRow).where(ConversationRow.chat == chat))
            await session.execute(
                delete(ShownNotificationRow).where(ShownNotificationRow.chat == chat)
            )
            await session.commit()
