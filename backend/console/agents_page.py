"""``/console/agents`` (supervisors only): list, add, disable, enable, remove, reset a password.

The guard in ``backend.console.web`` refuses every ``/console/agents`` route to
anyone but a supervisor and checks the CSRF token of every POST. The changes
themselves, their audit entries (actor ``agent:<id>`` of the supervisor) and
their rules (the last supervisor stays; removed names are never reused) are
``backend.console.agents``'s, the same functions ``datadesk agents`` runs.

Each POST redirects back to the list with what was done (post/redirect/get);
a refusal shows the list again with the reason and a 4xx status.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from backend import escalations
from backend.api.http import SERVICES
from backend.console import agents
from backend.console.web import PREFIX, me, page, refuse
from backend.models.console import ROLES, Agent
from backend.services import Services

log = logging.getLogger(__name__)

# Status of each refusal, for a script reading the answer.
STATUS = {
    "no_such_agent": 404,
    "name_taken": 409,
    "last_supervisor": 409,
    "password_too_short": 422,
    "bad_name": 422,
    "bad_role": 422,
}
DONE = ("added", "disabled", "enabled", "removed", "password_reset", "role_changed")

Act = Callable[[AsyncSession, int, Any, str, datetime], Awaitable[Agent]]


def _svc(request: web.Request) -> Services:
    return request.config_dict[SERVICES]


async def agents_page(
    request: web.Request,
    *,
    error: str | None = None,
    error_agent: str = "",
    form: Any = None,
    status: int = 200,
) -> web.Response:
    """Every agent, removed ones last, with what a supervisor may do to each."""
    async with _svc(request).sessions() as session:
        rows = await agents.list_agents(session)
    done = request.query.get("done")
    done_id = request.query.get("agent", "")
    done_name = next((r.name for r in rows if str(r.id) == done_id), "")
    context = {
        "rows": [r for r in rows if r.state != "removed"],
        "removed": [r for r in rows if r.state == "removed"],
        "roles": ROLES,
        "min_length": agents.MIN_PASSWORD,
        "done": done if done in DONE and done_name else None,
        "done_name": done_name,
        "error": error,
        "error_agent": error_agent,
        "typed_name": str(form.get("name", "")) if form is not None else "",
        "typed_role": str(form.get("role", "agent")) if form is not None else "agent",
    }
    return page(request, "agents.html", context, status=status)


async def show(request: web.Request) -> web.Response:
    """GET the list of agents."""
    return await agents_page(request)


def _done(what: str, agent_id: int) -> web.HTTPFound:
    return web.HTTPFound(f"{PREFIX}/agents?done={what}&agent={agent_id}")


async def add(request: web.Request) -> web.StreamResponse:
    """Add an agent with a temporary password they must change at first login."""
    svc, current = _svc(request), me(request)
    form = await request.post()
    name, role = str(form.get("name", "")).strip(), str(form.get("role", ""))
    password = str(form.get("password", ""))
    if agents.name_problem(name):
        return await agents_page(request, error="bad_name", form=form, status=422)
    if role not in ROLES:
        return await agents_page(request, error="bad_role", form=form, status=422)
    try:
        async with svc.sessions() as session, session.begin():
            agent = await agents.add(
                session,
                name,
                role,
                password,
                actor=escalations.actor(current.id),
                at=svc.clock.now(),
                # The supervisor knows this password: the agent must replace it.
                must_change=True,
            )
    except agents.AgentError as exc:
        return await agents_page(
            request, error=exc.code, error_agent=name, form=form, status=STATUS[exc.code]
        )
    log.info("supervisor %s added agent %s", current.id, agent.id)
    raise _done("added", agent.id)


async def _disable(s: AsyncSession, key: int, form: Any, actor: str, at: datetime) -> Agent:
    return await agents.disable(s, key, actor=actor, at=at)


async def _enable(s: AsyncSession, key: int, form: Any, actor: str, at: datetime) -> Agent:
    return await agents.enable(s, key, actor=actor, at=at)


async def _remove(s: AsyncSession, key: int, form: Any, actor: str, at: datetime) -> Agent:
    return await agents.remove(s, key, actor=actor, at=at)


async def _reset(s: AsyncSession, key: int, form: Any, actor: str, at: datetime) -> Agent:
    password = str(form.get("password", ""))
    return await agents.reset_password(s, key, password, actor=actor, at=at)


async def _role(s: AsyncSession, key: int, form: Any, actor: str, at: datetime) -> Agent:
    return await agents.set_role(s, key, str(form.get("role", "")), actor=actor, at=at)


# URL word → (what the list then says was done, the change).
ACTIONS: dict[str, tuple[str, Act]] = {
    "disable": ("disabled", _disable),
    "enable": ("enabled", _enable),
    "remove": ("removed", _remove),
    "reset-password": ("password_reset", _reset),
    "role": ("role_changed", _role),
}


def _action(word: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    what, act = ACTIONS[word]

    async def handler(request: web.Request) -> web.StreamResponse:
        svc, current = _svc(request), me(request)
        form = await request.post()
        raw = request.match_info["agent_id"]
        if not raw.isdigit() or len(raw) > 9:
            return refuse(request, 404, "not_found")
        if word == "role" and str(form.get("role", "")) not in ROLES:
            return await agents_page(request, error="bad_role", status=422)
        try:
            async with svc.sessions() as session, session.begin():
                actor, now = escalations.actor(current.id), svc.clock.now()
                agent = await act(session, int(raw), form, actor, now)
        except agents.AgentError as exc:
            return await agents_page(
                request, error=exc.code, error_agent=exc.name, status=STATUS[exc.code]
            )
        log.info("supervisor %s: agent %s %s", current.id, agent.id, what)
        raise _done(what, agent.id)

    handler.__doc__ = f"POST: {word.replace('-', ' ')} one agent, then show the list again."
    return handler


def setup(console: web.Application) -> None:
    console.router.add_get("/agents", show)
    console.router.add_post("/agents", add)
    for word in ACTIONS:
        console.router.add_post(f"/agents/{{agent_id}}/{word}", _action(word))
