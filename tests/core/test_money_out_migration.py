"""The money-out migration on a database with payments in it (both backends): existing channels,
payments and callbacks keep their values (every stored callback is an "stk" one), the wider CHECKs
take a B2C channel, a C2B payment and a reversed payment, and the downgrade refuses while such rows
exist (they cannot be stored below it) and goes back cleanly once they are gone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import delete, insert, select, update

from core.migrate import alembic_config
from core.payments.models import CallbackInbox, Payment
from core.tenants.models import MpesaChannel
from tests.core.test_api_plans_migration import channel, live_payment
from tests.support.migrations import NOW, old, run, scratch_database, tenant

BEFORE = "c6f1b8a3d29e"  # API plans: no money out yet


@pytest.fixture
def database_url() -> Iterator[str]:
    yield from scratch_database("money_out")


def test_existing_rows_stay_and_the_new_kinds_fit(database_url: str) -> None:
    cfg = alembic_config(database_url)
    command.upgrade(cfg, BEFORE)
    shop = tenant(database_url, "Shop")
    main = channel(database_url, shop)
    live_payment(database_url, shop, main, at=datetime.now(UTC), source="api")
    inbox = old(CallbackInbox, "channel_id", "checkout_request_id", "payload", "received_at")
    run(
        database_url,
        insert(inbox).values(channel_id=main, checkout_request_id="ws_1", payload="{}", received_at=NOW),
    )

    command.upgrade(cfg, "head")
    c = old(MpesaChannel, "id", "kind", "initiator_name", "c2b_validation")
    assert [tuple(r) for r in run(database_url, select(c))] == [(main, "paybill", None, False)]
    i = old(CallbackInbox, "kind", "checkout_request_id", "reference")
    assert [tuple(r) for r in run(database_url, select(i))] == [("stk", "ws_1", None)]

    # a B2C channel, a C2B payment and a reversal now fit
    b2c = old(
        MpesaChannel, "id", "tenant_id", "name", "is_primary", "environment", "kind", "business_short_code",
        "consumer_key_enc", "consumer_secret_enc", "passkey_enc", "callback_token", "c2b_validation",
        "created_at", "updated_at",
    )  # fmt: skip
    run(database_url, insert(b2c).values(
        id=uuid.uuid4(), tenant_id=shop, name="Payouts", is_primary=False, environment="production",
        kind="b2c", business_short_code="600000", consumer_key_enc="x", consumer_secret_enc="x",
        passkey_enc="", callback_token=uuid.uuid4().hex, c2b_validation=False, created_at=NOW, updated_at=NOW,
    ))  # fmt: skip
    live_payment(database_url, shop, main, at=datetime.now(UTC), source="c2b")
    p = old(Payment, "source", "status")
    run(database_url, update(p).where(p.c.source == "api").values(status="reversed"))

    with pytest.raises(RuntimeError, match="the database holds 1 C2B payments, 1 reversed payments, 1 B2C"):
        command.downgrade(cfg, BEFORE)
    run(database_url, delete(p).where(p.c.source == "c2b"))
    run(database_url, update(p).values(status="success"))
    run(database_url, delete(b2c).where(b2c.c.kind == "b2c"))
    command.downgrade(cfg, BEFORE)
    command.upgrade(cfg, "head")  # and back: the downgrade left nothing behind
