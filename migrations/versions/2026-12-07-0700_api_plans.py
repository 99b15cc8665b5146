"""API plans and their monthly live-push quota

- `plans`: code, name, monthly fee, live pushes per Nairobi calendar month (null: no limit), STK pushes
  per API key per minute (null: the platform's STK_PUSHES_PER_KEY_PER_MINUTE, as before plans),
  default flag (one plan), public flag. Two are made:
  * "free" (the default): KES 0, 100 live pushes a month;
  * "founding" (hidden, KES 0, no monthly limit): every business that exists now is put on it, so no
    merchant who was collecting before plans existed is capped by them.
- `plan_usage`: live pushes per business per Nairobi month ("2026-12"), counted as they are recorded.
  This month's row of each existing business is filled from its live payments (not the verification
  pushes), so the count is right from the first push after the upgrade.
- `tenants.plan_id` (null: the default plan), `tenants.plan_paid_until` and `tenants.plan_payment_id`
  (the M-Pesa top-up that pays the plan when it lands) and `tenants.plan_reminded`.

Revision ID: c6f1b8a3d29e
Revises: a4d9c2e7f150
Create Date: 2026-12-07 07:00:00
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision: str = "c6f1b8a3d29e"
down_revision: str | None = "a4d9c2e7f150"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EAT = ZoneInfo("Africa/Nairobi")
# The policy of 2026-12-07-0100_row_level_security.py, copied so this file stands alone.
RULE = (
    "current_setting('app.scope', true) = 'platform' "
    "OR tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid"
)

plans = sa.table(
    "plans",
    sa.column("id", sa.Uuid()),
    sa.column("code", sa.String()),
    sa.column("name", sa.String()),
    sa.column("description", sa.Text()),
    sa.column("monthly_fee_cents", sa.BigInteger()),
    sa.column("live_pushes_per_month", sa.Integer()),
    sa.column("pushes_per_key_per_minute", sa.Integer()),
    sa.column("is_default", sa.Boolean()),
    sa.column("public", sa.Boolean()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    op.create_table(
        "plans",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("monthly_fee_cents", sa.BigInteger(), nullable=False),
        sa.Column("live_pushes_per_month", sa.Integer(), nullable=True),
        sa.Column("pushes_per_key_per_minute", sa.Integer(), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
        sa.UniqueConstraint("code", name=op.f("uq_plans_code")),
    )
    op.create_index(
        "uq_plans_default",
        "plans",
        ["is_default"],
        unique=True,
        postgresql_where=sa.text("is_default"),
        sqlite_where=sa.text("is_default"),
    )
    op.create_table(
        "plan_usage",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("live_pushes", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_plan_usage_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "month", name=op.f("pk_plan_usage")),
    )
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("plan_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("plan_paid_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("plan_payment_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("plan_reminded", sa.String(length=7), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_tenants_plan_id_plans"), "plans", ["plan_id"], ["id"], ondelete="SET NULL"
        )

    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("ALTER TABLE plan_usage ENABLE ROW LEVEL SECURITY"))
        conn.execute(sa.text("ALTER TABLE plan_usage FORCE ROW LEVEL SECURITY"))
        conn.execute(
            sa.text(f"CREATE POLICY tenant_isolation ON plan_usage USING ({RULE}) WITH CHECK ({RULE})")
        )
        conn.execute(sa.text("SELECT set_config('app.scope', 'platform', true)"))
    now = datetime.now(UTC)
    free, founding = uuid.uuid4(), uuid.uuid4()
    op.bulk_insert(
        plans,
        [
            {
                "id": free, "code": "free", "name": "Free", "monthly_fee_cents": 0,
                "description": "Test keys without limit and 100 live payment requests a month.",
                "live_pushes_per_month": 100, "pushes_per_key_per_minute": None, "is_default": True,
                "public": True, "created_at": now, "updated_at": now,
            },
            {
                "id": founding, "code": "founding", "name": "Founding merchant", "monthly_fee_cents": 0,
                "description": "Businesses that collected with lipapush before plans: no monthly limit.",
                "live_pushes_per_month": None, "pushes_per_key_per_minute": None, "is_default": False,
                "public": False, "created_at": now, "updated_at": now,
            },
        ],
    )  # fmt: skip
    tenants = sa.table("tenants", sa.column("plan_id", sa.Uuid()), sa.column("kind", sa.String()))
    conn.execute(sa.update(tenants).where(tenants.c.kind != "platform").values(plan_id=founding))
    local = now.astimezone(EAT)
    month_start = datetime(local.year, local.month, 1, tzinfo=EAT).astimezone(UTC)
    payments = sa.table(
        "payments",
        sa.column("tenant_id", sa.Uuid()),
        sa.column("mode", sa.String()),
        sa.column("source", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    usage = sa.table(
        "plan_usage", sa.column("tenant_id", sa.Uuid()), sa.column("month", sa.String()),
        sa.column("live_pushes", sa.Integer()),
    )  # fmt: skip
    this_month = (
        sa.select(payments.c.tenant_id, sa.literal(local.strftime("%Y-%m")), sa.func.count())
        .where(
            payments.c.mode == "live", payments.c.source != "onboarding", payments.c.created_at >= month_start
        )
        .group_by(payments.c.tenant_id)
    )
    conn.execute(sa.insert(usage).from_select(["tenant_id", "month", "live_pushes"], this_month))


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_tenants_plan_id_plans"), type_="foreignkey")
        batch_op.drop_column("plan_reminded")
        batch_op.drop_column("plan_payment_id")
        batch_op.drop_column("plan_paid_until")
        batch_op.drop_column("plan_id")
    op.drop_table("plan_usage")
    op.drop_index("uq_plans_default", table_name="plans")
    op.drop_table("plans")
