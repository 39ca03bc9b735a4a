"""Counters that limit how often something may happen, taken atomically in the database.

A limited action first *takes* a slot on each of its keys, then acts, then
settles: a login that turns out right gives its slots back (``give_back``,
``forget``); a wrong one leaves them counted. The slot is counted before the
slow part runs (argon2), so parallel attempts cannot all read "4 failures so
far" and all go on to test a password: however many arrive at once, no more
than a rule allows are ever let through.

Each key is one ``console_limits`` row, and taking a slot is one conditional
``UPDATE … WHERE count < limit AND next_at <= now`` per key. The database
decides who wins: on PostgreSQL the UPDATE locks the row and a concurrent one
re-checks the condition against the committed row, in any number of backend
processes; on SQLite the first write takes the database's single write lock.
Keys are taken in sorted order, so two transactions never wait on each other
in a cycle. A process that dies between taking and settling leaves the slot
counted, which errs on the safe side.

A ``Rule`` either refuses (``limit`` events per ``window``, then refused
until the window ends) or slows (``free`` events at once, then each next one
waits 1 s, 2 s, 4 s … up to ``max_delay`` after the previous one), or both.
Windows are fixed: they start at the first event and a key forgets everything
``window`` later.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import ceil
from typing import Any

from sqlalchemy import and_, case, delete, literal, or_, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from backend.models.console import LimitCounter
from common.db import UTCDateTime

# "No delay": a time before any clock, so processes whose clocks differ by a
# little never hold each other up where no delay was asked for.
NO_DELAY = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Rule:
    """How many events one key may count, and what happens past that."""

    window: timedelta
    # Refuse once this many events are counted in the window (None: never refuse).
    limit: int | None = None
    # Count this many at once, then space the next ones out (None: never slow down).
    free: int | None = None
    max_delay: timedelta = timedelta(0)

    def delays(self) -> list[tuple[int, timedelta]]:
        """(count, delay after it) from ``free`` on: 1 s, 2 s, 4 s … until ``max_delay``."""
        if self.free is None:
            return []
        steps: list[tuple[int, timedelta]] = []
        seconds = 1
        while timedelta(seconds=seconds) < self.max_delay:
            steps.append((self.free + len(steps), timedelta(seconds=seconds)))
            seconds *= 2
        return steps


class LimitReached(Exception):
    """A slot could not be taken: ``kind`` is the key's prefix, ``retry_after`` whole seconds."""

    def __init__(self, kind: str, retry_after: int) -> None:
        super().__init__(f"{kind} limit reached; retry after {retry_after} s")
        self.kind = kind
        self.retry_after = retry_after


def _at(when: datetime) -> ColumnElement[datetime]:
    return literal(when, UTCDateTime())


def _delay_after(rule: Rule, count: int) -> timedelta | None:
    """How long after the ``count``-th event the next may come (None: at once)."""
    if rule.free is None or count < rule.free:
        return None
    return dict(rule.delays()).get(count, rule.max_delay)


def _next_at(rule: Rule, count: ColumnElement[Any], now: datetime) -> ColumnElement[datetime]:
    """``_delay_after`` in SQL, for a count the statement itself computes."""
    if rule.free is None:
        return _at(NO_DELAY)
    steps = [(count < rule.free, _at(NO_DELAY))]
    steps += [(count == n, _at(now + delay)) for n, delay in rule.delays()]
    return case(*steps, else_=_at(now + rule.max_delay))


def _upsert(dialect: str, key: str, rule: Rule, now: datetime) -> Any:
    """One statement: a new key counts its first event; a known one counts if allowed."""
    t = LimitCounter
    first_delay = _delay_after(rule, 1)
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(t).values(
        key=key,
        count=1,
        window_start=now,
        next_at=now + first_delay if first_delay is not None else NO_DELAY,
    )
    expired = t.window_start <= now - rule.window
    count = case((expired, 1), else_=t.count + 1)
    allowed: list[ColumnElement[bool]] = []
    if rule.free is not None:
        allowed.append(t.next_at <= now)
    if rule.limit is not None:
        allowed.append(t.count < rule.limit)
    return insert.on_conflict_do_update(
        index_elements=[t.key],
        set_={
            "count": count,
            "window_start": case((expired, _at(now)), else_=t.window_start),
            "next_at": _next_at(rule, count, now),
        },
        where=or_(expired, and_(true(), *allowed)),
    ).returning(t.key)


async def _retry_after(session: AsyncSession, key: str, rule: Rule, now: datetime) -> int:
    row = await session.get(LimitCounter, key, populate_existing=True)
    if row is None:  # the upsert found it a moment ago; only a sweep could remove it
        return 1
    if rule.limit is not None and row.count >= rule.limit:
        until = row.window_start + rule.window
    else:
        until = row.next_at
    return max(ceil((until - now).total_seconds()), 1)


async def take(session: AsyncSession, slots: Iterable[tuple[str, Rule]], now: datetime) -> None:
    """Count one event on every key, or raise LimitReached (the caller rolls back).

    When several keys refuse, the one with the longest wait is reported: the
    event could not happen before then anyway. Runs inside the caller's
    transaction; commit it before the slow part, so that others see the slots.
    """
    dialect = session.get_bind().dialect.name
    refused: list[LimitReached] = []
    for key, rule in sorted(slots, key=lambda slot: slot[0]):
        taken = (await session.execute(_upsert(dialect, key, rule, now))).first()
        if taken is None:
            wait = await _retry_after(session, key, rule, now)
            refused.append(LimitReached(key.partition(":")[0], wait))
    if refused:
        raise max(refused, key=lambda reached: reached.retry_after)


async def settle(session: AsyncSession, *, give_back: Iterable[str], forget: Iterable[str]) -> None:
    """Uncount one event on each ``give_back`` key and drop the ``forget`` keys altogether.

    Rows are touched in the same sorted order as ``take`` locks them, so a
    settling transaction and a taking one cannot deadlock on PostgreSQL.
    """
    dropped = set(forget)
    for key in sorted({*give_back, *dropped}):
        if key in dropped:
            await session.execute(delete(LimitCounter).where(LimitCounter.key == key))
            continue
        await session.execute(
            update(LimitCounter)
            .where(LimitCounter.key == key, LimitCounter.count > 0)
            .values(count=LimitCounter.count - 1)
            .execution_options(synchronize_session=False)
        )


async def sweep(session: AsyncSession, older_than: datetime) -> None:
    """Delete counters whose window started before ``older_than`` and whose delay is over.

    Rows another transaction holds are skipped (``SKIP LOCKED``): the sweep
    never waits on, nor deadlocks with, a login in flight.
    """
    stale = (
        select(LimitCounter.key)
        .where(LimitCounter.window_start <= older_than, LimitCounter.next_at <= older_than)
        .with_for_update(skip_locked=True)
    )
    await session.execute(delete(LimitCounter).where(LimitCounter.key.in_(stale)))


async def counts(session: AsyncSession) -> dict[str, int]:
    """Every key's current count (for tests and operators' look-ups)."""
    rows = await session.execute(select(LimitCounter.key, LimitCounter.count))
    return {key: count for key, count in rows.tuples()}
