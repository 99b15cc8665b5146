"""The scheduler's periodic runs: when each periodic job was last enqueued, kept across restarts

A periodic job's period now survives a scheduler's restart and a failover to another scheduler
(core/jobs/scheduler.py).

Revision ID: e5a1c3d7f968
Revises: d4f0b2c6e857
Create Date: 2026-12-07 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e5a1c3d7f968"
down_revision: str | None = "d4f0b2c6e857"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Platform bookkeeping (no tenant_id): no row-level security policy, like job_outbox. Leadership
    # itself needs no table: on Postgres it is a session advisory lock, on SQLite there is one machine.
    op.create_table(
        "periodic_runs",
        sa.Column("job", sa.String(length=100), nullable=False),
        sa.Column("last_enqueued_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job", name=op.f("pk_periodic_runs")),
    )


def downgrade() -> None:
    op.drop_table("periodic_runs")
