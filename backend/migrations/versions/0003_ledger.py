"""Requests ledger (the queue), holds and the notifications outbox.

Revision ID: 0003_ledger
Revises: 0002_verification
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0003_ledger"
down_revision = "0002_verification"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
