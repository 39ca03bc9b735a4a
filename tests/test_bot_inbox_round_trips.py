"""The webhook inbox's lease, as two bot processes see it, on SQLite and PostgreSQL.

A drain takes the chat's lease and reads its pending updates together
(``take_pending``: one statement on PostgreSQL), and marks the last one applied
as it lets the lease go (``release``), then looks for updates stored meanwhile.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text as sql

from bot.state_key import StateKey
from bot.telegram.inbox import Inbox
from common.db import make_engine

KEY = StateKey("inbox-test-key-not-for-production")
CHAT = "4242"


@pytest.fixture
async def inboxes(bot_db_url: str) -> AsyncIterator[tuple[Inbox, Inbox]]:
    engine = make_engine(bot_db_url)
    first, second = Inbox(engine, KEY, "bot-a"), Inbox(engine, KEY, "bot-b")
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()
        await engine.dispose()


def _update(update_id: int, text: str) -> dict[str, object]:
    return {"update_id": update_id, "message": {"text": text, "chat": {"id": int(CHAT)}}}


async def test_one_process_takes_a_chat_s_updates_in_order_the_other_waits(
    inboxes: tuple[Inbox, Inbox],
) -> None:
    a, b = inboxes
    for update_id, text in ((12, "second"), (11, "first")):
        assert await a.put(update_id, CHAT, _update(update_id, text))
    taken = await a.take_pending(CHAT)
    assert taken is not None
    assert [(u, d["message"]["text"]) for u, d, _ in taken if d] == [(11, "first"), (12, "second")]
    # While A holds the lease, B gets nothing, even an update B stored itself.
    assert await b.put(13, CHAT, _update(13, "third"))
    assert await b.take_pending(CHAT) is None
    # A marks 11 and 12 applied; letting go it sees 13 waiting and takes it next.
    await a.applied(11)
    assert await a.release(CHAT, applied=12) is True
    again = await b.take_pending(CHAT)
    assert again is not None
    assert [p.update_id for p in again] == [13]
    assert await b.release(CHAT, applied=13) is False


async def test_a_free_chat_with_nothing_pending_is_taken_with_nothing_to_do(
    inboxes: tuple[Inbox, Inbox],
) -> None:
    a, b = inboxes
    assert await a.take_pending(CHAT) == []
    assert await b.take_pending(CHAT) is None
    assert await a.release(CHAT) is False
    assert await b.take_pending(CHAT) == []


async def test_a_redelivered_update_is_stored_once_and_an_applied_one_not_taken_again(
    inboxes: tuple[Inbox, Inbox],
) -> None:
    a, b = inboxes
    assert await a.put(21, CHAT, _update(21, "hello"))
    assert not await b.put(21, CHAT, _update(21, "hello"))
    taken = await b.take_pending(CHAT)
    assert taken is not None
    assert [p.update_id for p in taken] == [21]
    assert await b.release(CHAT, applied=21) is False
    assert await a.take_pending(CHAT) == []


async def test_a_failed_update_stays_pending_with_its_attempts_and_one_given_up_keeps_no_body(
    inboxes: tuple[Inbox, Inbox], bot_db_url: str
) -> None:
    a, b = inboxes
    assert await a.put(31, CHAT, _update(31, "my new phone"))
    assert await a.put(32, CHAT, _update(32, "next"))
    await a.failed(31, 1)
    await a.release(CHAT)
    # Another process (the first died) sees the count so far, and the order kept.
    taken = await b.take_pending(CHAT)
    assert taken is not None
    assert [(p.update_id, p.attempts) for p in taken] == [(31, 1), (32, 0)]
    await b.given_up(31, 4)
    assert await b.release(CHAT, applied=32) is False
    assert await a.take_pending(CHAT) == []
    engine = make_engine(bot_db_url)
    try:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    sql(
                        "SELECT body, attempts, given_up_at FROM telegram_inbox WHERE update_id = 31"
                    )
                )
            ).one()
    finally:
        await engine.dispose()
    assert row.body == ""
    assert row.attempts == 4
    assert row.given_up_at is not None
