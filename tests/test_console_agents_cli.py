"""``datadesk agents list | add | disable | enable | remove | reset-password | role``.

Each command is parsed by the real ``datadesk`` parser and run against the
test's database, as an operator would run it; what it did is checked where
an agent would notice it (logging in, a live session) and in the audit log.
"""

from __future__ import annotations

import asyncio
import importlib
import io
import os
import sys
from collections.abc import Callable
from typing import Any

import pytest
from fakes.console import PASSWORD, add_agent
from sqlalchemy import select

from backend.console import auth
from backend.models.audit import AuditEntry
from backend.models.console import Agent
from backend.services import Services
from backend.settings import Settings
from datadesk.cli import build_parser

CLI_ACTOR = f"cli:uid={os.getuid()}"
NEW_PASSWORD = "a brand new temporary one"

Run = Callable[..., Any]


@pytest.fixture
def datadesk(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Run:
    """Run ``datadesk agents …`` with ``stdin``; return (exit status, stdout, stderr)."""

    def run_sync(argv: list[str], stdin: str) -> int:
        args = build_parser().parse_args(["agents", *argv])
        module, _, function = args.target.partition(":")
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        status: int = getattr(importlib.import_module(module), function)(args, settings)
        return status

    async def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
        capsys.readouterr()
        status = await asyncio.to_thread(run_sync, list(argv), stdin)
        out, err = capsys.readouterr()
        return status, out, err

    return run


async def log_in(services: Services, name: str, password: str = PASSWORD) -> str | None:
    """A login as the console does it; the session token, or None when refused."""
    try:
        token, _ = await auth.log_in(services, name, password, "127.0.0.1")
    except auth.LoginRefused:
        return None
    return token


async def audit_of(services: Services, agent_id: int) -> list[tuple[str, str]]:
    """(action, actor) of every audit entry about the agent, oldest first."""
    async with services.sessions() as session:
        rows = await session.execute(
            select(AuditEntry.action, AuditEntry.actor)
            .where(AuditEntry.subject == f"agent:{agent_id}")
            .order_by(AuditEntry.id)
        )
        return [(r.action, r.actor) for r in rows]


async def agent_named(services: Services, name: str) -> Agent:
    async with services.sessions() as session:
        agent = await session.scalar(select(Agent).where(Agent.name == name))
    assert agent is not None
    return agent


async def test_list_shows_role_state_last_login_and_the_must_change_flag(
    services: Services, datadesk: Run
) -> None:
    await add_agent(services, "sam", "supervisor")
    await add_agent(services, "alice")
    await add_agent(services, "bob")
    assert await log_in(services, "sam")
    status, _, _ = await datadesk("disable", "bob")
    assert status == 0
    status, _, _ = await datadesk("reset-password", "alice", stdin=NEW_PASSWORD + "\n")
    assert status == 0

    status, out, err = await datadesk("list")
    assert (status, err) == (0, "")
    header, *lines = out.splitlines()
    assert header == "ID  NAME   ROLE        STATE     LAST LOGIN (UTC)  MUST CHANGE PASSWORD"
    rows = {line.split()[1]: line.split() for line in lines}
    assert rows["alice"][2:] == ["agent", "enabled", "never", "yes"]
    assert rows["bob"][2:] == ["agent", "disabled", "never", "no"]
    when = services.clock.now().strftime("%Y-%m-%d %H:%M").split()
    assert rows["sam"][2:] == ["supervisor", "enabled", *when, "no"]


async def test_list_on_an_empty_database_says_how_to_add_the_first_agent(datadesk: Run) -> None:
    status, out, _ = await datadesk("list")
    assert status == 0
    assert "datadesk agents add NAME --role supervisor" in out


async def test_add_refuses_a_name_in_use_in_one_line_and_changes_nothing(
    services: Services, datadesk: Run
) -> None:
    agent_id = await add_agent(services, "alice")
    status, out, err = await datadesk("add", "alice", "--role", "supervisor", stdin=NEW_PASSWORD)
    assert status == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("datadesk agents add: the name alice is taken")
    assert await log_in(services, "alice")  # the old password still works
    assert await log_in(services, "alice", NEW_PASSWORD) is None
    assert (await agent_named(services, "alice")).role == "agent"
    assert await audit_of(services, agent_id) == []


async def test_add_with_must_change_sends_the_agent_to_change_it_first(
    services: Services, datadesk: Run
) -> None:
    status, out, _ = await datadesk("add", "ruta", "--must-change", stdin=NEW_PASSWORD + "\n")
    assert status == 0
    assert "must choose a new password" in out
    token = await log_in(services, "ruta", NEW_PASSWORD)
    assert token
    me = await auth.resume(services, token)
    assert me is not None
    assert me.must_change_password


async def test_disable_ends_the_agents_sessions_and_stops_them_logging_in(
    services: Services, datadesk: Run
) -> None:
    agent_id = await add_agent(services, "alice")
    token = await log_in(services, "alice")
    assert token
    assert await auth.resume(services, token)

    status, out, err = await datadesk("disable", "alice")
    assert (status, err) == (0, "")
    assert "alice disabled" in out
    assert await auth.resume(services, token) is None
    assert await log_in(services, "alice") is None
    assert await audit_of(services, agent_id) == [("console.agent_disabled", CLI_ACTOR)]


async def test_enable_lets_a_disabled_agent_log_in_again(services: Services, datadesk: Run) -> None:
    agent_id = await add_agent(services, "alice")
    await datadesk("disable", "alice")
    status, out, _ = await datadesk("enable", "alice")
    assert status == 0
    assert "alice enabled" in out
    assert await log_in(services, "alice")
    actions = [a for a, _ in await audit_of(services, agent_id)]
    assert actions == ["console.agent_disabled", "console.agent_enabled"]


async def test_remove_keeps_the_audit_trail_attributable_and_the_name_unused(
    services: Services, datadesk: Run
) -> None:
    agent_id = await add_agent(services, "alice")
    token = await log_in(services, "alice")
    assert token

    status, out, _ = await datadesk("remove", "alice")
    assert status == 0
    assert "alice removed" in out
    assert await auth.resume(services, token) is None
    assert await log_in(services, "alice") is None
    # Audit entries name agents by id; the row that says who that was stays.
    _, listing, _ = await datadesk("list")
    (line,) = [ln for ln in listing.splitlines() if " alice " in f" {ln} "]
    assert line.split()[:4] == [str(agent_id), "alice", "agent", "removed"]
    assert await audit_of(services, agent_id) == [("console.agent_removed", CLI_ACTOR)]

    # Nobody else becomes "alice": old entries could not tell the two apart.
    status, _, err = await datadesk("add", "alice", stdin=NEW_PASSWORD)
    assert status == 1
    assert "the name alice is taken" in err
    for word in ("enable", "disable", "remove"):
        status, _, err = await datadesk(word, "alice")
        assert status == 1, word
        assert err == f"datadesk agents {word}: no agent named alice\n"


async def test_reset_password_reads_stdin_and_forces_a_change_at_next_login(
    services: Services, datadesk: Run
) -> None:
    agent_id = await add_agent(services, "alice")
    token = await log_in(services, "alice")
    assert token

    status, out, _ = await datadesk("reset-password", "alice", stdin=NEW_PASSWORD + "\n")
    assert status == 0
    assert "must choose a new one at their next login" in out
    assert await auth.resume(services, token) is None  # whoever had the session is out
    assert await log_in(services, "alice") is None  # the old password is gone
    fresh = await log_in(services, "alice", NEW_PASSWORD)
    assert fresh
    me = await auth.resume(services, fresh)
    assert me is not None
    assert me.must_change_password
    assert (await agent_named(services, "alice")).must_change_password
    assert await audit_of(services, agent_id) == [("console.agent_password_reset", CLI_ACTOR)]


async def test_reset_password_refuses_a_short_password(services: Services, datadesk: Run) -> None:
    await add_agent(services, "alice")
    status, _, err = await datadesk("reset-password", "alice", stdin="short\n")
    assert status == 2
    assert "at least 12 characters" in err
    assert await log_in(services, "alice")
    assert not (await agent_named(services, "alice")).must_change_password


async def test_a_command_for_an_unknown_name_says_so(datadesk: Run) -> None:
    for argv in (["disable", "nobody"], ["enable", "nobody"], ["remove", "nobody"]):
        status, _, err = await datadesk(*argv)
        assert status == 1
        assert err == f"datadesk agents {argv[0]}: no agent named nobody\n"
    status, _, err = await datadesk("reset-password", "nobody", stdin=NEW_PASSWORD)
    assert (status, err) == (1, "datadesk agents reset-password: no agent named nobody\n")


async def test_the_only_enabled_supervisor_cannot_be_disabled_removed_or_demoted(
    services: Services, datadesk: Run
) -> None:
    await add_agent(services, "sam", "supervisor")
    await add_agent(services, "alice")
    for argv in (["disable", "sam"], ["remove", "sam"], ["role", "sam", "--role", "agent"]):
        status, _, err = await datadesk(*argv)
        assert status == 1, argv
        assert "sam is the only enabled supervisor" in err
    assert await log_in(services, "sam")

    # With a second supervisor, either may go.
    status, out, _ = await datadesk("role", "alice", "--role", "supervisor")
    assert status == 0
    assert "alice is now a supervisor" in out
    status, _, _ = await datadesk("disable", "sam")
    assert status == 0
    status, _, err = await datadesk("remove", "alice")
    assert status == 1
    assert "alice is the only enabled supervisor" in err


async def test_bad_input_exits_2_before_touching_the_database(
    services: Services, datadesk: Run
) -> None:
    status, _, err = await datadesk("disable", "two words")
    assert status == 2
    assert "without spaces" in err
    status, _, err = await datadesk("add", "x" * 65, stdin=NEW_PASSWORD)
    assert status == 2
    async with services.sessions() as session:
        assert list(await session.scalars(select(Agent))) == []
