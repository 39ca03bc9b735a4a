"""The notifications outbox over HTTP: long-poll, prefix, lease and redelivery, acknowledgement."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from conftest import SERVICE_TOKEN, LiveBackend, start_app
from sqlalchemy import func, select
from sqlalchemy import text as sa_text

from backend import notifications
from backend.api.app import create_app
from backend.models.ledger import Notification
from backend.services import Services
from common.clock import FakeClock


async def _enqueue(backend: LiveBackend, chat: str, **extra: Any) -> int:
    async with backend.services.sessions() as session:
        new_id = await notifications.enqueue(
            session,
            chat=chat,
            locale="lv",
            type=extra.pop("type", "request_outcome"),
            at=backend.services.clock.now(),
            **extra,
        )
        await session.commit()
    return new_id


async def _poll(backend: LiveBackend, **params: Any) -> list[dict[str, Any]]:
    async with backend.client.get(backend.api("/api/v1/notifications"), params=params) as r:
        assert r.status == 200, await r.text()
        found: list[dict[str, Any]] = (await r.json())["notifications"]
        return found


async def test_a_waiting_poll_answers_as_soon_as_something_is_enqueued(
    backend: LiveBackend,
) -> None:
    poll = asyncio.create_task(_poll(backend, wait=30))
    await asyncio.sleep(0.3)
    assert not poll.done()
    started = time.monotonic()
    await _enqueue(
        backend,
        "tg:42",
        reference="DD-7K2Q9M",
        outcome="partly_done",
        details={"erased": ["marketing"]},
    )
    found = await asyncio.wait_for(poll, timeout=5)
    assert time.monotonic() - started < 1.0
    assert found == [
        {
            "id": found[0]["id"],
            "chat": "tg:42",
            "locale": "lv",
            "type": "request_outcome",
            "reference": "DD-7K2Q9M",
            "outcome": "partly_done",
            "reason": None,
            "details": {"erased": ["marketing"]},
            "created_at": "2026-11-22T12:00:00Z",
        }
    ]


async def test_a_poll_with_nothing_to_say_returns_an_empty_list_after_its_wait(
    backend: LiveBackend,
) -> None:
    started = time.monotonic()
    assert await _poll(backend, wait=0.5) == []
    assert 0.4 <= time.monotonic() - started < 3


async def test_the_prefix_keeps_telegram_and_terminal_chats_apart(backend: LiveBackend) -> None:
    await _enqueue(backend, "tg:1")
    await _enqueue(backend, "term:1")
    await _enqueue(backend, "tg_x:1")  # an underscore is not a wildcard
    assert [n["chat"] for n in await _poll(backend, prefix="tg:")] == ["tg:1"]
    assert [n["chat"] for n in await _poll(backend, prefix="term:")] == ["term:1"]


async def test_an_unacknowledged_notification_comes_back_after_its_lease(
    backend: LiveBackend, clock: FakeClock
) -> None:
    first_id = await _enqueue(backend, "tg:42", type="agent_message", details={"text": "Hello"})
    assert [n["id"] for n in await _poll(backend)] == [first_id]
    assert await _poll(backend) == []
    clock.advance(seconds=59)
    assert await _poll(backend) == []
    clock.advance(seconds=2)
    again = await _poll(backend)
    assert [(n["id"], n["details"]) for n in again] == [(first_id, {"text": "Hello"})]


async def test_an_acknowledged_notification_is_never_handed_out_again(
    backend: LiveBackend, clock: FakeClock
) -> None:
    ids = [await _enqueue(backend, "tg:42") for _ in range(3)]
    assert [n["id"] for n in await _poll(backend, limit=2)] == ids[:2]
    async with backend.client.post(
        backend.api("/api/v1/notifications/ack"), json={"ids": ids[:2]}
    ) as r:
        assert r.status == 204
    clock.advance(minutes=5)
    assert [n["id"] for n in await _poll(backend)] == [ids[2]]
    async with backend.services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Notification)) == 1


async def test_two_pollers_never_get_the_same_notification(backend: LiveBackend) -> None:
    for i in range(20):
        await _enqueue(backend, f"tg:{i}")
    batches = await asyncio.gather(*(_poll(backend, limit=3) for _ in range(8)))
    ids = [n["id"] for batch in batches for n in batch]
    assert len(ids) == len(set(ids))


async def test_bad_parameters_and_bodies_are_refused_with_codes(backend: LiveBackend) -> None:
    async with backend.client.get(
        backend.api("/api/v1/notifications"), params={"wait": "forever"}
    ) as r:
        assert (r.status, (await r.json())["error"]["fields"]) == (422, {"wait": "invalid_number"})
    async with backend.client.get(backend.api("/api/v1/notifications"), params={"wait": "31"}) as r:
        assert (r.status, (await r.json())["error"]["fields"]) == (422, {"wait": "out_of_range"})
    async with backend.client.get(backend.api("/api/v1/notifications"), params={"limit": ""}) as r:
        assert (r.status, (await r.json())["error"]["fields"]) == (422, {"limit": "invalid_number"})
    async with backend.client.post(
        backend.api("/api/v1/notifications/ack"), json={"ids": ["x"]}
    ) as r:
        assert (r.status, (await r.json())["error"]["fields"]) == (422, {"ids": "invalid_ids"})
    async with backend.client.post(
        backend.api("/api/v1/notifications/ack"), data=b"{not json"
    ) as r:
        assert (r.status, (await r.json())["error"]["code"]) == (400, "malformed_json")
    async with backend.client.get(
        backend.api("/api/v1/notifications"), headers={"Authorization": "Bearer nope"}
    ) as r:
        assert (r.status, (await r.json())["error"]["code"]) == (401, "unauthorized")


async def test_a_waiting_poll_answers_at_once_when_the_server_shuts_down(
    services: Services,
) -> None:
    runner, url = await start_app(create_app(services))
    headers = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as client:

        async def poll() -> tuple[int, Any]:
            async with client.get(f"{url}/api/v1/notifications", params={"wait": 30}) as r:
                return r.status, await r.json()

        waiting = asyncio.create_task(poll())
        await asyncio.sleep(0.3)
        started = time.monotonic()
        stopping = asyncio.create_task(runner.cleanup())
        assert await asyncio.wait_for(waiting, timeout=5) == (200, {"notifications": []})
        await stopping
    assert time.monotonic() - started < 3


async def test_an_acknowledged_id_is_never_given_to_a_new_notification(
    backend: LiveBackend,
) -> None:
    first = await _enqueue(backend, "tg:42")
    async with backend.client.post(
        backend.api("/api/v1/notifications/ack"), json={"ids": [first]}
    ) as r:
        assert r.status == 204
    assert await _enqueue(backend, "tg:42") > first


async def test_a_poller_that_hung_up_does_not_take_the_next_notification_with_it(
    backend: LiveBackend,
) -> None:
    # A bot killed mid-poll leaves its request waiting on the server; what arrives
    # next must go to the bot that replaces it, not sit leased to the dead one.
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {SERVICE_TOKEN}"}
    ) as doomed:
        abandoned = asyncio.create_task(
            doomed.get(backend.api("/api/v1/notifications"), params={"wait": 30})
        )
        await asyncio.sleep(0.3)
        abandoned.cancel()
    await asyncio.sleep(0.3)
    await _enqueue(backend, "tg:42", reference="DD-7K2Q9M", outcome="done")
    await asyncio.sleep(0.5)
    found = await _poll(backend, wait=0)
    assert [n["reference"] for n in found] == ["DD-7K2Q9M"]


async def test_a_notification_altered_in_the_database_is_parked_and_the_rest_delivered(
    backend: LiveBackend,
) -> None:
    first = await _enqueue(backend, "tg:1", reference="DD-AAAAAA", details={"field": "phone"})
    second = await _enqueue(backend, "tg:2", reference="DD-BBBBBB", details={"field": "email"})
    third = await _enqueue(backend, "tg:3", reference="DD-CCCCCC", details={"field": "address"})
    async with backend.services.sessions() as session, session.begin():
        # Someone with database access copies the second's sealed details onto the first.
        sealed = await session.scalar(
            sa_text("SELECT details FROM notifications WHERE id = :i"), {"i": second}
        )
        await session.execute(
            sa_text("UPDATE notifications SET details = :d WHERE id = :i"),
            {"d": sealed, "i": first},
        )

    found = await _poll(backend)

    assert [(n["id"], n["details"]) for n in found] == [
        (second, {"field": "email"}),
        (third, {"field": "address"}),
    ]
    backend.services.clock.advance(hours=1)  # every lease has run out
    assert [n["id"] for n in await _poll(backend)] == [second, third]
