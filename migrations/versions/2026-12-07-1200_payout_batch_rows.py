"""Payout batches keep their preview's payable rows (approval turns them into payouts) and whether the
flagged duplicates were included

Revision ID: b2d8f0a4c635
Revises: a1c7e9b3d524
Create Date: 2026-12-07 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b2d8f0a4c635"
down_revision: str | None = "a1c7e9b3d524"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("payout_batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rows", sa.JSON(), server_default="[]", nullable=False))
        batch_op.add_column(
            sa.Column("include_duplicates", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("payout_batches", schema=None) as batch_op:
        batch_op.drop_column("include_duplicates")
        batch_op.drop_column("rows")
