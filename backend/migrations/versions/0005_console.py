"""Agents, console sessions, escalated chats and transcripts.

Revision ID: 0005_console
Revises: 0004_audit
"""

import sqlalchemy as sa
from alembic import op


revision = "0005_console"
down_revision = "0004_audit"
branch_labels = None
depends_on = None

# Migrations keep their own types: UTCDateTime and Encrypted store these.
TS = sa.DateTime(timezone=True)
OPEN = sa.text("state IN ('waiting', 'taken')")


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_agents"),
        sa.UniqueConstraint("name", name="uq_agents_name"),
    )
    op.create_table(
        "console_sessions",
        sa.Column("token_digest", sa.String(64), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name="fk_console_sessions_agent_id_agents"
        ),
        sa.PrimaryKeyConstraint("token_digest", name="pk_console_sessions"),
    )
    op.create_index("ix_console_sessions_agent_id", "console_sessions", ["agent_id"])
    op.create_table(
        "console_login_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(160), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_console_login_failures"),
    )
    op.create_index("ix_console_login_failures_key_at", "console_login_failures", ["key", "at"])
    op.create_table(
        "escalations",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("chat", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("locale", sa.String(16), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("customer_ref", sa.String(64), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("taken_by", sa.Integer(), nullable=True),
        sa.Column("resume", sa.String(32), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("taken_at", TS, nullable=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.ForeignKeyConstraint(["taken_by"], ["agents.id"], name="fk_escalations_taken_by_agents"),
        sa.PrimaryKeyConstraint("id", name="pk_escalations"),
    )
    op.create_index("ix_escalations_chat", "escalations", ["chat"])
    op.create_index("ix_escalations_state_created_at", "escalations", ["state", "created_at"])
    op.create_index(
        "uq_escalations_open_chat",
        "escalations",
        ["chat"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )
    op.create_table(
        "transcript_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat", sa.String(128), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name="fk_transcript_entries_agent_id_agents"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_transcript_entries"),
    )
    op.create_index("ix_transcript_entries_chat_id", "transcript_entries", ["chat", "id"])


def downgrade() -> None:
    op.drop_table("transcript_entries")
    op.drop_index("uq_escalations_open_chat", table_name="escalations")
    op.drop_table("escalations")
    op.drop_table("console_login_failures")
    op.drop_table("console_sessions")
    op.drop_table("agents")
