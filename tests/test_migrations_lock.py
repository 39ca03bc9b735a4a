"""Migrations from many processes at once, and new migration files for developers.

Every process of a deployment may run ``datadesk db upgrade`` as it starts;
the first migrates each database, the others wait for its lock and find
nothing to do. ``datadesk db revision`` writes the next numbered file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import POSTGRES_URL
from database_pool import PostgresServer

from bot.state import BOT_MIGRATIONS
from common.db import upgrade_sync
from common.settings import REPO_ROOT
from datadesk import cli, migrate

PROCESSES = 4


def _fresh_databases(db_kind: str, tmp_path: Path) -> tuple[dict[str, str], list[str]]:
    """Environment naming a new, empty backend and bot database; PostgreSQL names to drop."""
    if db_kind == "sqlite":
        return {}, []
    server = PostgresServer(POSTGRES_URL)
    names = [f"dd_migratelock_{os.getpid()}_{which}" for which in ("backend", "bot")]
    for name in names:
        server.drop(name)
        server.admin(f'CREATE DATABASE "{name}"')
    env = {
        "DATADESK_DATABASE_URL": server.url_of(names[0]),
        "DATADESK_BOT_DATABASE_URL": server.url_of(names[1]),
    }
    return env, names


@pytest.mark.parametrize(
    "db_kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres_only)]
)
def test_processes_upgrading_a_fresh_database_at_once_migrate_it_once_without_error(
    db_kind: str, tmp_path: Path
) -> None:
    databases, names = _fresh_databases(db_kind, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATADESK_")}
    env |= databases | {"DATADESK_DATA_DIR": str(tmp_path / "var")}
    try:
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "datadesk.cli", "db", "upgrade"],
                cwd=REPO_ROOT,
                env=env,
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
    finally:
        if names:
            server = PostgresServer(POSTGRES_URL)
            for name in names:
                server.drop(name)


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
