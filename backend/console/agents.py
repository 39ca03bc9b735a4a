"""Managing console users: add, list, disable, enable, remove, reset a password, change a role.

One function per change, used alike by ``datadesk agents …`` (``cli``) and the
supervisors' page (``agents_page``). Each runs inside the caller's transaction
and appends its audit entry there, naming who did it (``actor``: ``cli`` or
``agent:<id>``) and whom (``subject``: ``agent:<id>``), so the change and its
record commit together.

- Disabling or removing an agent ends their sessions in the same transaction:
  their next request meets the login page, and an open websocket is closed
  within a poll (``live``).
- A password reset ends their sessions and sets ``must_change_password``: the
  next login leads to the change-password page before anything else.
- Removing is soft: the row stays (``removed_at``), so ``agent:<id>`` in the
  audit log keeps naming the person, and the name is never given to another.
- The last enabled supervisor cannot be disabled, removed or demoted: someone
  must be left who can manage agents from the console.

Errors (all ``AgentError``, each with a stable ``code``)::

    AgentError
    ├── NoSuchAgent       code "no_such_agent"   (unknown, or already removed)
    ├── NameTaken         code "name_taken"      (in use, or used by a removed agent)
    ├── LastSupervisor    code "last_supervisor"
    └── BadPassword       code "password_too_short" | "password_unchanged" | "password_wrong"
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import SessionTransaction

from backend import audit
from backend.console.auth import hash_password, password_matches
from backend.models.console import ROLES, Agent, ConsoleSession
from common.db import begin_write

MIN_PASSWORD = 12
MAX_NAME = 64
# "dd-agent" as a 64-bit advisory lock key: the same in every process.
LOCK_KEY = int.from_bytes(b"dd-agent", "big") & 0x7FFF_FFFF_FFFF_FFFF
# Transactions that already took their turn (``_serialize``).
_SERIALIZED: weakref.WeakSet[SessionTransaction] = weakref.WeakSet()
# Stored for a removed agent: not an argon2 hash, so no password ever matches it.
NO_PASSWORD = "!"  # noqa: S105


class AgentError(Exception):
    """A change to an agent that was refused; ``code`` says why."""

    code = "agent_error"

    def __init__(self, name: str = "") -> None:
        super().__init__(f"{self.code}: {name}" if name else self.code)
        self.name = name


class NoSuchAgent(AgentError):
    code = "no_such_agent"


class NameTaken(AgentError):
    code = "name_taken"


class LastSupervisor(AgentError):
    code = "last_supervisor"


class BadPassword(AgentError):
    """The password is refused; ``code`` is set per instance."""

    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__()


@dataclass(frozen=True)
class AgentRow:
    """One agent as ``list`` and the supervisors' page show them."""

    id: int
    name: str
    role: str
    state: str  # "enabled" | "disabled" | "removed"
    last_login_at: datetime | None
    must_change_password: bool


def state_of(agent: Agent) -> str:
    if agent.removed_at is not None:
        return "removed"
    return "enabled" if agent.active else "disabled"


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a login name, or None."""
    if not name or len(name) > MAX_NAME or not name.isprintable() or " " in name:
        return f"name must be 1-{MAX_NAME} characters without spaces"
    return None


def check_new_password(password: str) -> None:
    """Raise BadPassword when ``password`` is too short to be set."""
    if len(password) < MIN_PASSWORD:
        raise BadPassword("password_too_short")


async def list_agents(session: AsyncSession, *, removed: bool = True) -> list[AgentRow]:
    """Every agent by name; removed ones too unless ``removed`` is false."""
    query = select(Agent).order_by(Agent.name)
    if not removed:
        query = query.where(Agent.removed_at.is_(None))
    return [
        AgentRow(
            id=a.id,
            name=a.name,
            role=a.role,
            state=state_of(a),
            last_login_at=a.last_login_at,
            must_change_password=a.must_change_password,
        )
        for a in await session.scalars(query)
    ]


async def _serialize(session: AsyncSession) -> None:
    """One change to agents at a time, in every process: the first statement of each.

    Changes are rare and their checks read several rows (is another supervisor
    left? is the name free?), so they simply take turns: SQLite's write lock
    (``begin_write``), a transaction-scoped advisory lock on PostgreSQL. Row
    locks alone would let two supervisors disabling each other deadlock.
    """
    transaction = session.sync_session.get_transaction()
    if transaction is not None and transaction in _SERIALIZED:
        return  # a second change in the same transaction already holds the turn
    await begin_write(session)
    if session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    transaction = session.sync_session.get_transaction()
    if transaction is not None:
        _SERIALIZED.add(transaction)


async def _get(session: AsyncSession, key: int | str) -> Agent:
    """The agent with this id (int) or name (str), not removed, after ``_serialize``."""
    await _serialize(session)
    where = Agent.id == key if isinstance(key, int) else Agent.name == key
    agent = await session.scalar(select(Agent).where(where))
    if agent is None or agent.removed_at is not None:
        raise NoSuchAgent(str(key))
    return agent


async def _keep_a_supervisor(session: AsyncSession, agent: Agent) -> None:
    """Refuse when ``agent`` is the only enabled supervisor (read after ``_serialize``)."""
    if agent.role != "supervisor" or not agent.active:
        return
    others = await session.scalars(
        select(Agent.id).where(
            Agent.role == "supervisor",
            Agent.active,
            Agent.removed_at.is_(None),
            Agent.id != agent.id,
        )
    )
    if not list(others):
        raise LastSupervisor(agent.name)


async def _end_sessions(
    session: AsyncSession, agent_id: int, at: datetime, *, keep: str | None = None
) -> None:
    """End every live session of the agent (but ``keep``, a token digest)."""
    query = update(ConsoleSession).where(
        ConsoleSession.agent_id == agent_id, ConsoleSession.ended_at.is_(None)
    )
    if keep is not None:
        query = query.where(ConsoleSession.token_digest != keep)
    await session.execute(query.values(ended_at=at).execution_options(synchronize_session=False))


async def _audit(
    session: AsyncSession, action: str, actor: str, agent: Agent, at: datetime, **data: str
) -> None:
    await audit.record(
        session,
        action=f"console.agent_{action}",
        actor=actor,
        subject=f"agent:{agent.id}",
        data=data or None,
        at=at,
    )


async def add(
    session: AsyncSession,
    name: str,
    role: str,
    password: str,
    *,
    actor: str,
    at: datetime,
    must_change: bool = False,
) -> Agent:
    """Create an agent; NameTaken when the name is or was in use."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    check_new_password(password)
    password_hash = await hash_password(password)
    await _serialize(session)
    taken = await session.scalar(select(func.count()).select_from(Agent).where(Agent.name == name))
    if taken:
        raise NameTaken(name)
    agent = Agent(
        name=name,
        role=role,
        password_hash=password_hash,
        active=True,
        created_at=at,
        must_change_password=must_change,
    )
    session.add(agent)
    await session.flush()
    await _audit(session, "added", actor, agent, at, role=role)
    return agent


async def disable(session: AsyncSession, key: int | str, *, actor: str, at: datetime) -> Agent:
    """Stop the agent logging in and end their sessions now."""
    agent = await _get(session, key)
    await _keep_a_supervisor(session, agent)
    agent.active = False
    await _end_sessions(session, agent.id, at)
    await _audit(session, "disabled", actor, agent, at)
    return agent


async def enable(session: AsyncSession, key: int | str, *, actor: str, at: datetime) -> Agent:
    """Let a disabled agent log in again."""
    agent = await _get(session, key)
    agent.active = True
    await _audit(session, "enabled", actor, agent, at)
    return agent


async def remove(session: AsyncSession, key: int | str, *, actor: str, at: datetime) -> Agent:
    """Remove the agent for good (softly: the row stays for the audit trail)."""
    agent = await _get(session, key)
    await _keep_a_supervisor(session, agent)
    agent.active, agent.removed_at = False, at
    # The hash is of no use any more; keeping it would only be a risk.
    agent.password_hash = NO_PASSWORD
    await _end_sessions(session, agent.id, at)
    await _audit(session, "removed", actor, agent, at)
    return agent


async def reset_password(
    session: AsyncSession, key: int | str, password: str, *, actor: str, at: datetime
) -> Agent:
    """Set a temporary password the agent must change at next login; end their sessions."""
    check_new_password(password)
    password_hash = await hash_password(password)  # before the lock: argon2 takes a while
    agent = await _get(session, key)
    agent.password_hash = password_hash
    agent.must_change_password = True
    await _end_sessions(session, agent.id, at)
    await _audit(session, "password_reset", actor, agent, at)
    return agent


async def set_role(
    session: AsyncSession, key: int | str, role: str, *, actor: str, at: datetime
) -> Agent:
    """Make the agent an ``agent`` or a ``supervisor``; the last supervisor stays one."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    agent = await _get(session, key)
    if role != "supervisor":
        await _keep_a_supervisor(session, agent)
    agent.role = role
    await _audit(session, "role_changed", actor, agent, at, role=role)
    return agent


async def change_own_password(
    session: AsyncSession,
    agent_id: int,
    current: str,
    new: str,
    *,
    at: datetime,
    session_digest: str,
) -> None:
    """The agent sets their own password: the current one must match, the new one differ.

    Their other sessions end; the one they are using stays.
    """
    check_new_password(new)
    # Once ``current`` is known to be right, "differs" is a plain comparison.
    if new == current:
        raise BadPassword("password_unchanged")
    password_hash = await hash_password(new)  # before the lock: argon2 takes a while
    agent = await _get(session, agent_id)
    if not await password_matches(agent.password_hash, current):
        raise BadPassword("password_wrong")
    agent.password_hash = password_hash
    agent.must_change_password = False
    await _end_sessions(session, agent.id, at, keep=session_digest)
    await _audit(session, "password_changed", f"agent:{agent.id}", agent, at)
