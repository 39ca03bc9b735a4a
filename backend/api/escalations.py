"""Agent hand-over for channels: open an escalation, keep the transcript (``docs/backend-api.md``).

``POST /api/v1/escalations`` opens (or returns) a chat's escalation;
``POST /api/v1/chats/{chat}/messages`` adds one masked message to the
transcript and tells the channel whether an agent holds the chat, in which
case the channel does not run the dialog for it; ``POST /api/v1/transcript``
files a batch of lines numbered per chat, each (chat, seq) once.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from sqlalchemy.exc import IntegrityError

from backend import escalations, transcripts, verification
from backend.api.http import json_response, read_json, services
from backend.errors import Invalid
from backend.models.console import CHANNEL_REASONS
from backend.validation import INVALID_CHAT, is_text, valid_chat
from common.vocabulary.locales import SHIPPED_LOCALES

log = logging.getLogger(__name__)

# Transcript lines from the bot may be several Telegram messages long.
MAX_TRANSCRIPT_TEXT = 16 * 1024
# Lines per ``POST /api/v1/transcript``; the body limit bounds it too.
MAX_TRANSCRIPT_BATCH = 500
MAX_SEQ = 2**62


async def _customer_ref(request: web.Request, token: str | None, chat: str) -> str | None:
    """The customer a live session token of ``chat`` belongs to; None when absent, wrong or expired."""
    if not token:
        return None
    svc = services(request)
    async with svc.sessions() as session:
        return await verification.customer_for_session(
            session, svc.keyring, token, svc.clock.now(), chat
        )


async def create_escalation(request: web.Request) -> web.Response:
    """Open an escalation for a chat; 201 when new, 200 with the open one otherwise."""
    body = await read_json(request)
    fields: dict[str, str] = {}
    chat = valid_chat(body.get("chat"))
    if chat is None:
        fields["chat"] = INVALID_CHAT
    reason = body.get("reason")
    if reason not in CHANNEL_REASONS:
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
    customer_ref = await _customer_ref(request, token, chat)
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


async def withdraw_escalation(request: web.Request) -> web.Response:
    """The customer stopped waiting for a person: close the chat's waiting escalation."""
    body = await read_json(request)
    chat = valid_chat(body.get("chat"))
    if chat is None:
        raise Invalid({"chat": INVALID_CHAT})
    svc = services(request)
    async with svc.sessions() as session, session.begin():
        withdrawn = await escalations.withdraw(session, chat, at=svc.clock.now())
    return json_response({"withdrawn": withdrawn})


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


def _numbered_lines(body: dict[str, Any]) -> list[transcripts.NumberedLine]:
    """The batch's lines, or Invalid naming each wrong field as ``lines.{i}.{field}``."""
    raw = body.get("lines")
    if not isinstance(raw, list) or not 0 < len(raw) <= MAX_TRANSCRIPT_BATCH:
        raise Invalid({"lines": "invalid_lines"})
    fields: dict[str, str] = {}
    lines: list[transcripts.NumberedLine] = []
    for number, item in enumerate(raw):
        where = f"lines.{number}"
        if not isinstance(item, dict):
            fields[where] = "invalid_line"
            continue
        chat, seq = valid_chat(item.get("chat")), item.get("seq")
        direction, text = item.get("direction"), item.get("text")
        if chat is None:
            fields[f"{where}.chat"] = INVALID_CHAT
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 < seq <= MAX_SEQ:
            fields[f"{where}.seq"] = "invalid_seq"
        if direction not in ("in", "out"):
            fields[f"{where}.direction"] = "invalid_direction"
        if not isinstance(text, str) or not text.strip():
            fields[f"{where}.text"] = "empty"
        elif len(text) > MAX_TRANSCRIPT_TEXT:
            fields[f"{where}.text"] = "too_long"
        elif not is_text(text):
            fields[f"{where}.text"] = "invalid_text"
        if not any(key.startswith(f"{where}.") for key in fields):
            assert chat is not None
            assert isinstance(seq, int)
            lines.append(transcripts.NumberedLine(chat, seq, str(direction), str(text)))
    if fields:
        raise Invalid(fields)
    return lines


async def file_transcript(request: web.Request) -> web.Response:
    """File a batch of numbered lines; a line already filed (same chat and seq) is skipped."""
    lines = _numbered_lines(await read_json(request))
    svc = services(request)
    for attempt in range(3):
        try:
            async with svc.sessions() as session, session.begin():
                stored = await transcripts.file_lines(session, lines, at=svc.clock.now())
        except IntegrityError:
            # Another bot filed some of the same lines at the same moment: look again.
            if attempt == 2:
                raise
            continue
        return json_response({"stored": stored, "already": len(lines) - stored})
    raise AssertionError("unreachable")


def setup(app: web.Application) -> None:
    app.router.add_post("/api/v1/escalations", create_escalation)
    app.router.add_post("/api/v1/escalations/withdraw", withdraw_escalation)
    app.router.add_post("/api/v1/chats/{chat}/messages", add_message)
    app.router.add_post("/api/v1/transcript", file_transcript)
