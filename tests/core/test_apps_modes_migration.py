"""The apps/modes/webhooks migration on a database with businesses in it (both backends): every business
with a channel or a key gets a Default app holding its keys, each key takes its channel's mode so it
keeps working, payments on simulator/sandbox channels become test payments, a test push still pending
gives its wallet hold back, and the downgrade returns to the old schema."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import Column, insert, select, table

from core.apps.models import App
from core.auth.models import ApiKey
from core.ledger.models import Account
from core.migrate import alembic_config
from core.payments.models import Payment
from tests.support.migrations import NOW, channel, old, run, scratch_database, tenant

BEFORE = "5e8a4c1f2b7d"  # API key scopes, the revision before apps


@pytest.fixture
def database_url() -> Iterator[str]:
    yield from scratch_database("apps")


def key(url: str, tenant_id: uuid.UUID, mode: str) -> uuid.UUID:
    kid = uuid.uuid4()
    k = old(ApiKey, "id", "tenant_id", "name", "mode", "prefix", "key_hash", "created_at", "scopes")
    run(url, insert(k).values(
        id=kid, tenant_id=tenant_id, name="shop", mode=mode, prefix=f"lp_{mode}_abcd",
        key_hash=secrets.token_hex(32), created_at=NOW, scopes=["payments:write"],
    ))  # fmt: skip
    return kid


def payment(url: str, tenant_id: uuid.UUID, channel_id: uuid.UUID, status: str, reserved: int) -> uuid.UUID:
    pid = uuid.uuid4()
    p = old(
        Payment, "id", "tenant_id", "channel_id", "source", "status", "amount", "phone", "account_reference",
        "description", "idempotency_key", "commission_cents", "reserved_cents", "query_attempts",
        "created_at", "updated_at",
    )  # fmt: skip
    run(url, insert(p).values(
        id=pid, tenant_id=tenant_id, channel_id=channel_id, source="api", status=status, amount=500,
        phone="254722000111", account_reference="REF", description="Payment",
        idempotency_key=f"order-{status}",
        commission_cents=500, reserved_cents=reserved, query_attempts=0, created_at=NOW, updated_at=NOW,
    ))  # fmt: skip
    return pid


def test_existing_businesses_keep_working(database_url: str) -> None:
    url = database_url
    cfg = alembic_config(url)
    command.upgrade(cfg, BEFORE)
    sandbox = tenant(url, "Sandbox")
    sandbox_channel = channel(url, sandbox, "sandbox")
    sandbox_key = key(url, sandbox, "live")
    pending = payment(url, sandbox, sandbox_channel, "pending", 500)
    paid = payment(url, sandbox, sandbox_channel, "success", 0)
    accounts = old(Account, "tenant_id", "kind", "balance_cents", "reserved_cents", "created_at")
    run(url, insert(accounts).values(
        tenant_id=sandbox, kind="wallet", balance_cents=10_000, reserved_cents=500, created_at=NOW
    ))  # fmt: skip
    live = tenant(url, "Live")
    live_channel = channel(url, live, "production")
    live_key = key(url, live, "test")
    live_payment = payment(url, live, live_channel, "pending", 500)
    keyed = tenant(url, "Keyed")
    keyed_key = key(url, keyed, "live")
    tenant(url, "Empty")

    command.upgrade(cfg, "head")

    apps = {r.tenant_id: r for r in run(url, select(App.__table__))}
    assert set(apps) == {sandbox, live, keyed}
    assert {a.name for a in apps.values()} == {"Default app"}
    assert (apps[sandbox].channel_id, apps[live].channel_id, apps[keyed].channel_id) == (
        sandbox_channel,
        live_channel,
        None,
    )
    k = ApiKey.__table__.c
    keys = {r.id: (r.app_id, r.mode) for r in run(url, select(k.id, k.app_id, k.mode))}
    assert keys == {
        sandbox_key: (apps[sandbox].id, "test"),
        live_key: (apps[live].id, "live"),
        keyed_key: (apps[keyed].id, "live"),
    }
    p = Payment.__table__.c
    rows = {
        r.id: (r.mode, r.reserved_cents, r.commission_cents)
        for r in run(url, select(p.id, p.mode, p.reserved_cents, p.commission_cents))
    }
    assert rows == {
        pending: ("test", 0, 0),
        paid: ("test", 0, 500),
        live_payment: ("live", 500, 500),
    }
    a = Account.__table__.c
    [(balance, reserved)] = run(url, select(a.balance_cents, a.reserved_cents).where(a.tenant_id == sandbox))
    assert (balance, reserved) == (10_000, 0)

    command.downgrade(cfg, BEFORE)
    back = run(url, select(Column("id"), Column("mode")).select_from(table("api_keys")))
    assert {uuid.UUID(str(r.id)) for r in back} == {sandbox_key, live_key, keyed_key}
