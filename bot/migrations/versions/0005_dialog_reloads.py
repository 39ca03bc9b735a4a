"""Dialog reload requests: ``datadesk dialogs reload`` adds a row, every bot polls the newest.

Revision ID: 0005_dialog_reloads
Revises: 0004_transcript_outbox
"""

import sqlalchemy as sa
from alembic import op

from common.db import UTCDateTime

revision = "0005_dialog_reloads"
down_revision = "0004_transcript_outbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dialog_reloads",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dialog_reloads")),
    )


def downgrade() -> None:
    op.drop_table("dialog_reloads")
