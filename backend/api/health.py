"""Liveness, readiness and metrics on the backend's own port (``common.monitoring``).

``/readyz`` (and its older name ``/healthz``) answers 200 when the database
answers and still takes this process's key, 503 with the reason otherwise;
``/livez`` answers while the process runs; ``/metrics`` is this process's
registry, the ledger's gauges read from the database first.
"""

from __future__ import annotations

from aiohttp import web

from backend.api.http import SERVICES
from backend.metrics import monitoring
from common.monitoring import add_routes


def setup(app: web.Application) -> None:
    add_routes(app, monitoring(app[SERVICES]))
