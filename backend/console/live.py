"""The console's websocket: live queue changes and a chat's new messages.

``GET /console/live`` (optionally ``?chat=es_…&after=<entry id>``) upgrades to
a websocket that sends JSON events:

- ``{"type": "queue"}`` when escalations open, are taken, reassigned or end;
- ``{"type": "entries", "entries": [{"id", "direction", "text", "at"}]}`` for new
  transcript lines of the watched chat (already masked);
- ``{"type": "state", "state": "taken"}`` when the watched chat changes state or
  holder (a supervisor reassigned it);
- ``{"type": "session_ended"}`` before closing when the login session ends.

It reads the database every ``POLL_SECONDS`` rather than listening to this
process, so a customer message received by another backend process on the same
database shows up too. Watching does not keep the login session alive: idle
timeout counts what the agent does, not an open tab.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import Any

from aiohttp import WSMsgType, web
from sqlalchemy import select

from backend import escalations, transcripts
from backend.api.http import MAX_ID, SERVICES, query_number
from backend.console import auth
from backend.console.web import me
from backend.errors import NotFound
from backend.models.console import OPEN_STATES, ConsoleSession, Escalation
from backend.services import Services

POLL_SECONDS = 1.0
# As often as the page polls: a disabled agent's socket closes within seconds.
SESSION_CHECK_SECONDS = POLL_SECONDS
# Open sockets, closed when the server shuts down so it need not wait for browsers.
SOCKETS: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey("console_sockets")


async def _drain(ws: web.WebSocketResponse) -> None:
    # The page sends nothing we need; reading notices the close.
    async for message in ws:
        if message.type == WSMsgType.ERROR:
            return


async def _session_live(svc: Services, digest: str) -> bool:
    now = svc.clock.now()
    async with svc.sessions() as session:
        row = await session.get(ConsoleSession, digest)
    return (
        row is not None
        and row.ended_at is None
        and row.last_seen_at > now - auth.IDLE
        and row.created_at > now - auth.ABSOLUTE
    )


Queue = tuple[tuple[str, str, int | None], ...]


async def _snapshot(
    svc: Services, escalation_id: str | None, after: int
) -> tuple[Queue, list[dict[str, Any]], tuple[str, int | None] | None]:
    async with svc.sessions() as session:
        queue = tuple(
            (row.id, row.state, row.taken_by)
            for row in (
                await session.execute(
                    select(Escalation.id, Escalation.state, Escalation.taken_by).where(
                        Escalation.state.in_(OPEN_STATES)
                    )
                )
            ).all()
        )
        if escalation_id is None:
            return tuple(sorted(queue, key=lambda q: q[0])), [], None
        watched = await session.get(Escalation, escalation_id)
        if watched is None:
            return tuple(sorted(queue, key=lambda q: q[0])), [], None
        entries = await transcripts.transcript(session, watched.chat, after=after, limit=100)
    shown = [
        {"id": e.id, "direction": e.direction, "text": e.text, "at": e.at.strftime("%H:%M")}
        for e in entries
    ]
    return tuple(sorted(queue, key=lambda q: q[0])), shown, (watched.state, watched.taken_by)


async def live(request: web.Request) -> web.WebSocketResponse:
    """Push queue changes and a watched chat's new messages until the page goes away."""
    svc: Services = request.config_dict[SERVICES]
    current = me(request)
    watched = request.query.get("chat") or None
    # An entry id: beyond the column's range it would fail in the database, not here.
    after = int(query_number(request, "after", default=0, low=0, high=MAX_ID, integer=True))
    if watched is not None:
        async with svc.sessions() as session:
            try:
                await escalations.get(session, watched)
            except NotFound:
                watched = None
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    reader = asyncio.create_task(_drain(ws))
    loop = asyncio.get_running_loop()
    checked_at = loop.time()
    last_queue: Queue | None = None
    last_state: tuple[str, int | None] | None = None
    try:
        while not ws.closed and not reader.done():
            if loop.time() - checked_at > SESSION_CHECK_SECONDS:
                checked_at = loop.time()
                if not await _session_live(svc, current.token_digest):
                    await ws.send_json({"type": "session_ended"})
                    break
            queue, entries, state = await _snapshot(svc, watched, after)
            if last_queue is not None and queue != last_queue:
                await ws.send_json({"type": "queue"})
            last_queue = queue
            if entries:
                after = entries[-1]["id"]
                await ws.send_json({"type": "entries", "entries": entries})
            if state is not None and last_state is not None and state != last_state:
                await ws.send_json({"type": "state", "state": state[0]})
            last_state = state
            await asyncio.wait({reader}, timeout=POLL_SECONDS)
    except (ConnectionResetError, RuntimeError):
        pass  # the browser went away mid-send
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await ws.close()
    return ws


async def _close_sockets(app: web.Application) -> None:
    sockets = app[SOCKETS]
    for ws in list(sockets):
        await ws.close(code=1001, message=b"server shutdown")


def setup(console: web.Application) -> None:
    sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()
    console[SOCKETS] = sockets
    console.on_shutdown.append(_close_sockets)
    console.router.add_get("/live", live)
