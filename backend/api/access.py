"""``POST /api/v1/access``: a copy of the verified customer's data, answered at once.

See ``docs/backend-api.md`` ("Access") and ``backend.access``. The copy travels
in this answer only; the backend keeps the ledger row and its audit entries.
"""

from __future__ import annotations

from aiohttp import web

from backend import access
from backend.api.customer import CHAT_HEADER, customer_ref
from backend.api.http import header_text, json_response, read_json, services
from backend.api.requests import idempotency_key
from backend.errors import Invalid, Unauthorized
from backend.validation import INVALID_CHAT, valid_chat
from common.vocabulary.locales import SHIPPED_LOCALES


async def request_copy(request: web.Request) -> web.Response:
    """File an ``access`` request once per Idempotency-Key and answer with the copy."""
    ref = await customer_ref(request)
    key = idempotency_key(request)
    body = await read_json(request)
    fields: dict[str, str] = {}
    chat, locale = valid_chat(body.get("chat")), body.get("locale")
    if chat is None:
        fields["chat"] = INVALID_CHAT
    if not isinstance(locale, str) or locale not in SHIPPED_LOCALES:
        fields["locale"] = "invalid_locale"
    if fields:
        raise Invalid(fields)
    assert isinstance(chat, str)
    assert isinstance(locale, str)
    if chat != header_text(request, CHAT_HEADER):
        raise Unauthorized("the session was issued in another chat", code="session_expired")
    answered = await access.fulfil(
        services(request), customer_ref=ref, chat=chat, locale=locale, idempotency_key=key
    )
    return json_response(answered.body, status=201 if answered.created else 200)


def setup(app: web.Application) -> None:
    """Add the access route."""
    app.router.add_post("/api/v1/access", request_copy)
