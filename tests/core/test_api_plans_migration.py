"""The API-plans migration on a database with businesses in it (both backends): the Free plan is the
default, every business that exists is put on the hidden Founding plan (no monthly limit), the
platform is not, this month's live pushes (not verification pushes, not last month's) are counted
already, and the downgrade removes it all."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import insert, select

from core.billing.periods import EAT
from core.migrate import alembic_config
from core.payments.models import Payment
from core.plans.models import ApiPlan, PlanUsage
from core.plans.service import month_of
from core.tenants.models import MpesaChannel, Tenant
from tests.support.migrations import NOW, old, run, scratch_database, tenant

BEFORE = "a4d9c2e7f150"  # API usage: no plans yet


@pytest.fixture
def database_url() -> Iterator[str]:
    yield from scratch_database("plans")


def channel(url: str, tenant_id: uuid.UUID) -> uuid.UUID:
    cid = uuid.uuid4()
    c = old(
        MpesaChannel, "id", "tenant_id", "name", "is_primary", "environment", "kind", "business_short_code",
        "consumer_key_enc", "consumer_secret_enc", "passkey_enc", "callback_token", "verified_at",
        "created_at", "updated_at",
    )  # fmt: skip
    run(url, insert(c).values(
        id=cid, tenant_id=tenant_id, name="Main", is_primary=True, environment="production", kind="paybill",
        business_short_code="174379", consumer_key_enc="x", consumer_secret_enc="x", passkey_enc="x",
        callback_token=secrets.token_hex(16), verified_at=NOW, created_at=NOW, updated_at=NOW,
    ))  # fmt: skip
    return cid


def live_payment(url: str, tenant_id: uuid.UUID, channel_id: uuid.UUID, *, at: datetime, source: str) -> None:
    p = old(
        Payment, "id", "tenant_id", "channel_id", "mode", "source", "status", "amount", "phone",
        "account_reference", "description", "commission_cents", "reserved_cents", "query_attempts",
        "created_at", "updated_at",
    )  # fmt: skip
    run(url, insert(p).values(
        id=uuid.uuid4(), tenant_id=tenant_id, channel_id=channel_id, mode="live", source=source,
        status="success", amount=10, phone="254722000111", account_reference="REF", description="Payment",
        commission_cents=0, reserved_cents=0, query_attempts=0, created_at=at, updated_at=at,
    ))  # fmt: skip


def test_existing_businesses_are_founding_and_this_months_pushes_count(database_url: str) -> None:
    cfg = alembic_config(database_url)
    command.upgrade(cfg, BEFORE)
    shop = tenant(database_url, "Shop")
    quiet = tenant(database_url, "Quiet")
    main = channel(database_url, shop)
    now = datetime.now(UTC)
    month_began = now.astimezone(EAT).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    live_payment(database_url, shop, main, at=now - timedelta(minutes=5), source="api")
    live_payment(database_url, shop, main, at=now - timedelta(minutes=4), source="ussd")
    live_payment(database_url, shop, main, at=now - timedelta(minutes=3), source="onboarding")
    live_payment(database_url, shop, main, at=month_began - timedelta(minutes=1), source="api")

    command.upgrade(cfg, "head")
    p = old(ApiPlan, "id", "code", "monthly_fee_cents", "live_pushes_per_month", "is_default", "public")
    plans = {r[1]: r for r in run(database_url, select(p))}
    assert {code: tuple(r[2:]) for code, r in plans.items()} == {
        "free": (0, 100, True, True),
        "founding": (0, None, False, False),
    }
    t = old(Tenant, "id", "plan_id")
    on = dict(run(database_url, select(t.c.id, t.c.plan_id).where(t.c.id.in_([shop, quiet]))))
    assert on == {shop: plans["founding"][0], quiet: plans["founding"][0]}
    u = old(PlanUsage, "tenant_id", "month", "live_pushes")
    assert [tuple(r) for r in run(database_url, select(u))] == [(shop, month_of(now), 2)]

    command.downgrade(cfg, BEFORE)
    command.upgrade(cfg, "head")  # and back: the downgrade left nothing behind
