"""Customer-book search: placeholder (filled in by the search work)

Revision ID: d4f0b2c6e857
Revises: c3e9a1b5d746
Create Date: 2026-12-07 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "d4f0b2c6e857"
down_revision: str | None = "c3e9a1b5d746"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
