"""At start: are this process's audit keys the ones the chain and checkpoints were made with?

Every backend and worker process seals (``sealer.py``): one started with
another chain key would seal entries no one can verify, one with another
signing key would append checkpoints that make ``datadesk audit verify``
fail. ``check_keys`` runs before the sealer starts and raises
``crypto.KeyMismatch`` (a ``SettingsError``: ``datadesk`` prints its one line
and exits 2, as for ``DATADESK_SECRET_KEY``) naming the setting
(``DATADESK_AUDIT_KEY`` / ``DATADESK_AUDIT_SIGNING_KEY``, or the key file read
in its place) and key ids at most, never the key:

- the chain key, when the latest checkpoint names another chain key id, or
  when neither of the two newest sealed entries' MACs holds under it (one
  that fails alone is an edited entry, ``audit verify``'s to name, not a key
  that differs);
- the signing key, when its public half does not verify the latest
  checkpoint line (the last line of the newest checkpoint file).

A fresh database (nothing sealed) and an empty checkpoint folder start: there
is nothing yet to disagree with. Only the newest entries and line are read, so
the check costs the same after years of log.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit import checkpoints
from backend.audit.keys import KEY_FILE, SIGNING_KEY_FILE, AuditKeys
from backend.audit.verifier import mac_holds
from backend.crypto import KeyMismatch
from backend.models.audit import AuditEntry
from backend.settings import Settings

ADVICE = "start every backend and worker process with the same audit keys (docs/audit.md, Keys)"


def _source(settings: Settings, *, signing: bool) -> str:
    """Where this process's key came from: the setting, or the file read because it is unset."""
    if signing:
        setting, file, given = (
            "DATADESK_AUDIT_SIGNING_KEY",
            SIGNING_KEY_FILE,
            settings.audit_signing_key,
        )
    else:
        setting, file, given = "DATADESK_AUDIT_KEY", KEY_FILE, settings.audit_key
    return setting if given else f"{settings.data_dir / file} ({setting} is unset)"


def _newest_line(folder: Path) -> tuple[str, str] | None:
    """The last line of the newest checkpoint file, and its ``file:line``; None if there is none."""
    if not folder.is_dir():
        return None
    for path in sorted(folder.glob("*.jsonl"), reverse=True):
        lines = path.read_text(encoding="utf-8").splitlines()
        for number in range(len(lines), 0, -1):
            if lines[number - 1].strip():
                return lines[number - 1], f"{path}:{number}"
    return None


def _check_checkpoint(settings: Settings, keys: AuditKeys) -> None:
    found = _newest_line(settings.checkpoint_dir)
    if found is None:
        return
    raw, where = found
    try:
        item = json.loads(raw)
        key_id = str(item["key"])
        message = checkpoints.message(int(item["seq"]), str(item["hash"]), str(item["at"]), key_id)
        signature = bytes.fromhex(item["sig"])
    except (ValueError, KeyError, TypeError):
        # Not a key question: the line is damaged, and ``audit verify`` names it.
        return
    if key_id != keys.key_id:
        raise KeyMismatch(
            f"{_source(settings, signing=False)} does not match the chain key of the latest "
            f"audit checkpoint ({where} names key id {key_id}, this key's id is "
            f"{keys.key_id}); {ADVICE}"
        )
    try:
        keys.verifying.verify(signature, message)
    except InvalidSignature:
        raise KeyMismatch(
            f"{_source(settings, signing=True)} does not match the key that signed the latest "
            f"audit checkpoint ({where}; if that line was edited, datadesk audit verify "
            f"names it); {ADVICE}"
        ) from None


async def _check_chain(session: AsyncSession, settings: Settings, keys: AuditKeys) -> None:
    newest = list(
        await session.scalars(
            select(AuditEntry)
            .where(AuditEntry.seq.is_not(None))
            .order_by(AuditEntry.seq.desc())
            .limit(2)
        )
    )
    if newest and not any(mac_holds(keys, entry) for entry in newest):
        last = int(newest[0].seq or 0)
        raise KeyMismatch(
            f"{_source(settings, signing=False)} does not match the key the audit chain in "
            f"this database was sealed with (the MACs of its newest entries, up to entry "
            f"{last}, do not hold under it); {ADVICE}"
        )


async def check_keys(session: AsyncSession, settings: Settings, keys: AuditKeys) -> None:
    """Raise ``KeyMismatch`` naming the setting when ``keys`` are not the chain's and checkpoints'."""
    await asyncio.to_thread(_check_checkpoint, settings, keys)
    await _check_chain(session, settings, keys)
