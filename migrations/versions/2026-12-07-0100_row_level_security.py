"""row-level security on every tenant-owned table (Postgres)

The second wall behind the service layer's `tenant_id` filters: a transaction sees and writes only
the rows of the tenant its scope names (`app.tenant_id`), or every row in platform scope
(`app.scope = 'platform'`); with neither set it sees none (core/db.py, `Scope`). FORCE makes the
policies bind the tables' owner too; only superusers and BYPASSRLS roles pass them, which is why
the application connects as its own role (core/migrate.py creates it and grants it the tables).

A new table with a `tenant_id` column gets the same policy in its own migration
(`enable_tenant_rls` below is the text to copy); tests/core/test_row_level_security.py fails until
it does. SQLite has no row-level security: nothing to do there.

Revision ID: 7c1e5a0d9b42
Revises: 3b7d2e91c4a5
Create Date: 2026-12-07 01:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "7c1e5a0d9b42"
down_revision: str | None = "3b7d2e91c4a5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every table with a tenant_id column at this revision (tenant_id is a uuid in all of them).
TENANT_TABLES = (
    "api_keys",
    "audit_log",
    "customers",
    "hotspot_plans",
    "invoices",
    "ledger_accounts",
    "ledger_transfers",
    "mpesa_channels",
    "notifications",
    "one_time_codes",
    "payments",
    "routers",
    "subscription_orders",
    "users",
    "voucher_orders",
    "vouchers",
)

POLICY = "tenant_isolation"
# current_setting(..., true) is NULL when unset; '' (set, then reset at transaction end) is also unset.
RULE = (
    "current_setting('app.scope', true) = 'platform' "
    "OR tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid"
)


def enable_tenant_rls(table: str) -> None:
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY {POLICY} ON {table} USING ({RULE}) WITH CHECK ({RULE})")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TENANT_TABLES:
        enable_tenant_rls(table)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TENANT_TABLES:
        op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
