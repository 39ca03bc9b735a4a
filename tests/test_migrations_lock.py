"""Migrations from many processes at once, and new migration files for developers.

Every process of a deployment may run ``datadesk db upgrade`` as it starts;
the first migrates each database, the others wait for its lock and find
nothing to do. ``datadesk db revision`` writes the next numbered file.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command as alembic
from conftest import POSTGRES_URL
from database_pool import PostgresServer

from backend.models.base import BACKEND_MIGRATIONS
from bot.state import BOT_MIGRATIONS
from common.db import alembic_config, make_engine, require_schema, upgrade_sync
from common.settings import REPO_ROOT, SettingsError
from datadesk import cli, migrate

PROCESSES = 4


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres_only)])
def fresh_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """An environment with no DATADESK_ settings but a DATA_DIR and new, empty databases.

    On SQLite the defaults in DATA_DIR (not there yet); on PostgreSQL two new
    databases on the test server, dropped afterwards.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATADESK_")}
    env["DATADESK_DATA_DIR"] = str(tmp_path / "var")
    if request.param == "sqlite":
        yield env
        return
    server = PostgresServer(POSTGRES_URL)
    names = [f"dd_migratelock_{os.getpid()}_{which}" for which in ("backend", "bot")]
    for name in names:
        server.drop(name)
        server.admin(f'CREATE DATABASE "{name}"')
    env["DATADESK_DATABASE_URL"] = server.url_of(names[0])
    env["DATADESK_BOT_DATABASE_URL"] = server.url_of(names[1])
    try:
        yield env
    finally:
        for name in names:
            server.drop(name)


def test_processes_upgrading_a_fresh_database_at_once_migrate_it_once_without_error(
    fresh_env: dict[str, str],
) -> None:
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "datadesk.cli", "db", "upgrade"],
            cwd=REPO_ROOT,
            env=fresh_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
    logs = "".join(stderr for _, stderr in outputs)
    assert "Traceback" not in logs
    assert "ERROR" not in logs
    for side, first in (("backend", "0001_crm"), ("bot", "0001_conversations")):
        applied = re.findall(rf"{side} database: applied (\S+),", logs)
        assert applied == [first], logs
        assert logs.count(f"{side} database: already at the newest schema") == PROCESSES - 1


def _revisions(folder: Path) -> list[str]:
    """A migrations folder's revisions, oldest first (their files are numbered)."""
    return sorted(p.stem for p in (folder / "versions").glob("[0-9]*.py"))


async def _required(url: str) -> None:
    engine = make_engine(url)
    try:
        await require_schema(engine, BACKEND_MIGRATIONS, "DATABASE_URL")
    finally:
        await engine.dispose()


def test_a_process_on_a_database_not_migrated_exits_with_one_line_naming_db_upgrade(
    fresh_env: dict[str, str],
) -> None:
    env = fresh_env | {
        "DATADESK_TELEGRAM_TOKEN": "123:stand-in",
        "DATADESK_SERVICE_TOKEN": "token",
        "DATADESK_HTTP_PORT": "0",
    }

    def started(*command: str) -> tuple[int, str]:
        done = subprocess.run(  # noqa: S603 (our own interpreter and command)
            [sys.executable, "-m", "datadesk.cli", *command],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        return done.returncode, done.stderr

    for what, side, folder in (
        ("backend", "backend", BACKEND_MIGRATIONS),
        ("bot", "bot", BOT_MIGRATIONS),
    ):
        newest = _revisions(folder)[-1]
        status, stderr = started(what)
        assert status == 2, stderr
        assert stderr.splitlines() == [
            f"datadesk: DATADESK_{'BOT_' if side == 'bot' else ''}DATABASE_URL: the {side}"
            f" database is not migrated (at no tables, newest {newest});"
            " run `datadesk db upgrade` first"
        ]
    # One migration behind, as after deploying new code without migrating.
    url = env.get(
        "DATADESK_DATABASE_URL",
        f"sqlite+aiosqlite:///{Path(env['DATADESK_DATA_DIR']) / 'backend.sqlite3'}",
    )
    *_, before, newest = _revisions(BACKEND_MIGRATIONS)
    alembic.upgrade(alembic_config(url, BACKEND_MIGRATIONS), before)
    with pytest.raises(SettingsError, match=rf"\(at {before}, newest {newest}\)"):
        asyncio.run(_required(url))
    upgrade_sync(url, BACKEND_MIGRATIONS)
    asyncio.run(_required(url))


def test_revision_numbers_the_next_migration_after_the_highest(tmp_path: Path) -> None:
    (tmp_path / "0009_transcript_seq.py").touch()
    (tmp_path / "0010_other.py").touch()
    (tmp_path / "README").touch()
    assert migrate.revision_id(tmp_path, "Add branch codes!") == "0011_add_branch_codes"
    assert migrate.revision_id(tmp_path / "none", "Первая") == "0001_revision"


def test_db_revision_writes_a_bot_migration_that_upgrade_then_applies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    migrations = tmp_path / "migrations"
    shutil.copytree(BOT_MIGRATIONS, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(migrate, "BOT_MIGRATIONS", migrations)
    monkeypatch.setenv("DATADESK_DATA_DIR", str(tmp_path / "var"))
    heads = sorted(p.stem for p in migrations.glob("versions/*.py"))

    assert cli.main(["db", "revision", "-m", "Remember each chat's theme", "--bot"]) == 0

    written = Path(capsys.readouterr().out.strip())
    number = int(heads[-1][:4]) + 1
    assert written == migrations / "versions" / f"{number:04d}_remember_each_chat_s_theme.py"
    text = written.read_text()
    assert f"revision = '{written.stem}'" in text
    assert f"down_revision = '{heads[-1]}'" in text
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    assert upgrade_sync(url, migrations)[-1] == written.stem
