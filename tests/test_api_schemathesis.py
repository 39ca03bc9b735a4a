"""schemathesis against the served OpenAPI document: no input makes the backend answer 5xx.

Every operation of ``/api/v1/openapi.yaml`` is exercised with inputs
schemathesis derives from the document: its examples, boundary and
out-of-schema values (the coverage phase) and a bounded number of random
ones, valid and invalid, on SQLite and on PostgreSQL. Answers must not be
server errors, must match the document (a documented status, the declared
content type, the declared body schema), and input the document rules out
must be refused with a 4xx. The run is deterministic (a fixed seed,
derandomized Hypothesis, no example database) for a given checkout and
selection of tests, so a failure in CI is the same failure on a laptop
running the suite. Hypothesis also draws literals from the project's modules
loaded at the time, so this file run alone may try other examples than the
whole suite does; both must pass.

The backend is the real application on a real database, served on its own
event loop in a thread because schemathesis calls it synchronously. Calls
carry the service token and a live session of a customer on file, so the
routes behind the session get past it and their validation is reached.

The document is loaded when the module is, from ``document_text()``, which
is what the route serves (a test below compares the bytes): schemathesis's
way of loading it from a fixture reads a pytest internal that pytest 9.2
no longer has.
"""

from __future__ import annotations

import asyncio
import io
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
import yaml
from conftest import DB_KINDS, SERVICE_TOKEN, settings_for, start_app
from database_pool import DatabaseFactory
from fakes.ledger import add_customers, customer, session_token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from backend.api.app import create_app
from backend.api.notifications import CLOSING
from backend.api.openapi import document_text
from backend.services import open_services
from backend.sms import ConsoleSmsGateway
from common.clock import FakeClock

# Random examples per operation, after the examples and coverage phases. The
# whole module (both databases) takes about 30 s of CPU: under a minute here
# alone, 90 s with the machine's two cores shared.
MAX_EXAMPLES = 25
SEED = 20261122
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@dataclass
class Served:
    url: str
    session: str


class LoopThread:
    """An event loop of its own in a daemon thread; ``run`` waits for a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module", params=DB_KINDS)
def served(
    request: pytest.FixtureRequest,
    database_factories: dict[tuple[str, str], DatabaseFactory],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    """The backend on its own loop and database, a customer on file and a live session of theirs.

    One per database kind for the whole module: every operation's examples
    run against it in turn, so a database is made twice, not 26 times.
    """
    folder = tmp_path_factory.mktemp(f"schemathesis-{request.param}")
    factory = database_factories[(request.param, "backend")]
    database_url = factory.new(folder)
    settings = settings_for(folder, database_url)
    loop = LoopThread()

    async def up() -> tuple[Any, Any, Served]:
        services = await open_services(settings, clock=FakeClock())
        # The demo gateway prints codes; here nobody reads them.
        services.sms = ConsoleSmsGateway(io.StringIO())
        await add_customers(services, customer("C-1"))
        token = await session_token(services, "C-1")
        app = create_app(services)
        runner, url = await start_app(app)
        # Long polls answer at once, as during a shutdown: ``wait`` up to 30 s
        # per example would not fit in a test run, and only timing changes.
        app[CLOSING].set()
        return services, runner, Served(url, token)

    services, runner, answer = loop.run(up())
    try:
        yield answer
    finally:

        async def down() -> None:
            await runner.cleanup()
            await services.close()

        loop.run(down())
        loop.stop()
        factory.release(database_url)


def _config() -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
                "with-security-parameters": False,
            },
            "phases": {"stateful": {"enabled": False}},
            # 413 refuses a body over the 64 KiB limit, as schema-violating as any 4xx:
            # a batch of lines each over its length limit is refused so before it is read.
            "checks": {
                "negative_data_rejection": {
                    "expected-statuses": [
                        "400",
                        "401",
                        "403",
                        "404",
                        "405",
                        "406",
                        "409",
                        "413",
                        "415",
                        "422",
                        "428",
                        "429",
                        "5XX",
                    ]
                }
            },
        }
    )


schema = schemathesis.openapi.from_dict(yaml.safe_load(document_text()), config=_config())


def test_the_document_under_test_is_the_one_served(served: Served) -> None:
    with urllib.request.urlopen(f"{served.url}/api/v1/openapi.yaml", timeout=10) as resp:  # noqa: S310
        assert resp.read().decode() == document_text()


@schema.parametrize()
def test_no_input_makes_any_operation_answer_a_server_error_or_stray_from_the_document(
    case: schemathesis.Case, served: Served
) -> None:
    headers = {
        "Authorization": f"Bearer {SERVICE_TOKEN}",
        "X-Customer-Session": served.session,
        "X-Customer-Chat": "tg:42",  # the chat the session was issued in
    }
    case.call_and_validate(base_url=served.url, headers=headers, checks=CHECKS)
