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
   still this worker's (``running``, its lease; ``transitions.held``); one whose
   lease was lost is left alone;
2. on the built-in CRM itself (not a subclass that changes its behaviour),
   carries the whole batch out at once in one savepoint (``_bulk``): the
   customers, the keys applied before and the contacts on file read in a few
   selects, every change written grouped by kind (``crm.builtin_bulk``), the
   undo records in one insert (``contact_undo.prepare_armed``), then
   ``after_effect`` for each request. Some twenty statements a batch, whatever
   its size (17 on SQLite, ``tests/test_ledger_one_commit.py``): one at a
   time it took some fifteen statements a request, and py-spy on a worker
   draining the bench's address changes put most of its time in the ORM's
   units of work (an object per row) and a savepoint per request;
3. if the bulk savepoint raises (a CRM key a racing worker applied first, a
   bad payload, ``after_effect``), rolls it back and runs each kind's
   ``carry_out`` in a savepoint of its own instead, with ``services.sessions``
   and the CRM (``builtin.joined``) bound to that transaction's connection
   (``join_transaction_mode="rollback_only"``): their commits write into the
   savepoint, a rollback rolls it back, so one bad request is alone;
4. makes every outcome's move at once (``transitions``, on the ``Held``
   snapshots: a few statements) and commits.

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

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend import contact_undo, undo_notices
from backend.crm import builtin, builtin_bulk
from backend.crm.builtin import BuiltinCrm
from backend.crm.connector import Address, CrmConnector
from backend.ledger import kinds
from backend.ledger.claims import Claimed
from backend.ledger.transitions import Move, held, transition_all
from backend.services import Services
from common.db import begin_write
from common.vocabulary.request_kinds import MARKETING_OPT_OUT, UPDATE_CONTACT
from common.vocabulary.request_states import DONE, REJECTED

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
        rows = await held(session, ids, owner)
        for job in jobs:
            if job.id not in rows:
                log.warning("request %s: lease lost before it was carried out", job.id)
                results.append(Joined(job))
        live = [job for job in jobs if job.id in rows]
        outcomes = await _bulk(services, crm, session, live, after_effect)
        if outcomes is None:
            outcomes, failed = await _one_by_one(services, crm, session, live, after_effect)
            results.extend(failed)
        moves = []
        for job in live:
            outcome = outcomes.get(job.id)
            if outcome is not None:
                moves.append(Move(rows[job.id], outcome.state, outcome.reason, outcome.details))
                results.append(Joined(job, outcome=outcome))
        await transition_all(session, moves, actor=f"worker:{owner}", at=services.clock.now())
        await session.commit()
    # The "Was this you?" notices armed are due now that they are committed.
    undo_notices.wake()
    return results


async def _bulk(
    services: Services,
    crm: BuiltinCrm,
    session: AsyncSession,
    jobs: Sequence[Claimed],
    after_effect: Callable[[Claimed], None] | None,
) -> dict[int, kinds.Outcome] | None:
    """Carry ``jobs`` out together in one savepoint; their outcomes, or None when it rolled back."""
    if not jobs or type(crm) is not BuiltinCrm:
        # A subclass may change what a change does (tests refuse some): one by one.
        return None
    connection = await session.connection()
    savepoint = await connection.begin_nested()
    try:
        outcomes = await _bulk_changes(services, session, jobs)
        if after_effect is not None:
            for job in jobs:
                after_effect(job)
    except Exception as exc:
        # Which request it was is for the one-by-one run to find out.
        log.info("a batch of %d rolled back (%s); one by one", len(jobs), type(exc).__name__)
        if savepoint.is_active:
            await savepoint.rollback()
        return None
    await savepoint.commit()
    return outcomes


async def _bulk_changes(
    services: Services, session: AsyncSession, jobs: Sequence[Claimed]
) -> dict[int, kinds.Outcome]:
    """What ``kinds.carry_out`` does for each job, for all at once; their outcomes."""
    found = await builtin_bulk.customers(session, {job.customer_ref for job in jobs})
    done_before = await builtin_bulk.applied(session, [job.reference for job in jobs])
    outcomes: dict[int, kinds.Outcome] = {}
    contacts = [job for job in jobs if job.kind == UPDATE_CONTACT and job.customer_ref in found]
    before = await builtin_bulk.on_file(session, {found[job.customer_ref] for job in contacts})
    changes = []
    for job in jobs:
        cid = found.get(job.customer_ref)
        if cid is None:
            outcomes[job.id] = kinds.Outcome(REJECTED, "customer_not_found", {})
            continue
        if job.kind == UPDATE_CONTACT:
            field = job.payload["field"]
            outcomes[job.id] = kinds.Outcome(DONE, None, {"field": field})
            if field == "phone":
                change = builtin_bulk.Change(
                    job.reference, job.customer_ref, cid, "update_phone", job.payload["value"]
                )
            elif field == "email":
                change = builtin_bulk.Change(
                    job.reference, job.customer_ref, cid, "update_email", job.payload["value"]
                )
            else:
                address = Address(**job.payload["address"])
                change = builtin_bulk.Change(
                    job.reference, job.customer_ref, cid, "update_address", address
                )
        else:
            channels = job.payload["channels"]
            outcomes[job.id] = kinds.Outcome(DONE, None, {"channels": channels})
            consent = {channel: False for channel in channels}
            change = builtin_bulk.Change(
                job.reference, job.customer_ref, cid, "set_marketing", consent
            )
        if job.reference not in done_before:
            changes.append(change)
    # Before the change: the undo record keeps the contact as it was.
    await contact_undo.prepare_armed(
        services, session, [(job, before[found[job.customer_ref]]) for job in contacts]
    )
    await builtin_bulk.apply(session, changes, services.clock.now())
    return outcomes


async def _one_by_one(
    services: Services,
    crm: BuiltinCrm,
    session: AsyncSession,
    jobs: Sequence[Claimed],
    after_effect: Callable[[Claimed], None] | None,
) -> tuple[dict[int, kinds.Outcome], list[Joined]]:
    """Each job's ``carry_out`` in a savepoint of its own; the outcomes, and the jobs that raised."""
    connection = await session.connection()
    # Sessions that join this transaction (in a savepoint, the savepoint):
    # their commits write into it, a rollback rolls it back.
    sessions = async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="rollback_only"
    )
    bound = replace(services, sessions=sessions)
    outcomes: dict[int, kinds.Outcome] = {}
    failed: list[Joined] = []
    for job in jobs:
        savepoint = await connection.begin_nested()
        try:
            with builtin.joined(sessions):
                outcome = await kinds.carry_out(bound, crm, job)
            if after_effect is not None:
                after_effect(job)
        except Exception as exc:
            if savepoint.is_active:
                await savepoint.rollback()
            failed.append(Joined(job, error=exc))
            continue
        # Not active: rolled back on the way (the CRM has no such customer), so
        # nothing of the run is left but the outcome it answered.
        if savepoint.is_active:
            await savepoint.commit()
        outcomes[job.id] = outcome
    return outcomes, failed
