"""Helpers for the console tests: agents in the database and a browser-like HTTP client.

``ConsoleClient`` keeps cookies like a browser and reads the CSRF token out of
the last page it fetched, as a form would carry it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import aiohttp
from sqlalchemy import select

from backend.console.auth import hash_password
from backend.models.audit import AuditEntry
from backend.models.console import Agent
from backend.services import Services

if TYPE_CHECKING:
    from conftest import LiveBackend

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def add_agent(
    services: Services, name: str, role: str = "agent", password: str = PASSWORD
) -> int:
    """Create a console user directly in the database; return their id."""
    async with services.sessions() as session, session.begin():
        agent = Agent(
            name=name,
            role=role,
            password_hash=await hash_password(password),
            active=True,
            created_at=services.clock.now(),
        )
        session.add(agent)
        await session.flush()
        return agent.id


async def escalate(backend: LiveBackend, chat: str = "tg:42", **fields: Any) -> str:
    """Escalate ``chat`` through the backend API, as the bot would; return the escalation id."""
    body = {"chat": chat, "reason": "asked", "locale": "lv", "verified": False, **fields}
    async with backend.client.post(backend.api("/api/v1/escalations"), json=body) as resp:
        assert resp.status in (200, 201)
        return str((await resp.json())["escalation_id"])


async def audit_actions(services: Services) -> list[tuple[str, str, str | None]]:
    """Every audit entry as (action, actor, outcome), oldest first."""
    async with services.sessions() as session:
        rows = await session.execute(
            select(AuditEntry.action, AuditEntry.actor, AuditEntry.outcome).order_by(AuditEntry.id)
        )
        return [(r.action, r.actor, r.outcome) for r in rows]


class ConsoleClient:
    """An HTTP client that behaves like one browser tab on the console."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf: str | None = None
        self.last_html = ""

    async def close(self) -> None:
        await self.http.close()

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str]:
        """GET a page without following redirects; remember its CSRF token."""
        async with self.http.get(
            self.base + path, allow_redirects=False, headers={"Accept": "text/html"}, **kwargs
        ) as resp:
            text = await resp.text()
            self._remember(text)
            if resp.status in (301, 302, 303):
                return resp.status, resp.headers["Location"]
            return resp.status, text

    async def post(
        self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True, **kwargs: Any
    ) -> tuple[int, str]:
        """POST a form, with the page's CSRF token unless told not to."""
        form = dict(data or {})
        if csrf and self.csrf and "csrf" not in form:
            form["csrf"] = self.csrf
        headers = {"Accept": "text/html", **kwargs.pop("headers", {})}
        async with self.http.post(
            self.base + path, data=form, allow_redirects=False, headers=headers, **kwargs
        ) as resp:
            text = await resp.text()
            self._remember(text)
            if resp.status in (301, 302, 303):
                return resp.status, resp.headers["Location"]
            return resp.status, text

    def _remember(self, html: str) -> None:
        self.last_html = html
        found = _CSRF.search(html)
        if found:
            self.csrf = found.group(1)

    async def log_in(self, name: str, password: str = PASSWORD) -> tuple[int, str]:
        """Open the login form and submit it, as a person would."""
        await self.get("/console/login")
        return await self.post("/console/login", {"name": name, "password": password})
