"""Many pushes to a business's customers while those customers' success callbacks are applied
(issue 15, finding 1).

A push used to lock the wallet and then count the request on the customer row, while applying a
success locks the payment, then the customer row, then the wallet: 250 pushes to one phone with 20 in
flight answered 224 of them with HTTP 500 (Postgres 40P01, deadlock detected). Now both take the
customer row before the wallet (core/ledger/service.py, "Lock order").
Postgres only: SQLite runs one writer at a time, so there is no lock order to get wrong.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest
from sqlalchemy import func, select

from core.billing.integrity import check_all
from core.customers.models import Customer
from core.ledger.models import Transfer
from core.payments.models import Payment, PaymentStatus
from core.runtime import unit_of_work
from tests.conftest import LiveServer
from tests.support import services
from tests.support.factories import fund_wallet, make_api_key, make_tenant
from tests.support.waiting import wait_until

pytestmark = pytest.mark.skipif(
    not services.PG_URL, reason="Postgres only: SQLite serialises writers, so there is no lock order to test"
)

PUSHES = 250
IN_FLIGHT = 20


def _needed(total: int, each: int | None) -> int:
    return max(1, -(-total // each)) if each else 1


async def _pending(tenant_id: object) -> int:
    async with unit_of_work(readonly=True) as session:
        return int(
            await session.scalar(
                select(func.count()).where(
                    Payment.tenant_id == tenant_id, Payment.status == PaymentStatus.pending
                )
            )
            or 0
        )


async def test_concurrent_pushes_while_their_successes_apply(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    tenant, _ = await make_tenant(name="Hot Phone Duka", plan="founding")  # beyond Free's 100
    # A funded wallet: every push holds its commission on the wallet row and every success posts it
    # from there, so both paths take the wallet and the customer row.
    await fund_wallet(tenant, 1_000_000)
    # As few phones and keys as the flood limits allow (one of each without them): every push to a
    # phone races the success callbacks of the pushes to it before.
    settings = server.settings
    phones = [
        f"25472250{100 + n:04d}"  # endings the simulator pays (OUTCOMES picks others by the last four)
        for n in range(_needed(PUSHES, getattr(settings, "STK_PUSHES_PER_PHONE_PER_MINUTE", None)))
    ]
    keys = [
        await make_api_key(tenant=tenant)
        for _ in range(_needed(PUSHES, getattr(settings, "STK_PUSHES_PER_KEY_PER_MINUTE", None)))
    ]
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def push(n: int) -> httpx.Response:
        async with gate:
            return await client.post(
                "/api/stk-push",
                json={"phone": phones[n % len(phones)], "amount": 100 + n % 7, "name": "Wanjiku"},
                headers={"Authorization": f"Bearer {keys[n % len(keys)]}"},
            )

    answers = await asyncio.gather(*(push(n) for n in range(PUSHES)))
    statuses = Counter(r.status_code for r in answers)
    examples = {status: [r.text for r in answers if r.status_code == status][:2] for status in statuses}
    assert statuses == {201: PUSHES}, examples

    async def settled() -> bool:
        return await _pending(tenant.id) == 0

    await wait_until(settled, timeout=120)

    async with unit_of_work(readonly=True) as session:
        payments = list(await session.scalars(select(Payment).where(Payment.tenant_id == tenant.id)))
        rows = await session.scalars(select(Customer).where(Customer.tenant_id == tenant.id))
        book = {c.phone: c for c in rows}
        commissions = Counter(
            (
                await session.execute(
                    select(Transfer.payment_id).where(
                        Transfer.tenant_id == tenant.id, Transfer.kind.like("commission.%")
                    )
                )
            ).scalars()
        )
        problems = await check_all(session, tenant_id=tenant.id)
    assert len(payments) == PUSHES
    assert {p.status for p in payments} == {PaymentStatus.success}  # the simulator pays these numbers
    assert sorted(book) == sorted(phones)
    for phone, customer in book.items():
        mine = [p.amount for p in payments if p.phone == phone]
        assert (customer.requested_count, customer.requested_total) == (len(mine), sum(mine))
        assert (customer.paid_count, customer.paid_total) == (len(mine), sum(mine))
    # exactly one commission posting per success (the wallet held it, the wallet pays it)
    assert commissions == Counter({p.id: 1 for p in payments})
    assert problems == []
