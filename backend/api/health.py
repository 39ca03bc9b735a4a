"""Liveness and readiness: ``/healthz`` answers ok when the process runs, its database does, and its key is current."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import text

from backend.api.http import json_response, services
from backend.keys import key_is_current


async def healthz(request: web.Request) -> web.Response:
    """Answer 200 when the database answers and still takes this process's key, 503 otherwise."""
    svc = services(request)
    try:
        async with svc.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            current = await key_is_current(conn, svc.keyring)
    except Exception:
        return json_response({"status": "database unavailable"}, status=503)
    if not current:
        # A rotation retired this process's key, or the key table changed under it.
        return json_response({"status": "key not current"}, status=503)
    return json_response({"status": "ok"})


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
