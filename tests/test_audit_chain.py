"""The audit log: unsealed appends, one sealer, a keyed chain, signed checkpoints, tampering named."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
from dataclasses import replace

import pytest
from conftest import DB_KINDS
from sqlalchemy import delete, func, insert, select, update

from backend import audit
from backend.audit.chain import entry_mac
from backend.audit.keys import KEY_FILE, load_keys
from backend.models.audit import AuditEntry
from backend.services import Services
from backend.settings import Settings
from common.clock import FakeClock


async def _write(services: Services, clock: FakeClock, count: int) -> None:
    for i in range(count):
        async with services.sessions() as session:
            await audit.record(
                session,
                action="request_submitted",
                actor="customer:C-1",
                subject=f"DD-00000{i % 10}",
                outcome="queued",
                data={"kind": "erasure", "attempt": i, "review": False, "note": None},
                at=clock.now(),
            )
            await session.commit()
        clock.advance(seconds=1.5)


async def _sealed_and_checkpointed(services: Services, clock: FakeClock, count: int) -> None:
    """``count`` entries, sealed, with a signed checkpoint of the head."""
    await _write(services, clock, count)
    sealer = audit.Sealer(services)
    await sealer.round()
    await sealer.checkpoint()


def _verify_cli(settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {
        "DATADESK_DATABASE_URL": settings.database_url,
        "DATADESK_DATA_DIR": str(settings.data_dir),
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        [sys.executable, "-m", "datadesk.cli", "audit", "verify"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


async def _verdict(services: Services) -> audit.Verdict:
    async with services.sessions() as session:
        return await audit.verify(session, services.settings)


async def _renumber(services: Services, *, from_seq: int, by: int) -> None:
    """Shift ``seq`` of entries from ``from_seq`` on by ``by``, as a forger hiding a change would."""
    async with services.sessions() as session:
        # Through negatives: the unique seq must hold after every row.
        await session.execute(
            update(AuditEntry).where(AuditEntry.seq >= from_seq).values(seq=-AuditEntry.seq)
        )
        await session.execute(
            update(AuditEntry).where(AuditEntry.seq < 0).values(seq=by - AuditEntry.seq)
        )
        await session.commit()


async def test_an_untouched_chain_verifies_with_its_count_and_checkpoint(
    services: Services, clock: FakeClock, settings: Settings
) -> None:
    await _sealed_and_checkpointed(services, clock, 5)
    result = await asyncio.to_thread(_verify_cli, settings)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("audit: 5 entries, chain intact, extends the checkpoint of ")
    assert result.stdout.strip().endswith("(entry 5)")


async def test_entries_wait_unsealed_until_the_sealer_chains_them(
    services: Services, clock: FakeClock
) -> None:
    await _write(services, clock, 3)
    waiting = await _verdict(services)
    assert (waiting.count, waiting.unsealed, waiting.intact) == (0, 3, True)
    assert await audit.seal_pending(services) == 3
    sealed = await _verdict(services)
    assert (sealed.count, sealed.unsealed, sealed.intact) == (3, 0, True)


async def test_an_action_rolled_back_leaves_no_audit_entry(
    services: Services, clock: FakeClock
) -> None:
    async with services.sessions() as session:
        await audit.record(session, action="probe", actor="system", at=clock.now())
        await session.rollback()
    async with services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(AuditEntry)) == 0


async def test_an_edited_entry_is_named_by_the_command(
    services: Services, clock: FakeClock, settings: Settings
) -> None:
    await _sealed_and_checkpointed(services, clock, 5)
    async with services.sessions() as session:
        await session.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(actor="agent:x"))
        await session.commit()
    result = await asyncio.to_thread(_verify_cli, settings)
    assert result.returncode == 1
    assert result.stdout.strip() == "audit: entry 3: edited (its MAC does not match its contents)"


async def test_a_removed_entry_shows_as_a_sequence_gap(
    services: Services, clock: FakeClock
) -> None:
    await _sealed_and_checkpointed(services, clock, 5)
    async with services.sessions() as session:
        await session.execute(delete(AuditEntry).where(AuditEntry.seq == 2))
        await session.commit()
    verdict = await _verdict(services)
    assert verdict.problem == "entry 2 removed (the sequence jumps from 1 to 3)"


async def test_a_removed_entry_hidden_by_renumbering_is_named(
    services: Services, clock: FakeClock
) -> None:
    await _sealed_and_checkpointed(services, clock, 5)
    async with services.sessions() as session:
        await session.execute(delete(AuditEntry).where(AuditEntry.seq == 2))
        await session.commit()
    await _renumber(services, from_seq=3, by=-1)
    verdict = await _verdict(services)
    assert verdict.problem == (
        "entry 2: an entry before it was removed (it links to one that is not there)"
    )


async def test_an_inserted_entry_is_named(services: Services, clock: FakeClock) -> None:
    await _sealed_and_checkpointed(services, clock, 5)
    await _renumber(services, from_seq=3, by=1)
    async with services.sessions() as session:
        before = (await session.execute(select(AuditEntry).where(AuditEntry.seq == 2))).scalar_one()
        # Linked to entry 2 as the chain would, but without the key its MAC is a guess.
        await session.execute(
            insert(AuditEntry).values(
                seq=3,
                at=clock.now(),
                actor="agent:forger",
                action="request_submitted",
                data="{}",
                prev_hash=before.hash,
                hash=hashlib.sha256(b"forged").hexdigest(),
            )
        )
        await session.commit()
    verdict = await _verdict(services)
    assert verdict.problem == "entry 3: inserted (entry 4 links to entry 2)"


async def test_a_rewrite_with_recomputed_hashes_is_named(
    services: Services, clock: FakeClock
) -> None:
    await _sealed_and_checkpointed(services, clock, 5)
    # The forger edits entry 2 and recomputes every MAC after it, with a key they guessed.
    guessed = b"not the key"
    async with services.sessions() as session:
        rows = list(await session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
        prev = rows[0].hash
        for row in rows[1:]:
            actor = "agent:forger" if row.seq == 2 else row.actor
            mac = entry_mac(
                guessed,
                seq=int(row.seq or 0),
                at=row.at,
                actor=actor,
                action=row.action,
                subject=row.subject,
                outcome=row.outcome,
                data=row.data,
                prev_hash=str(prev),
            )
            row.actor, row.prev_hash, row.hash, prev = actor, prev, mac, mac
        await session.commit()
    verdict = await _verdict(services)
    assert verdict.problem == (
        "entries from 2 on: rewritten with recomputed hashes (their MACs do not match)"
    )


async def test_a_rewrite_with_the_stolen_key_is_caught_by_the_signed_checkpoint(
    services: Services, clock: FakeClock
) -> None:
    await _sealed_and_checkpointed(services, clock, 5)
    key = load_keys(services.settings).mac_key
    async with services.sessions() as session:
        rows = list(await session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
        prev = rows[2].hash
        for row in rows[3:]:
            actor = "agent:forger" if row.seq == 4 else row.actor
            mac = entry_mac(
                key,
                seq=int(row.seq or 0),
                at=row.at,
                actor=actor,
                action=row.action,
                subject=row.subject,
                outcome=row.outcome,
                data=row.data,
                prev_hash=str(prev),
            )
            row.actor, row.prev_hash, row.hash, prev = actor, prev, mac, mac
        await session.commit()
    verdict = await _verdict(services)
    assert verdict.problem is not None
    assert verdict.problem.startswith("rewritten: entry 5 is not the one the checkpoint of ")


async def test_a_cut_tail_is_named_against_the_checkpoint(
    services: Services, clock: FakeClock
) -> None:
    await _sealed_and_checkpointed(services, clock, 5)
    async with services.sessions() as session:
        await session.execute(delete(AuditEntry).where(AuditEntry.seq >= 4))
        await session.commit()
    verdict = await _verdict(services)
    assert verdict.problem is not None
    assert verdict.problem.startswith("cut tail: the log ends at entry 3, but the checkpoint of ")
    assert verdict.problem.endswith(" covers 5")


async def test_an_emptied_log_is_named_against_the_checkpoint(
    services: Services, clock: FakeClock, settings: Settings
) -> None:
    await _sealed_and_checkpointed(services, clock, 5)
    async with services.sessions() as session:
        await session.execute(delete(AuditEntry))
        await session.commit()
    result = await asyncio.to_thread(_verify_cli, settings)
    assert result.returncode == 1
    assert result.stdout.startswith("audit: emptied: no entries, but the checkpoint of ")
    assert result.stdout.strip().endswith(" covers 5")


async def test_a_forged_checkpoint_line_is_named_with_its_file_and_line(
    services: Services, clock: FakeClock
) -> None:
    await _sealed_and_checkpointed(services, clock, 5)
    [path] = services.settings.checkpoint_dir.glob("*.jsonl")
    line = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    line["seq"] = 2
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")
    verdict = await _verdict(services)
    assert verdict.problem == f"checkpoint {path}:2: signature does not verify (forged or edited)"


async def test_a_missing_chain_key_is_named_not_taken_for_tampering(
    services: Services, clock: FakeClock
) -> None:
    await _sealed_and_checkpointed(services, clock, 2)
    (services.settings.data_dir / KEY_FILE).unlink()
    verdict = await _verdict(services)
    assert verdict.problem == (
        f"key: {services.settings.data_dir / KEY_FILE} is missing and DATADESK_AUDIT_KEY is not set"
    )


async def test_another_chain_key_is_named_at_the_checkpoint(
    services: Services, clock: FakeClock
) -> None:
    await _sealed_and_checkpointed(services, clock, 2)
    other = replace(services.settings, audit_key="another key")
    async with services.sessions() as session:
        verdict = await audit.verify(session, other)
    assert verdict.problem is not None
    assert "made with another chain key" in verdict.problem


async def test_the_key_files_are_private_from_creation(services: Services) -> None:
    load_keys(services.settings)
    for name in ("audit.key", "audit-signing.key"):
        assert (services.settings.data_dir / name).stat().st_mode & 0o777 == 0o600


async def test_an_entry_committed_after_a_later_one_was_sealed_is_sealed_next_not_skipped(
    services: Services, clock: FakeClock
) -> None:
    # A transaction that took id 1 commits after the one that took id 2 was sealed.
    async with services.sessions() as session:
        await session.execute(
            insert(AuditEntry).values(
                id=2, at=clock.now(), actor="system", action="second", data="{}"
            )
        )
        await session.commit()
    assert await audit.seal_pending(services) == 1
    async with services.sessions() as session:
        await session.execute(
            insert(AuditEntry).values(
                id=1, at=clock.now(), actor="system", action="first", data="{}"
            )
        )
        await session.commit()
    assert await audit.seal_pending(services) == 1
    async with services.sessions() as session:
        order = (await session.execute(select(AuditEntry.seq, AuditEntry.id))).all()
    assert sorted(order) == [(1, 2), (2, 1)]
    assert (await _verdict(services)).intact


async def test_concurrent_appends_and_sealers_keep_one_chain_sealing_each_entry_once(
    services: Services, clock: FakeClock
) -> None:
    async def one(i: int) -> None:
        async with services.sessions() as session:
            await audit.record(
                session, action="probe", actor="system", data={"i": i}, at=clock.now()
            )
            await session.commit()

    sealers = [audit.Sealer(services) for _ in range(3)]
    await asyncio.gather(
        *(one(i) for i in range(20)), *(s.round() for s in sealers for _ in range(3))
    )
    await audit.seal_pending(services)
    async with services.sessions() as session:
        seqs = sorted(s for s in (await session.execute(select(AuditEntry.seq))).scalars() if s)
    verdict = await _verdict(services)
    assert verdict.intact, verdict.problem
    assert seqs == list(range(1, 21))


@pytest.mark.parametrize("db_kind", [kind for kind in DB_KINDS if kind == "postgres"])
async def test_a_transaction_in_flight_while_a_later_one_is_sealed_has_its_entry_sealed_after(
    services: Services, clock: FakeClock
) -> None:
    # Two writers at once (PostgreSQL only: SQLite has one writer at a time).
    async with services.sessions() as slow:
        await audit.record(slow, action="slow", actor="system", at=clock.now())
        await slow.flush()
        async with services.sessions() as quick:
            await audit.record(quick, action="quick", actor="system", at=clock.now())
            await quick.commit()
        assert await audit.seal_pending(services) == 1
        await slow.commit()
    assert await audit.seal_pending(services) == 1
    async with services.sessions() as session:
        chain = (
            await session.execute(select(AuditEntry.seq, AuditEntry.action, AuditEntry.id))
        ).all()
    by_seq = sorted(chain)
    assert [(seq, action) for seq, action, _ in by_seq] == [(1, "quick"), (2, "slow")]
    # The slow one took the lower id, yet comes second in the chain.
    assert by_seq[1][2] < by_seq[0][2]
    assert (await _verdict(services)).intact
