"""Carrying requests out and recording their outcomes in one commit, on the built-in CRM.

The built-in CRM keeps its records in the backend's own database, so a
request's CRM change (with its idempotency key), the undo record of a contact
change and the request's outcome (its state, audit entry and notification) can
commit together, and a batch of requests in one commit. Apart, they were five
durable commits and some forty statements a request: under ``make bench``
(PostgreSQL, 4 slots) py-spy put the carry-out at 85% of a worker's busy time
(the undo record's full read of the customer 7%), the outcome's commit apart.

For a batch of claimed requests of the kinds in ``JOINED_KINDS`` on a
``BuiltinCrm`` (``joins``), ``carry_out``:

1. opens a write transaction (``begin_write``) and locks the requests' rows
   still this worker's (``running``, its lease); one whose lease was lost is
   left alone;
2. runs each kind's ``carry_out`` in a savepoint of its own, with
   ``services.sessions`` and the CRM (``builtin.joined``) bound to that
   transaction's connection (``join_transaction_mode="rollback_only"``):
   their commits write into the savepoint, a rollback rolls it back;
3. calls ``after_effect`` (the kill tests end the process there), then makes
   every outcome's move at once (``transitions``) and commits.

A worker killed anywhere before the commit leaves nothing of the batch: its
requests are still ``running`` under the lease, and whoever takes them over
carries them out from the start. A carry-out that raises is rolled back to
its savepoint, alone (``Joined.error``), and the caller retries it as any
failed attempt; the others commit. One rolled back on the way (the CRM has no
such customer) keeps nothing but the outcome it answered. A customer's order
holds: a claim never holds two requests of one customer.

Not joined: erasure (its chat-history hook writes in a transaction of its
own, which on SQLite would wait behind this one's write lock) and access (its
copy is built outside the database); nor any request on the HTTP CRM, which
cannot take part in the transaction (the change, then the outcome).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeGuard

from sqlalchemy.ext.asyncio import async_sessionmaker

from backend import undo_notices
from backend.crm import builtin
from backend.crm.builtin import BuiltinCrm
from backend.crm.connector import CrmConnector
from backend.ledger import kinds
from backend.ledger.claims import Claimed
from backend.ledger.outcomes import still_held
from backend.ledger.transitions import Move, transition_all
from backend.services import Services
from common.db import begin_write
from common.vocabulary.request_kinds import MARKETING_OPT_OUT, UPDATE_CONTACT

log = logging.getLogger(__name__)

JOINED_KINDS = frozenset({UPDATE_CONTACT, MARKETING_OPT_OUT})


@dataclass(frozen=True)
class Joined:
    """What became of one request of a joined batch.

    ``outcome`` recorded with the batch; or ``error``, the exception its
    carry-out raised (nothing of it kept: the caller retries it); both None
    when the lease was lost and nothing ran.
    """

    job: Claimed
    outcome: kinds.Outcome | None = None
    error: Exception | None = None


def joins(crm: CrmConnector, job: Claimed) -> TypeGuard[BuiltinCrm]:
    """Whether ``job`` is carried out and recorded in one commit."""
    return isinstance(crm, BuiltinCrm) and job.kind in JOINED_KINDS


async def carry_out(
    services: Services,
    crm: BuiltinCrm,
    jobs: Sequence[Claimed],
    owner: str,
    after_effect: Callable[[Claimed], None] | None = None,
) -> list[Joined]:
    """Carry ``jobs`` out and record their outcomes in one transaction; see the module docstring.

    Each request runs in a savepoint of its own: one that raises is rolled back
    alone (``Joined.error``) and the others commit.
    """
    ids = [job.id for job in jobs]
    results: list[Joined] = []
    async with services.sessions() as session:
        await begin_write(session)
        held = await still_held(session, ids, owner)
        connection = await session.connection()
        # Sessions that join this transaction (in a savepoint, the savepoint):
        # their commits write into it, a rollback rolls it back.
        sessions = async_sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="rollback_only"
        )
        bound = replace(services, sessions=sessions)
        moves = []
        for job in jobs:
            row = held.get(job.id)
            if row is None:
                log.warning("request %s: lease lost before it was carried out", job.id)
                results.append(Joined(job))
                continue
            savepoint = await connection.begin_nested()
            try:
                with builtin.joined(sessions):
                    outcome = await kinds.carry_out(bound, crm, job)
                if after_effect is not None:
                    after_effect(job)
            except Exception as exc:
                if savepoint.is_active:
                    await savepoint.rollback()
                results.append(Joined(job, error=exc))
                continue
            # Not active: rolled back on the way (the CRM has no such customer), so
            # nothing of the run is left but the outcome it answered.
            if savepoint.is_active:
                await savepoint.commit()
            moves.append(Move(row, outcome.state, outcome.reason, outcome.details))
            results.append(Joined(job, outcome=outcome))
        await transition_all(session, moves, actor=f"worker:{owner}", at=services.clock.now())
        await session.commit()
    # The "Was this you?" notices armed are due now that they are committed.
    undo_notices.wake()
    return results
