"""Payouts: (filled in by the payouts work)

Revision ID: e3a9c1d5f702
Revises: d1e5a7c90b31
Create Date: 2026-12-07 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "e3a9c1d5f702"
down_revision: str | None = "d1e5a7c90b31"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
