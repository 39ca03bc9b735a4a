"""One-time-code verifications and customer sessions.

Revision ID: 0002_verification
Revises: 0001_crm
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_verification"
down_revision = "0001_crm"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "verification_challenges",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("chat", sa.String(length=128), nullable=True),
        sa.Column("customer_ref", sa.String(length=64), nullable=True),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("target_kind", sa.String(length=8), nullable=True),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("code_mac", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verification_challenges")),
    )
    op.create_table(
        "verification_code_issues",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("challenge_id", sa.String(length=40), nullable=False),
        sa.Column("chat", sa.String(length=128), nullable=True),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verification_code_issues")),
    )
    op.create_index(
        "ix_verification_code_issues_chat_at",
        "verification_code_issues",
        ["chat", "issued_at"],
        unique=False,
    )
    op.create_index(
        "ix_verification_code_issues_subject_at",
        "verification_code_issues",
        ["subject", "issued_at"],
        unique=False,
    )
    op.create_table(
        "verification_proofs",
        sa.Column("token_mac", sa.String(length=64), nullable=False),
        sa.Column("customer_ref", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("challenge_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("token_mac", name=op.f("pk_verification_proofs")),
    )
    op.create_index(
        op.f("ix_verification_proofs_customer_ref"),
        "verification_proofs",
        ["customer_ref"],
        unique=False,
    )
    op.create_table(
        "verification_sessions",
        sa.Column("token_mac", sa.String(length=64), nullable=False),
        sa.Column("customer_ref", sa.String(length=64), nullable=False),
        sa.Column("chat", sa.String(length=128), nullable=True),
        sa.Column("challenge_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_mac", name=op.f("pk_verification_sessions")),
    )
    op.create_index(
        op.f("ix_verification_sessions_customer_ref"),
        "verification_sessions",
        ["customer_ref"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_verification_sessions_customer_ref"), table_name="verification_sessions")
    op.drop_table("verification_sessions")
    op.drop_index(op.f("ix_verification_proofs_customer_ref"), table_name="verification_proofs")
    op.drop_table("verification_proofs")
    op.drop_index("ix_verification_code_issues_subject_at", table_name="verification_code_issues")
    op.drop_index("ix_verification_code_issues_chat_at", table_name="verification_code_issues")
    op.drop_table("verification_code_issues")
    op.drop_table("verification_challenges")
