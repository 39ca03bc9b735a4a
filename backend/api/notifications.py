"""Routes of the notifications outbox: long-poll and acknowledge (``docs/backend-api.md``)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from backend import notifications
from backend.api.http import MAX_ID, json_response, query_number, read_json, services
from backend.errors import Invalid
from backend.metrics import NOTIFICATION_LAG

# Set when the server starts shutting down, so waiting long polls answer at once.
CLOSING: web.AppKey[asyncio.Event] = web.AppKey("notifications_closing", asyncio.Event)

MAX_WAIT = 30.0
MAX_LIMIT = 100
MAX_ACK = 1000


async def poll(request: web.Request) -> web.Response:
    """``GET /api/v1/notifications?wait=30&limit=100&prefix=tg:``: lease what is due."""
    wait = query_number(request, "wait", default=0, low=0, high=MAX_WAIT)
    limit = int(
        query_number(request, "limit", default=MAX_LIMIT, low=1, high=MAX_LIMIT, integer=True)
    )
    prefix = request.query.get("prefix") or None
    svc = services(request)
    found = await notifications.wait_and_lease(
        svc.sessions,
        svc.clock,
        wait=wait,
        limit=limit,
        prefix=prefix,
        closing=request.app[CLOSING],
        gone=lambda: request.transport is None or request.transport.is_closing(),
    )
    return json_response({"notifications": [n.to_json() for n in found]})


async def acknowledge(request: web.Request) -> web.Response:
    """``POST /api/v1/notifications/ack`` with ``{"ids": [...]}``: done with these."""
    body = await read_json(request)
    ids = body.get("ids")
    if (
        not isinstance(ids, list)
        or len(ids) > MAX_ACK
        or any(not isinstance(i, int) or isinstance(i, bool) or not 0 < i <= MAX_ID for i in ids)
    ):
        raise Invalid({"ids": "invalid_ids"})
    svc = services(request)
    async with svc.sessions() as session:
        created = await notifications.ack(session, ids)
    now = svc.clock.now()
    for at in created:
        NOTIFICATION_LAG.observe(max(0.0, (now - at).total_seconds()))
    return web.Response(status=204)


async def _closing(app: web.Application) -> None:
    app[CLOSING].set()


def setup(app: web.Application) -> None:
    """Add the outbox's routes."""
    app[CLOSING] = asyncio.Event()
    app.on_shutdown.append(_closing)
    app.router.add_get("/api/v1/notifications", poll)
    app.router.add_post("/api/v1/notifications/ack", acknowledge)
