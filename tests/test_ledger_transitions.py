"""One function moves a request; the moves it allows; idle workers woken by a new request."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest
from conftest import LiveBackend
from fakes.ledger import add_customers, customer, session_token, submit
from sqlalchemy import func, select

from backend.errors import IllegalTransition
from backend.ledger import states
from backend.ledger.claims import Claimed
from backend.ledger.transitions import transition
from backend.ledger.wakeup import CHANNEL, Waiter
from backend.ledger.worker import run_workers
from backend.models.audit import AuditEntry
from backend.models.ledger import Notification, Request
from common.vocabulary.request_states import DONE, QUEUED, RUNNING, SUBMITTED, RequestState

ROOT = Path(__file__).resolve().parent.parent
ADDRESS = {"line1": "Elizabetes iela 2", "city": "Rīga", "postcode": "LV-1010", "country": "LV"}


def _state_writes(path: Path) -> list[str]:
    """``file:line`` of every ``….state = …``, ``Request(state=…)`` and ``.values(state=…)``
    in a module that imports ``Request``."""
    tree = ast.parse(path.read_text(), str(path))
    uses_request = any(
        isinstance(node, ast.ImportFrom)
        and node.module == "backend.models.ledger"
        and any(alias.name == "Request" for alias in node.names)
        for node in ast.walk(tree)
    )
    if not uses_request:
        return []
    found = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            for leaf in ast.walk(target):
                if isinstance(leaf, ast.Attribute) and leaf.attr == "state":
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
        # Request(state=…), update(Request).values(state=…)
        if (
            isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "Request")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "values")
            )
            and any(k.arg == "state" for k in node.keywords)
        ):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_only_transitions_py_assigns_a_requests_state() -> None:
    allowed = ROOT / "backend" / "ledger" / "transitions.py"
    writes = [
        where
        for folder in ("backend", "bench", "datadesk", "tests")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != allowed and "migrations" not in path.parts
        for where in _state_writes(path)
    ]
    assert writes == []


def test_every_move_starts_and_ends_at_a_known_state_and_has_an_audit_action() -> None:
    for (current, to), action in states.MOVES.items():
        assert isinstance(current, RequestState)
        assert isinstance(to, RequestState)
        assert action.startswith("request_")
    assert not states.allowed(DONE, QUEUED)
    assert not states.allowed(QUEUED, DONE)
    assert states.allowed(SUBMITTED, QUEUED)


async def _queued(backend: LiveBackend) -> Request:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    status, _ = await submit(
        backend, token, "update_contact", {"field": "address", "address": ADDRESS}
    )
    assert status == 201
    async with backend.services.sessions() as session:
        return (await session.execute(select(Request))).scalar_one()


async def test_an_illegal_move_raises_and_writes_nothing(backend: LiveBackend) -> None:
    await _queued(backend)
    now = backend.services.clock.now()
    async with backend.services.sessions() as session:
        row = (await session.execute(select(Request))).scalar_one()
        with pytest.raises(IllegalTransition) as raised:
            await transition(session, row, DONE, actor="test", at=now)
        assert (raised.value.current, raised.value.to, raised.value.status) == (
            "queued",
            "done",
            409,
        )
        await session.commit()
    async with backend.services.sessions() as session:
        row = (await session.execute(select(Request))).scalar_one()
        told = await session.scalar(select(func.count()).select_from(Notification))
        actions = (await session.execute(select(AuditEntry.action))).scalars().all()
    assert row.state == QUEUED
    assert told == 0
    assert list(actions) == ["request_submitted"]


async def test_running_needs_a_lease(backend: LiveBackend) -> None:
    await _queued(backend)
    async with backend.services.sessions() as session:
        row = (await session.execute(select(Request))).scalar_one()
        with pytest.raises(ValueError, match="lease"):
            await transition(session, row, RUNNING, actor="test", at=backend.services.clock.now())


async def test_an_idle_worker_starts_a_new_request_when_woken_not_by_polling(
    backend: LiveBackend,
) -> None:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    started = asyncio.Event()

    def effect(job: Claimed) -> None:
        started.set()

    stop = asyncio.Event()
    # An hour between looks: only a wake-up can start the request within the test.
    worker = asyncio.create_task(
        run_workers(
            backend.services,
            backend.services.crm,
            concurrency=1,
            stop=stop,
            purge=False,
            after_effect=effect,
            poll_seconds=3600,
        )
    )
    try:
        await asyncio.sleep(0.2)  # let it find the queue empty and go idle
        assert not worker.done()
        status, _ = await submit(
            backend, token, "update_contact", {"field": "address", "address": ADDRESS}
        )
        assert status == 201
        await asyncio.wait_for(started.wait(), timeout=30)
    finally:
        stop.set()
        assert await asyncio.wait_for(worker, timeout=30) == 1


@pytest.mark.postgres_only  # LISTEN/NOTIFY is PostgreSQL's; SQLite wakes workers in-process
async def test_a_request_queued_on_postgresql_notifies_listening_processes_at_commit(
    backend: LiveBackend,
) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    url = make_url(backend.services.settings.database_url).set(drivername="postgresql")
    listener = await asyncpg.connect(url.render_as_string(hide_password=False))
    heard = asyncio.Event()
    try:
        await listener.add_listener(CHANNEL, lambda *_: heard.set())
        status, _ = await submit(
            backend, token, "update_contact", {"field": "address", "address": ADDRESS}
        )
        assert status == 201
        await asyncio.wait_for(heard.wait(), timeout=30)
    finally:
        await listener.close()


@pytest.mark.postgres_only  # LISTEN/NOTIFY is PostgreSQL's; SQLite wakes workers in-process
async def test_a_waiter_on_postgresql_wakes_on_a_notify_from_another_connection(
    backend: LiveBackend,
) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    waiter = Waiter(backend.services.settings.database_url, poll_seconds=3600)
    await waiter.start()
    url = make_url(backend.services.settings.database_url).set(drivername="postgresql")
    other = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        woken = asyncio.ensure_future(waiter.wait())
        await asyncio.sleep(0.1)
        await other.execute(f"NOTIFY {CHANNEL}")
        assert await asyncio.wait_for(woken, timeout=30) is True
    finally:
        await other.close()
        await waiter.close()
