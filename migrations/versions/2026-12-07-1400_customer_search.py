"""customer-book search: trigram indexes on name and phone, one book each (Postgres)

`customers.search` (core/customers/service.py) matches `name ILIKE '%wanj%'` and, for digits,
`phone LIKE '%72212%'`. Before this, both were a scan of the business's whole book: 200-400 ms at
1 000 000 customers. Now they are GIN indexes of trigrams (pg_trgm) led by tenant_id (btree_gin), one
per mode (partial), so a search reads one book's matching entries only, whichever business asks.
Mode is the partial index's predicate rather than a key column: as a key, its posting lists (every
row of the book) were decoded on each search: +4-7 ms a search at a million customers.

Three things, Postgres only (SQLite keeps its scan: the embedded database is one small business):

1. The extensions pg_trgm and btree_gin. Both are "trusted" since Postgres 13: the schema's owner
   (MIGRATION_DATABASE_URL) creates them if it may create objects in the database (the owner of the
   database may). Otherwise a superuser creates them once and `lipapush db upgrade` goes on.
2. The indexes `ix_customers_search_live` and `_test`, as core/customers/models.py declares them,
   and a finer statistics target for name and phone (1000: ANALYZE keeps 1000 of each instead of 100),
   so the planner can tell a fragment in 1 % of the book from one in 0.01 % (a common one is best
   paged in the sort's own order, a rare one from the index).
3. LIKE and ILIKE (`textlike`, `texticlike`) marked LEAKPROOF. Row-level security (revision
   7c1e5a0d9b42) evaluates the policy before any condition that is not leakproof, so without this
   the application's role could never use the index: the planner may not use `name ILIKE …` as an
   index condition ahead of the policy, and scans the book. LEAKPROOF only promises that the
   function reveals nothing about its arguments through errors; these two raise only on a malformed
   pattern (ours are escaped, core/customers/service.py). Our row-level security stops bugs (a
   query that forgets its tenant), not a hostile session, which could set `app.scope` itself: the
   mark costs it nothing. Marking a built-in function takes a superuser. Without one the migration
   warns and search stays correct, at the old speed, until a superuser runs the two statements in
   LEAKPROOF_SQL. A restore from pg_dump or a pg_upgrade starts with fresh built-ins: run them again.

Revision ID: d4f0b2c6e857
Revises: c3e9a1b5d746
Create Date: 2026-12-07 14:00:00
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "d4f0b2c6e857"
down_revision: str | None = "c3e9a1b5d746"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("lipapush.migrations")

EXTENSIONS = ("pg_trgm", "btree_gin")
MODES = ("live", "test")
INDEXES = tuple(
    f"CREATE INDEX IF NOT EXISTS ix_customers_search_{mode} ON customers "
    f"USING gin (tenant_id, name gin_trgm_ops, phone gin_trgm_ops) WHERE mode = '{mode}'"
    for mode in MODES
)
STATISTICS = (
    "ALTER TABLE customers ALTER COLUMN name SET STATISTICS {target}, "
    "ALTER COLUMN phone SET STATISTICS {target}"
)
LIKE_FUNCTIONS = ("pg_catalog.textlike(text, text)", "pg_catalog.texticlike(text, text)")
LEAKPROOF_SQL = tuple(f"ALTER FUNCTION {f} LEAKPROOF" for f in LIKE_FUNCTIONS)


def _extensions() -> None:
    bind = op.get_bind()
    missing = [
        name
        for name in EXTENSIONS
        if not bind.scalar(text("SELECT 1 FROM pg_extension WHERE extname = :n"), {"n": name})
    ]
    if not missing:
        return
    unavailable = [
        name
        for name in missing
        if not bind.scalar(text("SELECT 1 FROM pg_available_extensions WHERE name = :n"), {"n": name})
    ]
    if unavailable:
        raise RuntimeError(
            f"The Postgres server has no {' or '.join(unavailable)} extension, which the customer search "
            "indexes need: install the server's contrib package (Debian/Ubuntu: postgresql-contrib; the "
            "official Docker images have it), then run `lipapush db upgrade` again."
        )
    may_create = bind.scalar(
        text(
            "SELECT rolsuper OR has_database_privilege(current_database(), 'CREATE') "
            "FROM pg_roles WHERE rolname = current_user"
        )
    )
    if not may_create:
        creates = " ".join(f"CREATE EXTENSION IF NOT EXISTS {name};" for name in missing)
        raise RuntimeError(
            f"The role running the migrations may not create the extensions {', '.join(missing)} in "
            f"this database (the customer search indexes need them): run `{creates}` once as a "
            "superuser or the database's owner, then `lipapush db upgrade` again."
        )
    for name in missing:
        op.execute(f"CREATE EXTENSION IF NOT EXISTS {name}")


def _is_superuser() -> bool:
    return bool(op.get_bind().scalar(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")))


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _extensions()
    for statement in INDEXES:
        op.execute(statement)
    op.execute(STATISTICS.format(target=1000))
    if _is_superuser():
        for statement in LEAKPROOF_SQL:
            op.execute(statement)
    else:
        log.warning(
            "The customer search indexes are built, but row-level security keeps the application from "
            "using them until a superuser runs, in this database: %s. Search works meanwhile, by a scan "
            "of the business's customer book.",
            "; ".join(LEAKPROOF_SQL),
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for mode in MODES:
        op.execute(f"DROP INDEX IF EXISTS ix_customers_search_{mode}")
    op.execute(STATISTICS.format(target=-1))  # the server's default_statistics_target again
    if _is_superuser():
        for function in LIKE_FUNCTIONS:
            op.execute(f"ALTER FUNCTION {function} NOT LEAKPROOF")
    # The extensions stay: another schema object or a DBA may use them, and they cost nothing unused.
