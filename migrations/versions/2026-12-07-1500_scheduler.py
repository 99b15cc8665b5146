"""The scheduler's leader lease and periodic runs: placeholder (filled in by the scale-out work)

Revision ID: e5a1c3d7f968
Revises: d4f0b2c6e857
Create Date: 2026-12-07 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "e5a1c3d7f968"
down_revision: str | None = "d4f0b2c6e857"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
