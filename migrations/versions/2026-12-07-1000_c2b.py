"""C2B: (filled in by the C2B work)

Revision ID: f4b0d2e6a813
Revises: e3a9c1d5f702
Create Date: 2026-12-07 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "f4b0d2e6a813"
down_revision: str | None = "e3a9c1d5f702"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
