"""``datadesk agents …``: console users from the command line.

| command | does |
|---|---|
| ``agents add NAME --role agent|supervisor [--must-change]`` | create (refuses a name in use or once used) |
| ``agents list`` | id, name, role, state, last login, must-change flag |
| ``agents disable NAME`` / ``enable NAME`` | stop / allow logging in; disabling ends sessions |
| ``agents remove NAME`` | remove for good; the audit trail keeps naming them by id |
| ``agents reset-password NAME`` | a temporary password (stdin) to change at next login |
| ``agents role NAME --role agent|supervisor`` | change the role |

Passwords are read from stdin (one line; piped, or typed twice without echo
on a terminal), so they never appear in the shell history or the process list.
Exit status: 0 done, 1 refused (unknown name, name taken, last supervisor, a
database that was never migrated), 2 bad input. Every change is audited with
actor ``cli:uid=<n>``, the operating-system account that ran the command (an
id, not a name); the rules are in ``backend.console.agents``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.console import agents
from backend.models.console import ROLES, Agent
from backend.services import open_services
from backend.settings import Settings
from common.logs import configure

T = TypeVar("T")
Change = Callable[[AsyncSession, str, datetime], Awaitable[T]]

# What an operator reads for each refusal (the name is theirs to see).
REFUSALS = {
    "no_such_agent": "no agent named {name}",
    "name_taken": "the name {name} is taken (names of removed agents are never reused); "
    "to give {name} a new password use `datadesk agents reset-password {name}`",
    "last_supervisor": "{name} is the only enabled supervisor; make another agent a "
    "supervisor first (`datadesk agents role OTHER --role supervisor`)",
    "password_too_short": f"the password (stdin) must be at least {agents.MIN_PASSWORD} characters",
}


class _Refused(Exception):
    """A one-line message for stderr and an exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise ValueError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _password() -> str:
    """The new password from stdin, checked for length; raise _Refused (exit 2) otherwise."""
    try:
        password = _read_password()
    except (ValueError, EOFError) as exc:
        raise _Refused(str(exc), 2) from exc
    try:
        agents.check_new_password(password)
    except agents.BadPassword as exc:
        raise _Refused(REFUSALS[exc.code], 2) from exc
    return password


def _name(args: argparse.Namespace) -> str:
    name = str(args.name).strip()
    problem = agents.name_problem(name)
    if problem:
        raise _Refused(problem, 2)
    return name


def _role(args: argparse.Namespace) -> str:
    role = str(args.role)
    if role not in ROLES:
        raise _Refused(f"role must be one of {', '.join(ROLES)}", 2)
    return role


def actor() -> str:
    """How the audit log names whoever ran the command: their numeric uid."""
    return f"cli:uid={os.getuid()}"


async def _in_transaction(settings: Settings, change: Change[T]) -> T:
    """Run ``change(session, actor, now)`` in one transaction on the backend database."""
    svc = await open_services(settings)
    try:
        async with svc.sessions() as session, session.begin():
            return await change(session, actor(), svc.clock.now())
    finally:
        await svc.close()


def _run(settings: Settings, change: Change[T]) -> T:
    try:
        return asyncio.run(_in_transaction(settings, change))
    except agents.AgentError as exc:
        template = REFUSALS.get(exc.code, exc.code)
        raise _Refused(template.format(name=exc.name), 1) from exc
    except DBAPIError as exc:
        # A database not migrated is refused before this (``require_schema``): this
        # is one that is down, or a role without the rights the migrations grant.
        raise _Refused(
            f"the database refused ({type(exc.orig).__name__}); is it up, and is "
            "DATADESK_DATABASE_URL's role the application's (docs/deployment.md)?",
            1,
        ) from exc


def _command(
    word: str, body: Callable[[argparse.Namespace, Settings], str]
) -> Callable[[argparse.Namespace, Settings], int]:
    def command(args: argparse.Namespace, settings: Settings) -> int:
        configure(settings.log_level)
        try:
            print(body(args, settings))
        except _Refused as refused:
            print(f"datadesk agents {word}: {refused}", file=sys.stderr)
            return refused.status
        return 0

    command.__doc__ = f"Entry point of ``datadesk agents {word}``: 0 done, 1 refused, 2 bad input."
    return command


async def add_agent(
    settings: Settings, name: str, role: str, password: str, *, must_change: bool = False
) -> tuple[int, bool]:
    """Create the agent; return (id, True). Raises ``agents.NameTaken`` for a name in use."""

    async def change(session: AsyncSession, actor: str, now: datetime) -> tuple[int, bool]:
        agent = await agents.add(
            session, name, role, password, actor=actor, at=now, must_change=must_change
        )
        return agent.id, True

    return await _in_transaction(settings, change)


def _add(args: argparse.Namespace, settings: Settings) -> str:
    name, role = _name(args), _role(args)
    password = _password()
    must_change = bool(getattr(args, "must_change", False))

    async def change(session: AsyncSession, actor: str, now: datetime) -> int:
        agent = await agents.add(
            session, name, role, password, actor=actor, at=now, must_change=must_change
        )
        return agent.id

    agent_id = _run(settings, change)
    then = "; they must choose a new password at their first login" if must_change else ""
    return f"agent {name} ({role}) added, id {agent_id}{then}"


def _simple(
    word: str, verb: str, act: Callable[..., Awaitable[Agent]]
) -> Callable[[argparse.Namespace, Settings], str]:
    def body(args: argparse.Namespace, settings: Settings) -> str:
        name = _name(args)

        async def change(session: AsyncSession, actor: str, now: datetime) -> None:
            await act(session, name, actor=actor, at=now)

        _run(settings, change)
        return f"agent {name} {verb}"

    return body


def _reset(args: argparse.Namespace, settings: Settings) -> str:
    name = _name(args)
    password = _password()

    async def change(session: AsyncSession, actor: str, now: datetime) -> None:
        await agents.reset_password(session, name, password, actor=actor, at=now)

    _run(settings, change)
    return f"agent {name}: password reset; they must choose a new one at their next login"


def _set_role(args: argparse.Namespace, settings: Settings) -> str:
    name, role = _name(args), _role(args)

    async def change(session: AsyncSession, actor: str, now: datetime) -> None:
        await agents.set_role(session, name, role, actor=actor, at=now)

    _run(settings, change)
    return f"agent {name} is now {'a supervisor' if role == 'supervisor' else 'an agent'}"


def _list(args: argparse.Namespace, settings: Settings) -> str:
    async def read(session: AsyncSession, actor: str, now: datetime) -> list[agents.AgentRow]:
        return await agents.list_agents(session)

    rows = _run(settings, read)
    if not rows:
        return "no agents yet: add one with `datadesk agents add NAME --role supervisor`"
    table = [("ID", "NAME", "ROLE", "STATE", "LAST LOGIN (UTC)", "MUST CHANGE PASSWORD")]
    for row in rows:
        last = (
            row.last_login_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
            if row.last_login_at
            else "never"
        )
        table.append(
            (
                str(row.id),
                row.name,
                row.role,
                row.state,
                last,
                "yes" if row.must_change_password else "no",
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in table
    )


add_agent_command = _command("add", _add)
list_command = _command("list", _list)
disable_command = _command(
    "disable", _simple("disable", "disabled; their sessions ended", agents.disable)
)
enable_command = _command("enable", _simple("enable", "enabled", agents.enable))
remove_command = _command(
    "remove", _simple("remove", "removed; their sessions ended", agents.remove)
)
reset_password_command = _command("reset-password", _reset)
role_command = _command("role", _set_role)
