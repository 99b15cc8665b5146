"""The several-channels migration on a database with channels in it (both backends): every existing
channel becomes its business's primary channel named "Main"; afterwards a business may add a second
channel but never a second primary one or a second "Main"; the downgrade refuses while a business
holds two channels and restores the one-channel schema once it holds one."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from core.migrate import alembic_config
from core.tenants.models import MpesaChannel
from tests.support.migrations import NOW, channel, old, run, scratch_database, tenant

BEFORE = "3c7e1a9d5b42"  # customers per mode: one channel per business


@pytest.fixture
def database_url() -> Iterator[str]:
    yield from scratch_database("channels")


def second(url: str, tenant_id: uuid.UUID, *, name: str, primary: bool) -> uuid.UUID:
    cid = uuid.uuid4()
    c = old(
        MpesaChannel, "id", "tenant_id", "name", "is_primary", "environment", "kind",
        "business_short_code", "consumer_key_enc", "consumer_secret_enc", "passkey_enc", "callback_token",
        "created_at", "updated_at",
    )  # fmt: skip
    run(url, insert(c).values(
        id=cid, tenant_id=tenant_id, name=name, is_primary=primary, environment="sandbox", kind="paybill",
        business_short_code="174379", consumer_key_enc="x", consumer_secret_enc="x", passkey_enc="x",
        callback_token=secrets.token_hex(16), created_at=NOW, updated_at=NOW,
    ))  # fmt: skip
    return cid


def test_existing_channels_become_primary_and_the_downgrade_guards_data(database_url: str) -> None:
    cfg = alembic_config(database_url)
    command.upgrade(cfg, BEFORE)
    shop = tenant(database_url, "Shop")
    kiosk = tenant(database_url, "Kiosk")
    shop_main = channel(database_url, shop, "production")
    kiosk_main = channel(database_url, kiosk, "simulator")

    command.upgrade(cfg, "head")
    t = old(MpesaChannel, "id", "tenant_id", "name", "is_primary")
    rows = run(database_url, select(t.c.id, t.c.name, t.c.is_primary).order_by(t.c.name, t.c.id))
    assert sorted((r[0], r[1], bool(r[2])) for r in rows) == sorted(
        [(shop_main, "Main", True), (kiosk_main, "Main", True)]
    )

    branch = second(database_url, shop, name="Sandbox", primary=False)
    with pytest.raises(IntegrityError):
        second(database_url, shop, name="Another primary", primary=True)
    with pytest.raises(IntegrityError):
        second(database_url, shop, name="Main", primary=False)

    with pytest.raises(RuntimeError, match="holds more than one M-Pesa channel"):
        command.downgrade(cfg, BEFORE)
    run(database_url, delete(t).where(t.c.id == branch))
    command.downgrade(cfg, BEFORE)
    before = old(MpesaChannel, "id", "tenant_id")
    assert sorted(r[0] for r in run(database_url, select(before.c.id))) == sorted([shop_main, kiosk_main])
    # one channel per business again
    with pytest.raises(IntegrityError):
        channel(database_url, shop, "sandbox")
