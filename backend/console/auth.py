"""Who is using the console: passwords, server-side sessions, CSRF tokens, login limits.

- Passwords are argon2id hashes (``argon2-cffi`` defaults); hashing runs in a
  thread so a login does not stall the event loop.
- A login creates a random session token. The cookie carries the token; the
  ``console_sessions`` row carries only ``keyring.mac`` of it. A session ends
  at logout, after ``IDLE`` without a request, or ``ABSOLUTE`` after login.
- The CSRF token is a second keyed digest of the session token: one per
  session, never stored, checked in constant time on every POST.
- Failed logins are counted per login name and per remote address over
  ``FAILURE_WINDOW``; past the limit every attempt, right or wrong, is refused.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update

from backend import audit
from backend.crypto import constant_time_equal
from backend.models.console import Agent, ConsoleSession, LoginFailure
from backend.services import Services

COOKIE = "datadesk_console"
LOGIN_COOKIE = "datadesk_console_login"
IDLE = timedelta(minutes=15)
ABSOLUTE = timedelta(hours=12)
FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_NAME = 5
MAX_FAILURES_PER_ADDRESS = 20

_hasher = PasswordHasher()
# Verified against when the name is unknown, so both cases take as long.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class Me:
    """The agent behind a request, and the CSRF token their forms carry."""

    id: int
    name: str
    role: str
    csrf: str
    token_digest: str

    @property
    def supervisor(self) -> bool:
        return self.role == "supervisor"


class LoginRefused(Exception):
    """A login failed; ``code`` is ``wrong_password`` or ``too_many_attempts``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


async def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return await asyncio.to_thread(_hasher.hash, password)


async def password_matches(stored_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash`` (argon2 compares in constant time)."""
    try:
        return await asyncio.to_thread(_hasher.verify, stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def session_digest(svc: Services, token: str) -> str:
    return svc.keyring.mac("console-session", token)


def csrf_for(svc: Services, token: str) -> str:
    return svc.keyring.mac("console-csrf", token)


def csrf_ok(expected: str, given: str | None) -> bool:
    """Whether a submitted CSRF token is the session's, compared in constant time."""
    return given is not None and constant_time_equal(expected, given)


async def _failures(svc: Services, key: str, since: datetime) -> int:
    async with svc.sessions() as session:
        count = await session.scalar(
            select(func.count()).where(LoginFailure.key == key, LoginFailure.at > since)
        )
    return int(count or 0)


async def _refuse(
    svc: Services, agent: Agent | None, code: str, failures: list[LoginFailure]
) -> LoginRefused:
    """Count the failure and audit the refusal (by id only; unknown names stay unnamed)."""
    async with svc.sessions() as session, session.begin():
        session.add_all(failures)
        await audit.record(
            session,
            action="console.login",
            actor=f"agent:{agent.id}" if agent else "unknown",
            outcome=code,
            at=svc.clock.now(),
        )
    return LoginRefused(code)


async def log_in(svc: Services, name: str, password: str, address: str) -> tuple[str, Agent]:
    """Check a login; return a new session token and the agent, or raise LoginRefused."""
    now = svc.clock.now()
    since = now - FAILURE_WINDOW
    # Keyed digests, not the text: people type passwords into the name field.
    name_key = "name:" + svc.keyring.mac("console-login-name", name)
    addr_key = "addr:" + svc.keyring.mac("console-login-address", address)
    async with svc.sessions() as session:
        agent = await session.scalar(select(Agent).where(Agent.name == name, Agent.active))
    if (
        await _failures(svc, name_key, since) >= MAX_FAILURES_PER_NAME
        or await _failures(svc, addr_key, since) >= MAX_FAILURES_PER_ADDRESS
    ):
        raise await _refuse(svc, agent, "too_many_attempts", [])
    ok = await password_matches(agent.password_hash if agent else _DUMMY_HASH, password)
    if agent is None or not ok:
        failures = [LoginFailure(key=name_key, at=now), LoginFailure(key=addr_key, at=now)]
        raise await _refuse(svc, agent, "wrong_password", failures)
    token = secrets.token_urlsafe(32)
    async with svc.sessions() as session, session.begin():
        await session.execute(delete(LoginFailure).where(LoginFailure.key == name_key))
        # Old rows matter no more; sweep them while here.
        await session.execute(delete(LoginFailure).where(LoginFailure.at <= since))
        await session.execute(
            delete(ConsoleSession).where(ConsoleSession.created_at <= now - ABSOLUTE)
        )
        session.add(
            ConsoleSession(
                token_digest=session_digest(svc, token),
                agent_id=agent.id,
                created_at=now,
                last_seen_at=now,
            )
        )
        await audit.record(
            session, action="console.login", actor=f"agent:{agent.id}", outcome="ok", at=now
        )
    return token, agent


async def resume(svc: Services, token: str) -> Me | None:
    """The agent whose live session ``token`` is, refreshing its idle timer; else None."""
    now = svc.clock.now()
    digest = session_digest(svc, token)
    async with svc.sessions() as session, session.begin():
        # UPDATE first: one statement both checks the timeouts and touches the row.
        result = await session.execute(
            update(ConsoleSession)
            .where(
                ConsoleSession.token_digest == digest,
                ConsoleSession.ended_at.is_(None),
                ConsoleSession.last_seen_at > now - IDLE,
                ConsoleSession.created_at > now - ABSOLUTE,
            )
            .values(last_seen_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:
            return None
        row = (
            await session.execute(
                select(Agent.id, Agent.name, Agent.role, Agent.active)
                .join(ConsoleSession, ConsoleSession.agent_id == Agent.id)
                .where(ConsoleSession.token_digest == digest)
            )
        ).one()
    if not row.active:
        return None
    return Me(
        id=row.id,
        name=row.name,
        role=row.role,
        csrf=csrf_for(svc, token),
        token_digest=digest,
    )


async def log_out(svc: Services, me: Me) -> None:
    """End the session now; its cookie is worthless afterwards."""
    async with svc.sessions() as session, session.begin():
        await session.execute(
            update(ConsoleSession)
            .where(ConsoleSession.token_digest == me.token_digest)
            .values(ended_at=svc.clock.now())
        )
