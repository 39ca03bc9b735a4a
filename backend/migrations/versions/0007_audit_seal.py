"""Audit entries appended unsealed, sealed later into a keyed chain; no head row.

Entries get an ``id`` (insertion order) beside ``seq`` (chain order, given by
the sealer), and ``seq``, ``prev_hash`` and ``hash`` may be empty until the
entry is sealed. ``audit_head`` goes: it was the lock every writer queued
behind. Existing entries keep their order (``id`` = old ``seq``) and are
sealed again, under the HMAC key, by the first sealer that runs: the old
chain's unkeyed hashes prove nothing a database writer could not recompute.

Revision ID: 0007_audit_seal
Revises: 0006_console_limits
"""

import hashlib
import json

import sqlalchemy as sa
from alembic import op

from common.db import UTCDateTime

revision = "0007_audit_seal"
down_revision = "0006_console_limits"
branch_labels = None
depends_on = None

GENESIS = "0" * 64
FIELDS = "at, actor, action, subject, outcome, data"


def _entries_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(64), nullable=True),
        sa.Column("outcome", sa.String(64), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=True),
        sa.Column("hash", sa.String(64), nullable=True),
        sa.Column("sealed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_entries"),
        sa.UniqueConstraint("seq", name="uq_audit_entries_seq"),
    )


def upgrade() -> None:
    op.execute("CREATE TABLE audit_entries_v1 AS SELECT * FROM audit_entries")
    op.drop_index("ix_audit_entries_subject", table_name="audit_entries")
    op.drop_index("ix_audit_entries_action", table_name="audit_entries")
    op.drop_table("audit_entries")
    op.drop_table("audit_head")
    _entries_table("audit_entries")
    op.execute(
        f"INSERT INTO audit_entries (id, {FIELDS}) SELECT seq, {FIELDS} FROM audit_entries_v1"  # noqa: S608  (fixed column names)
    )
    op.drop_table("audit_entries_v1")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "SELECT setval(pg_get_serial_sequence('audit_entries', 'id'), "
            "COALESCE((SELECT max(id) FROM audit_entries), 0) + 1, false)"
        )
    op.create_index("ix_audit_entries_action", "audit_entries", ["action"])
    op.create_index("ix_audit_entries_subject", "audit_entries", ["subject"])
    op.create_index(
        "ix_audit_entries_unsealed",
        "audit_entries",
        ["id"],
        postgresql_where=sa.text("seq IS NULL"),
        sqlite_where=sa.text("seq IS NULL"),
    )


def _sha256_chain(rows: list[sa.Row[tuple[object, ...]]]) -> list[dict[str, object]]:
    """The 0004 schema's unkeyed chain over ``rows`` in order (as ``backend/audit.py`` made it)."""
    out, prev = [], GENESIS
    for seq, row in enumerate(rows, start=1):
        stamp = row.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        fields = [seq, stamp, row.actor, row.action, row.subject, row.outcome, row.data, prev]
        raw = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256(raw.encode()).hexdigest()
        out.append({**row._asdict(), "seq": seq, "prev_hash": prev, "hash": digest})
        prev = digest
    return out


def downgrade() -> None:
    entries = sa.table(
        "audit_entries",
        *(sa.column(c) for c in ("id", "seq", "actor", "action", "subject", "outcome")),
        sa.column("data"),
        sa.column("at", UTCDateTime()),
    )
    rows = list(
        op.get_bind().execute(
            sa.select(
                entries.c.at,
                entries.c.actor,
                entries.c.action,
                entries.c.subject,
                entries.c.outcome,
                entries.c.data,
            ).order_by(entries.c.seq.is_(None), entries.c.seq, entries.c.id)
        )
    )
    op.drop_index("ix_audit_entries_unsealed", table_name="audit_entries")
    op.drop_index("ix_audit_entries_subject", table_name="audit_entries")
    op.drop_index("ix_audit_entries_action", table_name="audit_entries")
    op.drop_table("audit_entries")
    old = op.create_table(
        "audit_entries",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(64), nullable=True),
        sa.Column("outcome", sa.String(64), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_entries"),
    )
    op.create_index("ix_audit_entries_action", "audit_entries", ["action"])
    op.create_index("ix_audit_entries_subject", "audit_entries", ["subject"])
    chained = _sha256_chain(rows)
    if chained:
        op.bulk_insert(old, chained)
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_head"),
    )
    last = chained[-1] if chained else {"seq": 0, "hash": GENESIS}
    op.bulk_insert(head, [{"id": 1, "seq": last["seq"], "hash": last["hash"]}])
