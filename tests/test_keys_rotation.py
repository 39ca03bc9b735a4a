"""``datadesk keys rotate`` while the system serves: nothing lost, every row on the new key.

Customers, requests and notifications are written under the old key. Then the
backend restarts with a new ``DATADESK_SECRET_KEY`` and the old one in
``DATADESK_OLD_SECRET_KEYS``; a rotation in batches of three runs while
customers are found by phone, submit address changes and a worker carries
them out. Afterwards a process holding only the new key reads every row, and
the old key is retired. A real ``datadesk keys rotate`` killed mid-way resumes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from conftest import SERVICE_TOKEN, LiveBackend, start_app
from fakes.ledger import add_customers, customer, session_token, submit
from fakes.legacy import v1_value
from sqlalchemy import select, text

from backend.api.app import create_app
from backend.crypto import Key, KeyMismatch
from backend.key_rotation import rotate
from backend.keys import key_counts
from backend.ledger.worker import run_one
from backend.models.base import Base
from backend.models.ledger import Request
from backend.services import Services, open_services
from backend.settings import Settings
from common.clock import FakeClock

ROOT = Path(__file__).resolve().parent.parent
NEW = "the-next-key-of-this-deployment-2027"
CUSTOMERS = 12
ADDRESS = {"line1": "Elizabetes iela 2", "city": "Rīga", "postcode": "LV-1010", "country": "LV"}


def _phone(i: int) -> str:
    return f"+371200{i:05d}"


def _totals(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for by_key in counts.values():
        for key, n in by_key.items():
            totals[key] = totals.get(key, 0) + n
    return totals


async def _live(svc: Services) -> AsyncIterator[LiveBackend]:
    runner, url = await start_app(create_app(svc))
    client = aiohttp.ClientSession(headers={"Authorization": f"Bearer {SERVICE_TOKEN}"})
    try:
        yield LiveBackend(url=url, services=svc, client=client)
    finally:
        await client.close()
        await runner.cleanup()


async def _submit_address_change(backend: LiveBackend, ref: str) -> str:
    token = await session_token(backend.services, ref)
    status, body = await submit(
        backend, token, "update_contact", {"field": "address", "address": ADDRESS}
    )
    assert status == 201, body
    return str(body["reference"])


async def _seed_under_old_key(settings: Settings, clock: FakeClock) -> list[str]:
    """Customers, and one queued address change each, all written under the old key."""
    svc = await open_services(settings, clock=clock)
    try:
        await add_customers(svc, *(customer(f"C-{i}", phone=_phone(i)) for i in range(CUSTOMERS)))
        live = _live(svc)
        backend = await anext(live)
        try:
            return [await _submit_address_change(backend, f"C-{i}") for i in range(CUSTOMERS)]
        finally:
            await live.aclose()
    finally:
        await svc.close()


def _rotating(settings: Settings) -> Settings:
    return replace(settings, secret_key=NEW, old_secret_keys=(settings.secret_key or "",))


async def _read_every_row(svc: Services) -> int:
    """Load every row of every table with encrypted columns; the number of rows read."""
    read = 0
    async with svc.sessions() as session:
        for mapper in Base.registry.mappers:
            read += len((await session.execute(select(mapper.class_))).scalars().all())
    return read


async def test_rotation_while_requests_are_submitted_and_completed_loses_nothing(
    settings: Settings, clock: FakeClock
) -> None:
    before = await _seed_under_old_key(settings, clock)
    old_id = Key.from_secret(settings.secret_key or "").id
    new_id = Key.from_secret(NEW).id
    svc = await open_services(_rotating(settings), clock=clock)
    live = _live(svc)
    backend = await anext(live)
    submitted: list[str] = []
    found: list[str | None] = []
    try:
        events: list[str] = []
        underway = asyncio.Event()

        def batch_done(_: str) -> None:
            events.append("batch")
            underway.set()

        async def customers_keep_coming() -> None:
            await underway.wait()
            for i in range(CUSTOMERS):
                found.append(await svc.crm.find_by_phone(_phone(i)))
                submitted.append(await _submit_address_change(backend, f"C-{i}"))
                events.append("submit")
                await run_one(svc, svc.crm, "w1")

        # Short pauses between batches of three keep the rotation going while customers come.
        report, _ = await asyncio.gather(
            rotate(svc.engine, svc.keyring, batch=3, pause=0.05, progress=batch_done),
            customers_keep_coming(),
        )
        while await run_one(svc, svc.crm, "w1"):
            pass
        assert found == [f"C-{i}" for i in range(CUSTOMERS)]
        # The two really ran together: customers were served between two batches.
        batches = [n for n, e in enumerate(events) if e == "batch"]
        assert any(e == "submit" for e in events[batches[0] : batches[-1]]), events
        assert report.unreadable is None
        assert report.retired == [old_id]
        assert set(_totals(await key_counts(svc.engine))) == {new_id}
    finally:
        await live.aclose()
        await svc.close()

    only_new = await open_services(replace(settings, secret_key=NEW), clock=clock)
    try:
        assert only_new.keyring.keys.keys() == {new_id}
        assert await _read_every_row(only_new) > 0
        async with only_new.sessions() as session:
            rows = (await session.execute(select(Request.reference, Request.state))).all()
        assert {ref for ref, _ in rows} == set(before) | set(submitted)
        assert len(rows) == 2 * CUSTOMERS
        assert {state.value for _, state in rows} == {"done"}
        for i in range(CUSTOMERS):
            assert await only_new.crm.find_by_phone(_phone(i)) == f"C-{i}"
            record = await only_new.crm.get(f"C-{i}")
            assert record is not None
            assert record.address is not None
            assert record.address.line1 == ADDRESS["line1"]
    finally:
        await only_new.close()


def _env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATADESK_DATA_DIR": str(tmp_path / "var"),
        "DATADESK_DATABASE_URL": settings.database_url,
        "DATADESK_SECRET_KEY": NEW,
        "DATADESK_OLD_SECRET_KEYS": settings.secret_key or "",
        "DATADESK_SERVICE_TOKEN": SERVICE_TOKEN,
    }


async def _datadesk(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "datadesk.cli", *args,
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_rotation_killed_midway_resumes_and_finishes(
    settings: Settings, clock: FakeClock, tmp_path: Path
) -> None:
    await _seed_under_old_key(settings, clock)
    env = _env(settings, tmp_path)
    old_id = Key.from_secret(settings.secret_key or "").id
    new_id = Key.from_secret(NEW).id
    rotating = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "datadesk.cli", "keys", "rotate", "--batch", "1", "--pause", "0.5",
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert rotating.stdout is not None
    first = await asyncio.wait_for(rotating.stdout.readline(), 120)
    assert b"rows re-encrypted" in first
    rotating.send_signal(signal.SIGKILL)
    await rotating.wait()

    svc = await open_services(_rotating(settings), clock=clock)
    try:
        midway = _totals(await key_counts(svc.engine))
    finally:
        await svc.close()
    assert midway.get(new_id, 0) > 0
    assert sum(n for key, n in midway.items() if key != new_id) > 0

    status, out, _ = await _datadesk(env, "keys", "status")
    assert status == 1
    assert f"key {new_id} (primary)" in out

    status, out, err = await _datadesk(env, "keys", "rotate", "--batch", "5")
    assert status == 0, err
    assert f"key id {old_id} retired: remove it from DATADESK_OLD_SECRET_KEYS" in out

    status, out, _ = await _datadesk(env, "keys", "status")
    assert status == 0
    assert f"key id {old_id}: retired" in out
    assert "(old)" not in out
    assert "(no key id)" not in out


async def test_a_rotation_with_the_same_key_gives_old_v1_values_key_ids(
    settings: Settings, clock: FakeClock
) -> None:
    svc = await open_services(settings, clock=clock)
    try:
        await add_customers(svc, customer("C-1"), customer("C-2", phone="+37120000002"))
        async with svc.engine.begin() as conn:
            for ref in ("C-1", "C-2"):
                await conn.execute(
                    text("UPDATE crm_customers SET name = :v WHERE ref = :ref"),
                    {"v": v1_value(settings.secret_key or "", f"Legacy {ref}"), "ref": ref},
                )
        assert _totals(await key_counts(svc.engine))["v1"] == 2
        report = await rotate(svc.engine, svc.keyring, batch=1, progress=lambda _: None)
        assert report.unreadable is None
        assert set(_totals(await key_counts(svc.engine))) == {svc.keyring.primary_id}
        exported = await svc.crm.export("C-2")
        assert exported is not None
        assert exported["name"] == "Legacy C-2"
    finally:
        await svc.close()


async def test_a_row_that_does_not_decrypt_is_named_and_the_old_key_stays(
    settings: Settings, clock: FakeClock
) -> None:
    await _seed_under_old_key(settings, clock)
    svc = await open_services(_rotating(settings), clock=clock)
    try:
        async with svc.engine.begin() as conn:
            other = (
                await conn.execute(text("SELECT name FROM crm_customers WHERE ref = 'C-1'"))
            ).scalar_one()
            await conn.execute(
                text("UPDATE crm_customers SET name = :v WHERE ref = 'C-2'"), {"v": other}
            )
            bad_id = (
                await conn.execute(text("SELECT id FROM crm_customers WHERE ref = 'C-2'"))
            ).scalar_one()
        report = await rotate(svc.engine, svc.keyring, batch=4, progress=lambda _: None)
        assert report.retired is None
        assert report.unreadable == [
            f"crm_customers id={bad_id}: crm_customers.name: the value does not decrypt under "
            f"key id {Key.from_secret(settings.secret_key or '').id}: it was altered, or belongs "
            "to another row, column or table"
        ]
    finally:
        await svc.close()
    # The old key is still needed and still required at start.
    with pytest.raises(KeyMismatch, match="DATADESK_OLD_SECRET_KEYS"):
        await open_services(replace(settings, secret_key=NEW), clock=clock)
