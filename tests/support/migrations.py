"""Helpers for migration tests: a scratch database of their own, statements run as the owner in
platform scope, and rows written through only the columns an older revision has."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import column, insert, table
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from core.tenants.models import MpesaChannel, Tenant
from tests.support import services

NOW = datetime.now(UTC)


def scratch_database(tag: str) -> Iterator[str]:
    """For a fixture: the owner's URL of a new empty database (dropped afterwards); skips when
    TEST_DATABASE_URL names a Postgres that is not there (unless CI requires it)."""
    try:
        db = services.create_database(tag)
    except OSError as exc:
        if services.REQUIRE:
            raise
        pytest.skip(f"TEST_DATABASE_URL is set but Postgres is unreachable: {exc}")
    yield db.migration_url
    services.drop_database(db)


async def _run(url: str, *statements: Any) -> list[Any]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.exec_driver_sql("SELECT set_config('app.scope', 'platform', true)")
            result = None
            for statement in statements:
                result = await conn.execute(statement)
            return list(result.all()) if result is not None and result.returns_rows else []
    finally:
        await engine.dispose()


def run(url: str, *statements: Any) -> list[Any]:
    return asyncio.run(_run(url, *statements))


def old(model: Any, *names: str) -> Any:
    """The model's table with only the columns that exist before this revision."""
    cols = model.__table__.c
    return table(model.__tablename__, *(column(n, cols[n].type) for n in names))


def tenant(url: str, name: str) -> uuid.UUID:
    tid = uuid.uuid4()
    n = secrets.token_hex(4)
    t = old(
        Tenant, "id", "kind", "name", "slug", "email", "phone", "status", "billing_mode", "invoice_period",
        "low_balance_alerted", "notify_owner_on_payments", "sms_receipts", "voucher_length", "created_at",
    )  # fmt: skip
    run(url, insert(t).values(
        id=tid, kind="business", name=name, slug=f"{name.lower()}-{n}", email=f"{n}@example.com",
        phone="254712345678", status="active", billing_mode="wallet", invoice_period="monthly",
        low_balance_alerted=False, notify_owner_on_payments=True, sms_receipts=False, voucher_length=8,
        created_at=NOW,
    ))  # fmt: skip
    return tid


def channel(url: str, tenant_id: uuid.UUID, environment: str) -> uuid.UUID:
    cid = uuid.uuid4()
    c = old(
        MpesaChannel, "id", "tenant_id", "environment", "kind", "business_short_code", "consumer_key_enc",
        "consumer_secret_enc", "passkey_enc", "callback_token", "verified_at", "created_at", "updated_at",
    )  # fmt: skip
    run(url, insert(c).values(
        id=cid, tenant_id=tenant_id, environment=environment, kind="paybill", business_short_code="174379",
        consumer_key_enc="x", consumer_secret_enc="x", passkey_enc="x", callback_token=secrets.token_hex(16),
        verified_at=NOW, created_at=NOW, updated_at=NOW,
    ))  # fmt: skip
    return cid
