"""``/console/password``: an agent changes their own password.

After a password reset (``datadesk agents reset-password`` or the supervisors'
page) the guard in ``backend.console.web`` sends every page here until the
agent has chosen a new one. The form asks for the current password too, so a
session left open on a shared screen cannot be turned into a login; wrong
current passwords are counted like failed logins (five per 15 minutes per
agent, ``limits``), then refused until the window ends. A change ends the
agent's other sessions and is audited (``console.agent_password_changed``).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from aiohttp import web

from backend.api.http import SERVICES
from backend.console import agents, limits
from backend.console.web import PREFIX, me, page
from backend.services import Services

log = logging.getLogger(__name__)

TRIES = limits.Rule(window=timedelta(minutes=15), limit=5)


def _key(agent_id: int) -> str:
    return f"password:{agent_id}"


def _form(
    request: web.Request, *, error: str | None = None, status: int = 200, wait: int | None = None
) -> web.Response:
    context = {
        "forced": me(request).must_change_password,
        "error": error,
        "min_length": agents.MIN_PASSWORD,
        "wait_minutes": -(-wait // 60) if wait else None,
    }
    response = page(request, "password.html", context, status=status)
    if wait is not None:
        response.headers["Retry-After"] = str(wait)
    return response


async def show(request: web.Request) -> web.Response:
    """GET the change-password form."""
    return _form(request)


async def change(request: web.Request) -> web.StreamResponse:
    """Check the current password, set the new one, then go to the queue."""
    svc: Services = request.config_dict[SERVICES]
    current = me(request)
    form = await request.post()
    old, new, again = (str(form.get(f, "")) for f in ("current", "new", "again"))
    if new != again:
        return _form(request, error="passwords_differ", status=422)
    try:
        agents.check_new_password(new)
    except agents.BadPassword as exc:
        return _form(request, error=exc.code, status=422)
    if new == old:
        return _form(request, error="password_unchanged", status=422)
    now = svc.clock.now()
    try:
        # Counted and committed before argon2 runs, as a login attempt is (``auth``).
        async with svc.sessions() as session, session.begin():
            await limits.take(session, [(_key(current.id), TRIES)], now)
    except limits.LimitReached as reached:
        return _form(request, error="too_many_attempts", status=429, wait=reached.retry_after)
    try:
        async with svc.sessions() as session, session.begin():
            await agents.change_own_password(
                session, current.id, old, new, at=now, session_digest=current.token_digest
            )
            await limits.settle(session, give_back=(), forget=(_key(current.id),))
    except agents.BadPassword as exc:
        return _form(request, error=exc.code, status=422)
    except agents.NoSuchAgent:
        raise web.HTTPFound(f"{PREFIX}/login") from None
    log.info("agent %s changed their password", current.id)
    raise web.HTTPFound(f"{PREFIX}/")


def setup(console: web.Application) -> None:
    console.router.add_get("/password", show)
    console.router.add_post("/password", change)
