"""ussd and sms

Revision ID: f06f6967dc37
Revises: 261f38e9fbe9
Create Date: 2026-11-23 18:44:38.538618
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f06f6967dc37"
down_revision: str | None = "261f38e9fbe9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "phone_verifications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("phone", sa.String(length=12), nullable=False),
        sa.Column("pin_hash", sa.String(length=255), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_phone_verifications_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phone_verifications")),
    )
    with op.batch_alter_table("phone_verifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_phone_verifications_user_id"), ["user_id"], unique=False)

    op.create_table(
        "sms_delivery_reports",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("provider_message_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("failure_reason", sa.String(length=200), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_delivery_reports")),
    )
    with op.batch_alter_table("sms_delivery_reports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sms_delivery_reports_provider_message_id"), ["provider_message_id"], unique=False
        )

    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sender_id", sa.String(length=11), nullable=True))
        batch_op.add_column(sa.Column("provider_message_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("delivery_status", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("cost", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("attachment_path", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_notifications_provider_message_id"), ["provider_message_id"], unique=False
        )

    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pushed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("notify_phone", sa.String(length=12), nullable=True))

    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("business_number", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("sms_sender_id", sa.String(length=11), nullable=True))
        batch_op.add_column(
            sa.Column("sms_receipts", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("sms_receipt_template", sa.String(length=320), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_tenants_business_number"), ["business_number"])

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ussd_phone", sa.String(length=12), nullable=True))
        batch_op.add_column(sa.Column("ussd_pin_failures", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("ussd_locked_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_users_ussd_phone"), ["ussd_phone"])

    with op.batch_alter_table("mpesa_channels", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mpesa_channels_business_short_code"), ["business_short_code"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_mpesa_channels_till_number"), ["till_number"], unique=False)

    # Existing businesses get their "pay a business" number (new ones get it at creation).
    conn = op.get_bind()
    tenants = sa.table("tenants", sa.column("id", sa.Uuid()), sa.column("business_number", sa.String(8)))
    taken: set[str] = set()
    for (tenant_id,) in conn.execute(sa.select(tenants.c.id).where(tenants.c.business_number.is_(None))):
        number = str(10_000_000 + secrets.randbelow(90_000_000))
        while number in taken:
            number = str(10_000_000 + secrets.randbelow(90_000_000))
        taken.add(number)
        conn.execute(sa.update(tenants).where(tenants.c.id == tenant_id).values(business_number=number))


def downgrade() -> None:
    with op.batch_alter_table("mpesa_channels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mpesa_channels_till_number"))
        batch_op.drop_index(batch_op.f("ix_mpesa_channels_business_short_code"))

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_users_ussd_phone"), type_="unique")
        batch_op.drop_column("ussd_locked_until")
        batch_op.drop_column("ussd_pin_failures")
        batch_op.drop_column("ussd_phone")

    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_tenants_business_number"), type_="unique")
        batch_op.drop_column("sms_receipt_template")
        batch_op.drop_column("sms_receipts")
        batch_op.drop_column("sms_sender_id")
        batch_op.drop_column("business_number")

    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_column("notify_phone")
        batch_op.drop_column("pushed_at")

    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notifications_provider_message_id"))
        batch_op.drop_column("delivered_at")
        batch_op.drop_column("attachment_path")
        batch_op.drop_column("cost")
        batch_op.drop_column("delivery_status")
        batch_op.drop_column("provider_message_id")
        batch_op.drop_column("sender_id")

    with op.batch_alter_table("sms_delivery_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sms_delivery_reports_provider_message_id"))
    op.drop_table("sms_delivery_reports")

    with op.batch_alter_table("phone_verifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_phone_verifications_user_id"))
    op.drop_table("phone_verifications")
