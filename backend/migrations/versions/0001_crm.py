"""Built-in CRM: customers, contacts, consent, products, transactions, documents.

Revision ID: 0001_crm
Revises: None
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0001_crm"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
