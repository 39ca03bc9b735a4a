"""Carrying a request out and recording its outcome in one commit, on the built-in CRM.

The built-in CRM keeps its records in the backend's own database, so a
request's CRM change (with its idempotency key), the undo record of a contact
change and the request's outcome (its state, audit entry and notification) can
commit together. Apart, they were five durable commits and some forty round
trips a request, and under ``make bench`` (PostgreSQL, 4 slots) py-spy put the
CRM change and the undo record at 56% of a worker's time, the outcome's own
commit beside them.

For a claimed request of a kind in ``JOINED_KINDS`` on a ``BuiltinCrm``
(``joins``), ``carry_out``:

1. opens a write transaction (``begin_write``) and locks the request row,
   still this worker's (``running``, its lease); a lost lease ends it there;
2. runs the kind's ``carry_out`` with ``services.sessions`` and the CRM
   (``builtin.joined``) bound to that transaction's connection
   (``join_transaction_mode="rollback_only"``):
   their commits write into this transaction, a rollback ends it;
3. calls ``after_effect`` (the kill tests end the process there), makes the
   outcome's move (``transitions``) and commits.

A worker killed anywhere before the commit leaves nothing of the request's
run: it is still ``running`` under its lease, and whoever takes it over
carries it out from the start. A carry-out that raises rolls everything back
and the caller retries it as any failed attempt. One whose transaction was
rolled back on the way (the CRM found no such customer) answers its outcome
unrecorded, and the caller records it in a transaction of its own.

Not joined: erasure (its chat-history hook writes in a transaction of its
own, which on SQLite would wait behind this one's write lock) and access (its
copy is built outside the database); nor any request on the HTTP CRM, which
cannot take part in the transaction (the change, then the outcome).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeGuard

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from backend import undo_notices
from backend.crm import builtin
from backend.crm.builtin import BuiltinCrm
from backend.crm.connector import CrmConnector
from backend.ledger import kinds
from backend.ledger.claims import Claimed
from backend.ledger.transitions import Move, transition_all
from backend.models.ledger import Request
from backend.services import Services
from common.db import begin_write
from common.vocabulary.request_kinds import MARKETING_OPT_OUT, UPDATE_CONTACT
from common.vocabulary.request_states import RUNNING

log = logging.getLogger(__name__)

JOINED_KINDS = frozenset({UPDATE_CONTACT, MARKETING_OPT_OUT})


@dataclass(frozen=True)
class Joined:
    """What became of a joined run: ``outcome`` (None: the lease was lost, nothing ran) and
    whether it is recorded (committed with the change)."""

    outcome: kinds.Outcome | None
    recorded: bool


def joins(crm: CrmConnector, job: Claimed) -> TypeGuard[BuiltinCrm]:
    """Whether ``job`` is carried out and recorded in one commit."""
    return isinstance(crm, BuiltinCrm) and job.kind in JOINED_KINDS


async def carry_out(
    services: Services,
    crm: BuiltinCrm,
    job: Claimed,
    owner: str,
    after_effect: Callable[[Claimed], None] | None = None,
) -> Joined:
    """Carry ``job`` out and record its outcome in one transaction; see the module docstring.

    Raises what the carry-out raised, with nothing of it committed.
    """
    async with services.sessions() as session:
        await begin_write(session)
        row = await session.scalar(
            select(Request)
            .where(Request.id == job.id, Request.lease_owner == owner, Request.state == RUNNING)
            .with_for_update()
        )
        if row is None:
            log.warning("request %s: lease lost before it was carried out", job.id)
            return Joined(None, recorded=False)
        connection = await session.connection()
        ours = connection.get_transaction()
        sessions = async_sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="rollback_only"
        )
        bound = replace(services, sessions=sessions)
        with builtin.joined(sessions):
            outcome = await kinds.carry_out(bound, crm, job)
        if after_effect is not None:
            after_effect(job)
        if ours is None or not ours.is_active:
            # Rolled back on the way (no such customer): nothing of the run is left.
            with contextlib.suppress(Exception):
                await session.rollback()
            return Joined(outcome, recorded=False)
        await transition_all(
            session,
            [Move(row, outcome.state, outcome.reason, outcome.details)],
            actor=f"worker:{owner}",
            at=services.clock.now(),
        )
        await session.commit()
    # An armed "Was this you?" notice is due now that it is committed.
    undo_notices.wake()
    return Joined(outcome, recorded=True)
