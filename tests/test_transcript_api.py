"""``POST /api/v1/transcript``: numbered lines filed in batches, each (chat, seq) stored once."""

from __future__ import annotations

import asyncio
from typing import Any

from conftest import LiveBackend

from backend import transcripts
from backend.services import Services


async def _file(backend: LiveBackend, lines: list[dict[str, Any]] | Any) -> tuple[int, Any]:
    async with backend.client.post(
        backend.api("/api/v1/transcript"), json={"lines": lines}
    ) as resp:
        return resp.status, await resp.json()


def _line(chat: str, seq: int, text: str, direction: str = "in") -> dict[str, Any]:
    return {"chat": chat, "seq": seq, "direction": direction, "text": text}


async def _stored(services: Services, chat: str) -> list[tuple[int | None, str, str]]:
    async with services.sessions() as session:
        return [(e.seq, e.direction, e.text) for e in await transcripts.transcript(session, chat)]


async def test_a_batch_filed_twice_stores_each_line_once_in_order(
    backend: LiveBackend, services: Services
) -> None:
    batch = [_line("tg:1", 1, "hello"), _line("tg:1", 2, "menu", "out"), _line("tg:2", 1, "hi")]
    assert await _file(backend, batch) == (200, {"stored": 3, "already": 0})
    again = [*batch, _line("tg:1", 3, "[status]")]
    assert await _file(backend, again) == (200, {"stored": 1, "already": 3})
    assert await _stored(services, "tg:1") == [
        (1, "in", "hello"),
        (2, "out", "menu"),
        (3, "in", "[status]"),
    ]
    assert await _stored(services, "tg:2") == [(1, "in", "hi")]


async def test_two_bots_filing_the_same_lines_at_once_store_them_once(
    backend: LiveBackend, services: Services
) -> None:
    batch = [_line("tg:3", seq, f"line {seq}") for seq in range(1, 21)]
    answers = await asyncio.gather(*(_file(backend, batch) for _ in range(4)))
    assert all(status == 200 for status, _ in answers)
    assert sum(body["stored"] for _, body in answers) == 20
    assert [seq for seq, _, _ in await _stored(services, "tg:3")] == list(range(1, 21))


async def test_filed_lines_are_masked_again(backend: LiveBackend, services: Services) -> None:
    status, _ = await _file(backend, [_line("tg:4", 1, "card 4111 1111 1111 1111")])
    assert status == 200
    [(_, _, text)] = await _stored(services, "tg:4")
    assert "4111 1111 1111 1111" not in text
    assert "411111" in text


async def test_a_bad_line_is_refused_naming_it_and_nothing_is_stored(
    backend: LiveBackend, services: Services
) -> None:
    batch = [
        _line("tg:5", 1, "fine"),
        _line("tg:5", 0, "no number"),
        _line("tg:5", 2, "", "sideways"),
        {"chat": "c" * 200, "seq": True, "direction": "in", "text": "x" * 20000},
    ]
    status, body = await _file(backend, batch)
    assert status == 422
    assert body["error"]["code"] == "invalid"
    assert body["error"]["fields"] == {
        "lines.1.seq": "invalid_seq",
        "lines.2.direction": "invalid_direction",
        "lines.2.text": "empty",
        "lines.3.chat": "invalid_chat",
        "lines.3.seq": "invalid_seq",
        "lines.3.text": "too_long",
    }
    assert await _stored(services, "tg:5") == []


async def test_an_empty_or_missing_batch_is_refused(backend: LiveBackend) -> None:
    assert (await _file(backend, []))[0] == 422
    assert (await _file(backend, "lines"))[0] == 422
    async with backend.client.post(backend.api("/api/v1/transcript"), json={}) as resp:
        assert resp.status == 422
