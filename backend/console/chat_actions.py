"""What an agent does about a chat besides replying: notes, and a supervisor's interventions.

- ``POST /console/chats/{id}/note``: an internal note (any agent), audited,
  never sent to the customer (``backend.chat_notes``).
- ``POST /console/review/chats/{id}/reassign``: give a taken chat to another agent.
- ``POST /console/review/chats/{id}/requests/{reference}/retry | cancel``: a
  failed request tried again, a queued one cancelled (``backend.ledger.interventions``).

The supervisor routes sit under ``/console/review``, so the guard refuses them to
agents. Each answers with the chat page again (post/redirect/get), or the chat
page with the refusal's code and status.
"""

from __future__ import annotations

import logging

from aiohttp import web

from backend import chat_notes, escalations
from backend.api.http import SERVICES
from backend.console.pages import chat_page
from backend.console.web import PREFIX, me, refuse
from backend.errors import ApiError, Invalid, NotFound
from backend.ledger import interventions
from backend.services import Services

log = logging.getLogger(__name__)


def _svc(request: web.Request) -> Services:
    return request.config_dict[SERVICES]


def _back(request: web.Request) -> web.HTTPFound:
    return web.HTTPFound(f"{PREFIX}/chats/{request.match_info['id']}")


def _code(exc: ApiError) -> str:
    # Invalid carries one code per field; the page explains the first.
    fields = getattr(exc, "fields", None)
    return next(iter(fields.values())) if fields else exc.code


async def note(request: web.Request) -> web.StreamResponse:
    """Keep an internal note on the chat, then show the chat again."""
    form = await request.post()
    svc, current = _svc(request), me(request)
    try:
        async with svc.sessions() as session, session.begin():
            row = await escalations.get(session, request.match_info["id"])
            await chat_notes.add(
                session,
                row,
                agent_id=current.id,
                text=str(form.get("text", "")),
                at=svc.clock.now(),
            )
    except NotFound:
        return refuse(request, 404, "not_found")
    except ApiError as exc:
        return await chat_page(request, error=_code(exc), status=exc.status)
    log.info("agent %s noted %s", current.id, request.match_info["id"])
    raise _back(request)


async def reassign(request: web.Request) -> web.StreamResponse:
    """Give the chat to another agent (supervisors), with a reason for the audit log."""
    form = await request.post()
    svc, current = _svc(request), me(request)
    raw = str(form.get("agent", ""))
    try:
        if not raw.isdigit():
            raise Invalid({"agent": "invalid_agent"})
        async with svc.sessions() as session, session.begin():
            await escalations.reassign(
                session,
                request.match_info["id"],
                to_agent=int(raw),
                by_agent=current.id,
                reason=str(form.get("reason", "")),
                at=svc.clock.now(),
            )
    except NotFound:
        return refuse(request, 404, "not_found")
    except ApiError as exc:
        return await chat_page(request, error=_code(exc), status=exc.status)
    log.info("supervisor %s reassigned %s to agent %s", current.id, request.match_info["id"], raw)
    raise _back(request)


async def intervene(request: web.Request) -> web.StreamResponse:
    """Retry a failed request or cancel a queued one (supervisors), then show the chat."""
    form = await request.post()
    svc, current = _svc(request), me(request)
    reference, what = request.match_info["reference"], request.path.rsplit("/", 1)[-1]
    actor, now, reason = escalations.actor(current.id), svc.clock.now(), str(form.get("reason", ""))
    try:
        async with svc.sessions() as session, session.begin():
            # The chat must exist: the answer is its page.
            await escalations.get(session, request.match_info["id"])
            if what == "retry":
                await interventions.retry(session, reference, actor=actor, reason=reason, at=now)
            else:
                code = str(form.get("code", ""))
                await interventions.cancel(
                    session, reference, actor=actor, code=code, reason=reason, at=now
                )
    except ApiError as exc:
        if exc.code == "not_found" and exc.status == 404:
            return refuse(request, 404, "not_found")
        return await chat_page(request, error=_code(exc), status=exc.status)
    log.info("supervisor %s: %s %s", current.id, what, reference)
    raise _back(request)


def setup(console: web.Application) -> None:
    console.router.add_post("/chats/{id}/note", note)
    console.router.add_post("/review/chats/{id}/reassign", reassign)
    console.router.add_post("/review/chats/{id}/requests/{reference}/retry", intervene)
    console.router.add_post("/review/chats/{id}/requests/{reference}/cancel", intervene)
