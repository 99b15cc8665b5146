"""The customer-book-per-mode migration on a database with a book in it (both backends): the mixed
rows of a business that tried the simulator and went live are rebuilt from its payments into a test
book and a live book (customer-source payments only, paid = successes, the latest name), a row no
payment backs keeps its totals in its business's channel's mode, and the downgrade merges each
phone's two rows back into one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import insert, select

from core.customers.models import Customer
from core.migrate import alembic_config
from core.payments.models import Payment
from tests.support.migrations import channel, old, run, scratch_database, tenant

BEFORE = "9d3f6b2a8c15"  # apps, modes and webhooks: payments have their mode, customers not yet
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
WANJIKU, OTIENO, ONBOARDING, KEPT = "254722000111", "254722000222", "254722000333", "254722000444"


@pytest.fixture
def database_url() -> Iterator[str]:
    yield from scratch_database("customers")


def at(hours: int) -> datetime:
    return T0 + timedelta(hours=hours)


def utc(value: datetime | None) -> datetime | None:
    """As stored: SQLite hands back naive UTC, Postgres aware."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def payment(
    url: str,
    tenant_id: uuid.UUID,
    channel_id: uuid.UUID,
    *,
    mode: str,
    phone: str,
    amount: int,
    status: str,
    hour: int,
    name: str | None = None,
    source: str = "api",
) -> None:
    p = old(
        Payment, "id", "tenant_id", "channel_id", "mode", "source", "status", "amount", "phone",
        "customer_name", "account_reference", "description", "commission_cents", "reserved_cents",
        "query_attempts", "created_at", "updated_at", "completed_at",
    )  # fmt: skip
    run(url, insert(p).values(
        id=uuid.uuid4(), tenant_id=tenant_id, channel_id=channel_id, mode=mode, source=source,
        status=status, amount=amount, phone=phone, customer_name=name, account_reference="REF",
        description="Payment", commission_cents=0, reserved_cents=0, query_attempts=0,
        created_at=at(hour), updated_at=at(hour),
        completed_at=at(hour) + timedelta(minutes=1) if status != "pending" else None,
    ))  # fmt: skip


def customer(url: str, tenant_id: uuid.UUID, phone: str, name: str | None, totals: tuple[int, ...]) -> None:
    c = old(
        Customer, "tenant_id", "phone", "name", "requested_count", "requested_total", "paid_count",
        "paid_total", "first_seen_at", "last_seen_at", "last_paid_at",
    )  # fmt: skip
    requested_count, requested_total, paid_count, paid_total = totals
    run(url, insert(c).values(
        tenant_id=tenant_id, phone=phone, name=name, requested_count=requested_count,
        requested_total=requested_total, paid_count=paid_count, paid_total=paid_total,
        first_seen_at=at(0), last_seen_at=at(5), last_paid_at=at(5),
    ))  # fmt: skip


def book(url: str, *, with_mode: bool) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    c = Customer.__table__.c
    cols = [c.tenant_id, c.phone, c.name, c.requested_count, c.requested_total, c.paid_count, c.paid_total]
    cols += [c.first_seen_at, c.last_seen_at, c.last_paid_at]
    out = {}
    for r in run(url, select(*cols, *([c.mode] if with_mode else [])).select_from(Customer.__table__)):
        key = (uuid.UUID(str(r.tenant_id)), r.phone, *([r.mode] if with_mode else []))
        out[key] = (r.name, *r[3:7], utc(r.first_seen_at), utc(r.last_seen_at), utc(r.last_paid_at))
    return out


def test_existing_books_are_split_by_mode(database_url: str) -> None:
    url = database_url
    cfg = alembic_config(url)
    command.upgrade(cfg, BEFORE)

    # Tried the simulator, then went live (its one channel is production now).
    tried = tenant(url, "Tried")
    tried_channel = channel(url, tried, "production")
    payment(url, tried, tried_channel, mode="test", phone=WANJIKU, amount=100, status="success", hour=1,
            name="Wanjiku")  # fmt: skip
    payment(url, tried, tried_channel, mode="test", phone=WANJIKU, amount=50, status="success", hour=2)
    payment(url, tried, tried_channel, mode="test", phone=OTIENO, amount=30, status="cancelled", hour=2,
            name="Otieno")  # fmt: skip
    payment(url, tried, tried_channel, mode="live", phone=WANJIKU, amount=70, status="success", hour=3,
            name="Wanjiku K")  # fmt: skip
    payment(url, tried, tried_channel, mode="live", phone=WANJIKU, amount=20, status="pending", hour=4)
    # The onboarding prompt is no customer's payment.
    payment(url, tried, tried_channel, mode="live", phone=ONBOARDING, amount=1, status="success", hour=0,
            source="onboarding")  # fmt: skip
    # The mixed book the old code kept, and a row no payment backs.
    customer(url, tried, WANJIKU, "Wanjiku K", (4, 240, 3, 220))
    customer(url, tried, OTIENO, "Otieno", (1, 30, 0, 0))
    customer(url, tried, KEPT, "Imported", (2, 20, 1, 10))
    # Still on the simulator: its unbacked row is a test row.
    sim = tenant(url, "Sim")
    channel(url, sim, "simulator")
    customer(url, sim, KEPT, None, (1, 5, 0, 0))

    command.upgrade(cfg, "head")

    # The onboarding push made no row.
    assert book(url, with_mode=True) == {
        (tried, WANJIKU, "test"): ("Wanjiku", 2, 150, 2, 150, at(1), at(2), at(2) + timedelta(minutes=1)),
        (tried, OTIENO, "test"): ("Otieno", 1, 30, 0, 0, at(2), at(2), None),
        (tried, WANJIKU, "live"): ("Wanjiku K", 2, 90, 1, 70, at(3), at(4), at(3) + timedelta(minutes=1)),
        (tried, KEPT, "live"): ("Imported", 2, 20, 1, 10, at(0), at(5), at(5)),
        (sim, KEPT, "test"): (None, 1, 5, 0, 0, at(0), at(5), at(5)),
    }

    # A second row for the same phone is refused in the same mode, taken in the other.
    c = Customer.__table__
    row = {"tenant_id": sim, "phone": KEPT, "requested_count": 1, "requested_total": 1, "paid_count": 0,
           "paid_total": 0, "first_seen_at": T0, "last_seen_at": T0}  # fmt: skip
    run(url, insert(c).values(**row, mode="live"))
    with pytest.raises(Exception, match=r"(?i)unique"):
        run(url, insert(c).values(**row, mode="test"))

    command.downgrade(cfg, BEFORE)
    assert book(url, with_mode=False) == {
        (tried, WANJIKU): ("Wanjiku K", 4, 240, 3, 220, at(1), at(4), at(3) + timedelta(minutes=1)),
        (tried, OTIENO): ("Otieno", 1, 30, 0, 0, at(2), at(2), None),
        (tried, KEPT): ("Imported", 2, 20, 1, 10, at(0), at(5), at(5)),
        (sim, KEPT): (None, 2, 6, 0, 0, at(0), at(5), at(5)),
    }
