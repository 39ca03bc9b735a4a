"""A backend or worker started with other audit keys than the chain's refuses, naming the setting.

As operators meet it: a real ``datadesk backend`` and ``datadesk worker`` on a
database whose chain and checkpoints were made with other keys exit 2 with one
line, before sealing anything; and through the runner's entry point
(``backend.runner.with_services``), which every backend, worker and
``datadesk run`` process starts from.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SERVICE_TOKEN
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select, update

from backend import audit
from backend.audit.keys import KEY_FILE
from backend.crypto import KeyMismatch
from backend.models.audit import AuditEntry
from backend.runner import with_services
from backend.services import Services
from backend.settings import Settings
from common.clock import FakeClock

ROOT = Path(__file__).resolve().parent.parent
OTHER_CHAIN_KEY = "the-chain-key-of-another-deployment"
OTHER_SEED = Ed25519PrivateKey.generate().private_bytes_raw().hex()
ADVICE = "start every backend and worker process with the same audit keys"


async def _sealed_and_checkpointed(services: Services, clock: FakeClock, count: int) -> None:
    """``count`` audit entries, sealed under the data folder's keys, the head checkpointed."""
    for i in range(count):
        async with services.sessions() as session:
            await audit.record(
                session,
                action="request_submitted",
                actor="customer:C-1",
                subject=f"DD-00000{i}",
                outcome="queued",
                data={"kind": "erasure"},
                at=clock.now(),
            )
            await session.commit()
        clock.advance(seconds=1)
    sealer = audit.Sealer(services)
    await sealer.round()
    await sealer.checkpoint()


async def _datadesk(settings: Settings, *command: str, **keys: str) -> tuple[int, str]:
    """Run ``datadesk COMMAND`` on the test's database and data folder; exit status, stderr."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATADESK_DATA_DIR": str(settings.data_dir),
        "DATADESK_DATABASE_URL": settings.database_url,
        "DATADESK_SECRET_KEY": settings.secret_key or "",
        "DATADESK_SERVICE_TOKEN": SERVICE_TOKEN,
        "DATADESK_HTTP_PORT": "0",
        **{f"DATADESK_{name}": value for name, value in keys.items()},
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "datadesk.cli", *command,
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _, err = await asyncio.wait_for(process.communicate(), 120)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return int(process.returncode or 0), err.decode()


def _checkpoint_lines(settings: Settings) -> list[str]:
    return [
        line
        for path in sorted(settings.checkpoint_dir.glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


async def _nothing(services: Services, stop: asyncio.Event) -> int:
    return 0


@pytest.mark.parametrize("command", [["backend"], ["worker", "--once"]])
async def test_a_process_with_another_chain_key_exits_naming_the_setting_before_sealing(
    services: Services, clock: FakeClock, settings: Settings, command: list[str]
) -> None:
    await _sealed_and_checkpointed(services, clock, 3)
    async with services.sessions() as session:
        await audit.record(session, action="agent_login", actor="agent:1", at=clock.now())
        await session.commit()
    checkpoints_before = _checkpoint_lines(settings)

    status, err = await _datadesk(settings, *command, AUDIT_KEY=OTHER_CHAIN_KEY)

    assert status == 2, err
    [line] = err.strip().splitlines()
    assert line.startswith(
        "datadesk: DATADESK_AUDIT_KEY does not match the chain key of the latest audit "
        f"checkpoint ({settings.checkpoint_dir}/"
    )
    assert ADVICE in line
    assert OTHER_CHAIN_KEY not in err
    # Nothing was sealed nor signed with the other key.
    async with services.sessions() as session:
        unsealed = await session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.seq.is_(None))
        )
    assert unsealed == 1
    assert _checkpoint_lines(settings) == checkpoints_before


async def test_a_worker_with_another_signing_key_exits_naming_that_setting(
    services: Services, clock: FakeClock, settings: Settings
) -> None:
    await _sealed_and_checkpointed(services, clock, 2)

    status, err = await _datadesk(settings, "worker", "--once", AUDIT_SIGNING_KEY=OTHER_SEED)

    assert status == 2, err
    [line] = err.strip().splitlines()
    assert line.startswith(
        "datadesk: DATADESK_AUDIT_SIGNING_KEY does not match the key that signed the latest "
        f"audit checkpoint ({settings.checkpoint_dir}/"
    )
    assert OTHER_SEED not in err


async def test_a_key_file_that_differs_from_the_chain_is_named_with_no_checkpoint_yet(
    services: Services, clock: FakeClock, settings: Settings
) -> None:
    await _sealed_and_checkpointed(services, clock, 2)
    for path in settings.checkpoint_dir.glob("*.jsonl"):
        path.unlink()
    key_file = settings.data_dir / KEY_FILE
    key_file.write_text(OTHER_CHAIN_KEY + "\n", encoding="utf-8")

    with pytest.raises(KeyMismatch) as refused:
        await with_services(settings, _nothing, clock)

    assert str(refused.value).startswith(
        f"{key_file} (DATADESK_AUDIT_KEY is unset) does not match the key the audit chain in "
        "this database was sealed with (the MACs of its newest entries, up to entry 2, "
    )
    assert OTHER_CHAIN_KEY not in str(refused.value)


async def test_a_fresh_database_starts_with_keys_set_for_the_first_time(
    settings: Settings,
) -> None:
    status, err = await _datadesk(
        settings, "worker", "--once", AUDIT_KEY=OTHER_CHAIN_KEY, AUDIT_SIGNING_KEY=OTHER_SEED
    )
    assert status == 0, err


async def test_the_keys_the_chain_was_made_with_start_and_the_chain_still_verifies(
    services: Services, clock: FakeClock, settings: Settings
) -> None:
    await _sealed_and_checkpointed(services, clock, 3)

    status, err = await _datadesk(settings, "worker", "--once")

    assert status == 0, err
    async with services.sessions() as session:
        verdict = await audit.verify(session, settings)
    assert verdict.intact, verdict.problem
    assert verdict.count == 3


async def test_an_edited_newest_entry_is_left_to_audit_verify_not_taken_for_another_key(
    services: Services, clock: FakeClock, settings: Settings
) -> None:
    await _sealed_and_checkpointed(services, clock, 3)
    async with services.sessions() as session:
        await session.execute(
            update(AuditEntry).where(AuditEntry.seq == 3).values(outcome="rejected")
        )
        await session.commit()

    assert await with_services(settings, _nothing, clock) == 0
    async with services.sessions() as session:
        verdict = await audit.verify(session, settings)
    assert verdict.problem == "entry 3: edited (its MAC does not match its contents)"
