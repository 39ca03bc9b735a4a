"""Who may use the console: sessions, roles, CSRF, login limits, cookies; every route checked.

The routes are read from the running application's router, so a route added
later is checked without anyone remembering to add it here.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web
from conftest import LiveBackend
from fakes.console import ConsoleClient, add_agent, audit_actions
from yarl import URL

from backend.services import Services
from common.clock import FakeClock

PUBLIC = {"/console/login"}
SAMPLE = {"id": "es_doesnotexist", "reference": "DD-0000AA"}


def _walk(app: web.Application) -> Iterator[tuple[str, str]]:
    for resource in app.router.resources():
        if isinstance(resource, web.PrefixedSubAppResource):
            # A mounted sub-application's routes already carry its prefix.
            yield from _walk(resource._app)
            continue
        if isinstance(resource, web.StaticResource):
            continue
        path = resource.canonical
        path = re.sub(r"\{(\w+)(?::[^}]*)?\}", lambda m: SAMPLE.get(m.group(1), "x"), path)
        for route in resource:
            if route.method != "HEAD":
                yield route.method, path


def console_routes(backend: LiveBackend) -> list[tuple[str, str]]:
    """Every (method, concrete path) the console serves, read from the live router."""
    from backend.api.app import create_app

    app = create_app(backend.services)
    found = sorted({r for r in _walk(app) if r[1].startswith("/console")})
    assert ("GET", "/console/") in found  # the walk did reach into the sub-application
    return found


@pytest.fixture
async def browser(backend: LiveBackend) -> AsyncIterator[ConsoleClient]:
    client = ConsoleClient(backend.url)
    try:
        yield client
    finally:
        await client.close()


async def test_no_console_route_answers_without_a_session(
    backend: LiveBackend, browser: ConsoleClient
) -> None:
    routes = [r for r in console_routes(backend) if r[1] not in PUBLIC]
    assert len(routes) >= 10
    for method, path in routes:
        if method == "GET":
            status, where = await browser.get(path)
            assert status == 302, (method, path)
            assert where.startswith("/console/login"), (method, path)
        else:
            status, _ = await browser.post(path, {"text": "hi"})
            assert status in (401, 403), (method, path)


async def test_an_agent_without_the_supervisor_role_gets_403_on_every_supervisor_route(
    backend: LiveBackend, browser: ConsoleClient, services: Services
) -> None:
    from backend.console.web import SUPERVISOR_ONLY

    await add_agent(services, "alice", "agent")
    await browser.log_in("alice")
    status, queue = await browser.get("/console/")
    assert status == 200
    assert "/console/review" not in queue  # no link to it either
    assert "/console/agents" not in queue
    assert {"/console/review", "/console/agents"} <= set(SUPERVISOR_ONLY)
    review = [r for r in console_routes(backend) if r[1].startswith(SUPERVISOR_ONLY)]
    assert {m for m, _ in review} == {"GET", "POST"}
    assert len([p for _, p in review if p.startswith("/console/agents")]) >= 7
    for method, path in review:
        if method == "GET":
            status, _ = await browser.get(path)
        else:
            status, _ = await browser.post(path, {"reason_code": "duplicate_request"})
        assert status == 403, (method, path)


async def test_a_supervisor_sees_the_review_queue(
    backend: LiveBackend, browser: ConsoleClient, services: Services
) -> None:
    await add_agent(services, "sam", "supervisor")
    await browser.log_in("sam")
    _, queue = await browser.get("/console/")
    assert "/console/review" in queue
    status, page = await browser.get("/console/review")
    assert status == 200
    assert "Nothing is waiting for review" in page


async def test_every_post_without_the_csrf_token_is_refused(
    backend: LiveBackend, browser: ConsoleClient, services: Services
) -> None:
    await add_agent(services, "sam", "supervisor")
    await browser.log_in("sam")
    await browser.get("/console/")
    posts = [p for m, p in console_routes(backend) if m == "POST" and p not in PUBLIC]
    for path in posts:
        status, page = await browser.post(path, {"text": "hi"}, csrf=False)
        assert status == 403, path
        assert "csrf" in page
        status, _ = await browser.post(path, {"text": "hi", "csrf": "forged"})
        assert status == 403, path
    # The session itself survived: the forged posts did nothing, logging out did not happen.
    status, _ = await browser.get("/console/")
    assert status == 200


async def test_the_login_form_itself_needs_its_csrf_token(
    backend: LiveBackend, browser: ConsoleClient, services: Services
) -> None:
    await add_agent(services, "alice")
    status, _ = await browser.post(
        "/console/login", {"name": "alice", "password": "x" * 20}, csrf=False
    )
    assert status == 403


async def test_a_post_from_another_site_is_refused(
    backend: LiveBackend, browser: ConsoleClient, services: Services
) -> None:
    await add_agent(services, "alice")
    await browser.log_in("alice")
    await browser.get("/console/")
    status, _ = await browser.post("/console/logout", headers={"Origin": "https://evil.example"})
    assert status == 403


async def test_a_wrong_password_is_refused_the_same_way_for_any_name_and_audited(
    backend: LiveBackend, browser: ConsoleClient, services: Services
) -> None:
    agent = await add_agent(services, "alice")
    status, page = await browser.log_in("alice", "not the password")
    assert status == 401
    assert "Wrong name or password" in page
    status, page = await browser.log_in("nobody", "not the password")
    assert status == 401
    assert "Wrong name or password" in page
    assert await audit_actions(services) == [
        ("console.login", f"agent:{agent}", "wrong_password"),
        ("console.login", "unknown", "wrong_password"),
    ]


async def test_login_is_locked_after_five_failures_until_the_window_passes(
    backend: LiveBackend, browser: ConsoleClient, services: Services, clock: FakeClock
) -> None:
    await add_agent(services, "alice")
    for _ in range(5):
        status, _ = await browser.log_in("alice", "guess")
        assert status == 401
    status, page = await browser.log_in("alice")  # even the right password
    assert status == 429
    assert "Too many failed attempts" in page
    clock.advance(minutes=16)
    status, where = await browser.log_in("alice")
    assert status == 302
    assert where == "/console/"


async def test_a_session_ends_after_15_idle_minutes(
    backend: LiveBackend, browser: ConsoleClient, services: Services, clock: FakeClock
) -> None:
    await add_agent(services, "alice")
    await browser.log_in("alice")
    clock.advance(minutes=14)
    status, _ = await browser.get("/console/")
    assert status == 200  # activity resets the idle timer
    clock.advance(minutes=14)
    status, _ = await browser.get("/console/")
    assert status == 200
    clock.advance(minutes=15, seconds=1)
    status, where = await browser.get("/console/")
    assert status == 302
    assert where.startswith("/console/login")


async def test_after_logout_the_old_cookie_opens_nothing(
    backend: LiveBackend, browser: ConsoleClient, services: Services
) -> None:
    await add_agent(services, "alice")
    await browser.log_in("alice")
    await browser.get("/console/")
    cookie = browser.http.cookie_jar.filter_cookies(URL(backend.url + "/console/"))[
        "datadesk_console"
    ]
    status, where = await browser.post("/console/logout")
    assert (status, where) == (302, "/console/login")
    async with browser.http.get(
        backend.url + "/console/",
        allow_redirects=False,
        cookies={"datadesk_console": cookie.value},
    ) as resp:
        assert resp.status == 302
    actions = [a for a, _, _ in await audit_actions(services)]
    assert actions[-2:] == ["console.login", "console.logout"]


async def test_the_session_cookie_is_httponly_strict_and_secure_behind_https(
    backend: LiveBackend, browser: ConsoleClient, services: Services
) -> None:
    await add_agent(services, "alice")
    await browser.get("/console/login")
    async with browser.http.post(
        backend.url + "/console/login",
        data={
            "name": "alice",
            "password": "correct horse battery staple",
            "csrf": browser.csrf or "",
        },
        headers={"X-Forwarded-Proto": "https"},
        allow_redirects=False,
    ) as resp:
        cookie = resp.cookies["datadesk_console"]
        assert resp.status == 302
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert cookie["secure"]
    assert cookie["path"] == "/console"


async def test_pages_forbid_framing_and_caching(
    backend: LiveBackend, browser: ConsoleClient
) -> None:
    async with browser.http.get(backend.url + "/console/login") as resp:
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["Cache-Control"] == "no-store"


async def test_a_login_never_redirects_off_the_console(
    backend: LiveBackend, browser: ConsoleClient, services: Services
) -> None:
    await add_agent(services, "alice")
    await browser.get("/console/login?next=//evil.example/")
    status, where = await browser.post(
        "/console/login",
        {"name": "alice", "password": "correct horse battery staple", "next": "//evil.example/"},
    )
    assert (status, where) == (302, "/console/")


async def test_one_address_guessing_many_names_is_stopped_too(
    backend: LiveBackend, browser: ConsoleClient, services: Services
) -> None:
    await add_agent(services, "alice")
    for n in range(20):
        status, _ = await browser.log_in(f"guess{n}", "wrong")
        assert status == 401
    status, page = await browser.log_in("alice")
    assert status == 429
    assert "Too many failed attempts" in page


async def test_a_session_ends_after_twelve_hours_however_busy(
    services: Services, clock: FakeClock
) -> None:
    from backend.console import auth

    await add_agent(services, "alice")
    token, _ = await auth.log_in(services, "alice", "correct horse battery staple", "127.0.0.1")
    for _ in range(71):
        clock.advance(minutes=10)
        assert await auth.resume(services, token) is not None
    clock.advance(minutes=10)
    assert await auth.resume(services, token) is None


async def test_a_failed_login_keeps_no_typed_text(
    backend: LiveBackend, browser: ConsoleClient, services: Services
) -> None:
    await browser.log_in("my-secret-password-in-the-name-field", "x")
    async with services.engine.connect() as conn:
        keys = list((await conn.exec_driver_sql("SELECT key FROM console_limits")).scalars())
        stored = " ".join(keys)
    assert len(keys) == 3  # the failure was counted: per pair, per client, per name
    assert "my-secret-password" not in stored
    assert "127.0.0.1" not in stored
