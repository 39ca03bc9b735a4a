"""``POST /api/v1/access``: a copy of the verified customer's data, answered at once.

See ``docs/backend-api.md`` ("Access") and ``backend.access``. The copy travels
in this answer only; the backend keeps the ledger row and its audit entries.
"""

from __future__ import annotations

from aiohttp import web

from backend import access
from backend.api.customer import customer_ref
from backend.api.http import json_response, read_json, services
from backend.api.requests import filing_chat, idempotency_key


async def request_copy(request: web.Request) -> web.Response:
    """File an ``access`` request once per Idempotency-Key and answer with the copy."""
    ref = await customer_ref(request)
    key = idempotency_key(request)
    body = await read_json(request)
    chat, locale = filing_chat(request, body)
    answered = await access.fulfil(
        services(request), customer_ref=ref, chat=chat, locale=locale, idempotency_key=key
    )
    return json_response(answered.body, status=201 if answered.created else 200)


def setup(app: web.Application) -> None:
    """Add the access route."""
    app.router.add_post("/api/v1/access", request_copy)
