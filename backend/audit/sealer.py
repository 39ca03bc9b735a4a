"""The sealer: chains committed entries, in one order, one sealer at a time.

``seal_once`` takes up to ``batch`` unsealed entries that have committed, in
``id`` order, and gives each the next ``seq``, its predecessor's MAC as
``prev_hash`` and its own MAC (``chain.entry_mac``), all in one transaction.
Entries whose transaction commits later (a lower ``id`` than some already
sealed, say) are found by the next round: the question is "``seq IS NULL``",
never "``id`` above the last one", so none is skipped, and an entry leaves that
set in the transaction that seals it, so none is sealed twice.

One sealer at a time: on PostgreSQL the sealing transaction first takes
``pg_try_advisory_xact_lock(LOCK_KEY)``; a process that does not get it leaves
the round to the holder. Any backend, worker or ``datadesk run`` process runs
a ``Sealer``; the lock ends with the transaction, or with the connection when
its process dies, and the next process to try becomes the sealer. On SQLite
the write lock (``BEGIN IMMEDIATE``) does the same. A unique ``seq`` is the
last guard: two chains cannot both commit.

``Sealer.run`` seals every ``interval`` seconds (0.2 by default, so an entry
waits well under a second), writes a signed checkpoint (``checkpoints.py``)
at least every ``CHECKPOINT_SECONDS`` while the chain grows, and a last round
and checkpoint when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update

from backend.audit import checkpoints
from backend.audit.chain import GENESIS, entry_mac
from backend.audit.keys import AuditKeys, load_keys
from backend.models.audit import AuditEntry
from common.db import begin_write, write_turn

if TYPE_CHECKING:
    from backend.services import Services

log = logging.getLogger(__name__)

# "dd-audit" as a 64-bit advisory lock key: the same in every process.
LOCK_KEY = int.from_bytes(b"dd-audit", "big") & 0x7FFF_FFFF_FFFF_FFFF
BATCH = 2000
INTERVAL_SECONDS = 0.2
CHECKPOINT_SECONDS = 60.0

BeforeCommit = Callable[[int], None]


async def _has_unsealed(services: Services) -> bool:
    async with services.sessions() as session:
        found = await session.scalar(select(AuditEntry.id).where(AuditEntry.seq.is_(None)).limit(1))
        return found is not None


async def head(services: Services) -> tuple[int, str]:
    """The chain's newest (seq, MAC); (0, GENESIS) when nothing is sealed."""
    async with services.sessions() as session:
        row = (
            await session.execute(
                select(AuditEntry.seq, AuditEntry.hash)
                .where(AuditEntry.seq.is_not(None))
                .order_by(AuditEntry.seq.desc())
                .limit(1)
            )
        ).first()
    return (int(row.seq), str(row.hash)) if row is not None else (0, GENESIS)


async def seal_once(
    services: Services,
    keys: AuditKeys,
    *,
    batch: int = BATCH,
    before_commit: BeforeCommit | None = None,
) -> int | None:
    """Seal up to ``batch`` committed entries; how many, or None when another sealer holds the lock.

    ``before_commit(count)`` runs after the seals are sent and before they
    commit (the kill tests end the process there).
    """
    # A read first: an idle sealer must not take SQLite's write lock 5 times a second.
    if not await _has_unsealed(services):
        return 0
    now = services.clock.now()
    # On SQLite, in turn with the process's other frequent writers (a worker's batches).
    async with write_turn(services.settings.database_url), services.sessions() as session:
        await begin_write(session)
        postgres = session.bind.dialect.name == "postgresql"
        if postgres and not await session.scalar(select(func.pg_try_advisory_xact_lock(LOCK_KEY))):
            return None
        # Read under the lock: every seal committed before it is visible.
        last = (
            await session.execute(
                select(AuditEntry.seq, AuditEntry.hash)
                .where(AuditEntry.seq.is_not(None))
                .order_by(AuditEntry.seq.desc())
                .limit(1)
            )
        ).first()
        seq, prev = (int(last.seq), str(last.hash)) if last is not None else (0, GENESIS)
        rows = (
            await session.execute(
                select(
                    AuditEntry.id,
                    AuditEntry.at,
                    AuditEntry.actor,
                    AuditEntry.action,
                    AuditEntry.subject,
                    AuditEntry.outcome,
                    AuditEntry.data,
                )
                .where(AuditEntry.seq.is_(None))
                .order_by(AuditEntry.id)
                .limit(batch)
            )
        ).all()
        seals = []
        for row in rows:
            seq += 1
            mac = entry_mac(
                keys.mac_key,
                seq=seq,
                at=row.at,
                actor=row.actor,
                action=row.action,
                subject=row.subject,
                outcome=row.outcome,
                data=row.data,
                prev_hash=prev,
            )
            seals.append(
                {"id": row.id, "seq": seq, "prev_hash": prev, "hash": mac, "sealed_at": now}
            )
            prev = mac
        if seals:
            await session.execute(update(AuditEntry), seals)
        if before_commit is not None:
            before_commit(len(seals))
        await session.commit()
        return len(seals)


async def seal_pending(services: Services, keys: AuditKeys | None = None) -> int:
    """Seal everything committed so far (waiting for another sealer's turn); how many this call sealed."""
    keys = keys or load_keys(services.settings)
    total = 0
    while True:
        count = await seal_once(services, keys)
        if count is None:
            await asyncio.sleep(0.05)
            continue
        if count == 0 and not await _has_unsealed(services):
            return total
        total += count


class Sealer:
    """A process's sealing loop; see the module docstring."""

    def __init__(
        self,
        services: Services,
        *,
        interval: float = INTERVAL_SECONDS,
        checkpoint_seconds: float = CHECKPOINT_SECONDS,
        before_commit: BeforeCommit | None = None,
    ) -> None:
        self.services = services
        self.keys = load_keys(services.settings)
        self.interval = interval
        self.checkpoint_seconds = checkpoint_seconds
        self.before_commit = before_commit
        self._checkpointed: tuple[int, str] | None = None
        self._checkpoint_due = 0.0

    async def round(self) -> None:
        """Seal what has committed (all of it, batch by batch), then checkpoint if one is due."""
        while (
            count := await seal_once(self.services, self.keys, before_commit=self.before_commit)
        ) and count >= BATCH:
            pass
        loop = asyncio.get_running_loop()
        if loop.time() >= self._checkpoint_due:
            await self.checkpoint()

    async def checkpoint(self) -> None:
        """Sign the current head into the checkpoint folder, unless this process already did."""
        current = await head(self.services)
        self._checkpoint_due = asyncio.get_running_loop().time() + self.checkpoint_seconds
        if current == self._checkpointed or current[0] == 0:
            return
        at: datetime = self.services.clock.now()
        folder = self.services.settings.checkpoint_dir
        await asyncio.to_thread(checkpoints.write, folder, self.keys, current[0], current[1], at)
        self._checkpointed = current

    async def run(self, stop: asyncio.Event) -> None:
        """Seal every ``interval`` seconds until ``stop``; then a last round and checkpoint."""
        while not stop.is_set():
            try:
                await self.round()
            except Exception as exc:
                # The entries wait, committed; the next round (here or elsewhere) seals them.
                log.error("audit sealer: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
        try:
            await self.round()
            await self.checkpoint()
        except Exception as exc:
            log.error("audit sealer at shutdown: %s", type(exc).__name__)
