"""Callbacks that arrive after the payment is final, and callbacks that cannot be true.

A late callback may add facts (the receipt) to a payment the status query settled, never change its
status or count its money again; a forged or impossible one is recorded once as rejected, never retried."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from core.customers.service import customers
from core.jobs.models import JobOutbox
from core.ledger.models import Transfer
from core.payments.callbacks import callbacks
from core.payments.jobs import process_callback
from core.payments.models import CallbackInbox, Payment, PaymentStatus
from core.runtime import unit_of_work
from core.tenants.service import tenants
from tests.conftest import LiveServer
from tests.core.payments.test_callbacks import pending_payment, process, store, success_body
from tests.support.factories import make_api_key, make_tenant
from tests.support.waiting import wait_for_final, wait_until


async def callback_url(tenant_id: uuid.UUID) -> str:
    async with unit_of_work(readonly=True) as session:
        channel = await tenants.get_channel(session, tenant_id)
        assert channel is not None
        return f"/callbacks/daraja/{channel.callback_token}"


async def processed_rows(checkout_request_id: str) -> list[CallbackInbox]:
    async with unit_of_work(readonly=True) as session:
        return list(
            await session.scalars(
                select(CallbackInbox)
                .where(CallbackInbox.checkout_request_id == checkout_request_id)
                .order_by(CallbackInbox.id)
            )
        )


async def wait_processed(checkout_request_id: str, count: int, timeout: float = 15) -> list[CallbackInbox]:
    async def done() -> bool:
        rows = await processed_rows(checkout_request_id)
        return len(rows) >= count and all(r.processed_at is not None for r in rows)

    await wait_until(done, timeout=timeout)
    return await processed_rows(checkout_request_id)


async def commission_postings(payment_id: uuid.UUID) -> int:
    async with unit_of_work(readonly=True) as session:
        n = await session.scalar(
            select(func.count()).select_from(Transfer).where(Transfer.payment_id == payment_id)
        )
        return int(n or 0)


class TestDelayedCallbackAfterQuery:
    async def test_receipt_of_a_query_settled_payment_is_stored_and_nothing_counted_twice(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        # 9999: the simulator never calls back, so the status query settles the payment, without a receipt.
        tenant, _ = await make_tenant()
        key = await make_api_key(tenant=tenant)
        r = await client.post(
            "/api/stk-push",
            json={"phone": "0722009999", "amount": 40},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert r.status_code == 201
        pid = uuid.UUID(r.json()["id"])
        settled = await wait_for_final(client, key, str(pid), timeout=30)
        assert (settled["status"], settled["receipt"]) == ("success", None)
        cid = settled["checkout_request_id"]
        assert await commission_postings(pid) == 1

        # Then the success callback, delayed in Daraja, arrives over HTTP and is processed by the worker.
        body = success_body(cid, amount=40.0, phone=254722009999, receipt="UKN1DELAY1")
        r = await client.post(await callback_url(tenant.id), content=body)
        assert r.status_code == 200
        [row] = await wait_processed(cid, 1)
        assert row.outcome == "enriched", (row.outcome, row.error)
        assert row.error is not None and "receipt" in row.error

        async with unit_of_work(readonly=True) as session:
            p = await session.get(Payment, pid)
            assert p is not None
            assert (p.status, p.receipt, p.paid_amount, p.paid_phone) == (
                PaymentStatus.success,
                "UKN1DELAY1",
                40,
                "254722009999",
            )
            assert p.transaction_date is not None
            assert p.transaction_date.strftime("%Y%m%d") == "20261123"
            assert p.result_desc == settled["result_desc"] and p.completed_at is not None
            c = await customers.get(session, tenant_id=tenant.id, mode=p.mode, phone="254722009999")
            assert c is not None and (c.paid_count, c.paid_total, c.requested_count) == (1, 40, 1)
        assert await commission_postings(pid) == 1

        # The same callback again adds nothing; one with another receipt is refused.
        assert (await client.post(await callback_url(tenant.id), content=body)).status_code == 200
        other = success_body(cid, amount=40.0, phone=254722009999, receipt="UKN1DELAY2")
        assert (await client.post(await callback_url(tenant.id), content=other)).status_code == 200
        rows = await wait_processed(cid, 3)
        assert [r.outcome for r in rows] == ["enriched", "duplicate", "conflict"]
        async with unit_of_work(readonly=True) as session:
            p = await session.get(Payment, pid)
            assert p is not None and (p.status, p.receipt) == (PaymentStatus.success, "UKN1DELAY1")
        assert await commission_postings(pid) == 1


def forged(checkout_id: str, *, amount: Any, receipt: str = "UKN1FORGE1") -> bytes:
    data = json.loads(success_body(checkout_id, amount=1, phone=254722000111, receipt=receipt))
    data["Body"]["stkCallback"]["CallbackMetadata"]["Item"][0]["Value"] = amount
    return json.dumps(data).encode()


class TestImpossibleCallbacks:
    @pytest.mark.parametrize("forgery", ["amount_1e30", "receipt_of_another_payment"])
    async def test_forged_callback_is_rejected_once_and_never_retried(
        self, server: LiveServer, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, forgery: str
    ) -> None:
        tag = uuid.uuid4().hex[:8].upper()
        owner_cid, cid, taken = f"ws_CO_owner_{tag}", f"ws_CO_forged_{tag}", f"UKN{tag[:7]}"
        owner = await pending_payment(checkout=owner_cid, amount=60)
        owner_body = success_body(owner_cid, amount=60, phone=254722000111, receipt=taken)
        assert await process(await store(owner, owner_body)) == "applied"
        payment = await pending_payment(checkout=cid, amount=60)
        if forgery == "amount_1e30":
            body, why = forged(cid, amount=1e30), "Amount"
        else:
            body, why = success_body(cid, amount=60, phone=254722000111, receipt=taken), "another payment"

        runs: list[int] = []
        real = callbacks.process

        async def counting(session: Any, *, inbox_id: int, settings: Any) -> str:
            runs.append(inbox_id)
            return await real(session, inbox_id=inbox_id, settings=settings)

        monkeypatch.setattr(callbacks, "process", counting)
        # Over HTTP, processed by the real worker: a job that raised would be retried with backoff.
        r = await client.post(await callback_url(payment.tenant_id), content=body)
        assert r.status_code == 200
        [row] = await wait_processed(cid, 1, timeout=10)
        assert (row.outcome, why in (row.error or "")) == ("rejected", True), (row.outcome, row.error)
        assert runs.count(row.id) == 1
        async with unit_of_work(readonly=True) as session:
            jobs = await session.scalars(
                select(JobOutbox).where(JobOutbox.actor == "payments.process_callback")
            )
            assert [j for j in jobs if j.kwargs.get("inbox_id") == row.id] == []  # done: no retry, no failure
            p = await session.get(Payment, payment.id)
            assert p is not None
            assert (p.status, p.receipt, p.paid_amount, p.flag) == (PaymentStatus.pending, None, None, None)
            c = await customers.get(
                session, tenant_id=payment.tenant_id, mode=payment.mode, phone=payment.phone
            )
            assert c is not None and (c.paid_count, c.paid_total) == (0, 0)
            o = await session.get(Payment, owner.id)
            assert o is not None and (o.status, o.receipt) == (PaymentStatus.success, taken)

        # The job sent again (the relay re-sends at least once) skips the row: rejected once, not twice.
        await process_callback(inbox_id=row.id)
        assert runs.count(row.id) == 2
        [again] = await processed_rows(cid)
        assert (again.outcome, again.error, again.processed_at) == ("rejected", row.error, row.processed_at)

    @pytest.mark.parametrize(
        ("amount", "why"),
        [(-60, "outside"), (0, "outside"), ("1e999999999", "beyond"), (10**9, "outside")],
    )
    async def test_impossible_amounts_are_rejected(self, server: LiveServer, amount: Any, why: str) -> None:
        cid = f"ws_CO_impossible_{uuid.uuid4().hex[:8]}"
        p = await pending_payment(checkout=cid, amount=60)
        inbox_id = await store(p, forged(cid, amount=amount))
        await process_callback(inbox_id=inbox_id)  # returns: nothing for the job's retries to catch
        async with unit_of_work(readonly=True) as session:
            row = await session.get(CallbackInbox, inbox_id)
            assert row is not None and row.outcome == "rejected" and why in (row.error or ""), row.error
            still = await session.get(Payment, p.id)
            assert still is not None
            assert (still.status, still.paid_amount, still.flag) == (PaymentStatus.pending, None, None)
