"""The API usage migration on a database with keys in it (both backends): each key's last network of
use becomes its first known network (an IPv4 /24, an IPv6 /64), so its usual system is not news after
the upgrade; keys never used start with none; the downgrade drops both tables and the upgrade runs
again."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import insert, inspect, select, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from core.auth.models import ApiKey
from core.migrate import alembic_config
from core.usage.models import ApiKeyNetwork
from tests.support.migrations import NOW, old, run, scratch_database, tenant

BEFORE = "7b2d5e8f1a04"  # several channels
THIS = "a4d9c2e7f150"


@pytest.fixture
def database_url() -> Iterator[str]:
    yield from scratch_database("usage")


def key(url: str, tenant_id: uuid.UUID, last_used_network: str | None) -> uuid.UUID:
    kid = uuid.uuid4()
    k = old(
        ApiKey, "id", "tenant_id", "name", "mode", "prefix", "key_hash", "scopes", "created_at",
        "last_used_at", "last_used_network",
    )  # fmt: skip
    run(url, insert(k).values(
        id=kid, tenant_id=tenant_id, name="k", mode="live", prefix="lp_live_abcd",
        key_hash=secrets.token_hex(32), scopes=[], created_at=NOW,
        last_used_at=NOW if last_used_network else None, last_used_network=last_used_network,
    ))  # fmt: skip
    return kid


def tables(url: str) -> set[str]:
    async def names() -> set[str]:
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        finally:
            await engine.dispose()

    return asyncio.run(names())


def test_last_networks_are_seeded_and_the_downgrade_drops_the_tables(database_url: str) -> None:
    cfg = alembic_config(database_url)
    command.upgrade(cfg, BEFORE)
    shop = tenant(database_url, "Shop")
    v4 = key(database_url, shop, "41.90.12.7")
    v6 = key(database_url, shop, "2001:db8:1:2:3:4:5:6")
    mapped = key(database_url, shop, "::ffff:10.1.2.3")
    key(database_url, shop, None)  # never used
    key(database_url, shop, "not an address")  # kept as it was written; not a network

    command.upgrade(cfg, THIS)
    n = old(ApiKeyNetwork, "api_key_id", "network", "tenant_id", "first_seen_at")
    rows = run(database_url, select(n.c.api_key_id, n.c.network, n.c.tenant_id))
    assert sorted((r[0], r[1], r[2]) for r in rows) == sorted(
        [(v4, "41.90.12.0/24", shop), (v6, "2001:db8:1:2::/64", shop), (mapped, "10.1.2.0/24", shop)]
    )
    assert {"api_requests", "api_key_networks"} <= tables(database_url)
    if database_url.startswith("postgresql"):
        forced = run(
            database_url,
            text(
                "SELECT relname FROM pg_class WHERE relforcerowsecurity "
                "AND relname IN ('api_requests', 'api_key_networks')"
            ),
        )
        assert sorted(r[0] for r in forced) == ["api_key_networks", "api_requests"]

    command.downgrade(cfg, BEFORE)
    assert not {"api_requests", "api_key_networks"} & tables(database_url)
    command.upgrade(cfg, THIS)
    assert len(run(database_url, select(n.c.network))) == 3
