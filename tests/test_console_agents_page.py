"""The supervisors' agents page, the forced password change, and sessions that end at once.

Over real HTTP on the live backend, with a client that keeps cookies and
CSRF tokens like a browser tab (``fakes.console.ConsoleClient``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from conftest import LiveBackend
from fakes.console import PASSWORD, ConsoleClient, add_agent
from sqlalchemy import select

from backend.models.audit import AuditEntry
from backend.models.console import Agent
from backend.services import Services

TEMPORARY = "temporary password 1"
CHOSEN = "my own new password"


@pytest.fixture
async def tabs(backend: LiveBackend) -> AsyncIterator[list[ConsoleClient]]:
    """Browser tabs, each its own cookie jar (one person each)."""
    opened: list[ConsoleClient] = []
    yield opened
    for tab in opened:
        await tab.close()


@pytest.fixture
async def tab(backend: LiveBackend, tabs: list[ConsoleClient]) -> ConsoleClient:
    opened = ConsoleClient(backend.url)
    tabs.append(opened)
    return opened


def new_tab(backend: LiveBackend, tabs: list[ConsoleClient]) -> ConsoleClient:
    opened = ConsoleClient(backend.url)
    tabs.append(opened)
    return opened


async def agent_id(services: Services, name: str) -> int:
    async with services.sessions() as session:
        found = await session.scalar(select(Agent.id).where(Agent.name == name))
    assert found is not None
    return found


async def audit_about(services: Services, subject_id: int) -> list[tuple[str, str]]:
    async with services.sessions() as session:
        rows = await session.execute(
            select(AuditEntry.action, AuditEntry.actor)
            .where(AuditEntry.subject == f"agent:{subject_id}")
            .order_by(AuditEntry.id)
        )
        return [(r.action, r.actor) for r in rows]


def row_of(html: str, name: str) -> str:
    found = re.search(rf'<tr data-agent="{name}".*?</tr>', html, re.S)
    assert found, f"no row for {name}"
    return found.group(0)


async def supervisor_tab(
    backend: LiveBackend, tabs: list[ConsoleClient], services: Services
) -> tuple[ConsoleClient, int]:
    sam = await add_agent(services, "sam", "supervisor")
    tab = new_tab(backend, tabs)
    status, _ = await tab.log_in("sam")
    assert status == 302
    status, _ = await tab.get("/console/agents")
    assert status == 200
    return tab, sam


async def test_a_failed_login_keeps_the_name_typed(
    backend: LiveBackend, tab: ConsoleClient, services: Services
) -> None:
    await add_agent(services, "alice")
    status, html = await tab.log_in("alice", "not the password")
    assert status == 401
    assert 'name="name" value="alice"' in html
    assert re.search(r'name="password"[^>]*autofocus', html)
    status, fresh = await tab.get("/console/login")
    assert 'name="name" value=""' in fresh


async def test_a_supervisor_lists_agents_with_role_state_and_last_login(
    backend: LiveBackend, tabs: list[ConsoleClient], services: Services
) -> None:
    await add_agent(services, "alice")
    sup, _ = await supervisor_tab(backend, tabs, services)
    _, queue = await sup.get("/console/")
    assert 'href="/console/agents"' in queue
    _, html = await sup.get("/console/agents")
    alice, sam = row_of(html, "alice"), row_of(html, "sam")
    assert ">agent<" in alice
    assert ">enabled<" in alice
    assert ">never<" in alice
    assert ">supervisor<" in sam
    assert services.clock.now().strftime("%Y-%m-%d %H:%M") in sam
    assert "(you)" in sam


async def test_an_agent_added_on_the_page_must_change_the_password_first(
    backend: LiveBackend, tabs: list[ConsoleClient], services: Services
) -> None:
    sup, sam = await supervisor_tab(backend, tabs, services)
    status, where = await sup.post(
        "/console/agents", {"name": "ruta", "role": "agent", "password": TEMPORARY}
    )
    assert status == 302
    _, html = await sup.get(where)
    assert "ruta was added" in html
    assert "must change" in row_of(html, "ruta")
    ruta = await agent_id(services, "ruta")
    assert await audit_about(services, ruta) == [("console.agent_added", f"agent:{sam}")]

    agent = new_tab(backend, tabs)
    status, where = await agent.log_in("ruta", TEMPORARY)
    assert status == 302
    # Whatever page they asked for, the change-password page comes first.
    for path in ("/console/", "/console/chats/es_x", "/console/agents"):
        status, where = await agent.get(path)
        assert (status, where) == (302, "/console/password"), path
    status, _ = await agent.post("/console/chats/es_x/take")
    assert status == 403
    status, html = await agent.get("/console/password")
    assert status == 200
    assert "Your password was reset" in html

    status, html = await agent.post(
        "/console/password", {"current": TEMPORARY, "new": TEMPORARY, "again": TEMPORARY}
    )
    assert status == 422
    assert "must differ from the current one" in html
    status, html = await agent.post(
        "/console/password", {"current": TEMPORARY, "new": "short", "again": "short"}
    )
    assert status == 422
    assert "at least 12 characters" in html
    status, html = await agent.post(
        "/console/password", {"current": TEMPORARY, "new": CHOSEN, "again": CHOSEN + "!"}
    )
    assert status == 422
    assert "differ" in html
    status, html = await agent.post(
        "/console/password", {"current": "wrong one!!!!", "new": CHOSEN, "again": CHOSEN}
    )
    assert status == 422
    assert "current password is wrong" in html

    status, where = await agent.post(
        "/console/password", {"current": TEMPORARY, "new": CHOSEN, "again": CHOSEN}
    )
    assert (status, where) == (302, "/console/")
    status, html = await agent.get("/console/")
    assert status == 200
    assert "Escalated chats" in html
    assert ("console.agent_password_changed", f"agent:{ruta}") in await audit_about(services, ruta)
    # The new password is the one that logs in from now on.
    again = new_tab(backend, tabs)
    assert (await again.log_in("ruta", TEMPORARY))[0] == 401
    assert (await again.log_in("ruta", CHOSEN))[0] == 302


async def test_wrong_current_passwords_are_limited_like_logins(
    backend: LiveBackend, tab: ConsoleClient, services: Services
) -> None:
    await add_agent(services, "alice")
    await tab.log_in("alice")
    await tab.get("/console/password")
    for _ in range(5):
        status, _ = await tab.post(
            "/console/password", {"current": "guess guess guess", "new": CHOSEN, "again": CHOSEN}
        )
        assert status == 422
    status, html = await tab.post(
        "/console/password", {"current": PASSWORD, "new": CHOSEN, "again": CHOSEN}
    )
    assert status == 429
    assert "Too many wrong passwords" in html


async def test_disabling_an_agent_ends_their_session_at_once(
    backend: LiveBackend, tabs: list[ConsoleClient], services: Services
) -> None:
    alice = await add_agent(services, "alice")
    agent = new_tab(backend, tabs)
    await agent.log_in("alice")
    assert (await agent.get("/console/"))[0] == 200
    sup, sam = await supervisor_tab(backend, tabs, services)

    status, where = await sup.post(f"/console/agents/{alice}/disable")
    assert status == 302
    _, html = await sup.get(where)
    assert "alice was disabled" in html
    assert ">disabled<" in row_of(html, "alice")
    status, where = await agent.get("/console/")
    assert status == 302
    assert where.startswith("/console/login")
    assert (await agent.log_in("alice"))[0] == 401

    status, _ = await sup.post(f"/console/agents/{alice}/enable")
    assert status == 302
    assert (await agent.log_in("alice"))[0] == 302
    assert await audit_about(services, alice) == [
        ("console.agent_disabled", f"agent:{sam}"),
        ("console.agent_enabled", f"agent:{sam}"),
    ]


async def test_a_disabled_agents_open_websocket_is_told_and_closed(
    backend: LiveBackend, tabs: list[ConsoleClient], services: Services
) -> None:
    alice = await add_agent(services, "alice")
    agent = new_tab(backend, tabs)
    await agent.log_in("alice")
    sup, _ = await supervisor_tab(backend, tabs, services)
    async with agent.http.ws_connect(backend.url + "/console/live") as ws:
        await sup.post(f"/console/agents/{alice}/disable")
        message = await asyncio.wait_for(ws.receive_json(), timeout=5)
        assert message == {"type": "session_ended"}
        closing = await asyncio.wait_for(ws.receive(), timeout=5)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_a_password_reset_on_the_page_logs_the_agent_out_and_forces_a_change(
    backend: LiveBackend, tabs: list[ConsoleClient], services: Services
) -> None:
    alice = await add_agent(services, "alice")
    agent = new_tab(backend, tabs)
    await agent.log_in("alice")
    sup, sam = await supervisor_tab(backend, tabs, services)

    status, html = await sup.post(f"/console/agents/{alice}/reset-password", {"password": "short"})
    assert status == 422
    assert "at least 12 characters" in html
    status, where = await sup.post(
        f"/console/agents/{alice}/reset-password", {"password": TEMPORARY}
    )
    assert status == 302
    _, html = await sup.get(where)
    assert "password was reset" in html
    assert (await agent.get("/console/"))[1].startswith("/console/login")
    assert (await agent.log_in("alice", PASSWORD))[0] == 401
    assert (await agent.log_in("alice", TEMPORARY))[0] == 302
    assert await agent.get("/console/") == (302, "/console/password")
    assert ("console.agent_password_reset", f"agent:{sam}") in await audit_about(services, alice)


async def test_removing_an_agent_keeps_them_listed_as_removed_and_their_name_unused(
    backend: LiveBackend, tabs: list[ConsoleClient], services: Services
) -> None:
    alice = await add_agent(services, "alice")
    sup, sam = await supervisor_tab(backend, tabs, services)
    status, where = await sup.post(f"/console/agents/{alice}/remove")
    assert status == 302
    _, html = await sup.get(where)
    assert "alice was removed" in html
    assert '<tr data-agent="alice"' not in html
    assert re.search(rf'<li data-agent="alice">alice <span class="muted">id {alice}\b', html)
    assert await audit_about(services, alice) == [("console.agent_removed", f"agent:{sam}")]

    status, html = await sup.post(
        "/console/agents", {"name": "alice", "role": "agent", "password": TEMPORARY}
    )
    assert status == 409
    assert "The name alice is taken" in html
    assert 'name="name" value="alice"' in html  # the form keeps what was typed
    status, html = await sup.post(f"/console/agents/{alice}/enable")
    assert status == 404
    assert "no longer exists" in html


async def test_the_only_supervisor_cannot_disable_remove_or_demote_themselves(
    backend: LiveBackend, tabs: list[ConsoleClient], services: Services
) -> None:
    sup, sam = await supervisor_tab(backend, tabs, services)
    for path, form in (
        (f"/console/agents/{sam}/disable", {}),
        (f"/console/agents/{sam}/remove", {}),
        (f"/console/agents/{sam}/role", {"role": "agent"}),
    ):
        status, html = await sup.post(path, form)
        assert status == 409, path
        assert "sam is the only enabled supervisor" in html
    assert (await sup.get("/console/agents"))[0] == 200
    assert await audit_about(services, sam) == []


async def test_bad_input_on_the_page_is_answered_not_crashed(
    backend: LiveBackend, tabs: list[ConsoleClient], services: Services
) -> None:
    sup, sam = await supervisor_tab(backend, tabs, services)
    status, html = await sup.post(
        "/console/agents", {"name": "two words", "role": "agent", "password": TEMPORARY}
    )
    assert status == 422
    assert "without spaces" in html
    status, html = await sup.post(
        "/console/agents", {"name": "bob", "role": "admin", "password": TEMPORARY}
    )
    assert status == 422
    status, _ = await sup.post(f"/console/agents/{sam}/role", {"role": "root"})
    assert status == 422
    status, _ = await sup.post("/console/agents/99999/disable")
    assert status == 404
    status, _ = await sup.post("/console/agents/not-a-number/disable")
    assert status == 404
    status, _ = await sup.post("/console/agents/99999999999999999999/disable")
    assert status == 404


async def test_while_a_change_is_due_the_live_socket_is_refused(
    backend: LiveBackend, tab: ConsoleClient, services: Services
) -> None:
    await add_agent(services, "alice")
    async with services.sessions() as session, session.begin():
        agent = await session.scalar(select(Agent).where(Agent.name == "alice"))
        assert agent is not None
        agent.must_change_password = True
    await tab.log_in("alice")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await tab.http.ws_connect(backend.url + "/console/live")
    assert refused.value.status == 403


async def test_changing_ones_password_ends_ones_other_sessions_but_not_this_one(
    backend: LiveBackend, tabs: list[ConsoleClient], services: Services
) -> None:
    await add_agent(services, "alice")
    here, elsewhere = new_tab(backend, tabs), new_tab(backend, tabs)
    await here.log_in("alice")
    await elsewhere.log_in("alice")
    assert (await elsewhere.get("/console/"))[0] == 200
    await here.get("/console/password")
    status, where = await here.post(
        "/console/password", {"current": PASSWORD, "new": CHOSEN, "again": CHOSEN}
    )
    assert (status, where) == (302, "/console/")
    assert (await here.get("/console/"))[0] == 200
    status, where = await elsewhere.get("/console/")
    assert status == 302
    assert where.startswith("/console/login")
