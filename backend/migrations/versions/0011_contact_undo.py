"""Was this you? Contact changes the old contact can undo (notice outbox and undo tokens).

Revision ID: 0011_contact_undo
Revises: 0010_agent_management
"""

import sqlalchemy as sa
from alembic import op

from backend.crypto import Encrypted
from common.db import UTCDateTime

revision = "0011_contact_undo"
down_revision = "0010_agent_management"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contact_undos",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("reference", sa.String(16), nullable=False),
        sa.Column("token_digest", sa.String(64), nullable=False),
        sa.Column("customer_ref", sa.String(64), nullable=False),
        sa.Column("chat", sa.String(128), nullable=False),
        sa.Column("locale", sa.String(16), nullable=False),
        sa.Column("field", sa.String(16), nullable=False),
        sa.Column("previous", Encrypted(), nullable=True),
        sa.Column("masked_new", sa.String(320), nullable=False),
        sa.Column("notice", Encrypted(), nullable=True),
        sa.Column("notice_due_at", UTCDateTime(), nullable=True),
        sa.Column("notice_attempts", sa.Integer(), nullable=False),
        sa.Column("notice_sent_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("reference"),
        sa.UniqueConstraint("token_digest"),
    )
    op.create_index("ix_contact_undos_customer_ref", "contact_undos", ["customer_ref"])
    op.create_index("ix_contact_undos_notice_due_at", "contact_undos", ["notice_due_at"])


def downgrade() -> None:
    op.drop_index("ix_contact_undos_notice_due_at", table_name="contact_undos")
    op.drop_index("ix_contact_undos_customer_ref", table_name="contact_undos")
    op.drop_table("contact_undos")
