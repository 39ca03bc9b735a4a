"""Who is using the console: passwords, server-side sessions, CSRF tokens, login limits.

- Passwords are argon2id hashes (``argon2-cffi`` defaults); hashing runs in a
  thread so a login does not stall the event loop.
- A login creates a random session token. The cookie carries the token; the
  ``console_sessions`` row carries only ``keyring.mac`` of it. A session ends
  at logout, after ``IDLE`` without a request, or ``ABSOLUTE`` after login.
- The CSRF token is a second keyed digest of the session token: one per
  session, never stored, checked in constant time on every POST.
- Login limits (``login_limits``, ``limits``): an attempt takes its slots on
  the limit counters in one committed transaction *before* argon2 runs, and a
  right password gives them back afterwards. So parallel attempts can never
  test more passwords than the limits allow, whichever process they reach.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update

from backend import audit
from backend.console import limits, login_limits
from backend.crypto import constant_time_equal
from backend.metrics import CONSOLE_LOGIN_FAILURES
from backend.models.console import Agent, ConsoleSession
from backend.services import Services

COOKIE = "datadesk_console"
LOGIN_COOKIE = "datadesk_console_login"
IDLE = timedelta(minutes=15)
ABSOLUTE = timedelta(hours=12)

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
    # A reset password: the change-password page comes before anything else.
    must_change_password: bool = False

    @property
    def supervisor(self) -> bool:
        return self.role == "supervisor"


class LoginRefused(Exception):
    """A login failed: ``code`` and, when a limit refused it, ``retry_after`` in seconds.

    Codes: ``wrong_password`` (also for an unknown name), ``too_many_attempts``
    (a refusing limit is reached), ``slow_down`` (the name is being guessed at
    from elsewhere; this browser may try again after ``retry_after``).
    """

    def __init__(self, code: str, retry_after: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.retry_after = retry_after


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


async def _refuse(
    svc: Services, agent: Agent | None, code: str, *, retry_after: int | None = None
) -> LoginRefused:
    """Audit the refusal (by id only; unknown names stay unnamed) and return it to raise."""
    async with svc.sessions() as session, session.begin():
        await audit.record(
            session,
            action="console.login",
            actor=f"agent:{agent.id}" if agent else "unknown",
            outcome=code,
            at=svc.clock.now(),
        )
    CONSOLE_LOGIN_FAILURES.labels(reason=code).inc()
    return LoginRefused(code, retry_after)


async def _take(svc: Services, tried: login_limits.Attempt, now: datetime) -> login_limits.Attempt:
    """Take the attempt's slots, committed before argon2 runs: they are what a parallel attempt sees.

    A device cookie whose own limit is reached counts as no cookie (it may
    have been stolen), so its browser falls back to the limits of any other.
    """
    try:
        async with svc.sessions() as session, session.begin():
            await limits.take(session, tried.slots, now)
        return tried
    except limits.LimitReached:
        if not tried.trusted_device:
            raise
    untrusted = tried.without_device
    async with svc.sessions() as session, session.begin():
        await limits.take(session, untrusted.slots, now)
    return untrusted


async def log_in(
    svc: Services, name: str, password: str, client: str, device_cookie: str | None = None
) -> tuple[str, Agent]:
    """Check a login from ``client``; return a new session token and the agent, or raise LoginRefused.

    ``device_cookie`` is what the browser sent in ``login_limits.DEVICE_COOKIE``.
    """
    now = svc.clock.now()
    tried = login_limits.attempt(svc.keyring, name, client, device_cookie, now)
    async with svc.sessions() as session:
        agent = await session.scalar(select(Agent).where(Agent.name == name, Agent.active))
    try:
        tried = await _take(svc, tried, now)
    except limits.LimitReached as reached:
        code = "too_many_attempts" if reached.kind in login_limits.REFUSING else "slow_down"
        raise await _refuse(svc, agent, code, retry_after=reached.retry_after) from None
    ok = await password_matches(agent.password_hash if agent else _DUMMY_HASH, password)
    if agent is None or not ok:
        # The slots stay taken: they are the failure's count.
        raise await _refuse(svc, agent, "wrong_password")
    token = secrets.token_urlsafe(32)
    async with svc.sessions() as session, session.begin():
        await login_limits.succeeded(session, tried)
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
        await session.execute(update(Agent).where(Agent.id == agent.id).values(last_login_at=now))
        await audit.record(
            session, action="console.login", actor=f"agent:{agent.id}", outcome="ok", at=now
        )
    # Old counters matter no more; sweep them in a transaction of their own.
    async with svc.sessions() as session, session.begin():
        await limits.sweep(session, now - login_limits.LONGEST)
    return token, agent


def new_device_cookie(svc: Services, agent: Agent) -> str:
    """The device cookie a browser gets after ``agent`` logged in on it."""
    return login_limits.new_device_cookie(svc.keyring, agent.name, svc.clock.now())


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
                select(Agent.id, Agent.name, Agent.role, Agent.active, Agent.must_change_password)
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
        must_change_password=row.must_change_password,
    )


async def log_out(svc: Services, me: Me) -> None:
    """End the session now; its cookie is worthless afterwards."""
    async with svc.sessions() as session, session.begin():
        await session.execute(
            update(ConsoleSession)
            .where(ConsoleSession.token_digest == me.token_digest)
            .values(ended_at=svc.clock.now())
        )
