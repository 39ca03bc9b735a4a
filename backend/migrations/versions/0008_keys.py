"""Key ids and row-bound ciphertexts: the ``crypto_keys`` table and ``row_uid`` columns.

``crypto_keys`` lists the keys the data is encrypted with (a key check per key
id; backend/keys.py). Tables whose rows have no identity before the insert get
``row_uid``, which names the row in its encrypted values' associated data.
Existing rows get ``legacy-<id>``: unique, and their ``v1`` values carry no
associated data until ``datadesk keys rotate`` rewrites them.

Revision ID: 0008_keys
Revises: 0006_console_limits
"""

import sqlalchemy as sa
from alembic import op


revision = "0008_keys"
down_revision = "0007_audit_seal"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
ROW_UID_TABLES = (
    "crm_phones",
    "crm_emails",
    "crm_products",
    "crm_transactions",
    "notifications",
    "transcript_entries",
)


def upgrade() -> None:
    op.create_table(
        "crypto_keys",
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("key_check", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("retired_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_crypto_keys"),
    )
    for table in ROW_UID_TABLES:
        op.add_column(table, sa.Column("row_uid", sa.String(32), nullable=True))
        op.execute(f"UPDATE {table} SET row_uid = 'legacy-' || CAST(id AS VARCHAR)")  # noqa: S608
        # SQLite rebuilds the table: keep notifications' ids never reused.
        kwargs = {"sqlite_autoincrement": True} if table == "notifications" else {}
        with op.batch_alter_table(table, table_kwargs=kwargs) as batch:
            batch.alter_column("row_uid", existing_type=sa.String(32), nullable=False)


def downgrade() -> None:
    # v2 values written since the upgrade stay unreadable to the older code.
    for table in ROW_UID_TABLES:
        kwargs = {"sqlite_autoincrement": True} if table == "notifications" else {}
        with op.batch_alter_table(table, table_kwargs=kwargs) as batch:
            batch.drop_column("row_uid")
    op.drop_table("crypto_keys")
