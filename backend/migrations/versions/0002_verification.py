"""One-time-code verifications and customer sessions.

Revision ID: 0002_verification
Revises: 0001_crm
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0002_verification"
down_revision = "0001_crm"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
