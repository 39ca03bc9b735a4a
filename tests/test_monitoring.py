"""``common.monitoring``'s listener: readiness is time-bounded, a failing gauge refresh never fails a scrape.

The listener is real (``serve`` on a loopback port); the probes and
refreshers are the test's, so a hanging database is a coroutine that never
returns.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
from e2e.conftest import free_port

from common import monitoring
from common.monitoring import Monitoring, serve


async def _get(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}{path}") as r:
        return r.status, await r.text()


async def test_a_hanging_readiness_check_answers_503_within_the_time_bound() -> None:
    async def hangs() -> str | None:
        await asyncio.Event().wait()
        return None

    port = free_port()
    async with serve("127.0.0.1", port, Monitoring(hangs)):
        started = time.monotonic()
        status, body = await _get(port, "/readyz")
        took = time.monotonic() - started
        # Alive all the same: restarting would not help.
        assert await _get(port, "/livez") == (200, '{"status": "ok"}')
    assert status == 503
    assert body == '{"status": "readiness check timed out"}'
    assert took < monitoring.CHECK_TIMEOUT + 1


async def test_readyz_and_healthz_say_what_is_wrong_and_recover_when_it_is_fixed() -> None:
    problem: list[str] = ["database unavailable"]

    async def probe() -> str | None:
        return problem[0] if problem else None

    port = free_port()
    async with serve("127.0.0.1", port, Monitoring(probe)):
        assert await _get(port, "/readyz") == (503, '{"status": "database unavailable"}')
        assert (await _get(port, "/healthz"))[0] == 503
        problem.clear()
        assert await _get(port, "/readyz") == (200, '{"status": "ok"}')
        assert (await _get(port, "/healthz"))[0] == 200


async def test_a_failing_gauge_refresh_still_answers_the_scrape_and_is_not_retried_at_once() -> (
    None
):
    calls: list[float] = []

    async def ready() -> str | None:
        return None

    async def broken() -> None:
        calls.append(time.monotonic())
        raise ConnectionError("database down")

    port = free_port()
    async with serve("127.0.0.1", port, Monitoring(ready, (broken,))):
        first = await _get(port, "/metrics")
        second = await _get(port, "/metrics")
    assert first[0] == second[0] == 200
    assert "process_cpu_seconds_total" in first[1]
    # Within REFRESH_EVERY a second scrape reads nothing again.
    assert len(calls) == 1
