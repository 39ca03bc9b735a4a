"""Console limits as one counter row per key, reserved atomically before a password check.

Replaces ``console_login_failures`` (one row per failure, counted then written
in separate steps, which parallel logins could race). Open failure rows are
not carried over: they last 15 minutes at most.

Revision ID: 0006_console_limits
Revises: 0005_console
"""

import sqlalchemy as sa
from alembic import op


revision = "0006_console_limits"
down_revision = "0005_console"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "console_limits",
        sa.Column("key", sa.String(160), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("window_start", TS, nullable=False),
        sa.Column("next_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_console_limits"),
    )
    op.drop_index("ix_console_login_failures_key_at", table_name="console_login_failures")
    op.drop_table("console_login_failures")


def downgrade() -> None:
    op.create_table(
        "console_login_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(160), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_console_login_failures"),
    )
    op.create_index("ix_console_login_failures_key_at", "console_login_failures", ["key", "at"])
    op.drop_table("console_limits")
