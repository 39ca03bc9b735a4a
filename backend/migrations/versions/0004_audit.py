"""Hash-chained audit log.

Revision ID: 0004_audit
Revises: 0003_ledger
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0004_audit"
down_revision = "0003_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
