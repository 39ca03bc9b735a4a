"""Recording what became of claimed requests: outcomes and retries, many in one transaction.

``record`` writes a batch of ``Settled`` items in one short write transaction:
for each request still held by this worker (``running``, its lease ours;
``transitions.held``), ``transitions.transition_all`` moves it to its outcome, with the audit entry, the
customer's notification and, for a failure, the escalation, so a request's
completion and what it tells are one commit. A failed attempt goes back to
the queue after an exponential back-off with jitter, or fails for good after
the last attempt. A request whose lease ran out meanwhile is left alone: the
worker that took it over records it.

``GroupCommit`` lets the worker's concurrent slots share those transactions:
whoever settles first writes everything that is waiting, and settlements that
arrive meanwhile go in the next one.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from backend.ledger.claims import Claimed
from backend.ledger.kinds import Outcome
from backend.ledger.transitions import Move, held, transition_all
from backend.services import Services
from common.db import begin_write
from common.vocabulary.request_states import FAILED, QUEUED

log = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 3600.0


def backoff(attempt: int, rng: random.Random | None = None) -> timedelta:
    """Delay before retry ``attempt`` (1-based): exponential, capped, with full jitter on half."""
    ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    # Half fixed, half random: retries of many requests spread out, none comes back at once.
    return timedelta(seconds=ceiling / 2 + (rng or random).uniform(0, ceiling / 2))


@dataclass(frozen=True)
class Settled:
    """What became of one claimed request: an ``outcome``, or else the ``error`` of a failed try."""

    job: Claimed
    outcome: Outcome | None = None
    error: str | None = None


async def record(services: Services, owner: str, batch: Sequence[Settled]) -> set[int]:
    """Write ``batch`` in one transaction; return the ids of requests this worker still held."""
    now = services.clock.now()
    async with services.sessions() as session:
        await begin_write(session)
        rows = await held(session, [s.job.id for s in batch], owner)
        moves = []
        for item in batch:
            row = rows.get(item.job.id)
            if row is None:
                log.warning("request %s: lease lost before recording the outcome", item.job.id)
            elif item.outcome is not None:
                outcome = item.outcome
                moves.append(Move(row, outcome.state, outcome.reason, outcome.details))
            elif row.attempts >= row.max_attempts:
                moves.append(Move(row, FAILED, reason="attempts_exhausted"))
            else:
                retry_at = now + backoff(row.attempts)
                moves.append(
                    Move(row, QUEUED, run_at=retry_at, data={"error": item.error or "error"})
                )
        await transition_all(session, moves, actor=f"worker:{owner}", at=now)
        await session.commit()
    return set(rows)


class GroupCommit:
    """Settle requests from concurrent slots, sharing transactions; see the module docstring."""

    def __init__(self, services: Services, owner: str) -> None:
        self._services = services
        self._owner = owner
        self._waiting: list[tuple[Settled, asyncio.Future[bool]]] = []
        self._writing = False

    @property
    def owner(self) -> str:
        """The lease owner whose requests this records."""
        return self._owner

    async def settle(self, item: Settled) -> bool:
        """Record ``item`` (with whatever else is waiting); True when this worker still held it.

        A database error reaches every caller of that batch; their requests stay
        ``running`` under a lease, and run again when it runs out.
        """
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        if not self._writing:
            self._writing = True
            try:
                while self._waiting:
                    batch, self._waiting = self._waiting, []
                    await self._write(batch)
            finally:
                self._writing = False
                # Only when the writer was cancelled: no one is left to write these.
                for _, waiting in self._waiting:
                    if not waiting.done():
                        waiting.set_exception(RuntimeError("the worker stopped before recording"))
                self._waiting = []
        return await done

    async def _write(self, batch: list[tuple[Settled, asyncio.Future[bool]]]) -> None:
        try:
            held = await record(self._services, self._owner, [item for item, _ in batch])
        except Exception as exc:
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        for item, done in batch:
            if not done.done():
                done.set_result(item.job.id in held)
