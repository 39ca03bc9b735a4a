"""Agents can be made to change their password, are removed softly, and show their last login.

``must_change_password`` sends the agent to the change-password page before
anything else (set by a password reset). ``removed_at`` marks a removed agent:
the row stays so that ``agent:<id>`` in the audit log still names someone,
and the name is never handed to another person. ``last_login_at`` is what
``datadesk agents list`` shows.

Revision ID: 0010_agent_management
Revises: 0009_transcript_seq
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_agent_management"
down_revision = "0009_transcript_seq"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(
            sa.Column(
                "must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch.add_column(sa.Column("last_login_at", TS, nullable=True))
        batch.add_column(sa.Column("removed_at", TS, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("removed_at")
        batch.drop_column("last_login_at")
        batch.drop_column("must_change_password")
