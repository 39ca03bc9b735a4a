"""Signed checkpoints of the chain, appended to files outside the database.

A checkpoint says "at ``at`` the chain ended at entry ``seq`` whose MAC was
``hash``", signed with the Ed25519 key (``keys.py``) and naming the chain
key's id. It is one JSON line appended (``O_APPEND``, one ``write``) to
``{AUDIT_CHECKPOINT_DIR}/{YYYY-MM-DD}.jsonl``, files created ``0600`` in a
``0700`` folder. Point the folder at append-only or write-once storage to keep
checkpoints out of reach of whoever can write the database and ``DATA_DIR``.

``latest`` reads every file and returns the checkpoint with the highest
``seq`` whose signature holds; a line that does not parse or verify is a
``BadCheckpoint`` naming ``file:line``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature

from backend.audit.chain import stamp
from backend.audit.keys import AuditKeys
from common.private_files import FILE_MODE, ensure_private_dir

FORMAT = "datadesk-audit-checkpoint/1"


class BadCheckpoint(Exception):
    """A checkpoint line that is malformed, forged, or made with another key; names file:line."""


@dataclass(frozen=True)
class Checkpoint:
    """The chain's head at a moment, as signed."""

    seq: int
    hash: str
    at: str
    key_id: str
    where: str = ""


def message(seq: int, head: str, at: str, key_id: str) -> bytes:
    """The bytes a checkpoint's signature covers."""
    return json.dumps([FORMAT, seq, head, at, key_id], separators=(",", ":")).encode()


def write(folder: Path, keys: AuditKeys, seq: int, head: str, at: datetime) -> Checkpoint:
    """Append a signed checkpoint of (``seq``, ``head``) at ``at`` to today's file in ``folder``."""
    ensure_private_dir(folder)
    when = stamp(at)
    signature = keys.signing.sign(message(seq, head, when, keys.key_id)).hex()
    line = json.dumps(
        {"seq": seq, "hash": head, "at": when, "key": keys.key_id, "sig": signature},
        separators=(",", ":"),
    )
    path = folder / f"{at.astimezone(UTC):%Y-%m-%d}.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
    try:
        # One write of one short line: concurrent writers never interleave.
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return Checkpoint(seq, head, when, keys.key_id, str(path))


def _parse(raw: str, where: str, keys: AuditKeys) -> Checkpoint:
    try:
        item = json.loads(raw)
        seq, head, at, key_id = int(item["seq"]), str(item["hash"]), str(item["at"]), item["key"]
        signature = bytes.fromhex(item["sig"])
    except (ValueError, KeyError, TypeError):
        raise BadCheckpoint(f"{where}: not a checkpoint line") from None
    try:
        keys.verifying.verify(signature, message(seq, head, at, str(key_id)))
    except InvalidSignature:
        raise BadCheckpoint(f"{where}: signature does not verify (forged or edited)") from None
    if key_id != keys.key_id:
        raise BadCheckpoint(
            f"{where}: made with another chain key ({key_id}, this one is {keys.key_id})"
        )
    return Checkpoint(seq, head, at, str(key_id), where)


def latest(folder: Path, keys: AuditKeys) -> Checkpoint | None:
    """The verified checkpoint with the highest ``seq`` in ``folder``; None if there is none."""
    best: Checkpoint | None = None
    if not folder.is_dir():
        return None
    for path in sorted(folder.glob("*.jsonl")):
        with path.open(encoding="utf-8") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                found = _parse(raw, f"{path}:{number}", keys)
                if best is None or found.seq > best.seq:
                    best = found
    return best
