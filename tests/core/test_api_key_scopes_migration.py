"""The API key scopes migration on a database of its own: keys made before scopes existed get every
scope (they had the owner's rights, so no integration stops working) and keep authenticating; the
downgrade drops the new columns and leaves the keys."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from sqlalchemy import column, insert, select, table
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from core.access.permissions import API_KEY_PERMISSIONS, ApiScope, Permission, scope_permissions
from core.auth.models import ApiKey, ApiKeyMode
from core.auth.tokens import new_api_key
from core.migrate import alembic_config
from core.tenants.models import Tenant, TenantKind
from tests.support import services

# Every scope there was when this revision ran: keys made before it got them all.
BEFORE_MONEY_OUT = {s.value for s in ApiScope} - {"payouts:read", "payouts:write"}

BEFORE = "7c1e5a0d9b42"  # row-level security, the revision before scopes
SCOPES = "5e8a4c1f2b7d"


@pytest.fixture
def database_url() -> Any:
    try:
        db = services.create_database("scopes")
    except OSError as exc:
        if services.REQUIRE:
            raise
        pytest.skip(f"TEST_DATABASE_URL is set but Postgres is unreachable: {exc}")
    yield db.migration_url
    services.drop_database(db)


async def _run(url: str, statement: Any) -> list[Any]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # the test reads every business's rows, as a platform-scope transaction may
                await conn.exec_driver_sql("SELECT set_config('app.scope', 'platform', true)")
            result = await conn.execute(statement)
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


def run(url: str, statement: Any) -> list[Any]:
    return asyncio.run(_run(url, statement))


def test_existing_keys_get_every_scope_and_lose_nothing_on_the_way_back(database_url: str) -> None:
    cfg = alembic_config(database_url)
    command.upgrade(cfg, BEFORE)
    n = uuid.uuid4().hex[:8]
    tenant_id = uuid.uuid4()
    run(
        database_url,
        insert(Tenant.__table__).values(
            id=tenant_id,
            kind=TenantKind.business,
            name=f"T {n}",
            slug=f"t-{n}",
            email=f"{n}@example.com",
            phone="254712345678",
        ),
    )
    keys = ApiKey.__table__.c
    _key, prefix, digest = new_api_key(ApiKeyMode.live)
    key_id = uuid.uuid4()
    # the columns that exist before scopes (the model's table would fill in the new ones)
    old_columns = ("id", "tenant_id", "name", "mode", "prefix", "key_hash", "created_at")
    before = table("api_keys", *(column(c, keys[c].type) for c in old_columns))
    run(
        database_url,
        insert(before).values(
            id=key_id,
            tenant_id=tenant_id,
            name="shop",
            mode=ApiKeyMode.live,
            prefix=prefix,
            key_hash=digest,
            created_at=datetime.now(UTC),
        ),
    )

    command.upgrade(cfg, SCOPES)
    [row] = run(
        database_url, select(keys.id, keys.scopes, keys.expires_at, keys.rolled_to_id, keys.last_used_network)
    )
    assert (row.id, set(row.scopes), row.expires_at, row.rolled_to_id, row.last_used_network) == (
        key_id,
        BEFORE_MONEY_OUT,
        None,
        None,
        None,
    )
    # the rights they had: the owner's, without a person's own account (money out came later, and an
    # existing key never gains it: the owner grants payouts:write to a key on purpose)
    assert scope_permissions(ApiScope(s) for s in row.scopes) == API_KEY_PERMISSIONS - {
        Permission.payouts_request,
        Permission.payouts_read,
        Permission.balance_read,
        Permission.reversals_request,
    }

    command.downgrade(cfg, BEFORE)
    back = run(database_url, select(keys.id, keys.key_hash, keys.name))
    assert [(r.id, r.key_hash, r.name) for r in back] == [(key_id, digest, "shop")]
