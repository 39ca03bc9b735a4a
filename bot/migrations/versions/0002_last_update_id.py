"""The last platform update handled per chat, so a redelivered update is not handled twice.

Revision ID: 0002_last_update_id
Revises: 0001_conversations
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_last_update_id"
down_revision = "0001_conversations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("last_update_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("last_update_id")
