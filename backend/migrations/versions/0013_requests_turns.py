"""A partial index for the claim's "an earlier request of this customer is under way" probe.

The claim (``backend.ledger.claims``) skips a due request while an earlier one
of its customer is queued or running. Without an index for that probe
PostgreSQL, planning on the few rows its statistics knew of, joined every
due request with every active one: with 2,000 requests queued a claim took
813 ms (4,000,000 rows compared); with this index 7.8 ms.

Revision ID: 0013_requests_turns
Revises: 0012_chat_notes
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_requests_turns"
down_revision = "0012_chat_notes"
branch_labels = None
depends_on = None

ACTIVE = sa.text("state IN ('queued', 'running')")


def upgrade() -> None:
    op.create_index(
        "ix_requests_turns",
        "requests",
        ["customer_ref", "id"],
        postgresql_where=ACTIVE,
        sqlite_where=ACTIVE,
    )


def downgrade() -> None:
    op.drop_index("ix_requests_turns", table_name="requests")
