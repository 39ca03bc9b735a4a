"""Conversation state per chat and the notifications already shown.

Revision ID: 0001_conversations
Revises:
"""

import sqlalchemy as sa
from alembic import op

from common.db import UTCDateTime

revision = "0001_conversations"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("chat", sa.String(length=128), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("context", sa.Text(), nullable=False),
        sa.Column("agent_active", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("chat", name=op.f("pk_conversations")),
    )
    op.create_table(
        "shown_notifications",
        sa.Column("chat", sa.String(length=128), nullable=False),
        sa.Column("notification_id", sa.BigInteger(), nullable=False),
        sa.Column("shown_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("chat", "notification_id", name=op.f("pk_shown_notifications")),
    )


def downgrade() -> None:
    op.drop_table("shown_notifications")
    op.drop_table("conversations")
