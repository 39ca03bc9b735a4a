"""A process refuses keys that do not fit its database, with one line naming the setting.

In-process through ``open_services`` (every backend, worker and command opens
its services there), and as operators meet it: a real ``datadesk backend``,
``datadesk worker`` and ``datadesk run`` started with the wrong key exit 2 with the message.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from conftest import SERVICE_TOKEN, start_app
from fakes.ledger import add_customers, customer
from sqlalchemy import text

from backend.api.app import create_app
from backend.crypto import Key, KeyMismatch, load_keyring
from backend.key_rotation import rotate
from backend.services import open_services
from backend.settings import Settings
from common.clock import FakeClock

ROOT = Path(__file__).resolve().parent.parent
WRONG = "not-the-key-this-database-was-written-with"
NEW = "the-next-key-of-this-deployment-2027"


async def _seed(settings: Settings, clock: FakeClock) -> None:
    svc = await open_services(settings, clock=clock)
    try:
        await add_customers(svc, customer("C-1"))
    finally:
        await svc.close()


async def test_a_wrong_secret_key_is_refused_naming_the_setting(
    settings: Settings, clock: FakeClock
) -> None:
    await _seed(settings, clock)
    with pytest.raises(KeyMismatch, match=r"^DATADESK_SECRET_KEY does not match the key"):
        await open_services(replace(settings, secret_key=WRONG), clock=clock)


async def test_a_new_key_with_the_current_one_as_old_starts_a_rotation(
    settings: Settings, clock: FakeClock
) -> None:
    await _seed(settings, clock)
    rotating = replace(settings, secret_key=NEW, old_secret_keys=(settings.secret_key or "",))
    svc = await open_services(rotating, clock=clock)
    try:
        assert await svc.crm.find_by_phone("+37120000001") == "C-1"
        async with svc.engine.connect() as conn:
            known = (await conn.execute(text("SELECT key_id FROM crypto_keys"))).scalars().all()
        assert set(known) == {
            Key.from_secret(NEW).id,
            Key.from_secret(settings.secret_key or "").id,
        }
    finally:
        await svc.close()


async def test_dropping_the_old_key_before_the_rotation_ran_is_refused(
    settings: Settings, clock: FakeClock
) -> None:
    await _seed(settings, clock)
    rotating = replace(settings, secret_key=NEW, old_secret_keys=(settings.secret_key or "",))
    await (await open_services(rotating, clock=clock)).close()
    with pytest.raises(KeyMismatch, match=r"^DATADESK_OLD_SECRET_KEYS: key id \w+ still encrypts"):
        await open_services(replace(settings, secret_key=NEW), clock=clock)


async def test_a_key_retired_by_a_finished_rotation_is_refused_and_not_ready(
    settings: Settings, clock: FakeClock
) -> None:
    await _seed(settings, clock)
    # A process still on the old key, serving while the rotation runs elsewhere.
    old = await open_services(settings, clock=clock)
    runner, url = await start_app(create_app(old))
    try:
        async with aiohttp.ClientSession() as client:
            async with client.get(f"{url}/healthz") as resp:
                assert resp.status == 200
            rotating = replace(
                settings, secret_key=NEW, old_secret_keys=(settings.secret_key or "",)
            )
            new = await open_services(rotating, clock=clock)
            try:
                report = await rotate(new.engine, new.keyring, batch=2, progress=lambda _: None)
            finally:
                await new.close()
            assert report.retired == [Key.from_secret(settings.secret_key or "").id]
            async with client.get(f"{url}/healthz") as resp:
                assert (resp.status, await resp.json()) == (503, {"status": "key not current"})
    finally:
        await runner.cleanup()
        await old.close()
    with pytest.raises(KeyMismatch, match=r"^DATADESK_SECRET_KEY: key id \w+ was retired"):
        await open_services(settings, clock=clock)


async def test_a_database_with_no_key_registered_yet_is_checked_against_its_values(
    settings: Settings, clock: FakeClock
) -> None:
    # As after migration 0007 on a deployment that already held data.
    await _seed(settings, clock)
    svc = await open_services(settings, clock=clock)
    async with svc.engine.begin() as conn:
        await conn.execute(text("DELETE FROM crypto_keys"))
    await svc.close()
    with pytest.raises(KeyMismatch, match=r"^DATADESK_SECRET_KEY does not match"):
        await open_services(replace(settings, secret_key=WRONG), clock=clock)
    # The right key registers itself again and serves.
    svc = await open_services(settings, clock=clock)
    try:
        assert await svc.crm.find_by_phone("+37120000001") == "C-1"
    finally:
        await svc.close()


_INFO_LOG = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO datadesk\.migrations: ")


def _env(settings: Settings, tmp_path: Path, secret: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATADESK_DATA_DIR": str(tmp_path / "var"),
        "DATADESK_DATABASE_URL": settings.database_url,
        "DATADESK_SECRET_KEY": secret,
        "DATADESK_SERVICE_TOKEN": SERVICE_TOKEN,
        "DATADESK_HTTP_PORT": "0",
    }


@pytest.mark.parametrize("command", [["backend"], ["worker", "--once"], ["run"]])
async def test_a_real_process_started_with_the_wrong_key_exits_with_one_line(
    settings: Settings, clock: FakeClock, tmp_path: Path, command: list[str]
) -> None:
    await _seed(settings, clock)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "datadesk.cli", *command,
        cwd=ROOT, env=_env(settings, tmp_path, WRONG),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 2
    # `run` migrates first and logs what it applied; the refusal itself is one line.
    lines = [line for line in err.decode().strip().splitlines() if not _INFO_LOG.match(line)]
    assert len(lines) == 1, err.decode()
    assert lines[0].startswith("datadesk: DATADESK_SECRET_KEY does not match the key this database")
    assert "Traceback" not in err.decode()


def test_a_generated_key_file_is_private_from_creation_and_shared_by_every_process(
    tmp_path: Path,
) -> None:
    previous = os.umask(0)
    try:
        first = load_keyring(None, tmp_path / "var")
        second = load_keyring(None, tmp_path / "var")
    finally:
        os.umask(previous)
    key_file = tmp_path / "var" / "secret.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "var").stat().st_mode & 0o777 == 0o700
    assert first.primary_id == second.primary_id


async def test_a_generated_key_file_that_does_not_fit_is_named_in_the_refusal(
    settings: Settings, clock: FakeClock
) -> None:
    await _seed(settings, clock)
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "secret.key").write_text(WRONG + "\n", encoding="utf-8")
    (data_dir / "secret.key").chmod(0o600)
    with pytest.raises(KeyMismatch) as refused:
        await open_services(replace(settings, secret_key=None), clock=clock)
    assert str(refused.value).startswith(
        f"{data_dir / 'secret.key'} (DATADESK_SECRET_KEY is unset) does not match the key"
    )


async def test_processes_starting_at_once_on_a_new_database_register_one_key(
    settings: Settings, clock: FakeClock
) -> None:
    started = await asyncio.gather(*(open_services(settings, clock=clock) for _ in range(4)))
    try:
        async with started[0].engine.connect() as conn:
            rows = (await conn.execute(text("SELECT key_id FROM crypto_keys"))).scalars().all()
        assert rows == [Key.from_secret(settings.secret_key or "").id]
    finally:
        for svc in started:
            await svc.close()


async def test_a_process_given_the_next_key_as_old_reads_what_the_new_primary_writes(
    settings: Settings, clock: FakeClock
) -> None:
    await _seed(settings, clock)
    current = settings.secret_key or ""
    # Step 2 of a rotation: the next key is readable everywhere before it is primary.
    waiting = replace(settings, old_secret_keys=(NEW,))
    await (await open_services(waiting, clock=clock)).close()
    rotating = await open_services(
        replace(settings, secret_key=NEW, old_secret_keys=(current,)), clock=clock
    )
    try:
        await rotating.crm.update_phone("C-1", "+37120000099", idempotency_key="k-1")
    finally:
        await rotating.close()
    not_yet_restarted = await open_services(waiting, clock=clock)
    try:
        assert await not_yet_restarted.crm.find_by_phone("+37120000099") == "C-1"
        contact = await not_yet_restarted.crm.contact_on_file("C-1")
        assert contact.phone == "+37120000099"
    finally:
        await not_yet_restarted.close()
