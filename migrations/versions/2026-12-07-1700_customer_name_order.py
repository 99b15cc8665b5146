"""the customer book's name order carries the id: a name-sorted page is walked from the index alone

ix_customers_tenant_mode_name (tenant_id, mode, name) becomes ix_customers_tenant_mode_name_id
(tenant_id, mode, name, id) INCLUDE (phone) on Postgres: the book's name order is `name, id`, and
with `id` and `phone` in the index a search by name or phone looks for its page among the first
names of the book (either way round) by an index-only scan, no row read until the page's 50 are
known. At a million customers, walking 5 000 names took 35 ms when each meant a table row and 3.5 ms
from the index alone. The price is size: 125 MB for 1.45 million customers against 49 MB (the old
index deduplicated equal names; unique keys cannot be). A plain list sorted by name no longer sorts
each run of equal names by id either.

The new index is built before the old one is dropped, so name order never lacks an index.

Revision ID: a7c9e1f3b5d2
Revises: f6b2d4e8a135
Create Date: 2026-12-07 20:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "a7c9e1f3b5d2"
down_revision: str | None = "f6b2d4e8a135"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_customers_tenant_mode_name_id",
        "customers",
        ["tenant_id", "mode", "name", "id"],
        postgresql_include=["phone"],
    )
    op.drop_index("ix_customers_tenant_mode_name", table_name="customers")


def downgrade() -> None:
    op.create_index("ix_customers_tenant_mode_name", "customers", ["tenant_id", "mode", "name"])
    op.drop_index("ix_customers_tenant_mode_name_id", table_name="customers")
