"""Shared fixtures: fresh migrated databases on SQLite and PostgreSQL, a live backend.

Every test that asks for ``backend_db_url`` (directly or through ``services``
or ``backend``) runs once on SQLite and, when ``DATADESK_TEST_POSTGRES_URL`` is
set, once more on PostgreSQL. ``--require-postgres`` (set by ``.ci/run``) turns
an unreachable PostgreSQL into an error instead of a smaller run.

Each test gets its own database, cloned from a template migrated once per
session: a copied file on SQLite, ``CREATE DATABASE … TEMPLATE`` on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy.engine import make_url

from backend.models.base import BACKEND_MIGRATIONS
from backend.services import Services, open_services
from backend.settings import Settings
from bot.settings import BotSettings
from bot.state import BOT_MIGRATIONS
from common.clock import FakeClock
from common.db import admin_execute, upgrade_sync

POSTGRES_URL = os.environ.get("DATADESK_TEST_POSTGRES_URL", "")
SERVICE_TOKEN = "test-service-token"
SECRET_KEY = "test-secret-key-not-for-production"
BOT_SECRET_KEY = "test-bot-secret-key-not-for-production"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--require-postgres",
        action="store_true",
        help="fail when DATADESK_TEST_POSTGRES_URL is unset or unreachable",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--require-postgres") and not POSTGRES_URL:
        raise pytest.UsageError("--require-postgres needs DATADESK_TEST_POSTGRES_URL")


DB_KINDS = ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]


async def _pg_admin(sql: str) -> None:
    await admin_execute(POSTGRES_URL, sql)


def _pg_url(name: str) -> str:
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


class DatabaseFactory:
    """Makes fresh, migrated databases of one kind from a template migrated once."""

    def __init__(self, kind: str, script_location: Path, workdir: Path, label: str) -> None:
        self.kind = kind
        self.script_location = script_location
        self.workdir = workdir
        self.label = label
        self._template: str | None = None
        self._made: list[str] = []

    def _template_name(self) -> str:
        return f"dd_tmpl_{self.label}_{os.getpid()}"

    def _ensure_template(self) -> str:
        if self._template is not None:
            return self._template
        if self.kind == "sqlite":
            path = self.workdir / f"template-{self.label}.sqlite3"
            upgrade_sync(f"sqlite+aiosqlite:///{path}", self.script_location)
            self._template = str(path)
        else:
            name = self._template_name()
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}"'))
            asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
            upgrade_sync(_pg_url(name), self.script_location)
            self._template = name
        return self._template

    def new(self, directory: Path) -> str:
        """A URL of a new database at the newest schema, empty of rows."""
        template = self._ensure_template()
        if self.kind == "sqlite":
            target = directory / f"{self.label}.sqlite3"
            # Private from creation, as the database helpers make every SQLite file.
            with open(template, "rb") as source, open(target, "xb", opener=_private) as copy:
                shutil.copyfileobj(source, copy)
            return f"sqlite+aiosqlite:///{target}"
        name = f"dd_{self.label}_{uuid.uuid4().hex[:12]}"
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        self._made.append(name)
        return _pg_url(name)

    def drop_all(self) -> None:
        if self.kind != "postgres":
            return
        for name in [*self._made, *([self._template] if self._template else [])]:
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


@pytest.fixture(scope="session")
def database_factories(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[dict[tuple[str, str], DatabaseFactory]]:
    """One factory per (kind, which database); templates are built on first use."""
    if POSTGRES_URL:
        try:
            asyncio.run(_pg_admin("SELECT 1"))
        except Exception as exc:
            raise pytest.UsageError(
                f"DATADESK_TEST_POSTGRES_URL is set but PostgreSQL is unreachable: {exc}"
            ) from exc
    workdir = tmp_path_factory.mktemp("templates")
    factories = {
        (kind, which): DatabaseFactory(kind, script, workdir, which)
        for kind in DB_KINDS
        for which, script in (("backend", BACKEND_MIGRATIONS), ("bot", BOT_MIGRATIONS))
    }
    yield factories
    for factory in factories.values():
        factory.drop_all()


@pytest.fixture(params=DB_KINDS)
def db_kind(request: pytest.FixtureRequest) -> str:
    """Which engine this run of the test uses: ``sqlite`` or ``postgres``."""
    return str(request.param)


@pytest.fixture
def backend_db_url(
    db_kind: str, database_factories: dict[tuple[str, str], DatabaseFactory], tmp_path: Path
) -> str:
    """A fresh backend database at the newest schema."""
    return database_factories[(db_kind, "backend")].new(tmp_path)


@pytest.fixture
def bot_db_url(
    db_kind: str, database_factories: dict[tuple[str, str], DatabaseFactory], tmp_path: Path
) -> str:
    """A fresh bot (conversation state) database at the newest schema."""
    return database_factories[(db_kind, "bot")].new(tmp_path)


@pytest.fixture
def clock() -> FakeClock:
    """The backend's clock, moved by the test."""
    return FakeClock()


@pytest.fixture
def settings(tmp_path: Path, backend_db_url: str) -> Settings:
    """The backend's settings for one test: its own data folder and database, fixed secrets."""
    return replace(
        Settings.from_env({}),
        data_dir=tmp_path / "var",
        database_url=backend_db_url,
        service_token=SERVICE_TOKEN,
        secret_key=SECRET_KEY,
    )


def bot_settings_for(tmp_path: Path, backend_url: str, bot_db_url: str) -> BotSettings:
    """The bot's settings for one test: a data folder apart from the backend's, fixed secrets."""
    return replace(
        BotSettings.from_env({}),
        data_dir=tmp_path / "bot-var",
        bot_database_url=bot_db_url,
        backend_url=backend_url,
        service_token=SERVICE_TOKEN,
        bot_secret_key=BOT_SECRET_KEY,
    )


@pytest.fixture
async def services(settings: Settings, clock: FakeClock) -> AsyncIterator[Services]:
    """The backend's services on the test's database, with the fake clock."""
    svc = await open_services(settings, clock=clock)
    try:
        yield svc
    finally:
        await svc.close()


@dataclass
class LiveBackend:
    """A backend serving real HTTP on a loopback port."""

    url: str
    services: Services
    client: aiohttp.ClientSession

    def api(self, path: str) -> str:
        return f"{self.url}{path}"


async def start_app(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on 127.0.0.1 on a free port; return the runner and base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def backend(services: Services) -> AsyncIterator[LiveBackend]:
    """The backend API on loopback, and a client that sends the service token."""
    from backend.api.app import create_app

    runner, url = await start_app(create_app(services))
    client = aiohttp.ClientSession(headers={"Authorization": f"Bearer {SERVICE_TOKEN}"})
    try:
        yield LiveBackend(url=url, services=services, client=client)
    finally:
        await client.close()
        await runner.cleanup()
