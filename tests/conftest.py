"""Shared fixtures: fresh migrated databases on SQLite and PostgreSQL, a live backend.

Every test that asks for ``backend_db_url`` (directly or through ``services``
or ``backend``) runs once on SQLite and, when ``DATADESK_TEST_POSTGRES_URL`` is
set, once more on PostgreSQL. ``--require-postgres`` (set by ``.ci/run``) turns
an unreachable PostgreSQL into an error instead of a smaller run.

Each test gets its own database, made from a template migrated once per
session: a copied file on SQLite, a pooled database emptied between tests on
PostgreSQL (``tests/database_pool.py``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import openapi_contract
import pytest
from aiohttp import web
from database_pool import DatabaseFactory, PostgresServer
from fakes.loopback import serve

from backend.models.base import BACKEND_MIGRATIONS
from backend.services import Services, open_services
from backend.settings import Settings
from bot.settings import BotSettings
from bot.state import BOT_MIGRATIONS
from common.clock import FakeClock

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


def find_tool(name: str) -> str | None:
    """A program's full path, looking in the sbin folders too (nginx is there, off a user's PATH)."""
    return shutil.which(
        name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``postgres_only`` run on PostgreSQL alone: never collected as SQLite skips.

    Likewise a test marked ``needs_tool(name)`` is deselected, not skipped, where
    the program is not found (``make test`` installs them).
    """
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_sqlite = callspec is not None and callspec.params.get("db_kind") == "sqlite"
        wants_postgres = item.get_closest_marker("postgres_only") is not None
        tools = [m.args[0] for m in item.iter_markers("needs_tool")]
        missing_tool = any(find_tool(tool) is None for tool in tools)
        if (wants_postgres and (on_sqlite or not POSTGRES_URL)) or missing_tool:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def database_factories(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[dict[tuple[str, str], DatabaseFactory]]:
    """One factory per (kind, which database); templates are built on first use."""
    server: PostgresServer | None = None
    if POSTGRES_URL:
        server = PostgresServer(POSTGRES_URL)
        try:
            server.admin("SELECT 1")
        except Exception as exc:
            raise pytest.UsageError(
                f"DATADESK_TEST_POSTGRES_URL is set but PostgreSQL is unreachable: {exc}"
            ) from exc
        server.sweep_orphans()
    workdir = tmp_path_factory.mktemp("templates")
    factories = {
        (kind, which): DatabaseFactory(
            kind, script, workdir, which, server if kind == "postgres" else None
        )
        for kind in DB_KINDS
        for which, script in (("backend", BACKEND_MIGRATIONS), ("bot", BOT_MIGRATIONS))
    }
    yield factories
    for factory in factories.values():
        factory.close()


@pytest.fixture(autouse=True)
def api_contract() -> Iterator[None]:
    """Fail the test during which the backend's API disagreed with its OpenAPI document."""
    openapi_contract.take()
    yield
    found = openapi_contract.take()
    if found:
        pytest.fail(
            "the backend API and backend/api/openapi/*.yaml disagree:\n" + "\n".join(found),
            pytrace=False,
        )


@pytest.fixture(params=DB_KINDS)
def db_kind(request: pytest.FixtureRequest) -> str:
    """Which engine this run of the test uses: ``sqlite`` or ``postgres``."""
    return str(request.param)


@pytest.fixture
def backend_db_url(
    db_kind: str, database_factories: dict[tuple[str, str], DatabaseFactory], tmp_path: Path
) -> Iterator[str]:
    """A fresh backend database at the newest schema."""
    factory = database_factories[(db_kind, "backend")]
    url = factory.new(tmp_path)
    yield url
    factory.release(url)


@pytest.fixture
def bot_db_url(
    db_kind: str, database_factories: dict[tuple[str, str], DatabaseFactory], tmp_path: Path
) -> Iterator[str]:
    """A fresh bot (conversation state) database at the newest schema."""
    factory = database_factories[(db_kind, "bot")]
    url = factory.new(tmp_path)
    yield url
    factory.release(url)


@pytest.fixture
def clock() -> FakeClock:
    """The backend's clock, moved by the test."""
    return FakeClock()


def settings_for(folder: Path, backend_db_url: str) -> Settings:
    """The backend's settings with a data folder in ``folder``, a database, fixed secrets."""
    return replace(
        Settings.from_env({}),
        data_dir=folder / "var",
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
def settings(tmp_path: Path, backend_db_url: str) -> Settings:
    """The backend's settings for one test: its own data folder and database, fixed secrets."""
    return settings_for(tmp_path, backend_db_url)


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
    """Serve ``app`` on 127.0.0.1 on a free port; return the runner and base URL.

    A backend application is served behind the OpenAPI contract check
    (``tests/openapi_contract.py``; the ``api_contract`` fixture fails the test).
    """
    return await serve(openapi_contract.check(app))


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
