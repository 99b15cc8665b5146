"""hotspot core

Revision ID: 31401d6c796c
Revises: f06f6967dc37
Create Date: 2026-11-23 19:59:10.237487
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "31401d6c796c"
down_revision: str | None = "f06f6967dc37"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "routers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("host", sa.String(length=253), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_enc", sa.Text(), nullable=False),
        sa.Column("tls", sa.Boolean(), nullable=False),
        sa.Column("hotspot_server", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "unknown",
                "up",
                "down",
                name="router_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("identity", sa.String(length=64), nullable=True),
        sa.Column("version", sa.String(length=40), nullable=True),
        sa.Column("uptime", sa.String(length=40), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("active_sessions", sa.Integer(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("retry_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_routers_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routers")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_routers_tenant_id_name")),
    )
    with op.batch_alter_table("routers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_routers_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "hotspot_plans",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("router_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("time", "data", name="plan_kind", native_enum=False, create_constraint=True, length=32),
            nullable=False,
        ),
        sa.Column("price", sa.Integer(), nullable=False),
        sa.Column("validity_minutes", sa.Integer(), nullable=False),
        sa.Column("data_mb", sa.Integer(), nullable=True),
        sa.Column("rate_limit", sa.String(length=40), nullable=True),
        sa.Column("devices", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("sort_order", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["router_id"], ["routers.id"], name=op.f("fk_hotspot_plans_router_id_routers"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_hotspot_plans_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hotspot_plans")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_hotspot_plans_tenant_id_name")),
    )
    with op.batch_alter_table("hotspot_plans", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hotspot_plans_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "vouchers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("router_id", sa.Uuid(), nullable=False),
        sa.Column("plan_id", sa.Uuid(), nullable=True),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "issued",
                "provisioned",
                "active",
                "expired",
                "revoked",
                name="voucher_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("plan_name", sa.String(length=40), nullable=False),
        sa.Column("price", sa.Integer(), nullable=False),
        sa.Column("validity_minutes", sa.Integer(), nullable=False),
        sa.Column("data_mb", sa.Integer(), nullable=True),
        sa.Column("rate_limit", sa.String(length=40), nullable=True),
        sa.Column("devices", sa.Integer(), nullable=False),
        sa.Column("payment_id", sa.Uuid(), nullable=True),
        sa.Column("phone", sa.String(length=12), nullable=True),
        sa.Column("batch_id", sa.Uuid(), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("provisioned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("bytes_used", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_vouchers_payment_id_payments"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["hotspot_plans.id"],
            name=op.f("fk_vouchers_plan_id_hotspot_plans"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["router_id"], ["routers.id"], name=op.f("fk_vouchers_router_id_routers"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_vouchers_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vouchers")),
        sa.UniqueConstraint("payment_id", name=op.f("uq_vouchers_payment_id")),
        sa.UniqueConstraint("tenant_id", "code", name=op.f("uq_vouchers_tenant_id_code")),
    )
    with op.batch_alter_table("vouchers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vouchers_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_vouchers_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_vouchers_phone"), ["phone"], unique=False)
        batch_op.create_index(batch_op.f("ix_vouchers_router_id"), ["router_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_vouchers_tenant_id"), ["tenant_id"], unique=False)

    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("voucher_length", sa.Integer(), nullable=False, server_default="8"))
    op.create_table(
        "voucher_orders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("payment_id", sa.Uuid(), nullable=False),
        sa.Column("plan_id", sa.Uuid(), nullable=True),
        sa.Column("router_id", sa.Uuid(), nullable=False),
        sa.Column("phone", sa.String(length=12), nullable=False),
        sa.Column("mac", sa.String(length=17), nullable=True),
        sa.Column("client_ip", sa.String(length=45), nullable=True),
        sa.Column("voucher_id", sa.Uuid(), nullable=True),
        sa.Column("plan_name", sa.String(length=40), server_default="", nullable=False),
        sa.Column("price", sa.Integer(), server_default="0", nullable=False),
        sa.Column("validity_minutes", sa.Integer(), server_default="0", nullable=False),
        sa.Column("data_mb", sa.Integer(), nullable=True),
        sa.Column("rate_limit", sa.String(length=40), nullable=True),
        sa.Column("devices", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_voucher_orders_payment_id_payments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["hotspot_plans.id"],
            name=op.f("fk_voucher_orders_plan_id_hotspot_plans"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["router_id"],
            ["routers.id"],
            name=op.f("fk_voucher_orders_router_id_routers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_voucher_orders_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["voucher_id"],
            ["vouchers.id"],
            name=op.f("fk_voucher_orders_voucher_id_vouchers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voucher_orders")),
        sa.UniqueConstraint("payment_id", name=op.f("uq_voucher_orders_payment_id")),
    )
    with op.batch_alter_table("voucher_orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_voucher_orders_tenant_id"), ["tenant_id"], unique=False)
    op.create_table(
        "subscription_plans",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column(
            "period",
            sa.Enum(
                "monthly",
                "yearly",
                name="subscription_period",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_plans")),
        sa.UniqueConstraint("name", name=op.f("uq_subscription_plans_name")),
    )
    op.create_table(
        "subscription_orders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("merchant_reference", sa.String(length=50), nullable=False),
        sa.Column("order_tracking_id", sa.String(length=64), nullable=True),
        sa.Column("redirect_url", sa.String(length=500), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column(
            "period",
            sa.Enum(
                "monthly",
                "yearly",
                name="subscription_period",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "completed",
                "failed",
                "reversed",
                name="subscription_order_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("confirmation_code", sa.String(length=64), nullable=True),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reversed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["subscription_plans.id"],
            name=op.f("fk_subscription_orders_plan_id_subscription_plans"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_subscription_orders_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_orders")),
        sa.UniqueConstraint("merchant_reference", name=op.f("uq_subscription_orders_merchant_reference")),
        sa.UniqueConstraint("order_tracking_id", name=op.f("uq_subscription_orders_order_tracking_id")),
    )
    with op.batch_alter_table("subscription_orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subscription_orders_tenant_id"), ["tenant_id"], unique=False)

    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("subscription_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("subscription_reminded", sa.String(length=40), nullable=True))

    with op.batch_alter_table("job_outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_outbox", schema=None) as batch_op:
        batch_op.drop_column("not_before")

    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("subscription_reminded")
        batch_op.drop_column("subscription_until")

    with op.batch_alter_table("subscription_orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscription_orders_tenant_id"))

    op.drop_table("subscription_orders")
    op.drop_table("subscription_plans")

    with op.batch_alter_table("voucher_orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_voucher_orders_tenant_id"))

    op.drop_table("voucher_orders")

    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("voucher_length")

    with op.batch_alter_table("vouchers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vouchers_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_vouchers_router_id"))
        batch_op.drop_index(batch_op.f("ix_vouchers_phone"))
        batch_op.drop_index(batch_op.f("ix_vouchers_expires_at"))
        batch_op.drop_index(batch_op.f("ix_vouchers_batch_id"))

    op.drop_table("vouchers")
    with op.batch_alter_table("hotspot_plans", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hotspot_plans_tenant_id"))

    op.drop_table("hotspot_plans")
    with op.batch_alter_table("routers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_routers_tenant_id"))

    op.drop_table("routers")
