"""C2B: a received payment's own facts, the account numbers validation accepts, and the decisions taken

- `c2b_payments`: beside each `payments` row of source `c2b`, what its columns cannot hold (the full
  BillRefNumber, the amount to the cent, the MSISDN as sent, the invoice number, the balance after).
- `c2b_accounts`: a channel's account numbers, for the `known_references` validation rule.
- `c2b_decisions`: every validation answer and every refused confirmation, with the reason.

All three carry `tenant_id` and are under row-level security. Nothing existing changes, so the
downgrade drops them; a database holding C2B payments keeps the payments themselves (only their
extra facts go).

Revision ID: f4b0d2e6a813
Revises: e3a9c1d5f702
Create Date: 2026-12-07 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f4b0d2e6a813"
down_revision: str | None = "e3a9c1d5f702"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_TENANT_TABLES = ("c2b_payments", "c2b_accounts", "c2b_decisions")
# The policy of 2026-12-07-0100_row_level_security.py, copied so this file stands alone.
RULE = (
    "current_setting('app.scope', true) = 'platform' "
    "OR tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid"
)


def _owner_columns(table: str) -> list[sa.SchemaItem]:
    return [
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f(f"fk_{table}_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["mpesa_channels.id"],
            name=op.f(f"fk_{table}_channel_id_mpesa_channels"),
            ondelete="CASCADE",
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "c2b_payments",
        sa.Column("payment_id", sa.Uuid(), nullable=False),
        *_owner_columns("c2b_payments"),
        sa.Column("trans_id", sa.String(length=20), nullable=False),
        sa.Column("transaction_type", sa.String(length=40), nullable=True),
        sa.Column("business_short_code", sa.String(length=20), nullable=False),
        sa.Column("bill_ref_number", sa.String(length=100), nullable=True),
        sa.Column("invoice_number", sa.String(length=100), nullable=True),
        sa.Column("third_party_trans_id", sa.String(length=100), nullable=True),
        sa.Column("msisdn", sa.String(length=64), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("org_account_balance_cents", sa.BigInteger(), nullable=True),
        sa.Column("phone_from_book", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_c2b_payments_payment_id_payments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("payment_id", name=op.f("pk_c2b_payments")),
        sa.UniqueConstraint("trans_id", name=op.f("uq_c2b_payments_trans_id")),
    )
    with op.batch_alter_table("c2b_payments", schema=None) as batch_op:
        batch_op.create_index("ix_c2b_payments_tenant_channel", ["tenant_id", "channel_id"], unique=False)

    op.create_table(
        "c2b_accounts",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        *_owner_columns("c2b_accounts"),
        sa.Column("reference", sa.String(length=20), nullable=False),
        sa.Column("key", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_c2b_accounts")),
        sa.UniqueConstraint("channel_id", "key", name=op.f("uq_c2b_accounts_channel_id_key")),
    )

    op.create_table(
        "c2b_decisions",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        *_owner_columns("c2b_decisions"),
        sa.Column(
            "stage",
            sa.Enum(
                "validation",
                "confirmation",
                name="c2b_stage",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("result_code", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("trans_id", sa.String(length=64), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=True),
        sa.Column("bill_ref_number", sa.String(length=100), nullable=True),
        sa.Column("msisdn", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_c2b_decisions")),
    )
    with op.batch_alter_table("c2b_decisions", schema=None) as batch_op:
        batch_op.create_index("ix_c2b_decisions_channel_recent", ["channel_id", "id"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        for table in NEW_TENANT_TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({RULE}) WITH CHECK ({RULE})")


def downgrade() -> None:
    with op.batch_alter_table("c2b_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_c2b_decisions_channel_recent")
    op.drop_table("c2b_decisions")
    op.drop_table("c2b_accounts")
    with op.batch_alter_table("c2b_payments", schema=None) as batch_op:
        batch_op.drop_index("ix_c2b_payments_tenant_channel")
    op.drop_table("c2b_payments")
