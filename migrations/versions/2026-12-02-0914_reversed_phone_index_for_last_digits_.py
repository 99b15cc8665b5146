"""reversed phone index for last-digits search

Revision ID: 5fc34f628867
Revises: 164007082fc5
Create Date: 2026-12-02 09:14:46.080388
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "5fc34f628867"
down_revision: str | None = "164007082fc5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Postgres only: the admin's "last digits" phone search (core/payments/search.py) is a range on
    # reverse(phone). SQLite has no reverse(); embedded deployments are small enough to scan.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE INDEX IF NOT EXISTS ix_payments_phone_reversed ON payments (reverse(phone))")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_payments_phone_reversed")
