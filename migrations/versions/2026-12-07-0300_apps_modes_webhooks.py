"""Apps, test and live modes, signed webhooks

- `apps`: every business or hotspot provider that has a channel or a key gets a "Default app" on its
  channel, and its keys move into it, so nothing an integration does changes.
- `payments.mode`: test for pushes made on a simulator or sandbox channel, live for production; a
  test push still pending gives its wallet hold back (it will never settle commission); an
  Idempotency-Key is unique per mode.
- a key takes its business's channel's mode, so every key keeps working as before.
- `webhook_endpoints`, `webhook_messages` (the outbox of events), `webhook_deliveries` (one message to
  one URL) and `webhook_attempts` (the delivery log), all under row-level security on Postgres.

Revision ID: 9d3f6b2a8c15
Revises: 5e8a4c1f2b7d
Create Date: 2026-12-07 03:00:00
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "9d3f6b2a8c15"
down_revision: str | None = "5e8a4c1f2b7d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

def mode_type() -> sa.Enum:
    # A new type per column: one Enum shared by several columns ties its CHECK to the wrong table in
    # SQLite's batch copies.
    return sa.Enum("test", "live", name="mode", native_enum=False, create_constraint=True, length=32)
NEW_TENANT_TABLES = (
    "apps",
    "webhook_endpoints",
    "webhook_messages",
    "webhook_deliveries",
    "webhook_attempts",
)
# The policy of 2026-12-07-0100_row_level_security.py, copied so this file stands alone.
RULE = (
    "current_setting('app.scope', true) = 'platform' "
    "OR tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid"
)


def _adopt_existing() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT set_config('app.scope', 'platform', true)"))
    # A push still pending on a simulator or sandbox channel holds its commission on the wallet; as a
    # test payment it will never settle it, so the hold is given back now and the payment priced at 0.
    conn.execute(
        sa.text(
            "UPDATE ledger_accounts SET reserved_cents = reserved_cents - COALESCE(("
            "SELECT SUM(p.reserved_cents) FROM payments p WHERE p.tenant_id = ledger_accounts.tenant_id "
            "AND p.status = 'pending' AND p.channel_id IN "
            "(SELECT id FROM mpesa_channels WHERE environment <> 'production')), 0) WHERE kind = 'wallet'"
        )
    )
    conn.execute(
        sa.text(
            "UPDATE payments SET mode = 'test', reserved_cents = 0, commission_cents = 0 "
            "WHERE status = 'pending' AND channel_id IN "
            "(SELECT id FROM mpesa_channels WHERE environment <> 'production')"
        )
    )
    conn.execute(
        sa.text(
            "UPDATE payments SET mode = 'test' WHERE channel_id IN "
            "(SELECT id FROM mpesa_channels WHERE environment <> 'production')"
        )
    )
    rows = conn.execute(
        sa.text(
            "SELECT t.id, c.id, c.environment FROM tenants t "
            "LEFT JOIN mpesa_channels c ON c.tenant_id = t.id "
            "WHERE t.kind <> 'platform' AND (c.id IS NOT NULL "
            "OR EXISTS (SELECT 1 FROM api_keys k WHERE k.tenant_id = t.id))"
        )
    ).all()
    apps = sa.table(
        "apps",
        sa.column("id", sa.Uuid()),
        sa.column("tenant_id", sa.Uuid()),
        sa.column("name", sa.String()),
        sa.column("channel_id", sa.Uuid()),
        sa.column("callback_hosts", sa.JSON()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    keys = sa.table(
        "api_keys",
        sa.column("tenant_id", sa.Uuid()),
        sa.column("app_id", sa.Uuid()),
        sa.column("mode", sa.String()),
    )
    now = datetime.now(UTC)
    for raw_tenant, raw_channel, environment in rows:
        # Raw SQL gives ids as the driver stores them (32 hex digits on SQLite): typed from here on.
        tenant_id = uuid.UUID(str(raw_tenant))
        channel_id = uuid.UUID(str(raw_channel)) if raw_channel is not None else None
        app_id = uuid.uuid4()
        conn.execute(
            sa.insert(apps).values(
                id=app_id,
                tenant_id=tenant_id,
                name="Default app",
                channel_id=channel_id,
                callback_hosts=[],
                created_at=now,
            )
        )
        values: dict[str, object] = {"app_id": app_id}
        if environment is not None:
            # Before this revision a key's mode was a label: every key kept working on its business's
            # channel. It takes that channel's mode now, so it keeps working (its lp_… prefix is only
            # how it was shown when made).
            values["mode"] = "live" if environment == "production" else "test"
        conn.execute(sa.update(keys).where(keys.c.tenant_id == tenant_id).values(**values))


def _enable_rls() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in NEW_TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({RULE}) WITH CHECK ({RULE})")


def upgrade() -> None:
    op.create_table(
        "apps",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=True),
        sa.Column("callback_hosts", sa.JSON(), nullable=False),
        sa.Column("callback_secret_enc", sa.Text(), nullable=True),
        sa.Column("previous_callback_secret_enc", sa.Text(), nullable=True),
        sa.Column("previous_callback_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["mpesa_channels.id"],
            name=op.f("fk_apps_channel_id_mpesa_channels"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_apps_created_by_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_apps_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apps")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_apps_tenant_id_name")),
    )
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_apps_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("mode", mode_type(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("secret_enc", sa.Text(), nullable=False),
        sa.Column("previous_secret_enc", sa.Text(), nullable=True),
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_webhook_endpoints_app_id_apps"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_webhook_endpoints_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_endpoints_app_id"), ["app_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_webhook_endpoints_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "webhook_messages",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=True),
        sa.Column("mode", mode_type(), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_webhook_messages_app_id_apps"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_webhook_messages_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_messages")),
    )
    with op.batch_alter_table("webhook_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_messages_object", ["tenant_id", "object_id", "version"], unique=False
        )
        batch_op.create_index("ix_webhook_messages_tenant_created", ["tenant_id", "created_at"], unique=False)

    op.create_table(
        "webhook_deliveries",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=True),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "succeeded",
                "failed",
                name="webhook_delivery_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["webhook_messages.id"],
            name=op.f("fk_webhook_deliveries_message_id_webhook_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_webhook_deliveries_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint(
            "message_id", "endpoint_id", name=op.f("uq_webhook_deliveries_message_id_endpoint_id")
        ),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_deliveries_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(
            "ix_webhook_deliveries_endpoint_created", ["endpoint_id", "created_at"], unique=False
        )

    op.create_table(
        "webhook_attempts",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("delivery_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("response_excerpt", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name=op.f("fk_webhook_attempts_delivery_id_webhook_deliveries"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_webhook_attempts_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_attempts_delivery", ["delivery_id", "number"], unique=False)

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("app_id", sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f("ix_api_keys_app_id"), ["app_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_api_keys_app_id_apps"), "apps", ["app_id"], ["id"], ondelete="CASCADE"
        )

    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mode", mode_type(), nullable=False, server_default="live"))
        batch_op.add_column(sa.Column("app_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("callback_url", sa.String(length=2048), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_payments_app_id_apps"), "apps", ["app_id"], ["id"], ondelete="SET NULL"
        )

    # A batch of its own: SQLite copies the table to change it, and `mode` must exist by then.
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_constraint("uq_payments_tenant_id_idempotency_key", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_payments_tenant_id_mode_idempotency_key"), ["tenant_id", "mode", "idempotency_key"]
        )

    _adopt_existing()
    _enable_rls()


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_payments_tenant_id_mode_idempotency_key"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_payments_tenant_id_idempotency_key"), ["tenant_id", "idempotency_key"]
        )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_payments_app_id_apps"), type_="foreignkey")
        batch_op.drop_column("callback_url")
        batch_op.drop_column("app_id")
        # SQLite's copy would keep the CHECK on a column it no longer has
        batch_op.drop_constraint(batch_op.f("ck_payments_mode"), type_="check")
        batch_op.drop_column("mode")

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_api_keys_app_id_apps"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_api_keys_app_id"))
        batch_op.drop_column("app_id")

    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_attempts_delivery")

    op.drop_table("webhook_attempts")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_endpoint_created")
        batch_op.drop_index("ix_webhook_deliveries_due")

    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("webhook_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_messages_tenant_created")
        batch_op.drop_index("ix_webhook_messages_object")

    op.drop_table("webhook_messages")
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_endpoints_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_webhook_endpoints_app_id"))

    op.drop_table("webhook_endpoints")
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_apps_tenant_id"))

    op.drop_table("apps")
