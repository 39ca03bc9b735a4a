"""Files and commands around the console: canned responses product teams edit, ``agents add``."""

from __future__ import annotations

import io
import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from backend.console import canned
from backend.console.auth import password_matches
from backend.console.cli import add_agent_command
from backend.models.audit import AuditEntry
from backend.models.console import Agent
from backend.services import open_services
from backend.settings import Settings
from common.errors import ConfigError
from common.vocabulary.locales import SHIPPED_LOCALES
from datadesk import cli

GOOD = """\
responses:
  - id: hello
    title: Hello
    text: Hello
"""


def test_the_shipped_canned_responses_cover_every_locale() -> None:
    responses = canned.load()
    assert len(responses) >= 3
    for response in responses:
        assert set(response.text) == set(SHIPPED_LOCALES)
        assert all(text.strip() for text in response.text.values())
        # Translated in the catalogs, not the English fallback.
        assert len(set(response.text.values())) >= 4, response.id


@pytest.mark.parametrize(
    ("broken", "where", "what"),
    [
        (GOOD.replace("text: Hello", "text: ''"), 4, "text must be English text"),
        (GOOD.replace("text: Hello", "text: {en: Hello}"), 4, "text must be English text"),
        (GOOD.replace("id: hello", "id: Hello There"), 2, "id must be"),
        (GOOD + GOOD.split("\n", 1)[1], 5, "duplicate id 'hello'"),
        (GOOD.replace("title: Hello", "titel: Hello"), 2, "without 'title'"),
        ("responses: [\n", 2, "not valid YAML"),
    ],
)
def test_a_broken_canned_file_is_reported_with_file_and_line(
    tmp_path: Path, broken: str, where: int, what: str
) -> None:
    path = tmp_path / "canned.yaml"
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        canned.load(path)
    assert str(error.value).startswith(f"{path}:{where}: ")
    assert what in str(error.value)


def _run(monkeypatch: pytest.MonkeyPatch, settings: Settings, stdin: str, *argv: str) -> int:
    import argparse

    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    name, role = argv
    return add_agent_command(argparse.Namespace(name=name, role=role), settings)


async def _agents(settings: Settings) -> list[Agent]:
    svc = await open_services(settings)
    try:
        async with svc.sessions() as session:
            return list(await session.scalars(select(Agent).order_by(Agent.id)))
    finally:
        await svc.close()


async def test_agents_add_reads_the_password_from_stdin_and_stores_only_a_hash(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    status = await asyncio.to_thread(
        _run, monkeypatch, settings, "a long enough secret\n", "sam", "supervisor"
    )
    assert status == 0
    assert "sam (supervisor) added" in capsys.readouterr().out
    (agent,) = await _agents(settings)
    assert (agent.name, agent.role) == ("sam", "supervisor")
    assert agent.password_hash.startswith("$argon2id$")
    assert await password_matches(agent.password_hash, "a long enough secret")
    svc = await open_services(replace(settings))
    try:
        async with svc.sessions() as session:
            action = await session.scalar(select(AuditEntry.action))
    finally:
        await svc.close()
    assert action == "console.agent_added"


async def test_agents_add_again_refuses_and_keeps_the_password_and_role(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    await asyncio.to_thread(_run, monkeypatch, settings, "first password!!\n", "sam", "agent")
    status = await asyncio.to_thread(
        _run, monkeypatch, settings, "second password!!\n", "sam", "supervisor"
    )
    assert status == 1
    assert "the name sam is taken" in capsys.readouterr().err
    (agent,) = await _agents(settings)
    assert agent.role == "agent"
    assert await password_matches(agent.password_hash, "first password!!")


async def test_agents_add_refuses_a_short_password(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    status = await asyncio.to_thread(_run, monkeypatch, settings, "short\n", "sam", "agent")
    assert status == 2
    assert "at least 12 characters" in capsys.readouterr().err
    assert await _agents(settings) == []


def test_agents_add_on_an_unmigrated_database_says_what_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [k for k in os.environ if k.startswith("DATADESK_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DATADESK_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("DATADESK_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}")
    monkeypatch.setattr(sys, "stdin", io.StringIO("a long enough secret\n"))
    status = cli.main(["agents", "add", "sam"])
    assert status == 2
    err = capsys.readouterr().err
    assert "the backend database is not migrated" in err
    assert "run `datadesk db upgrade` first" in err
    assert "Traceback" not in err
