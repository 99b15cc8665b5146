"""telegram bot

Revision ID: 261f38e9fbe9
Revises: 0bee9cc6c313
Create Date: 2026-11-23 16:27:36.146270
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "261f38e9fbe9"
down_revision: str | None = "0bee9cc6c313"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "one_time_codes",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "purpose",
            sa.Enum(
                "telegram_link",
                "staff_invite",
                name="code_purpose",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column(
            "role",
            sa.Enum(
                "platform_admin",
                "owner",
                "manager",
                "cashier",
                name="code_role",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_one_time_codes_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_one_time_codes_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_one_time_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_one_time_codes_code_hash")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("edit_message_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("payment_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("buttons", sa.JSON(), nullable=True))

    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_chat_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("status_message_id", sa.BigInteger(), nullable=True))

    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("notify_owner_on_payments", sa.Boolean(), nullable=False, server_default=sa.true())
        )


def downgrade() -> None:

    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("notify_owner_on_payments")

    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_column("status_message_id")
        batch_op.drop_column("status_chat_id")

    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("buttons")
        batch_op.drop_column("payment_id")
        batch_op.drop_column("edit_message_id")

    op.drop_table("one_time_codes")
