"""The payouts-ledger migration (e3a9c1d5f702) on a database with accounts in it (both backends): the
old accounts keep their values, the wider CHECK takes the payout accounts, and the downgrade refuses
while one exists (the older CHECK cannot hold it), then goes back cleanly once it is gone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from core.ledger.models import Account
from core.migrate import alembic_config
from core.payouts.models import Payout
from tests.support.migrations import NOW, old, run, scratch_database, tenant

BEFORE = "d1e5a7c90b31"  # money out's foundation: no payout accounts yet


@pytest.fixture
def database_url() -> Iterator[str]:
    yield from scratch_database("payouts_ledger")


def test_payout_accounts_fit_and_the_downgrade_waits_for_them(database_url: str) -> None:
    cfg = alembic_config(database_url)
    command.upgrade(cfg, BEFORE)
    shop = tenant(database_url, "Shop")
    accounts = old(Account, "tenant_id", "kind", "balance_cents", "reserved_cents", "created_at")
    run(
        database_url,
        insert(accounts).values(
            tenant_id=shop, kind="wallet", balance_cents=500, reserved_cents=0, created_at=NOW
        ),
    )
    with pytest.raises(IntegrityError):
        run(database_url, insert(accounts).values(
            tenant_id=shop, kind="b2c_out", balance_cents=0, reserved_cents=0, created_at=NOW
        ))  # fmt: skip

    command.upgrade(cfg, "head")
    kinds = old(Account, "kind", "balance_cents")
    assert [tuple(r) for r in run(database_url, select(kinds))] == [("wallet", 500)]
    assert "last_attempt_at" in {c.name for c in Payout.__table__.columns}
    for kind in ("b2c_out", "payees"):
        run(database_url, insert(accounts).values(
            tenant_id=shop, kind=kind, balance_cents=0, reserved_cents=0, created_at=NOW
        ))  # fmt: skip

    with pytest.raises(RuntimeError, match="the database holds 2 payout ledger accounts"):
        command.downgrade(cfg, BEFORE)
    run(database_url, delete(kinds).where(kinds.c.kind.in_(["b2c_out", "payees"])))
    command.downgrade(cfg, BEFORE)
    assert [tuple(r) for r in run(database_url, select(kinds))] == [("wallet", 500)]
    command.upgrade(cfg, "head")  # and back: the downgrade left nothing behind
