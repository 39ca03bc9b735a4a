"""The transcript outbox notes a filed batch of several chats at once, never moving a mark back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.state import StateStore
from bot.state_key import StateKey

KEY = StateKey("transcript-marks-key-not-for-production")


@pytest.fixture
async def store(bot_db_url: str) -> AsyncIterator[StateStore]:
    opened = StateStore.open(bot_db_url, KEY)
    try:
        yield opened
    finally:
        await opened.close()


async def _said(store: StateStore, chat: str, *texts: str) -> None:
    record = await store.load(chat)
    record.state = {"said": len(texts)}
    await store.save(record, lines=[("in", text) for text in texts])


async def test_lines_of_several_chats_filed_in_one_batch_are_all_noted_and_not_filed_again(
    store: StateStore,
) -> None:
    await _said(store, "tg:1", "hello", "my code")
    await _said(store, "tg:2", "hi")
    await _said(store, "tg:3", "one", "two", "three")
    waiting = await store.unfiled_lines()
    assert sorted((line.chat, line.seq) for line in waiting) == [
        ("tg:1", 1), ("tg:1", 2), ("tg:2", 1), ("tg:3", 1), ("tg:3", 2), ("tg:3", 3),
    ]  # fmt: skip
    # The backend took chat 1's and chat 3's first two; chat 2's not yet.
    await store.filed_many({"tg:1": 2, "tg:3": 2})
    left = sorted((line.chat, line.seq) for line in await store.unfiled_lines())
    assert left == [("tg:2", 1), ("tg:3", 3)]
    # A late, older note does not bring filed lines back.
    await store.filed_many({"tg:1": 1, "tg:2": 1, "tg:3": 3})
    assert await store.unfiled_lines() == []
    # The next save of a chat keeps only lines after its mark.
    await _said(store, "tg:1", "again")
    assert [(line.chat, line.seq, line.text) for line in await store.unfiled_lines()] == [
        ("tg:1", 3, "again")
    ]
