"""Agent hand-over for channels: open an escalation, keep the transcript (``docs/backend-api.md``).

``POST /api/v1/escalations`` opens (or returns) a chat's escalation;
``POST /api/v1/chats/{chat}/messages`` adds one masked message to the
transcript and tells the channel whether an agent holds the chat, in which
case the channel does not run the dialog for it.
"""

from __future__ import annotations

import logging

from aiohttp import web

from backend import escalations, transcripts, verification
from backend.api.http import json_response, read_json, services
from backend.errors import Invalid
from backend.models.console import REASONS
from backend.validation import INVALID_CHAT, valid_chat
from common.vocabulary.locales import SHIPPED_LOCALES

log = logging.getLogger(__name__)

# Transcript lines from the bot may be several Telegram messages long.
MAX_TRANSCRIPT_TEXT = 16 * 1024


async def _customer_ref(request: web.Request, token: str | None) -> str | None:
    """The customer a live session token belongs to; None when absent, wrong or expired."""
    if not token:
        return None
    svc = services(request)
    async with svc.sessions() as session:
        return await verification.customer_for_session(session, svc.keyring, token, svc.clock.now())


async def create_escalation(request: web.Request) -> web.Response:
    """Open an escalation for a chat; 201 when new, 200 with the open one otherwise."""
    body = await read_json(request)
    fields: dict[str, str] = {}
    chat = valid_chat(body.get("chat"))
    if chat is None:
        fields["chat"] = INVALID_CHAT
    reason = body.get("reason")
    if reason not in REASONS:
        fields["reason"] = "invalid_reason"
    locale = body.get("locale")
    if locale not in SHIPPED_LOCALES:
        fields["locale"] = "invalid_locale"
    verified = body.get("verified", False)
    if not isinstance(verified, bool):
        fields["verified"] = "invalid_bool"
    token = body.get("session_token")
    if token is not None and not isinstance(token, str):
        fields["session_token"] = "invalid_token"  # noqa: S105 (a code, not a secret)
    if fields:
        raise Invalid(fields)
    assert chat is not None
    assert isinstance(reason, str)
    assert isinstance(locale, str)
    customer_ref = await _customer_ref(request, token)
    svc = services(request)
    now = svc.clock.now()
    async with svc.sessions() as session, session.begin():
        opened = await escalations.open_or_reuse(
            session,
            chat=chat,
            reason=reason,
            locale=locale,
            verified=verified or customer_ref is not None,
            customer_ref=customer_ref,
            at=now,
            actor="bot",
        )
    if opened.created:
        log.info("escalation %s opened (%s)", opened.id, reason)
    body_out = {"escalation_id": opened.id, "state": opened.state}
    return json_response(body_out, status=201 if opened.created else 200)


async def add_message(request: web.Request) -> web.Response:
    """Add a masked message to a chat's transcript; answer whether an agent holds the chat."""
    chat = valid_chat(request.match_info["chat"])
    body = await read_json(request)
    fields: dict[str, str] = {}
    if chat is None:
        fields["chat"] = INVALID_CHAT
    direction = body.get("direction")
    if direction not in ("in", "out"):
        fields["direction"] = "invalid_direction"
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        fields["text"] = "empty"
    elif len(text) > MAX_TRANSCRIPT_TEXT:
        fields["text"] = "too_long"
    if fields:
        raise Invalid(fields)
    assert chat is not None
    assert isinstance(direction, str)
    assert isinstance(text, str)
    svc = services(request)
    async with svc.sessions() as session, session.begin():
        await transcripts.record_message(
            session, chat=chat, direction=direction, text=text, at=svc.clock.now()
        )
        active = await escalations.agent_active(session, chat)
    return json_response({"agent_active": active}, status=201)


def setup(app: web.Application) -> None:
    app.router.add_post("/api/v1/escalations", create_escalation)
    app.router.add_post("/api/v1/chats/{chat}/messages", add_message)
