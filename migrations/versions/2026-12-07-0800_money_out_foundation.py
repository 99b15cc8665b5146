"""Money out, foundation: payouts and their batches, balance and status lookups, reversals

- `mpesa_channels`: a channel may be a bulk-payment (`b2c`) shortcode, and any channel may hold the
  business's Daraja initiator (name, encrypted password, when it was set and proven) and its C2B
  registration (when, through v1 or v2, whether validation is on and its account rule).
- `payments`: source `c2b` (sent straight to the till or paybill), status `reversed`.
- `callback_inbox`: `kind` (which Daraja answer: "stk" for every row before this revision) and
  `reference` (the ConversationID or TransID it names).
- `payouts`, `payout_batches`, `mpesa_lookups`, `reversals`: new, under row-level security.
- `tenants.payout_max_kes` / `payout_daily_max_kes`, `users.may_pay_out`.

The enum CHECKs of `mpesa_channels.kind`, `payments.source` and `payments.status` are replaced by wider
ones; on Postgres the new CHECK is added NOT VALID and validated after, so the payments table is not
locked against writes while it is scanned.

Revision ID: d1e5a7c90b31
Revises: c6f1b8a3d29e
Create Date: 2026-12-07 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d1e5a7c90b31"
down_revision: str | None = "c6f1b8a3d29e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_TENANT_TABLES = ("payout_batches", "payouts", "mpesa_lookups", "reversals")
# The policy of 2026-12-07-0100_row_level_security.py, copied so this file stands alone.
RULE = (
    "current_setting('app.scope', true) = 'platform' "
    "OR tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid"
)
# (table, CHECK name without its table prefix, column, values before, values after)
WIDER_ENUMS = (
    ("mpesa_channels", "channel_kind", "kind", ("paybill", "till"), ("paybill", "till", "b2c")),
    (
        "payments",
        "payment_source",
        "source",
        ("api", "telegram", "ussd", "portal", "onboarding", "topup"),
        ("api", "telegram", "ussd", "portal", "onboarding", "topup", "c2b"),
    ),
    (
        "payments",
        "payment_status",
        "status",
        ("pending", "success", "failed", "cancelled", "timeout", "expired"),
        ("pending", "success", "failed", "cancelled", "timeout", "expired", "reversed"),
    ),
)


def _check(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _set_checks(*, widen: bool) -> None:
    conn = op.get_bind()
    for table, name, column, before, after in WIDER_ENUMS:
        values = after if widen else before
        if conn.dialect.name == "postgresql":
            full = f"ck_{table}_{name}"
            op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {full}")
            op.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT {full} CHECK ({_check(column, values)}) NOT VALID"
            )
            op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {full}")
        else:  # SQLite cannot alter a CHECK: the batch copies the table under the new one
            with op.batch_alter_table(table, schema=None, recreate="always") as batch_op:
                batch_op.drop_constraint(batch_op.f(f"ck_{table}_{name}"), type_="check")
                batch_op.create_check_constraint(
                    batch_op.f(f"ck_{table}_{name}"), sa.text(_check(column, values))
                )


def upgrade() -> None:
    op.create_table(
        "payout_batches",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column(
            "mode",
            sa.Enum("test", "live", name="mode", native_enum=False, create_constraint=True, length=32),
            nullable=False,
        ),
        sa.Column(
            "command",
            sa.Enum(
                "BusinessPayment",
                "SalaryPayment",
                "PromotionPayment",
                name="payout_command",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "running",
                "paused",
                "done",
                "cancelled",
                name="batch_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("rows_total", sa.Integer(), nullable=False),
        sa.Column("rows_valid", sa.Integer(), nullable=False),
        sa.Column("amount_total", sa.BigInteger(), nullable=False),
        sa.Column("pause_reason", sa.Text(), nullable=True),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("approved_by_id", sa.Uuid(), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status_chat_id", sa.BigInteger(), nullable=True),
        sa.Column("status_message_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["approved_by_id"],
            ["users.id"],
            name=op.f("fk_payout_batches_approved_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["mpesa_channels.id"],
            name=op.f("fk_payout_batches_channel_id_mpesa_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_payout_batches_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_payout_batches_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_batches")),
    )
    with op.batch_alter_table("payout_batches", schema=None) as batch_op:
        batch_op.create_index("ix_payout_batches_tenant_created", ["tenant_id", "created_at"], unique=False)

    op.create_table(
        "payouts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=True),
        sa.Column("row_number", sa.Integer(), nullable=True),
        sa.Column("app_id", sa.Uuid(), nullable=True),
        sa.Column(
            "mode",
            sa.Enum("test", "live", name="mode", native_enum=False, create_constraint=True, length=32),
            nullable=False,
        ),
        sa.Column(
            "source",
            sa.Enum(
                "api",
                "telegram",
                "ussd",
                "panel",
                "cli",
                "mcp",
                name="payout_source",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "command",
            sa.Enum(
                "BusinessPayment",
                "SalaryPayment",
                "PromotionPayment",
                name="payout_command",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "pending",
                "success",
                "failed",
                "timeout",
                name="payout_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("phone", sa.String(length=12), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=True),
        sa.Column("reference", sa.String(length=100), nullable=True),
        sa.Column("occasion", sa.String(length=100), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("initiated_by_id", sa.Uuid(), nullable=True),
        sa.Column("originator_conversation_id", sa.String(length=64), nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=True),
        sa.Column("send_attempts", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status_checks", sa.Integer(), nullable=False),
        sa.Column("receipt", sa.String(length=20), nullable=True),
        sa.Column("recipient_name", sa.String(length=120), nullable=True),
        sa.Column("recipient_registered", sa.Boolean(), nullable=True),
        sa.Column("utility_balance_cents", sa.BigInteger(), nullable=True),
        sa.Column("working_balance_cents", sa.BigInteger(), nullable=True),
        sa.Column("charges_paid_balance_cents", sa.BigInteger(), nullable=True),
        sa.Column("result_code", sa.String(length=32), nullable=True),
        sa.Column("result_desc", sa.Text(), nullable=True),
        sa.Column("transaction_completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_payouts_app_id_apps"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["payout_batches.id"],
            name=op.f("fk_payouts_batch_id_payout_batches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["mpesa_channels.id"],
            name=op.f("fk_payouts_channel_id_mpesa_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["initiated_by_id"],
            ["users.id"],
            name=op.f("fk_payouts_initiated_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_payouts_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
        sa.UniqueConstraint("batch_id", "row_number", name=op.f("uq_payouts_batch_id_row_number")),
        sa.UniqueConstraint("originator_conversation_id", name=op.f("uq_payouts_originator_conversation_id")),
        sa.UniqueConstraint("receipt", name=op.f("uq_payouts_receipt")),
        sa.UniqueConstraint(
            "tenant_id", "mode", "idempotency_key", name=op.f("uq_payouts_tenant_id_mode_idempotency_key")
        ),
    )
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.create_index("ix_payouts_batch_status", ["batch_id", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_payouts_conversation_id"), ["conversation_id"], unique=False)
        batch_op.create_index("ix_payouts_status_next_check", ["status", "next_check_at"], unique=False)
        batch_op.create_index("ix_payouts_tenant_created", ["tenant_id", "created_at", "id"], unique=False)

    op.create_table(
        "mpesa_lookups",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column(
            "mode",
            sa.Enum("test", "live", name="mode", native_enum=False, create_constraint=True, length=32),
            nullable=False,
        ),
        sa.Column(
            "kind",
            sa.Enum(
                "balance", "status", name="lookup_kind", native_enum=False, create_constraint=True, length=32
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "done",
                "failed",
                "timeout",
                name="lookup_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("transaction_id", sa.String(length=64), nullable=True),
        sa.Column("payment_id", sa.Uuid(), nullable=True),
        sa.Column("payout_id", sa.Uuid(), nullable=True),
        sa.Column("conversation_id", sa.String(length=64), nullable=True),
        sa.Column("originator_conversation_id", sa.String(length=64), nullable=True),
        sa.Column("result_code", sa.String(length=32), nullable=True),
        sa.Column("result_desc", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("working_cents", sa.BigInteger(), nullable=True),
        sa.Column("utility_cents", sa.BigInteger(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("requested_by_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["mpesa_channels.id"],
            name=op.f("fk_mpesa_lookups_channel_id_mpesa_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_mpesa_lookups_payment_id_payments"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["payout_id"],
            ["payouts.id"],
            name=op.f("fk_mpesa_lookups_payout_id_payouts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_id"],
            ["users.id"],
            name=op.f("fk_mpesa_lookups_requested_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_mpesa_lookups_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mpesa_lookups")),
    )
    with op.batch_alter_table("mpesa_lookups", schema=None) as batch_op:
        batch_op.create_index(
            "ix_mpesa_lookups_channel_kind_created", ["channel_id", "kind", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_mpesa_lookups_conversation_id"), ["conversation_id"], unique=False
        )
        batch_op.create_index("ix_mpesa_lookups_tenant_created", ["tenant_id", "created_at"], unique=False)

    op.create_table(
        "reversals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("payment_id", sa.Uuid(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column(
            "mode",
            sa.Enum("test", "live", name="mode", native_enum=False, create_constraint=True, length=32),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "success",
                "failed",
                "timeout",
                name="reversal_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("receipt", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by_id", sa.Uuid(), nullable=True),
        sa.Column("conversation_id", sa.String(length=64), nullable=True),
        sa.Column("originator_conversation_id", sa.String(length=64), nullable=True),
        sa.Column("reversal_receipt", sa.String(length=20), nullable=True),
        sa.Column("result_code", sa.String(length=32), nullable=True),
        sa.Column("result_desc", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["mpesa_channels.id"],
            name=op.f("fk_reversals_channel_id_mpesa_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_reversals_payment_id_payments"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_id"],
            ["users.id"],
            name=op.f("fk_reversals_requested_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_reversals_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reversals")),
    )
    with op.batch_alter_table("reversals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reversals_conversation_id"), ["conversation_id"], unique=False)
        batch_op.create_index("ix_reversals_tenant_created", ["tenant_id", "created_at"], unique=False)
        batch_op.create_index(
            "uq_reversals_open_or_done",
            ["payment_id"],
            unique=True,
            postgresql_where=sa.text("status IN ('pending', 'success')"),
            sqlite_where=sa.text("status IN ('pending', 'success')"),
        )

    with op.batch_alter_table("callback_inbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=24), server_default="stk", nullable=False))
        batch_op.add_column(sa.Column("reference", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_callback_inbox_reference"), ["reference"], unique=False)

    with op.batch_alter_table("mpesa_channels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("initiator_name", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("initiator_password_enc", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("initiator_set_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("initiator_verified_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("initiator_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("c2b_registered_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("c2b_api_version", sa.String(length=4), nullable=True))
        batch_op.add_column(
            sa.Column("c2b_validation", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("c2b_accounts_rule", sa.String(length=32), nullable=True))

    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("payout_max_kes", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("payout_daily_max_kes", sa.Integer(), nullable=True))

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("may_pay_out", sa.Boolean(), server_default=sa.false(), nullable=False))

    _set_checks(widen=True)
    if op.get_bind().dialect.name == "postgresql":
        for table in NEW_TENANT_TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({RULE}) WITH CHECK ({RULE})")


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT set_config('app.scope', 'platform', true)"))
    # The narrower CHECKs cannot hold C2B payments, reversed payments or B2C channels: deleting them
    # would lose money records, so a database that has any stays on this revision.
    held = {
        "C2B payments": "SELECT count(*) FROM payments WHERE source = 'c2b'",
        "reversed payments": "SELECT count(*) FROM payments WHERE status = 'reversed'",
        "B2C channels": "SELECT count(*) FROM mpesa_channels WHERE kind = 'b2c'",
    }
    found = {what: conn.execute(sa.text(sql)).scalar_one() for what, sql in held.items()}
    if any(found.values()):
        listed = ", ".join(f"{n} {what}" for what, n in found.items() if n)
        raise RuntimeError(
            f"Cannot downgrade below money out: the database holds {listed}, which the older schema "
            "cannot store. Restore a backup taken before the upgrade instead."
        )
    _set_checks(widen=False)
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("may_pay_out")

    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("payout_daily_max_kes")
        batch_op.drop_column("payout_max_kes")

    with op.batch_alter_table("mpesa_channels", schema=None) as batch_op:
        batch_op.drop_column("c2b_accounts_rule")
        batch_op.drop_column("c2b_validation")
        batch_op.drop_column("c2b_api_version")
        batch_op.drop_column("c2b_registered_at")
        batch_op.drop_column("initiator_error")
        batch_op.drop_column("initiator_verified_at")
        batch_op.drop_column("initiator_set_at")
        batch_op.drop_column("initiator_password_enc")
        batch_op.drop_column("initiator_name")

    with op.batch_alter_table("callback_inbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_callback_inbox_reference"))
        batch_op.drop_column("reference")
        batch_op.drop_column("kind")

    with op.batch_alter_table("reversals", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_reversals_open_or_done",
            postgresql_where=sa.text("status IN ('pending', 'success')"),
            sqlite_where=sa.text("status IN ('pending', 'success')"),
        )
        batch_op.drop_index("ix_reversals_tenant_created")
        batch_op.drop_index(batch_op.f("ix_reversals_conversation_id"))

    op.drop_table("reversals")
    with op.batch_alter_table("mpesa_lookups", schema=None) as batch_op:
        batch_op.drop_index("ix_mpesa_lookups_tenant_created")
        batch_op.drop_index(batch_op.f("ix_mpesa_lookups_conversation_id"))
        batch_op.drop_index("ix_mpesa_lookups_channel_kind_created")

    op.drop_table("mpesa_lookups")
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.drop_index("ix_payouts_tenant_created")
        batch_op.drop_index("ix_payouts_status_next_check")
        batch_op.drop_index(batch_op.f("ix_payouts_conversation_id"))
        batch_op.drop_index("ix_payouts_batch_status")

    op.drop_table("payouts")
    with op.batch_alter_table("payout_batches", schema=None) as batch_op:
        batch_op.drop_index("ix_payout_batches_tenant_created")

    op.drop_table("payout_batches")
