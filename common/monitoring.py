"""Prometheus metrics, liveness and readiness, served the same way by every datadesk process.

Each process has one registry, ``REGISTRY`` (Python's process and garbage
collector metrics included); the bot's and the backend's metrics are defined
on it in ``bot/metrics.py`` and ``backend/metrics.py``. Several processes on
one host each serve their own: Prometheus scrapes every one and adds them up.

Every process answers:

- ``GET /metrics``: the registry in Prometheus' text format. Gauges read from
  a database are refreshed first, at most every ``REFRESH_EVERY`` seconds and
  within ``CHECK_TIMEOUT`` (a scrape that finds the database slow gets the
  last values, never a hang);
- ``GET /livez``: 200 while the event loop answers; nothing else is checked,
  so a restart never fixes what a database outage broke;
- ``GET /readyz``: 200 when the process can do its job (its ``Probe`` says
  so within ``CHECK_TIMEOUT``), else 503 with ``{"status": "<what is wrong>"}``;
- ``GET /healthz``: the same as ``/readyz`` (the older name, kept).

The backend adds these routes to its own application (``add_routes``); the
worker and the bot serve them on a listener of their own (``serve``), on the
port an operator sets (``WORKER_METRICS_PORT``, ``BOT_METRICS_PORT``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from common.access_log import AccessLogger

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

# A readiness check or a gauge refresh that takes longer than this failed.
CHECK_TIMEOUT = 2.0
# Gauges read from a database are read again at most this often.
REFRESH_EVERY = 5.0

# None when ready, else a short reason (no personal data: it is answered to anyone).
Probe = Callable[[], Awaitable[str | None]]
Refresh = Callable[[], Awaitable[None]]


class Monitoring:
    """What one process's ``/metrics`` and ``/readyz`` ask: its readiness probe and gauge refreshers."""

    def __init__(self, ready: Probe, refreshers: tuple[Refresh, ...] = ()) -> None:
        self.ready = ready
        self.refreshers = refreshers
        self._refreshed = -REFRESH_EVERY
        self._refreshing = asyncio.Lock()

    async def readiness(self) -> str | None:
        """The probe's answer, or a reason when it raised or took too long."""
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                return await self.ready()
        except TimeoutError:
            return "readiness check timed out"
        except Exception as exc:
            log.warning("readiness check failed: %s", type(exc).__name__)
            return "readiness check failed"

    async def refresh(self) -> None:
        """Run the refreshers unless they ran within ``REFRESH_EVERY``; failures keep the last values."""
        async with self._refreshing:
            if time.monotonic() - self._refreshed < REFRESH_EVERY:
                return
            for refresher in self.refreshers:
                try:
                    async with asyncio.timeout(CHECK_TIMEOUT):
                        await refresher()
                except Exception as exc:
                    log.warning("metrics refresh failed: %s", type(exc).__name__)
            self._refreshed = time.monotonic()

    # ---- handlers ---------------------------------------------------------

    async def metrics(self, _: web.Request) -> web.Response:
        """``GET /metrics``: Prometheus' text format."""
        await self.refresh()
        body = generate_latest(REGISTRY)
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def livez(self, _: web.Request) -> web.Response:
        """``GET /livez``: the process answers."""
        return _status(200, "ok")

    async def readyz(self, _: web.Request) -> web.Response:
        """``GET /readyz`` (and ``/healthz``): 200 when ready, 503 with the reason otherwise."""
        problem = await self.readiness()
        return _status(503, problem) if problem else _status(200, "ok")


def _status(status: int, text: str) -> web.Response:
    return web.Response(
        status=status, text=json.dumps({"status": text}), content_type="application/json"
    )


def add_routes(app: web.Application, monitoring: Monitoring) -> None:
    """``/metrics``, ``/livez``, ``/readyz`` and ``/healthz`` on ``app``."""
    app.router.add_get("/metrics", monitoring.metrics)
    app.router.add_get("/livez", monitoring.livez)
    app.router.add_get("/readyz", monitoring.readyz)
    app.router.add_get("/healthz", monitoring.readyz)


@contextlib.asynccontextmanager
async def serve(host: str, port: int, monitoring: Monitoring) -> AsyncIterator[None]:
    """A listener of its own on ``host:port`` for the routes above, while the block runs; port 0: none."""
    if not port:
        yield None
        return
    app = web.Application()
    add_routes(app, monitoring)
    runner = web.AppRunner(app, access_log_class=AccessLogger)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        log.info("metrics and health on http://%s:%d/metrics", host, port)
        yield None
    finally:
        await runner.cleanup()
