"""Console pages for agents: log in and out, the queue of escalated chats, one chat.

Handlers are thin: they read a form, call ``backend.escalations`` inside one
transaction (which writes the audit entry and the customer's notification),
and redirect back to the page (post/redirect/get), so a reload never resends.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from backend import audit, escalations, transcripts
from backend.api.http import SERVICES
from backend.console import auth, chatview, login_limits, shift
from backend.console import reveal as revealing
from backend.console.review import REJECT_REASONS
from backend.console.web import CANNED, LOGIN_PATH, PREFIX, Handler, me, page, refuse, set_cookie
from backend.crm.connector import CustomerRecord
from backend.errors import ApiError, NotFound
from backend.models.console import Escalation, TranscriptEntry
from backend.services import Services
from common.masking import mask_email, mask_phone, mask_text

log = logging.getLogger(__name__)


def _svc(request: web.Request) -> Services:
    return request.config_dict[SERVICES]


@dataclass(frozen=True)
class QueueRow:
    """One line of the queue, as the template shows it."""

    id: str
    reason: str
    locale: str
    verified: bool
    waited: str
    state: str
    mine: bool
    customer_ref: str | None = None
    holder: str | None = None
    since: datetime | None = None


async def queue_rows(request: web.Request) -> tuple[list[QueueRow], shift.Summary]:
    """The open escalations, the longest-waiting first, and the shift's summary of them."""
    svc, current = _svc(request), me(request)
    now = svc.clock.now()
    async with svc.sessions() as session:
        rows = await escalations.open_escalations(session)
        names = await chatview.agent_names(session, [row.taken_by for row in rows])
    shown = [
        QueueRow(
            id=row.id,
            reason=row.reason,
            locale=row.locale,
            verified=row.verified,
            # The wait stops at take-over: after that someone is with the customer.
            waited=chatview.wait_of(row, now),
            state=row.state,
            mine=row.taken_by == current.id,
            customer_ref=row.customer_ref,
            holder=names.get(row.taken_by) if row.taken_by is not None else None,
            since=row.taken_at,
        )
        for row in rows
    ]
    return shown, shift.summarise(rows, now)


async def login_form(request: web.Request) -> web.Response:
    """The login form, with a one-off CSRF token bound to a cookie (double submit)."""
    token = secrets.token_urlsafe(24)
    response = page(
        request,
        "login.html",
        {
            "login_csrf": token,
            "next": request.query.get("next", ""),
            "name": "",
            "failed": None,
            "wait_seconds": None,
            "wait_minutes": None,
        },
    )
    set_cookie(response, request, auth.LOGIN_COOKIE, token)
    return response


def _safe_next(target: str) -> str:
    # Only paths inside the console: never an open redirect to another site.
    if target.startswith(f"{PREFIX}/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{PREFIX}/"


async def login(request: web.Request) -> web.StreamResponse:
    """Check name and password; start a session or show why not."""
    form = await request.post()
    cookie = request.cookies.get(auth.LOGIN_COOKIE)
    submitted = form.get("csrf")
    if cookie is None or not isinstance(submitted, str) or not auth.csrf_ok(cookie, submitted):
        return refuse(request, 403, "csrf")
    name, password = str(form.get("name", "")), str(form.get("password", ""))
    svc = _svc(request)
    # The socket peer, or the client behind a trusted proxy (backend.console.proxies).
    client = request.remote or "unknown"
    device = request.cookies.get(login_limits.DEVICE_COOKIE)
    try:
        token, agent = await auth.log_in(svc, name, password, client, device)
    except auth.LoginRefused as refused:
        log.info("console login refused (%s)", refused.code)
        fresh = secrets.token_urlsafe(24)
        wait = refused.retry_after
        context = {
            "login_csrf": fresh,
            "next": form.get("next", ""),
            # The name stays typed so only the password need be typed again.
            "name": name,
            "failed": refused.code,
            "wait_seconds": wait,
            "wait_minutes": -(-wait // 60) if wait else None,
        }
        response = page(request, "login.html", context, status=401 if wait is None else 429)
        if wait is not None:
            response.headers["Retry-After"] = str(wait)
        set_cookie(response, request, auth.LOGIN_COOKIE, fresh)
        return response
    log.info("agent %s logged in", agent.id)
    response = web.HTTPFound(_safe_next(str(form.get("next", ""))))
    set_cookie(response, request, auth.COOKIE, token)
    lifetime = int(login_limits.DEVICE_LIFETIME.total_seconds())
    device_cookie = auth.new_device_cookie(svc, agent)
    set_cookie(response, request, login_limits.DEVICE_COOKIE, device_cookie, max_age=lifetime)
    response.del_cookie(auth.LOGIN_COOKIE, path=PREFIX)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    """End the session and go back to the login form."""
    svc, current = _svc(request), me(request)
    await auth.log_out(svc, current)
    async with svc.sessions() as session, session.begin():
        await audit.record(
            session,
            action="console.logout",
            actor=escalations.actor(current.id),
            at=svc.clock.now(),
        )
    response = web.HTTPFound(LOGIN_PATH)
    response.del_cookie(auth.COOKIE, path=PREFIX)
    raise response


async def queue(request: web.Request) -> web.Response:
    """The queue of escalated chats, with the shift's counts per reason and language."""
    rows, summary = await queue_rows(request)
    return page(request, "queue.html", {"rows": rows, "summary": summary})


async def queue_fragment(request: web.Request) -> web.Response:
    """Just the queue table and its counts, for the live page to swap in."""
    rows, summary = await queue_rows(request)
    return page(request, "queue_rows.html", {"rows": rows, "summary": summary})


async def _escalation(request: web.Request) -> Escalation:
    async with _svc(request).sessions() as session:
        return await escalations.get(session, request.match_info["id"])


async def _customer(request: web.Request, row: Escalation) -> CustomerRecord | None:
    return await chatview.customer_record(_svc(request), row.customer_ref)


def _masked_fields(record: CustomerRecord | None) -> dict[str, str]:
    if record is None:
        return {}
    phones, emails = dict(record.phones), dict(record.emails)
    primary_phone = next((p for p, primary in record.phones if primary), next(iter(phones), None))
    primary_email = next((e for e, primary in record.emails if primary), next(iter(emails), None))
    address = record.address
    return {
        "name": mask_text(record.name),
        "phone": mask_phone(primary_phone) if primary_phone else "",
        "email": mask_email(primary_email) if primary_email else "",
        "address": mask_text(f"{address.line1}, {address.city}, {address.postcode}")
        if address
        else "",
    }


async def chat_page(
    request: web.Request,
    *,
    revealed: dict[str, str] | None = None,
    error: str | None = None,
    retry_after: int | None = None,
    status: int = 200,
) -> web.Response:
    """One escalated chat: transcript (masked), customer fields, reply, hand back."""
    row = await _escalation(request)
    record = await _customer(request, row)
    now = _svc(request).clock.now()
    async with _svc(request).sessions() as session:
        entries: list[TranscriptEntry] = await transcripts.transcript(session, row.chat)
        head = await chatview.heading(session, row, record, now)
        requests = await chatview.requests_of(session, row)
        notes = await chatview.notes_of(session, row.chat)
        agents = await chatview.active_agents(session) if me(request).supervisor else []
    canned = [(c.id, c.title, c.text[row.locale]) for c in request.config_dict[CANNED]]
    context = {
        "es": row,
        "entries": entries,
        "last_id": entries[-1].id if entries else 0,
        "fields": _masked_fields(record),
        "revealed": revealed or {},
        "canned": canned,
        "head": head,
        "requests": requests,
        "notes": notes,
        "agents": agents,
        "cancel_reasons": REJECT_REASONS,
        "actions": True,
        "mine": row.state == "taken" and row.taken_by == me(request).id,
        # A supervisor may release a chat another agent left holding.
        "can_release": row.state == "taken" and me(request).supervisor,
        "can_reveal": revealing.may_reveal(row, me(request)),
        "reveal_per_hour": revealing.PER_HOUR,
        "error": error,
        "retry_minutes": -(-retry_after // 60) if retry_after else None,
    }
    response = page(request, "chat.html", context, status=status)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


async def show_chat(request: web.Request) -> web.Response:
    """GET the chat page; an unknown id gets the console's own 404 page."""
    try:
        return await chat_page(request)
    except NotFound:
        return refuse(request, 404, "not_found")


def _back(request: web.Request) -> web.HTTPFound:
    return web.HTTPFound(f"{PREFIX}/chats/{request.match_info['id']}")


async def _act(request: web.Request, action: str, form: Any) -> None:
    svc, current = _svc(request), me(request)
    es_id, now = request.match_info["id"], svc.clock.now()
    async with svc.sessions() as session, session.begin():
        if action == "take":
            await escalations.take_over(session, es_id, agent_id=current.id, at=now)
        elif action == "reply":
            text = str(form.get("text", ""))
            canned_id = form.get("canned")
            if canned_id:
                row = await escalations.get(session, es_id)
                chosen = {c.id: c for c in request.config_dict[CANNED]}.get(str(canned_id))
                text = chosen.text[row.locale] if chosen else text
            await escalations.reply(session, es_id, agent_id=current.id, text=text, at=now)
        elif action == "hand_back":
            resume = str(form.get("resume", "where_left_off"))
            await escalations.hand_back(
                session,
                es_id,
                agent_id=current.id,
                resume=resume,
                at=now,
                override=current.supervisor,
            )
        elif action == "close":
            await escalations.close(session, es_id, agent_id=current.id, at=now)


def _action(name: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        try:
            await _act(request, name, form)
        except ApiError as exc:
            return await chat_page(request, error=exc.code, status=exc.status)
        if name in ("hand_back", "close"):
            raise web.HTTPFound(f"{PREFIX}/")
        raise _back(request)

    handler.__doc__ = f"POST: {name.replace('_', ' ')} this chat, then show it again."
    return handler


async def reveal(request: web.Request) -> web.Response:
    """Show one customer field in clear, once, for a typed reason that goes to the audit log.

    Refusals answer with their status and code: the chat page for a browser,
    JSON for a script (``backend.console.reveal`` says who may, and how often).
    """
    form = await request.post()
    field, reason = str(form.get("field", "")), str(form.get("reason", ""))
    svc, current = _svc(request), me(request)
    try:
        clear = await revealing.reveal(svc, request.match_info["id"], current, field, reason)
    except NotFound:
        return refuse(request, 404, "not_found")
    except ApiError as exc:
        retry_after = exc.details.get("retry_after")
        if "text/html" not in request.headers.get("Accept", ""):
            response = web.json_response({"error": {"code": exc.code}}, status=exc.status)
            if retry_after is not None:
                response.headers["Retry-After"] = str(retry_after)
            return response
        return await chat_page(request, error=exc.code, retry_after=retry_after, status=exc.status)
    log.info("agent %s revealed %s on %s", current.id, field, request.match_info["id"])
    return await chat_page(request, revealed={field: clear})


def setup(console: web.Application) -> None:
    console.router.add_get("/login", login_form)
    console.router.add_post("/login", login)
    console.router.add_post("/logout", logout)
    console.router.add_get("/", queue)
    console.router.add_get("/queue", queue_fragment)
    console.router.add_get("/chats/{id}", show_chat)
    for name in ("take", "reply", "hand_back", "close"):
        console.router.add_post(f"/chats/{{id}}/{name.replace('_', '-')}", _action(name))
    console.router.add_post("/chats/{id}/reveal", reveal)
