"""Many chats saved at the same moment: each save stands or fails on its own.

On SQLite the store sends the statements of chats saving at once to its
database thread together and commits them in one transaction; on PostgreSQL
each is its own. Either way a chat that raced (a stale version, a second
"first" save) gets ``StaleState`` alone, and every other chat's state and
transcript lines are there when read back by another process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.state import StaleState, StateStore
from bot.state_key import StateKey

KEY = StateKey("saves-at-once-key-not-for-production")
CHATS = 20


@pytest.fixture
async def store(bot_db_url: str) -> AsyncIterator[StateStore]:
    opened = StateStore.open(bot_db_url, KEY)
    try:
        yield opened
    finally:
        await opened.close()


async def _step(store: StateStore, chat: str, number: int) -> None:
    record = await store.load(chat)
    record.state = {"step": number}
    await store.save(record, lines=[("in", f"message {number}"), ("out", f"answer {number}")])


async def test_chats_saved_at_once_each_keep_their_own_state_and_lines(
    store: StateStore, bot_db_url: str
) -> None:
    chats = [f"tg:{n}" for n in range(CHATS)]
    await asyncio.gather(*(_step(store, chat, 1) for chat in chats))
    await asyncio.gather(*(_step(store, chat, 2) for chat in chats))

    other = StateStore.open(bot_db_url, KEY)
    try:
        for chat in chats:
            record = await other.load(chat)
            assert record.state == {"step": 2}
            assert record.version == 2
            assert [(line.seq, line.text) for line in record.lines] == [
                (1, "message 1"), (2, "answer 1"), (3, "message 2"), (4, "answer 2"),
            ]  # fmt: skip
    finally:
        await other.close()


async def test_a_stale_save_among_many_at_once_fails_alone(store: StateStore) -> None:
    chats = [f"tg:{n}" for n in range(CHATS)]
    await asyncio.gather(*(_step(store, chat, 1) for chat in chats))
    records = [await store.load(chat) for chat in chats]
    # Another bot saved chat 7 since this one loaded it.
    await _step(store, "tg:7", 2)

    for record in records:
        record.state = {"step": 3}
    outcomes = await asyncio.gather(
        *(store.save(record, lines=[("in", "late")]) for record in records),
        return_exceptions=True,
    )

    assert [chat for chat, outcome in zip(chats, outcomes, strict=True) if outcome] == ["tg:7"]
    assert isinstance(outcomes[7], StaleState)
    assert (await store.load("tg:7")).state == {"step": 2}
    assert (await store.load("tg:8")).state == {"step": 3}


async def test_two_first_saves_of_one_chat_at_once_keep_one_and_fail_the_other(
    store: StateStore,
) -> None:
    first, second = await store.load("tg:new"), await store.load("tg:new")
    first.state, second.state = {"by": "first"}, {"by": "second"}
    saved_too = await store.load("tg:other")
    saved_too.state = {"by": "other"}

    outcomes = await asyncio.gather(
        store.save(first), store.save(second), store.save(saved_too), return_exceptions=True
    )

    first_out, second_out, other_out = outcomes
    assert other_out is None
    # Exactly one of the two stands, whichever the database took first; the other is told.
    assert [first_out is None, second_out is None] in ([True, False], [False, True])
    assert isinstance(second_out if first_out is None else first_out, StaleState)
    kept = first if first_out is None else second
    assert (await store.load("tg:new")).state == kept.state
    assert (await store.load("tg:other")).state == {"by": "other"}
