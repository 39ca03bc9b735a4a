"""``datadesk agents add NAME --role agent|supervisor``: create or update a console user.

The password is read from stdin (one line; piped, or typed without echo on a
terminal), so it never appears in the shell history or the process list.
Running the command again for an existing name sets a new password and role.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from backend import audit
from backend.console.auth import hash_password
from backend.models.console import ROLES, Agent
from backend.services import open_services
from backend.settings import Settings
from common.logs import configure

MIN_PASSWORD = 12
MAX_NAME = 64


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise ValueError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


async def add_agent(settings: Settings, name: str, role: str, password: str) -> tuple[int, bool]:
    """Create the agent, or update their password and role; return (id, created)."""
    svc = await open_services(settings)
    try:
        password_hash = await hash_password(password)
        now = svc.clock.now()
        async with svc.sessions() as session, session.begin():
            agent = await session.scalar(select(Agent).where(Agent.name == name))
            created = agent is None
            if agent is None:
                agent = Agent(name=name, role=role, password_hash=password_hash, active=True)
                agent.created_at = now
                session.add(agent)
            else:
                agent.role, agent.password_hash, agent.active = role, password_hash, True
            await session.flush()
            await audit.record(
                session,
                action="console.agent_added" if created else "console.agent_updated",
                actor="cli",
                subject=f"agent:{agent.id}",
                data={"role": role},
                at=now,
            )
            return agent.id, created
    finally:
        await svc.close()


def add_agent_command(args: argparse.Namespace, settings: Settings) -> int:
    """Entry point of ``datadesk agents add``; exit 0 on success, 2 on bad input."""
    configure(settings.log_level)
    name, role = str(args.name).strip(), str(args.role)
    if not name or len(name) > MAX_NAME or not name.isprintable() or " " in name:
        print(
            f"datadesk agents add: name must be 1-{MAX_NAME} characters without spaces",
            file=sys.stderr,
        )
        return 2
    if role not in ROLES:
        print(f"datadesk agents add: role must be one of {', '.join(ROLES)}", file=sys.stderr)
        return 2
    try:
        password = _read_password()
    except (ValueError, EOFError) as exc:
        print(f"datadesk agents add: {exc}", file=sys.stderr)
        return 2
    if len(password) < MIN_PASSWORD:
        print(
            f"datadesk agents add: the password (stdin) must be at least {MIN_PASSWORD} characters",
            file=sys.stderr,
        )
        return 2
    try:
        agent_id, created = asyncio.run(add_agent(settings, name, role, password))
    except DBAPIError as exc:
        # Almost always a database that was never migrated; say what to do.
        print(
            f"datadesk agents add: the database refused ({type(exc.orig).__name__}); "
            "has `datadesk db upgrade` been run?",
            file=sys.stderr,
        )
        return 1
    print(f"agent {name} ({role}) {'added' if created else 'updated'}, id {agent_id}")
    return 0
