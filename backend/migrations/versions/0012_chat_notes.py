"""Agents' internal notes on a chat: ``chat_notes``, encrypted at rest, never sent to the customer.

Revision ID: 0012_chat_notes
Revises: 0011_contact_undo
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_chat_notes"
down_revision = "0011_contact_undo"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "chat_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat", sa.String(128), nullable=False),
        sa.Column("escalation_id", sa.String(32), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("row_uid", sa.String(32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["escalation_id"], ["escalations.id"], name="fk_chat_notes_escalation_id_escalations"
        ),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name="fk_chat_notes_agent_id_agents"),
        sa.PrimaryKeyConstraint("id", name="pk_chat_notes"),
    )
    op.create_index("ix_chat_notes_chat", "chat_notes", ["chat"])
    # The history page finds closed chats by the day they closed.
    op.create_index("ix_escalations_closed_at", "escalations", ["closed_at"])


def downgrade() -> None:
    op.drop_index("ix_escalations_closed_at", table_name="escalations")
    op.drop_index("ix_chat_notes_chat", table_name="chat_notes")
    op.drop_table("chat_notes")
