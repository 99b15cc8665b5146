"""The free-trial migration on a database of its own: hotspot providers billed commission (`hybrid`,
never subscribed) move to `subscription` on a 14-day trial from the upgrade; providers that subscribed,
a provider put on another mode by hand and plain businesses keep what they had; the downgrade puts
the trial-only providers back on commission."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from core.migrate import alembic_config
from core.tenants.models import BillingMode, Tenant, TenantKind
from tests.support import services

BEFORE = "ca71b9c87f48"  # the revision before the trial
TRIAL = "3b7d2e91c4a5"  # hotspot providers' free trial


@pytest.fixture
def database_url() -> Any:
    try:
        db = services.create_database("trial")
    except OSError as exc:
        if services.REQUIRE:
            raise
        pytest.skip(f"TEST_DATABASE_URL is set but Postgres is unreachable: {exc}")
    yield db.migration_url
    services.drop_database(db)


# The columns that exist before the trial migration (Core fills in the other defaults).
def tenant(kind: TenantKind, mode: BillingMode, until: datetime | None = None) -> dict[str, Any]:
    n = uuid.uuid4().hex[:8]
    return {
        "id": uuid.uuid4(),
        "kind": kind,
        "billing_mode": mode,
        "subscription_until": until,
        "name": f"T {n}",
        "slug": f"t-{n}",
        "email": f"{n}@example.com",
        "phone": "254712345678",
    }


async def _run(url: str, statement: Any) -> list[Any]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(statement)
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


def run(url: str, statement: Any) -> list[Any]:
    return asyncio.run(_run(url, statement))


def test_existing_providers_move_to_a_trial_and_back(database_url: str) -> None:
    cfg = alembic_config(database_url)
    command.upgrade(cfg, BEFORE)
    paid_until = datetime(2030, 1, 31, 12, 0, tzinfo=UTC)
    rows = {
        "commission": tenant(TenantKind.hotspot, BillingMode.hybrid),
        "subscribed": tenant(TenantKind.hotspot, BillingMode.subscription, paid_until),
        "by hand": tenant(TenantKind.hotspot, BillingMode.invoice),
        "business": tenant(TenantKind.business, BillingMode.hybrid),
    }
    columns = Tenant.__table__.c
    run(database_url, insert(Tenant.__table__).values(list(rows.values())))

    before = datetime.now(UTC)
    command.upgrade(cfg, TRIAL)
    after = datetime.now(UTC)
    got = {
        r.id: r
        for r in run(
            database_url,
            select(columns.id, columns.billing_mode, columns.subscription_until, columns.trial_until),
        )
    }
    moved = got[rows["commission"]["id"]]
    assert moved.billing_mode is BillingMode.subscription
    assert moved.trial_until == moved.subscription_until
    assert before + timedelta(days=14) <= moved.trial_until <= after + timedelta(days=14)
    kept = {k: got[r["id"]] for k, r in rows.items() if k != "commission"}
    assert {k: (r.billing_mode, r.subscription_until, r.trial_until) for k, r in kept.items()} == {
        "subscribed": (BillingMode.subscription, paid_until, None),
        "by hand": (BillingMode.invoice, None, None),
        "business": (BillingMode.hybrid, None, None),
    }

    command.downgrade(cfg, BEFORE)
    back = {
        r.id: (r.billing_mode, r.subscription_until)
        for r in run(database_url, select(columns.id, columns.billing_mode, columns.subscription_until))
    }
    assert back == {r["id"]: (r["billing_mode"], r["subscription_until"]) for r in rows.values()}
