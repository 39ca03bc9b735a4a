"""Routes of the requests ledger: erasure previews, submitting requests, listing open ones.

See ``docs/backend-api.md`` ("Requests"). The customer is whoever the
``X-Customer-Session`` token was issued to, and only in the chat it was
issued in (``X-Customer-Chat``; the body's or query's ``chat`` must be that
chat too); chats are opaque strings.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from backend import ledger
from backend.api.customer import CHAT_HEADER, customer_ref
from backend.api.http import SERVICES, header_text, json_response, read_json, services
from backend.errors import (
    BadRequest,
    ConnectorError,
    Invalid,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
)
from backend.ledger.previews import make_preview, plan_to_api
from backend.retention import load_policy
from backend.validation import INVALID_CHAT, INVALID_TEXT, is_text, valid_chat
from common.vocabulary.categories import CATEGORIES
from common.vocabulary.locales import SHIPPED_LOCALES
from common.vocabulary.request_kinds import ACCESS, REQUEST_KINDS

MAX_KEY = 128


def idempotency_key(request: web.Request) -> str:
    """The request's ``Idempotency-Key`` header; ``BadRequest``/``Invalid`` when unusable."""
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        raise BadRequest("the Idempotency-Key header is required", code="missing_idempotency_key")
    if len(key) > MAX_KEY:
        raise Invalid({"idempotency_key": "too_long"})
    if not is_text(key) or not key.isprintable():
        raise Invalid({"idempotency_key": INVALID_TEXT})
    return key


def filing_chat(
    request: web.Request, body: dict[str, Any], more: dict[str, str] | None = None
) -> tuple[str, str]:
    """The body's ``chat`` and ``locale``, checked (``Invalid`` with ``more``'s fields too).

    ``customer_ref`` checked the header's chat; a request filed for another chat
    is refused alike (``session_expired``).
    """
    fields: dict[str, str] = {}
    chat, locale = valid_chat(body.get("chat")), body.get("locale")
    if chat is None:
        fields["chat"] = INVALID_CHAT
    if not isinstance(locale, str) or locale not in SHIPPED_LOCALES:
        fields["locale"] = "invalid_locale"
    fields.update(more or {})
    if fields:
        raise Invalid(fields)
    assert isinstance(chat, str)
    assert isinstance(locale, str)
    if chat != header_text(request, CHAT_HEADER):
        raise Unauthorized("the session was issued in another chat", code="session_expired")
    return chat, locale


async def erasure_preview(request: web.Request) -> web.Response:
    """``POST /api/v1/erasure-preview``: the customer's plan for a scope, stored."""
    ref = await customer_ref(request)
    body = await read_json(request)
    scope = body.get("scope")
    if (
        not isinstance(scope, list)
        or not scope
        or any(s not in (*CATEGORIES, "all") for s in scope)
    ):
        raise Invalid({"scope": "invalid_scope"})
    svc = services(request)
    try:
        record = await ledger.connector(svc).get(ref)
    except ConnectorError as exc:
        raise ServiceUnavailable("the CRM is not reachable", code="crm_unavailable") from exc
    if record is None:
        raise NotFound("the session's customer is no longer on file", code="customer_not_found")
    async with svc.sessions() as session:
        preview_id, plan = await make_preview(
            session,
            record=record,
            scope=[str(s) for s in scope],
            jurisdiction=svc.settings.jurisdiction,
            at=svc.clock.now(),
        )
        await session.commit()
    return json_response(plan_to_api(plan, preview_id), status=201)


async def submit_request(request: web.Request) -> web.Response:
    """``POST /api/v1/requests``: store a request once per Idempotency-Key."""
    ref = await customer_ref(request)
    key = idempotency_key(request)
    body = await read_json(request)
    kind = body.get("kind")
    if not isinstance(kind, str) or kind not in REQUEST_KINDS:
        raise BadRequest("unknown request kind", code="unknown_kind")
    if kind == ACCESS:
        raise BadRequest("ask for a copy with POST /api/v1/access", code="unknown_kind")
    payload_ok = isinstance(body.get("payload"), dict)
    chat, locale = filing_chat(request, body, None if payload_ok else {"payload": "invalid"})
    submitted = await ledger.submit(
        services(request),
        customer_ref=ref,
        chat=chat,
        locale=locale,
        kind=kind,
        payload=body["payload"],
        idempotency_key=key,
    )
    return json_response(submitted.body, status=201 if submitted.created else 200)


async def list_requests(request: web.Request) -> web.Response:
    """``GET /api/v1/requests?chat=``: the requests of the last 12 months of the customer verified in ``chat``."""
    chat = valid_chat(request.query.get("chat"))
    if chat is None:
        raise Invalid({"chat": INVALID_CHAT})
    ref = await customer_ref(request, chat)
    svc = services(request)
    async with svc.sessions() as session:
        found = await ledger.recent_requests(session, ref, svc.clock.now())
    return json_response({"requests": found})


def setup(app: web.Application) -> None:
    """Add the ledger's routes; a broken retention policy stops the start (ConfigError)."""
    load_policy().get(app[SERVICES].settings.jurisdiction)
    app.router.add_post("/api/v1/erasure-preview", erasure_preview)
    app.router.add_post("/api/v1/requests", submit_request)
    app.router.add_get("/api/v1/requests", list_requests)
