"""The transcript outbox in the conversation row: lines saved with the state, numbered per chat.

``transcript_lines`` holds the chat's lines not yet filed (sealed under the
bot's key), ``transcript_seq`` the last number given out and
``transcript_filed`` the last the backend confirmed; the partial index finds
the chats with lines to file.

Revision ID: 0004_transcript_outbox
Revises: 0002_last_update_id
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_transcript_outbox"
down_revision = "0003_bot_registry_inbox"
branch_labels = None
depends_on = None

UNFILED = sa.text("transcript_seq > transcript_filed")


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(
            sa.Column("transcript_seq", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("transcript_filed", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("transcript_lines", sa.Text(), nullable=True))
    op.create_index(
        "ix_conversations_unfiled",
        "conversations",
        ["chat"],
        sqlite_where=UNFILED,
        postgresql_where=UNFILED,
    )


def downgrade() -> None:
    op.drop_index("ix_conversations_unfiled", table_name="conversations")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("transcript_lines")
        batch.drop_column("transcript_filed")
        batch.drop_column("transcript_seq")
