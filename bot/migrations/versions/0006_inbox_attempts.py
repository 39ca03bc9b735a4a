"""Webhook inbox rows count the attempts at applying them and note when one was given up.

Revision ID: 0006_inbox_attempts
Revises: 0005_dialog_reloads
"""

import sqlalchemy as sa
from alembic import op

from common.db import UTCDateTime

revision = "0006_inbox_attempts"
down_revision = "0005_dialog_reloads"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("telegram_inbox") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("given_up_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("telegram_inbox") as batch:
        batch.drop_column("given_up_at")
        batch.drop_column("attempts")
