"""The console's aiohttp sub-application under ``/console/``, and the guard in front of it.

Every console route sits behind ``guard``: without a live session a page
redirects to the login form and anything else answers 401; routes under
``/console/review`` and ``/console/agents`` answer 403 to anyone but a
supervisor; an agent whose password was reset is sent to
``/console/password`` before anything else (other requests answer 403);
every POST needs the session's CSRF token. The guard is a middleware of the sub-application,
so a route added later is protected without remembering to be. In front of it,
behind the operator's trusted reverse proxies, ``proxies`` sets the client
address that login limits count on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web

from backend.api.http import SERVICES
from backend.console import auth
from backend.console.canned import Canned
from backend.validation import is_text

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
PREFIX = "/console"
# Reachable without a session: the login form and the stylesheet/script it uses.
LOGIN_PATH = f"{PREFIX}/login"
PUBLIC = frozenset({LOGIN_PATH})
STATIC = f"{PREFIX}/static/"
SUPERVISOR_ONLY = (f"{PREFIX}/review", f"{PREFIX}/agents")
PASSWORD_PATH = f"{PREFIX}/password"
# What an agent who must change their password may still reach.
BEFORE_PASSWORD_CHANGE = frozenset({PASSWORD_PATH, f"{PREFIX}/logout"})

ME: web.RequestKey[auth.Me] = web.RequestKey("console_me", auth.Me)
CANNED: web.AppKey[list[Canned]] = web.AppKey("console_canned", list)

# Console chrome is for agents and stays in English; customer text lives in canned.yaml.
REASON_LABELS = {
    "asked": "Asked for a person",
    "lockout": "Locked out of verification",
    "misunderstanding": "Repeated misunderstanding",
    "failed_request": "A request failed",
    "possible_fraud": "Possible fraud: a contact change was undone",
}
LOCALE_LABELS = {
    "en": "English",
    "lv": "Latviešu",
    "ru": "Русский",
    "zh_Hans": "简体中文",
    "zh_Hant": "繁體中文",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # "same-origin", not "no-referrer": with no-referrer browsers send `Origin: null`.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def me(request: web.Request) -> auth.Me:
    """The signed-in agent (the guard has already checked there is one)."""
    return request[ME]


def is_https(request: web.Request) -> bool:
    """Whether the browser reached us over HTTPS, directly or through a TLS proxy.

    Trusting X-Forwarded-Proto here is safe: it can only make a cookie stricter.
    """
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def set_cookie(
    response: web.StreamResponse,
    request: web.Request,
    name: str,
    value: str,
    *,
    max_age: int | None = None,
) -> None:
    """A console cookie: HttpOnly, SameSite=Strict, Secure over HTTPS, scoped to /console.

    Without ``max_age`` it lasts as long as the browser session.
    """
    response.set_cookie(
        name,
        value,
        path=PREFIX,
        httponly=True,
        samesite="Strict",
        secure=is_https(request),
        max_age=max_age,
    )


def _same_origin(request: web.Request) -> bool:
    # No Origin: not a browser's cross-site request (those always send one on
    # POST and websocket upgrades); the CSRF token still has to match.
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == request.host


def page(
    request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200
) -> web.Response:
    """Render a console page with the signed-in agent and CSRF token in its context."""
    current = request.get(ME)
    full = {"me": current, "csrf": current.csrf if current else None, **context}
    return aiohttp_jinja2.render_template(template, request, full, status=status)


def refuse(request: web.Request, status: int, code: str) -> web.Response:
    """A refusal: a small HTML page for browsers, JSON for scripts."""
    if "text/html" in request.headers.get("Accept", ""):
        return page(request, "error.html", {"code": code}, status=status)
    return web.json_response({"error": {"code": code}}, status=status)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Session, role, origin and CSRF checks for every console route."""
    response = await _guarded(request, handler)
    for header, value in SECURITY_HEADERS.items():
        response.headers.setdefault(header, value)
    return response


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(STATIC):
        return await handler(request)
    unsafe = request.method not in ("GET", "HEAD") or bool(request.headers.get("Upgrade"))
    if unsafe and not _same_origin(request):
        return refuse(request, 403, "cross_origin")
    if request.path in PUBLIC:
        return await handler(request)
    svc = request.config_dict[SERVICES]
    token = request.cookies.get(auth.COOKIE)
    # A cookie with bytes that are not UTF-8 is no session (aiohttp hands
    # them over as lone surrogates, which the digest cannot encode).
    current = await auth.resume(svc, token) if token and is_text(token) else None
    if current is None:
        if request.method == "GET" and not request.headers.get("Upgrade"):
            target = quote(request.path_qs, safe="/?=&")
            raise web.HTTPFound(f"{LOGIN_PATH}?next={target}")
        return refuse(request, 401, "no_session")
    request[ME] = current
    if request.path == PREFIX:
        # The sub-application also receives its bare prefix; send it to the queue.
        raise web.HTTPFound(f"{PREFIX}/")
    if current.must_change_password and request.path not in BEFORE_PASSWORD_CHANGE:
        if request.method == "GET" and not request.headers.get("Upgrade"):
            raise web.HTTPFound(PASSWORD_PATH)
        return refuse(request, 403, "password_change_required")
    if request.path.startswith(SUPERVISOR_ONLY) and not current.supervisor:
        return refuse(request, 403, "supervisors_only")
    if request.method == "POST":
        submitted = request.headers.get("X-CSRF-Token")
        if submitted is None and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            form = await request.post()
            value = form.get("csrf")
            submitted = value if isinstance(value, str) else None
        if not auth.csrf_ok(current.csrf, submitted):
            return refuse(request, 403, "csrf")
    return await handler(request)


def setup(app: web.Application) -> None:
    """Mount the console under ``/console/`` on the backend application."""
    from backend.console import (
        agents_page,
        canned,
        chat_actions,
        history,
        live,
        pages,
        password,
        proxies,
        review,
    )

    trusted = app[SERVICES].settings.trusted_proxies
    console = web.Application(middlewares=[*proxies.middlewares(trusted), guard])
    console[SERVICES] = app[SERVICES]
    console[CANNED] = canned.load()
    env = aiohttp_jinja2.setup(
        console,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
    )
    env.globals.update(reason_labels=REASON_LABELS, locale_labels=LOCALE_LABELS)
    console.router.add_static("/static/", HERE / "static", name="static")
    pages.setup(console)
    review.setup(console)
    agents_page.setup(console)
    password.setup(console)
    chat_actions.setup(console)
    history.setup(console)
    live.setup(console)
    app.add_subapp(f"{PREFIX}/", console)
