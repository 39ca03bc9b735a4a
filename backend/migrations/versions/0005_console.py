"""Agents, console sessions, escalated chats and transcripts.

Revision ID: 0005_console
Revises: 0004_audit
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0005_console"
down_revision = "0004_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
