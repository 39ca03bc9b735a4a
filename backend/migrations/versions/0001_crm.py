"""Built-in CRM: customers, contacts, consent, products, transactions, documents.

Revision ID: 0001_crm
Revises: None
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_crm"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crm_applied_changes",
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("customer_ref", sa.String(length=64), nullable=False),
        sa.Column("operation", sa.String(length=32), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("idempotency_key", name=op.f("pk_crm_applied_changes")),
    )
    op.create_table(
        "crm_customers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_customers")),
        sa.UniqueConstraint("ref", name=op.f("uq_crm_customers_ref")),
    )
    op.create_table(
        "crm_addresses",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("line1", sa.Text(), nullable=False),
        sa.Column("line2", sa.Text(), nullable=True),
        sa.Column("city", sa.Text(), nullable=False),
        sa.Column("postcode", sa.Text(), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["crm_customers.id"],
            name=op.f("fk_crm_addresses_customer_id_crm_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_crm_addresses")),
    )
    op.create_table(
        "crm_consents",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["crm_customers.id"],
            name=op.f("fk_crm_consents_customer_id_crm_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", "channel", name=op.f("pk_crm_consents")),
    )
    op.create_table(
        "crm_documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("collected", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["crm_customers.id"],
            name=op.f("fk_crm_documents_customer_id_crm_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_documents")),
    )
    op.create_index(
        op.f("ix_crm_documents_customer_id"), "crm_documents", ["customer_id"], unique=False
    )
    op.create_table(
        "crm_emails",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("address_index", sa.String(length=64), nullable=False),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["crm_customers.id"],
            name=op.f("fk_crm_emails_customer_id_crm_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_emails")),
    )
    op.create_index(
        op.f("ix_crm_emails_address_index"), "crm_emails", ["address_index"], unique=False
    )
    op.create_index(op.f("ix_crm_emails_customer_id"), "crm_emails", ["customer_id"], unique=False)
    op.create_table(
        "crm_erased_categories",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["crm_customers.id"],
            name=op.f("fk_crm_erased_categories_customer_id_crm_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", "category", name=op.f("pk_crm_erased_categories")),
    )
    op.create_table(
        "crm_holds",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("basis", sa.String(length=64), nullable=False),
        sa.Column("until", sa.Date(), nullable=True),
        sa.Column("while_open", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["crm_customers.id"],
            name=op.f("fk_crm_holds_customer_id_crm_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", "category", name=op.f("pk_crm_holds")),
    )
    op.create_index(op.f("ix_crm_holds_until"), "crm_holds", ["until"], unique=False)
    op.create_table(
        "crm_phones",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Text(), nullable=False),
        sa.Column("number_index", sa.String(length=64), nullable=False),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["crm_customers.id"],
            name=op.f("fk_crm_phones_customer_id_crm_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_phones")),
    )
    op.create_index(op.f("ix_crm_phones_customer_id"), "crm_phones", ["customer_id"], unique=False)
    op.create_index(
        op.f("ix_crm_phones_number_index"), "crm_phones", ["number_index"], unique=False
    )
    op.create_table(
        "crm_products",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("product_id", sa.Text(), nullable=False),
        sa.Column("opened", sa.Date(), nullable=False),
        sa.Column("closed", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["crm_customers.id"],
            name=op.f("fk_crm_products_customer_id_crm_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_products")),
    )
    op.create_index(
        op.f("ix_crm_products_customer_id"), "crm_products", ["customer_id"], unique=False
    )
    op.create_table(
        "crm_transactions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("booked", sa.Date(), nullable=False),
        sa.Column("amount", sa.String(length=32), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("product_id", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["crm_customers.id"],
            name=op.f("fk_crm_transactions_customer_id_crm_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_transactions")),
    )
    op.create_index(
        op.f("ix_crm_transactions_customer_id"), "crm_transactions", ["customer_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_crm_transactions_customer_id"), table_name="crm_transactions")
    op.drop_table("crm_transactions")
    op.drop_index(op.f("ix_crm_products_customer_id"), table_name="crm_products")
    op.drop_table("crm_products")
    op.drop_index(op.f("ix_crm_phones_number_index"), table_name="crm_phones")
    op.drop_index(op.f("ix_crm_phones_customer_id"), table_name="crm_phones")
    op.drop_table("crm_phones")
    op.drop_index(op.f("ix_crm_holds_until"), table_name="crm_holds")
    op.drop_table("crm_holds")
    op.drop_table("crm_erased_categories")
    op.drop_index(op.f("ix_crm_emails_customer_id"), table_name="crm_emails")
    op.drop_index(op.f("ix_crm_emails_address_index"), table_name="crm_emails")
    op.drop_table("crm_emails")
    op.drop_index(op.f("ix_crm_documents_customer_id"), table_name="crm_documents")
    op.drop_table("crm_documents")
    op.drop_table("crm_consents")
    op.drop_table("crm_addresses")
    op.drop_table("crm_customers")
    op.drop_table("crm_applied_changes")
