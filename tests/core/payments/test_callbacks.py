"""Callback processing against the real database: idempotency under concurrency, ordering races."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core.customers.service import customers
from core.db import utcnow
from core.payments.callbacks import CallbackNotYetMatched, callbacks
from core.payments.models import CallbackInbox, Payment, PaymentSource, PaymentStatus
from core.payments.service import payments
from core.runtime import runtime, unit_of_work
from core.tenants.service import tenants
from tests.conftest import LiveServer
from tests.support.factories import make_tenant


def success_body(checkout_id: str, *, amount: float, phone: int, receipt: str = "UKN1ABCDEF") -> bytes:
    return json.dumps(
        {
            "Body": {
                "stkCallback": {
                    "MerchantRequestID": "29115-34620561-1",
                    "CheckoutRequestID": checkout_id,
                    "ResultCode": 0,
                    "ResultDesc": "The service request is processed successfully.",
                    "CallbackMetadata": {
                        "Item": [
                            {"Name": "Amount", "Value": amount},
                            {"Name": "MpesaReceiptNumber", "Value": receipt},
                            {"Name": "Balance"},
                            {"Name": "TransactionDate", "Value": 20261123120000},
                            {"Name": "PhoneNumber", "Value": phone},
                        ]
                    },
                }
            }
        }
    ).encode()


async def pending_payment(*, phone: str = "254722000111", amount: int = 150, checkout: str | None) -> Payment:
    tenant, _ = await make_tenant()
    async with unit_of_work() as session:
        channel = await tenants.get_channel(session, tenant.id)
        assert channel is not None
        payment, _ = await payments.create_pending(
            session,
            tenant=tenant,
            channel=channel,
            phone=phone,
            amount=amount,
            source=PaymentSource.api,
            settings=runtime().settings,
        )
        payment.checkout_request_id = checkout
    return payment


async def store(payment: Payment, body: bytes) -> int:
    async with unit_of_work() as session:
        row = CallbackInbox(channel_id=payment.channel_id, checkout_request_id=None, payload=body.decode())
        session.add(row)
        await session.flush()
        return row.id


async def process(inbox_id: int) -> str:
    async with unit_of_work() as session:
        return await callbacks.process(session, inbox_id=inbox_id, settings=runtime().settings)


class TestDuplicateCallbacks:
    async def test_five_concurrent_duplicates_count_once(self, server: LiveServer) -> None:
        p = await pending_payment(checkout="ws_CO_dup_concurrent_1", amount=150)
        body = success_body("ws_CO_dup_concurrent_1", amount=150.0, phone=254722000111, receipt="UKN1CONC01")
        ids = [await store(p, body) for _ in range(5)]
        outcomes = await asyncio.gather(*(process(i) for i in ids))
        assert sorted(outcomes) == ["applied", "duplicate", "duplicate", "duplicate", "duplicate"]
        async with unit_of_work(readonly=True) as session:
            c = await customers.get(session, tenant_id=p.tenant_id, mode=p.mode, phone=p.phone)
            assert c is not None
            assert (c.paid_count, c.paid_total, c.requested_count) == (1, 150, 1)
            final = await session.get(Payment, p.id)
            assert final is not None
            assert (final.status, final.receipt) == (PaymentStatus.success, "UKN1CONC01")

    async def test_reprocessing_the_same_row_is_a_no_op(self, server: LiveServer) -> None:
        p = await pending_payment(checkout="ws_CO_dup_same_row", amount=10)
        inbox_id = await store(
            p, success_body("ws_CO_dup_same_row", amount=10, phone=254722000111, receipt="UKN1SAME01")
        )
        assert await process(inbox_id) == "applied"
        assert await process(inbox_id) == "skipped"

    async def test_final_state_never_changes(self, server: LiveServer) -> None:
        p = await pending_payment(checkout="ws_CO_final_1", amount=10)
        cancel = json.dumps(
            {
                "Body": {
                    "stkCallback": {
                        "MerchantRequestID": "1",
                        "CheckoutRequestID": "ws_CO_final_1",
                        "ResultCode": 1032,
                        "ResultDesc": "Request cancelled by user",
                    }
                }
            }
        ).encode()
        assert await process(await store(p, cancel)) == "applied"
        late_success = success_body("ws_CO_final_1", amount=10, phone=254722000111, receipt="UKN1LATE01")
        assert await process(await store(p, late_success)) == "duplicate"
        async with unit_of_work(readonly=True) as session:
            final = await session.get(Payment, p.id)
            assert final is not None
            assert (final.status, final.receipt, final.result_code) == (PaymentStatus.cancelled, None, "1032")

    async def test_conflicting_receipt_is_not_applied(self, server: LiveServer) -> None:
        p = await pending_payment(checkout="ws_CO_conflict_1", amount=25)
        first = success_body("ws_CO_conflict_1", amount=25, phone=254722000111, receipt="UKN1FIRST1")
        assert await process(await store(p, first)) == "applied"
        second = success_body("ws_CO_conflict_1", amount=25, phone=254722000111, receipt="UKN1OTHER1")
        inbox_id = await store(p, second)
        assert await process(inbox_id) == "conflict"
        async with unit_of_work(readonly=True) as session:
            row = await session.get(CallbackInbox, inbox_id)
            assert row is not None and row.error is not None
            assert "UKN1OTHER1" in row.error and "UKN1FIRST1" in row.error
            final = await session.get(Payment, p.id)
            assert final is not None
            assert (final.status, final.receipt, final.flag) == (PaymentStatus.success, "UKN1FIRST1", None)
            c = await customers.get(session, tenant_id=p.tenant_id, mode=p.mode, phone=p.phone)
            assert c is not None and (c.paid_count, c.paid_total) == (1, 25)
        # The same conflicting callback again is again a conflict, recorded on its own row.
        assert await process(await store(p, second)) == "conflict"


class TestMismatchAndOrdering:
    async def test_amount_mismatch_is_flagged_not_counted(self, server: LiveServer) -> None:
        p = await pending_payment(checkout="ws_CO_amount_1", amount=500)
        assert (
            await process(
                await store(
                    p, success_body("ws_CO_amount_1", amount=5.0, phone=254722000111, receipt="UKN1AMT001")
                )
            )
            == "applied"
        )
        async with unit_of_work(readonly=True) as session:
            final = await session.get(Payment, p.id)
            assert final is not None
            assert final.status is PaymentStatus.failed
            assert final.flag == "callback amount KES 5 differs from requested KES 500"
            assert final.receipt is None
            c = await customers.get(session, tenant_id=p.tenant_id, mode=p.mode, phone=p.phone)
            assert c is not None and (c.paid_count, c.paid_total) == (0, 0)

    async def test_callback_before_checkout_id_is_recorded_is_retried(self, server: LiveServer) -> None:
        p = await pending_payment(checkout=None, amount=30, phone="254722000222")
        inbox_id = await store(
            p, success_body("ws_CO_early_1", amount=30, phone=254722000333, receipt="UKN1EARLY1")
        )
        with pytest.raises(CallbackNotYetMatched):
            await process(inbox_id)
        async with unit_of_work() as session:
            row = await session.get(Payment, p.id)
            assert row is not None
            row.checkout_request_id = "ws_CO_early_1"
        assert await process(inbox_id) == "applied"

    async def test_orphan_after_grace_is_recorded_not_retried(self, server: LiveServer) -> None:
        p = await pending_payment(checkout="ws_CO_known", amount=5)
        inbox_id = await store(
            p, success_body("ws_CO_never_ours", amount=9, phone=254722000555, receipt="UKN1ORPH01")
        )
        async with unit_of_work() as session:
            row = await session.get(CallbackInbox, inbox_id)
            assert row is not None
            row.received_at = utcnow() - timedelta(minutes=5)
        assert await process(inbox_id) == "orphan"
        async with unit_of_work(readonly=True) as session:
            still = await session.get(Payment, p.id)
            assert still is not None and still.status is PaymentStatus.pending

    async def test_malformed_body_is_kept_and_reported(self, server: LiveServer) -> None:
        p = await pending_payment(checkout="ws_CO_malformed", amount=5)
        inbox_id = await store(p, b'{"Body": {"stkCallback": {"ResultCode": "zero"}}}')
        assert await process(inbox_id) == "malformed"
        async with unit_of_work(readonly=True) as session:
            row = await session.get(CallbackInbox, inbox_id)
            assert row is not None and row.error and row.error.startswith("STK callback")
            n = await session.scalar(
                select(func.count()).select_from(CallbackInbox).where(CallbackInbox.id == inbox_id)
            )
            assert n == 1
