"""Requests ledger (the queue), erasure previews and the notifications outbox.

Revision ID: 0003_ledger
Revises: 0002_verification
"""

import sqlalchemy as sa
from alembic import op

from backend.crypto import Encrypted
from common.db import UTCDateTime

revision = "0003_ledger"
down_revision = "0002_verification"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(16), nullable=False),
        sa.Column("customer_ref", sa.String(64), nullable=False),
        sa.Column("chat", sa.String(128), nullable=False),
        sa.Column("locale", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", Encrypted(), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("body_hash", sa.String(64), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("review_preview", sa.Text(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("next_run_at", UTCDateTime(), nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_requests"),
        sa.UniqueConstraint("reference", name="uq_requests_reference"),
        sa.UniqueConstraint("customer_ref", "idempotency_key", name="uq_requests_idempotency"),
    )
    op.create_index("ix_requests_customer_ref", "requests", ["customer_ref"])
    op.create_index("ix_requests_chat", "requests", ["chat"])
    op.create_index("ix_requests_queue", "requests", ["state", "next_run_at"])
    op.create_table(
        "erasure_previews",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("customer_ref", sa.String(64), nullable=False),
        sa.Column("jurisdiction", sa.String(16), nullable=False),
        sa.Column("plan", Encrypted(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("used_by", sa.String(16), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_erasure_previews"),
    )
    op.create_index("ix_erasure_previews_customer_ref", "erasure_previews", ["customer_ref"])
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat", sa.String(128), nullable=False),
        sa.Column("locale", sa.String(16), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("reference", sa.String(16), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("details", Encrypted(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("leased_until", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
        # Never reuse the id of an acknowledged (deleted) notification: the bot
        # shows each id once, so a reused id would be silently dropped.
        sqlite_autoincrement=True,
    )
    op.create_index("ix_notifications_chat", "notifications", ["chat"])
    op.create_index("ix_notifications_leased_until", "notifications", ["leased_until"])


def downgrade() -> None:
    op.drop_table("notifications")
    op.drop_table("erasure_previews")
    op.drop_table("requests")
