"""Transcript lines filed by a channel carry its per-chat number, stored once.

``POST /api/v1/transcript`` files batches of lines numbered per chat; the
unique (chat, seq) index makes a batch filed twice (a bot killed after filing,
before noting it) store each line once. Agents' lines have no number.

Revision ID: 0009_transcript_seq
Revises: 0006_console_limits
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_transcript_seq"
down_revision = "0008_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("transcript_entries") as batch:
        batch.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
    op.create_index(
        "ix_transcript_entries_chat_seq", "transcript_entries", ["chat", "seq"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ix_transcript_entries_chat_seq", table_name="transcript_entries")
    with op.batch_alter_table("transcript_entries") as batch:
        batch.drop_column("seq")
