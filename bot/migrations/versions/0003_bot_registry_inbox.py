"""Bot processes registered per token (they share Telegram's limit); the webhook inbox and chat leases.

Revision ID: 0003_bot_registry_inbox
Revises: 0002_last_update_id
"""

import sqlalchemy as sa
from alembic import op

from common.db import UTCDateTime

revision = "0003_bot_registry_inbox"
down_revision = "0002_last_update_id"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bot_processes",
        sa.Column("process", sa.String(64), nullable=False),
        sa.Column("token_digest", sa.String(64), nullable=False),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("process", name=op.f("pk_bot_processes")),
    )
    op.create_index(
        op.f("ix_bot_processes_token_digest"), "bot_processes", ["token_digest"], unique=False
    )
    op.create_table(
        "telegram_inbox",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("chat", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("applied_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("update_id", name=op.f("pk_telegram_inbox")),
    )
    op.create_index(op.f("ix_telegram_inbox_chat"), "telegram_inbox", ["chat"], unique=False)
    op.create_table(
        "telegram_chat_leases",
        sa.Column("chat", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("until", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("chat", name=op.f("pk_telegram_chat_leases")),
    )


def downgrade() -> None:
    op.drop_table("telegram_chat_leases")
    op.drop_index(op.f("ix_telegram_inbox_chat"), table_name="telegram_inbox")
    op.drop_table("telegram_inbox")
    op.drop_index(op.f("ix_bot_processes_token_digest"), table_name="bot_processes")
    op.drop_table("bot_processes")
