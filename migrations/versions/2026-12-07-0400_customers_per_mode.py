"""One customer book per mode

`customers.mode` (test or live) and UNIQUE (tenant_id, mode, phone): a business keeps a test book
(pushes on a simulator or sandbox channel) and a live book (production), and a test payment never
counts in the live book. The indexes that serve the book's sorts get `mode` after `tenant_id`.

Existing rows are **rebuilt per mode from the payments** (the source of truth since
2026-12-07-0300 gave every payment its mode), so a business that tried the simulator and went live
finds its simulator customers in its test book and an exact live book: for each (business, mode,
phone) of customer-source payments (api, telegram, ussd, portal: core.payments.models.CUSTOMER_SOURCES)
requested count and total = all of them, paid count and total = the successful ones, first/last seen =
the earliest/latest created_at, last paid = the latest completion of a success, name = the latest
non-empty customer_name. A row no payment backs (none should exist) is kept as it was, in its
business's channel's mode (production: live; otherwise, or with no channel: test).

The downgrade merges each phone's two rows back into one (sums, earliest first seen, latest last
seen and last paid, the live name first), as the book was before.

Revision ID: 3c7e1a9d5b42
Revises: 9d3f6b2a8c15
Create Date: 2026-12-07 04:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3c7e1a9d5b42"
down_revision: str | None = "9d3f6b2a8c15"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# core.payments.models.CUSTOMER_SOURCES, copied so this file stands alone.
CUSTOMER_SOURCES = ("api", "telegram", "ussd", "portal")
SORTS = (("paid_total", "paid_total"), ("last_seen", "last_seen_at"), ("name", "name"))

customers = sa.table(
    "customers",
    sa.column("tenant_id", sa.Uuid()),
    sa.column("mode", sa.String()),
    sa.column("phone", sa.String()),
    sa.column("name", sa.String()),
    sa.column("requested_count", sa.Integer()),
    sa.column("requested_total", sa.BigInteger()),
    sa.column("paid_count", sa.Integer()),
    sa.column("paid_total", sa.BigInteger()),
    sa.column("first_seen_at", sa.DateTime(timezone=True)),
    sa.column("last_seen_at", sa.DateTime(timezone=True)),
    sa.column("last_paid_at", sa.DateTime(timezone=True)),
)
payments = sa.table(
    "payments",
    sa.column("id", sa.Uuid()),
    sa.column("tenant_id", sa.Uuid()),
    sa.column("mode", sa.String()),
    sa.column("phone", sa.String()),
    sa.column("customer_name", sa.String()),
    sa.column("source", sa.String()),
    sa.column("status", sa.String()),
    sa.column("amount", sa.Integer()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("completed_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
channels = sa.table(
    "mpesa_channels", sa.column("tenant_id", sa.Uuid()), sa.column("environment", sa.String())
)


def mode_type() -> sa.Enum:
    # A new type per column: one Enum shared by several columns ties its CHECK to the wrong table in
    # SQLite's batch copies.
    return sa.Enum("test", "live", name="mode", native_enum=False, create_constraint=True, length=32)


def _platform_scope() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT set_config('app.scope', 'platform', true)"))


def _mark_by_channel() -> None:
    """Every row first takes its business's channel's mode: what stays of it after the rebuild is a
    row no payment backs."""
    _platform_scope()
    c = customers
    on_production = sa.exists().where(
        channels.c.tenant_id == c.c.tenant_id, channels.c.environment == "production"
    )
    op.get_bind().execute(sa.update(c).values(mode=sa.case((on_production, "live"), else_="test")))


def _rebuild_from_payments() -> None:
    _platform_scope()
    conn = op.get_bind()
    c, p = customers, payments
    backed = sa.exists().where(
        p.c.tenant_id == c.c.tenant_id, p.c.phone == c.c.phone, p.c.source.in_(CUSTOMER_SOURCES)
    )
    conn.execute(sa.delete(c).where(backed))
    n = p.alias("n")
    latest_name = (
        sa.select(n.c.customer_name)
        .where(
            n.c.tenant_id == p.c.tenant_id,
            n.c.mode == p.c.mode,
            n.c.phone == p.c.phone,
            n.c.source.in_(CUSTOMER_SOURCES),
            n.c.customer_name.is_not(None),
            n.c.customer_name != "",
        )
        .order_by(n.c.created_at.desc(), n.c.id.desc())
        .limit(1)
        .correlate(p)
        .scalar_subquery()
    )
    success = p.c.status == "success"
    book = (
        sa.select(
            p.c.tenant_id,
            p.c.mode,
            p.c.phone,
            latest_name,
            sa.func.count(),
            sa.func.sum(p.c.amount),
            sa.func.sum(sa.case((success, 1), else_=0)),
            sa.func.sum(sa.case((success, p.c.amount), else_=0)),
            sa.func.min(p.c.created_at),
            sa.func.max(p.c.created_at),
            sa.func.max(sa.case((success, sa.func.coalesce(p.c.completed_at, p.c.updated_at)))),
        )
        .where(p.c.source.in_(CUSTOMER_SOURCES))
        .group_by(p.c.tenant_id, p.c.mode, p.c.phone)
    )
    columns = [
        "tenant_id", "mode", "phone", "name", "requested_count", "requested_total", "paid_count",
        "paid_total", "first_seen_at", "last_seen_at", "last_paid_at",
    ]  # fmt: skip
    conn.execute(sa.insert(c).from_select(columns, book))


def _merge_books() -> None:
    """Each phone's test row into its live row, where it has both; the test row then goes."""
    _platform_scope()
    conn = op.get_bind()
    c = customers
    t = c.alias("t")
    same = (t.c.tenant_id == c.c.tenant_id, t.c.phone == c.c.phone, t.c.mode == "test")

    def test_row(value: sa.ColumnElement[object]) -> sa.ScalarSelect[object]:
        return sa.select(value).where(*same).correlate(c).scalar_subquery()

    def earlier(a: sa.ColumnElement[object], b: sa.ColumnElement[object]) -> sa.ColumnElement[object]:
        return sa.case((sa.or_(b.is_(None), a < b), a), else_=b)

    def later(a: sa.ColumnElement[object], b: sa.ColumnElement[object]) -> sa.ColumnElement[object]:
        return sa.case((sa.or_(b.is_(None), a > b), a), else_=b)

    conn.execute(
        sa.update(c)
        .where(c.c.mode == "live", sa.exists().where(*same))
        .values(
            requested_count=c.c.requested_count + test_row(t.c.requested_count),
            requested_total=c.c.requested_total + test_row(t.c.requested_total),
            paid_count=c.c.paid_count + test_row(t.c.paid_count),
            paid_total=c.c.paid_total + test_row(t.c.paid_total),
            first_seen_at=test_row(earlier(t.c.first_seen_at, c.c.first_seen_at)),
            last_seen_at=test_row(later(t.c.last_seen_at, c.c.last_seen_at)),
            last_paid_at=test_row(later(t.c.last_paid_at, c.c.last_paid_at)),
            name=sa.func.coalesce(c.c.name, test_row(t.c.name)),
        )
    )
    live = c.alias("l")
    conn.execute(
        sa.delete(c).where(
            c.c.mode == "test",
            sa.exists().where(
                live.c.tenant_id == c.c.tenant_id, live.c.phone == c.c.phone, live.c.mode == "live"
            ),
        )
    )


def upgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mode", mode_type(), nullable=True))

    _mark_by_channel()

    # A batch of its own: SQLite copies the table to change it, and `mode` must exist by then. The
    # rebuilt rows need the new unique constraint: a phone may now have a row in each mode.
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.alter_column("mode", existing_type=sa.String(length=32), nullable=False)
        batch_op.drop_constraint("uq_customers_tenant_id_phone", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_customers_tenant_id_mode_phone"), ["tenant_id", "mode", "phone"]
        )
        for short, col in SORTS:
            batch_op.drop_index(f"ix_customers_tenant_{short}")
            batch_op.create_index(
                f"ix_customers_tenant_mode_{short}", ["tenant_id", "mode", col], unique=False
            )

    _rebuild_from_payments()


def downgrade() -> None:
    _merge_books()
    with op.batch_alter_table("customers", schema=None) as batch_op:
        for short, col in SORTS:
            batch_op.drop_index(f"ix_customers_tenant_mode_{short}")
            batch_op.create_index(f"ix_customers_tenant_{short}", ["tenant_id", col], unique=False)
        batch_op.drop_constraint(batch_op.f("uq_customers_tenant_id_mode_phone"), type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_customers_tenant_id_phone"), ["tenant_id", "phone"])
    with op.batch_alter_table("customers", schema=None) as batch_op:
        # SQLite's copy would keep the CHECK on a column it no longer has
        batch_op.drop_constraint(batch_op.f("ck_customers_mode"), type_="check")
        batch_op.drop_column("mode")
