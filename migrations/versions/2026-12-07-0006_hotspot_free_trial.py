"""hotspot providers' free trial

Revision ID: 3b7d2e91c4a5
Revises: ca71b9c87f48
Create Date: 2026-12-07 00:06:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "3b7d2e91c4a5"
down_revision: str | None = "ca71b9c87f48"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The default HOTSPOT_TRIAL_DAYS. Fixed here, so the migration does the same everywhere it runs.
TRIAL_DAYS = 14


def upgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trial_until", sa.DateTime(timezone=True), nullable=True))

    # Hotspot providers that never paid a subscription were billed commission in `hybrid` mode (a paid
    # order switches a provider to `subscription`). They move to `subscription` with a free trial that
    # starts now: no more commission from today, the usual reminder before the trial ends, and a pause
    # only if they have not subscribed by then, never on the day of the upgrade. A provider an operator
    # put on `wallet` or `invoice` by hand keeps what was chosen for it.
    conn = op.get_bind()
    end = datetime.now(UTC) + timedelta(days=TRIAL_DAYS)
    if conn.dialect.name == "sqlite":
        end = end.replace(tzinfo=None)  # UTC, naive: how core.db.UTCDateTime stores it on SQLite
    tenants = sa.table(
        "tenants",
        sa.column("kind", sa.String()),
        sa.column("billing_mode", sa.String()),
        sa.column("subscription_until", sa.DateTime(timezone=True)),
        sa.column("subscription_reminded", sa.String()),
        sa.column("trial_until", sa.DateTime(timezone=True)),
    )
    conn.execute(
        sa.update(tenants)
        .where(tenants.c.kind == "hotspot", tenants.c.billing_mode == "hybrid")
        .values(
            billing_mode="subscription",
            trial_until=end,
            subscription_until=end,
            subscription_reminded=None,
        )
    )


def downgrade() -> None:
    # Providers still on nothing but their trial go back to commission (`hybrid`), as before it.
    tenants = sa.table(
        "tenants",
        sa.column("kind", sa.String()),
        sa.column("billing_mode", sa.String()),
        sa.column("subscription_until", sa.DateTime(timezone=True)),
        sa.column("trial_until", sa.DateTime(timezone=True)),
    )
    op.get_bind().execute(
        sa.update(tenants)
        .where(
            tenants.c.kind == "hotspot",
            tenants.c.trial_until.is_not(None),
            tenants.c.subscription_until <= tenants.c.trial_until,
        )
        .values(billing_mode="hybrid", subscription_until=None)
    )
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("trial_until")
