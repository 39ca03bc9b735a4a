"""The verified customer: ``GET /api/v1/me`` (masked only) and ``POST /api/v1/contact-proofs``.

Both need ``X-Customer-Session`` from a successful code check and
``X-Customer-Chat``, the chat it was issued in: a session is tied to its chat,
and the same token from another chat is refused like an expired one.
``customer_ref`` is the one helper every route about one customer uses to read
them; a route whose body or query names the chat passes that chat instead.
"""

from __future__ import annotations

from aiohttp import web

from backend.api.http import header_text, json_response, read_json, services
from backend.api.profile import profile
from backend.api.verification import refuse_bad_options, send_later, verifier
from backend.errors import Unauthorized
from backend.verification import customer_for_session

SESSION_HEADER = "X-Customer-Session"
CHAT_HEADER = "X-Customer-Chat"


async def customer_ref(request: web.Request, chat: str | None = None) -> str:
    """The customer whose session this request carries for ``chat``; else 401 session_expired.

    ``chat`` defaults to the ``X-Customer-Chat`` header.
    """
    svc = services(request)
    token = header_text(request, SESSION_HEADER)
    claimed = header_text(request, CHAT_HEADER) if chat is None else chat
    async with svc.sessions() as session:
        ref = await customer_for_session(session, svc.keyring, token, svc.clock.now(), claimed)
    if ref is None:
        raise Unauthorized(
            "missing, wrong or expired customer session, or not this chat's",
            code="session_expired",
        )
    return ref


async def me(request: web.Request) -> web.Response:
    """What the bot may show the verified customer: masked contacts, consent, open products."""
    ref = await customer_ref(request)
    return json_response(await profile(services(request), ref))


async def contact_proof(request: web.Request) -> web.Response:
    """Send a code to a new phone or email; checking it yields a ``proof_token``."""
    ref = await customer_ref(request)
    body = await read_json(request)
    refuse_bad_options(body, "locale")
    started = await verifier(request).start_proof(
        ref, body.get("kind"), body.get("value"), body.get("locale")
    )
    send_later(request, started)
    return json_response(started.to_json(), status=202)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/me", me)
    app.router.add_post("/api/v1/contact-proofs", contact_proof)
