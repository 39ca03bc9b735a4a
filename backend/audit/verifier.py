"""``datadesk audit verify``: check the keys, every sealed entry, and the latest checkpoint.

``verify`` walks the sealed entries in ``seq`` order, recomputing each MAC
with the chain key, and names the first problem it meets:

- a sequence gap: entries removed;
- an entry whose MAC fails while the next one links past it: an inserted entry;
- an entry that links to an entry that is not its predecessor: one removed before it
  (the rest renumbered);
- a failing MAC followed by more failing MACs that link to it: a rewrite with
  recomputed hashes (made without the key);
- a single failing MAC: an edited entry.

Then the chain must extend the latest signed checkpoint (``checkpoints.py``):
an empty log where a checkpoint names entries is an emptied log; a log that
ends before the checkpoint's ``seq`` had its tail cut; an entry at the
checkpoint's ``seq`` with another MAC means the chain was rewritten (by
someone with the key, as MACs that fail are found first). A missing key, or a
checkpoint that is malformed, forged or from another key, is a problem too.
Unsealed entries are counted, not judged: the sealer has yet to chain them.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit import checkpoints
from backend.audit.chain import GENESIS, entry_mac
from backend.audit.keys import AuditKeys, MissingKey, load_keys
from backend.models.audit import AuditEntry
from backend.settings import Settings
from common.errors import ConfigError


@dataclass(frozen=True)
class Verdict:
    """What the walk found: sealed entries, the first problem, the checkpoint extended, unsealed ones."""

    count: int
    problem: str | None
    checkpoint: checkpoints.Checkpoint | None = None
    unsealed: int = 0

    @property
    def intact(self) -> bool:
        return self.problem is None

    def describe(self) -> str:
        """The one line ``datadesk audit verify`` prints."""
        if self.problem is not None:
            return f"audit: {self.problem}"
        text = f"audit: {self.count} entries, chain intact"
        if self.checkpoint is not None:
            text += (
                f", extends the checkpoint of {self.checkpoint.at} (entry {self.checkpoint.seq})"
            )
        else:
            text += ", no checkpoint yet"
        if self.unsealed:
            text += f"; {self.unsealed} waiting to be sealed"
        return text


async def _sealed(session: AsyncSession, batch: int) -> AsyncIterator[AuditEntry]:
    last = 0
    while True:
        page = list(
            await session.scalars(
                select(AuditEntry)
                .where(AuditEntry.seq > last)
                .order_by(AuditEntry.seq)
                .limit(batch)
            )
        )
        if not page:
            return
        for entry in page:
            yield entry
        last = int(page[-1].seq or 0)
        session.expunge_all()


def mac_holds(keys: AuditKeys, entry: AuditEntry) -> bool:
    """Whether a sealed entry's MAC is the one its fields and predecessor give under the key."""
    return entry.hash == entry_mac(
        keys.mac_key,
        seq=int(entry.seq or 0),
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        subject=entry.subject,
        outcome=entry.outcome,
        data=entry.data,
        prev_hash=entry.prev_hash or "",
    )


def _judge(
    keys: AuditKeys, prev: str, expected: int, cur: AuditEntry, nxt: AuditEntry | None
) -> str | None:
    """The problem with entry ``cur`` (``expected`` its seq, ``prev`` its predecessor's MAC)."""
    seq = int(cur.seq or 0)
    if seq != expected:
        gone = f"entry {expected}" if seq == expected + 1 else f"entries {expected}-{seq - 1}"
        return f"{gone} removed (the sequence jumps from {expected - 1} to {seq})"
    if mac_holds(keys, cur):
        if cur.prev_hash != prev:
            return f"entry {seq}: does not link to entry {seq - 1} (chain rewritten with the key)"
        return None
    if nxt is not None and nxt.prev_hash == prev:
        return f"entry {seq}: inserted (entry {seq + 1} links to entry {seq - 1})"
    if cur.prev_hash != prev:
        return f"entry {seq}: an entry before it was removed (it links to one that is not there)"
    if nxt is not None and nxt.prev_hash == cur.hash and not mac_holds(keys, nxt):
        return f"entries from {seq} on: rewritten with recomputed hashes (their MACs do not match)"
    return f"entry {seq}: edited (its MAC does not match its contents)"


async def verify(session: AsyncSession, settings: Settings, *, batch: int = 1000) -> Verdict:
    """Check keys, chain and latest checkpoint (see the module docstring); the first problem."""
    unsealed = int(await session.scalar(select(func.count()).where(AuditEntry.seq.is_(None))) or 0)
    try:
        keys = load_keys(settings, create=False)
    except MissingKey as exc:
        sealed = await session.scalar(select(AuditEntry.id).where(AuditEntry.seq.is_not(None)))
        if sealed is None and not any(settings.checkpoint_dir.glob("*.jsonl")):
            # Nothing sealed yet, so no key made yet: a new installation, not a lost key.
            return Verdict(0, None, None, unsealed)
        return Verdict(0, f"key: {exc}")
    except ConfigError as exc:
        return Verdict(0, f"key: {exc}")
    try:
        mark = await asyncio.to_thread(checkpoints.latest, settings.checkpoint_dir, keys)
    except checkpoints.BadCheckpoint as exc:
        return Verdict(0, f"checkpoint {exc}")
    prev, count = GENESIS, 0
    at_mark: str | None = None
    window: list[AuditEntry] = []

    def step(cur: AuditEntry, nxt: AuditEntry | None) -> str | None:
        nonlocal prev, count, at_mark
        problem = _judge(keys, prev, count + 1, cur, nxt)
        if problem is None:
            prev, count = str(cur.hash), count + 1
            if mark is not None and count == mark.seq:
                at_mark = cur.hash
        return problem

    async for entry in _sealed(session, batch):
        window.append(entry)
        if len(window) == 2:
            if (problem := step(window[0], window[1])) is not None:
                return Verdict(count, problem, mark, unsealed)
            window.pop(0)
    if window and (problem := step(window[0], None)) is not None:
        return Verdict(count, problem, mark, unsealed)
    if mark is not None:
        when = f"the checkpoint of {mark.at} ({mark.where})"
        if count == 0:
            return Verdict(0, f"emptied: no entries, but {when} covers {mark.seq}", mark, unsealed)
        if count < mark.seq:
            return Verdict(
                count,
                f"cut tail: the log ends at entry {count}, but {when} covers {mark.seq}",
                mark,
                unsealed,
            )
        if at_mark != mark.hash:
            return Verdict(
                count,
                f"rewritten: entry {mark.seq} is not the one {when} signed",
                mark,
                unsealed,
            )
    return Verdict(count, None, mark, unsealed)


async def _verify_database(settings: Settings) -> Verdict:
    from common.db import make_engine, make_sessionmaker

    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            return await verify(session, settings)
    finally:
        await engine.dispose()


def verify_command(args: argparse.Namespace, settings: Settings) -> int:
    """``datadesk audit verify``: exit 0 with a count when intact, 1 naming the first problem."""
    verdict = asyncio.run(_verify_database(settings))
    print(verdict.describe())
    return 0 if verdict.intact else 1
