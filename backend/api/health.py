"""Liveness and readiness: ``/healthz`` answers when the process runs and its database does."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import text

from backend.api.http import json_response, services


async def healthz(request: web.Request) -> web.Response:
    """Answer 200 when the database answers, 503 when it does not."""
    try:
        async with services(request).engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        return json_response({"status": "database unavailable"}, status=503)
    return json_response({"status": "ok"})


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
