"""A C2B confirmation, stored as the callback route stores it and applied by the inbox's own processing
(core.mpesa_inbox.service.process, which runs core.c2b's handler): one payment per TransID with the
customer book, the commission and the event of a push's success; refused when it cannot be this
channel's; never counted twice with an STK push of the same money."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest

from core.billing.integrity import check_all
from core.c2b.models import C2BPaymentFacts, DecisionStage
from core.db import utcnow
from core.mpesa_inbox import handlers
from core.mpesa_inbox import service as inbox
from core.mpesa_inbox.registry import NotYetMatched
from core.mpesa_inbox.service import ORPHAN_AFTER
from core.payments.models import CallbackInbox, Payment, PaymentSource, PaymentStatus
from core.payments.service import payments
from core.runtime import runtime, unit_of_work
from core.tenants.models import BillingMode, ChannelKind, Environment, Mode
from core.tenants.service import tenants
from tests.conftest import LiveServer
from tests.core.c2b.support import (
    EAT,
    SCOPE,
    Business,
    c2b_business,
    c2b_payments,
    commission_transfers,
    confirmation,
    customer,
    customer_count,
    decisions,
    new_trans_id,
    payments_with_receipt,
)
from tests.support.factories import set_billing

handlers.load()
PHONE = "254722000111"
AFTER_GRACE = ORPHAN_AFTER + timedelta(minutes=1)


async def deliver(biz: Business, body: dict[str, Any], *, received_ago: timedelta = timedelta(0)) -> int:
    """Store a confirmation for the business's channel as /callbacks/daraja/{token}/c2b-confirmation does."""
    async with unit_of_work(scope=SCOPE) as session:
        row = CallbackInbox(
            channel_id=biz.channel_id,
            kind="c2b-confirmation",
            reference=str(body.get("TransID")),
            payload=json.dumps(body),
            received_at=utcnow() - received_ago,
        )
        session.add(row)
        await session.flush()
        return row.id


async def apply(inbox_id: int) -> str:
    """What the mpesa.process_answer job does with one stored answer."""
    async with unit_of_work(scope=SCOPE) as session:
        return await inbox.process(session, inbox_id=inbox_id, settings=runtime().settings)


async def inbox_row(inbox_id: int) -> CallbackInbox:
    async with unit_of_work(readonly=True, scope=SCOPE) as session:
        row = await session.get(CallbackInbox, inbox_id)
        assert row is not None
        return row


async def facts(payment_id: uuid.UUID) -> C2BPaymentFacts:
    async with unit_of_work(readonly=True, scope=SCOPE) as session:
        row = await session.get(C2BPaymentFacts, payment_id)
        assert row is not None
        return row


async def push(biz: Business, *, amount: int, phone: str = PHONE, pushed: bool = True) -> Payment:
    """An STK push recorded as core/payments/push.py records it, sent to Daraja and not answered yet."""
    async with unit_of_work(scope=SCOPE) as session:
        tenant = await tenants.get(session, biz.tenant.id)
        channel = await tenants.get_channel(session, biz.tenant.id)
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
        payment.created_at -= timedelta(minutes=1)
        payment.pushed_at = payment.created_at if pushed else None
        return payment


async def settle(payment: Payment, *, receipt: str | None) -> None:
    """The push's success as its callback (with a receipt) or the status query (without) records it."""
    async with unit_of_work(scope=SCOPE) as session:
        row = await session.get(Payment, payment.id)
        assert row is not None
        done = await payments.finalize(
            session,
            payment=row,
            status=PaymentStatus.success,
            settings=runtime().settings,
            result_code="0",
            result_desc="The service request is processed successfully.",
            receipt=receipt,
        )
        assert done.applied


async def ledger_problems(biz: Business) -> list[str]:
    """What `lipapush ledger check` finds wrong in this business's books."""
    async with unit_of_work(readonly=True, scope=SCOPE) as session:
        return [p.detail for p in await check_all(session, tenant_id=biz.tenant.id)]


async def reload(payment_id: uuid.UUID) -> Payment:
    async with unit_of_work(readonly=True, scope=SCOPE) as session:
        row = await session.get(Payment, payment_id)
        assert row is not None
        return row


class TestOnePaymentPerTransId:
    async def test_a_confirmation_is_a_paid_payment_with_its_book_entry_and_commission(
        self, server: LiveServer
    ) -> None:
        biz = await c2b_business(wallet_cents=100_00)
        body = confirmation(biz.short_code, amount="500.00", bill_ref="INV1001", middle="W")
        assert await apply(await deliver(biz, body)) == "applied"

        [p] = await payments_with_receipt(body["TransID"])
        assert (p.source, p.status, p.amount, p.paid_amount, p.mode) == (
            PaymentSource.c2b,
            PaymentStatus.success,
            500,
            500,
            Mode.live,
        )
        assert (p.phone, p.customer_name, p.account_reference, p.description) == (
            PHONE,
            "JANE W WANJIKU",
            "INV1001",
            "Pay Bill",
        )
        assert p.channel_id == biz.channel_id and p.tenant_id == biz.tenant.id
        assert p.flag is None and p.initiated_by_id is None and p.checkout_request_id is None
        paid_at = body["TransTime"]
        assert p.completed_at is not None and p.completed_at == p.transaction_date == p.created_at
        assert p.completed_at.astimezone(EAT).strftime("%Y%m%d%H%M%S") == paid_at
        assert (p.commission_bps, p.commission_cents) == (100, 500)
        assert await commission_transfers(p.id) == [("commission.wallet", 500)]

        book = await customer(biz.tenant.id, PHONE)
        assert book is not None
        assert (book.name, book.requested_count, book.requested_total, book.paid_count, book.paid_total) == (
            "JANE W WANJIKU",
            1,
            500,
            1,
            500,
        )
        kept = await facts(p.id)
        assert (kept.trans_id, kept.amount_cents, kept.bill_ref_number, kept.msisdn) == (
            body["TransID"],
            50_000,
            "INV1001",
            PHONE,
        )
        assert (kept.org_account_balance_cents, kept.transaction_type, kept.phone_from_book) == (
            12_500_000,
            "Pay Bill",
            False,
        )

    async def test_three_deliveries_of_one_confirmation_count_once(self, server: LiveServer) -> None:
        biz = await c2b_business(wallet_cents=100_00)
        body = confirmation(biz.short_code, amount="250.00")
        rows = [await deliver(biz, body) for _ in range(3)]
        assert [await apply(r) for r in rows] == ["applied", "duplicate", "duplicate"]
        assert [(await inbox_row(r)).outcome for r in rows] == ["applied", "duplicate", "duplicate"]

        [p] = await payments_with_receipt(body["TransID"])
        book = await customer(biz.tenant.id, PHONE)
        assert book is not None and (book.paid_count, book.paid_total, book.requested_count) == (1, 250, 1)
        assert await commission_transfers(p.id) == [("commission.wallet", 250)]
        assert await apply(rows[0]) == "skipped"  # a row already applied is never applied again
        assert await ledger_problems(biz) == []

    async def test_a_wallet_that_cannot_cover_it_leaves_the_commission_on_the_invoice(
        self, server: LiveServer
    ) -> None:
        # A push would be refused here; a payment already made cannot be, so its commission is owed.
        biz = await c2b_business(wallet_cents=2_00)
        await set_billing(biz.tenant, floor_cents=0)
        body = confirmation(biz.short_code, amount="1000.00")
        assert await apply(await deliver(biz, body)) == "applied"
        [p] = await payments_with_receipt(body["TransID"])
        assert await commission_transfers(p.id) == [
            ("commission.wallet", 200),
            ("commission.receivable", 800),
        ]

    async def test_a_test_channel_records_a_test_payment_with_no_commission(self, server: LiveServer) -> None:
        biz = await c2b_business(environment=Environment.simulator)
        body = confirmation(biz.short_code, amount="300.00")
        assert await apply(await deliver(biz, body)) == "applied"
        [p] = await payments_with_receipt(body["TransID"])
        assert (p.mode, p.commission_cents) == (Mode.test, 0)
        assert await commission_transfers(p.id) == []
        book = await customer(biz.tenant.id, PHONE, mode=Mode.test)
        assert book is not None and book.paid_total == 300


class TestWhatCannotBeThisChannels:
    async def test_another_short_code_is_refused_and_recorded(self, server: LiveServer) -> None:
        biz = await c2b_business()
        body = confirmation("1234567", amount="500.00")
        row = await deliver(biz, body)
        assert await apply(row) == "rejected"
        assert await payments_with_receipt(body["TransID"]) == []
        [d] = await decisions(biz.channel_id)
        assert (d.stage, d.accepted, d.trans_id, d.amount_cents) == (
            DecisionStage.confirmation,
            False,
            body["TransID"],
            50_000,
        )
        assert d.reason == (
            f"Not recorded: it is for short code '1234567', not this channel's ({biz.short_code})."
        )

    @pytest.mark.parametrize(
        ("amount", "reason"),
        [
            ("0.50", "the amount KES 0.50 is outside what one M-Pesa payment can be (1 to 250,000)"),
            (
                "250001.00",
                "the amount KES 250,001.00 is outside what one M-Pesa payment can be (1 to 250,000)",
            ),
        ],
    )
    async def test_an_impossible_amount_is_refused_and_recorded(
        self, server: LiveServer, amount: str, reason: str
    ) -> None:
        biz = await c2b_business()
        body = confirmation(biz.short_code, amount=amount)
        assert await apply(await deliver(biz, body)) == "rejected"
        assert await payments_with_receipt(body["TransID"]) == []
        [d] = await decisions(biz.channel_id)
        assert d.reason == f"Not recorded: {reason}."

    async def test_a_body_that_is_not_a_confirmation_is_malformed(self, server: LiveServer) -> None:
        biz = await c2b_business()
        row = await deliver(biz, {"TransID": new_trans_id(), "TransAmount": "5.00"})
        assert await apply(row) == "malformed"
        assert (await inbox_row(row)).error == "C2B payload TransTime is missing or not YYYYMMDDHHmmss"


class TestAmountsAndReferences:
    async def test_a_fractional_amount_is_recorded_rounded_down_and_flagged(self, server: LiveServer) -> None:
        biz = await c2b_business(billing=BillingMode.invoice)
        body = confirmation(biz.short_code, amount="150.50")
        assert await apply(await deliver(biz, body)) == "applied"
        [p] = await payments_with_receipt(body["TransID"])
        assert (p.amount, p.commission_cents) == (150, 150)
        assert p.flag == (
            "M-Pesa reported KES 150.50; M-Pesa amounts are whole shillings, so it was recorded as KES 150: "
            "check your M-Pesa statement"
        )
        assert (await facts(p.id)).amount_cents == 15_050
        assert await commission_transfers(p.id) == [("commission.receivable", 150)]

    async def test_a_long_account_number_is_cut_to_the_column_and_kept_whole(
        self, server: LiveServer
    ) -> None:
        biz = await c2b_business(billing=BillingMode.invoice)
        body = confirmation(biz.short_code, bill_ref="SCHOOL-2026-000123")
        assert await apply(await deliver(biz, body)) == "applied"
        [p] = await payments_with_receipt(body["TransID"])
        assert p.account_reference == "SCHOOL-2026-"
        assert (await facts(p.id)).bill_ref_number == "SCHOOL-2026-000123"

    async def test_a_till_payment_has_no_account_number(self, server: LiveServer) -> None:
        biz = await c2b_business(kind=ChannelKind.till, billing=BillingMode.invoice)
        body = confirmation(biz.short_code, bill_ref="", kind="Buy Goods")
        assert await apply(await deliver(biz, body)) == "applied"
        [p] = await payments_with_receipt(body["TransID"])
        assert (p.account_reference, p.description) == ("", "Buy Goods")


class TestMaskedNumbers:
    async def test_a_masked_payer_is_recorded_and_charged_but_kept_out_of_the_book(
        self, server: LiveServer
    ) -> None:
        biz = await c2b_business(billing=BillingMode.invoice)
        body = confirmation(biz.short_code, msisdn="2547 ***** 111", amount="400.00")
        assert await apply(await deliver(biz, body)) == "applied"
        [p] = await payments_with_receipt(body["TransID"])
        assert (p.phone, p.paid_phone, p.status) == ("2547*****111", "2547 ***** 111", PaymentStatus.success)
        assert await customer_count(biz.tenant.id) == 0
        assert await commission_transfers(p.id) == [("commission.receivable", 400)]
        assert (await facts(p.id)).msisdn == "2547 ***** 111"

    async def test_a_masked_payer_the_book_knows_by_digits_and_name_joins_their_entry(
        self, server: LiveServer
    ) -> None:
        biz = await c2b_business(billing=BillingMode.invoice)
        first = confirmation(biz.short_code, amount="100.00")  # v1: the full number, JANE WANJIKU
        assert await apply(await deliver(biz, first)) == "applied"
        masked = confirmation(biz.short_code, msisdn="2547 ***** 111", amount="200.00", first="jane")
        assert await apply(await deliver(biz, masked)) == "applied"
        [p] = await payments_with_receipt(masked["TransID"])
        assert p.phone == PHONE
        assert (await facts(p.id)).phone_from_book is True
        book = await customer(biz.tenant.id, PHONE)
        assert book is not None and (book.paid_count, book.paid_total) == (2, 300)

        stranger = confirmation(biz.short_code, msisdn="2547 ***** 111", first="OTIENO", amount="50.00")
        assert await apply(await deliver(biz, stranger)) == "applied"
        [q] = await payments_with_receipt(stranger["TransID"])
        assert q.phone == "2547*****111"
        book = await customer(biz.tenant.id, PHONE)
        assert book is not None and (book.paid_count, book.paid_total) == (2, 300)


class TestNeverTwiceWithAPush:
    async def test_the_receipt_of_a_paid_push_changes_nothing(self, server: LiveServer) -> None:
        biz = await c2b_business(billing=BillingMode.hybrid)
        stk = await push(biz, amount=700)
        receipt = new_trans_id()
        await settle(stk, receipt=receipt)
        before = await commission_transfers(stk.id)
        body = confirmation(biz.short_code, trans_id=receipt, amount="700.00")
        assert await apply(await deliver(biz, body)) == "duplicate_of_push"
        assert [p.id for p in await payments_with_receipt(receipt)] == [stk.id]
        assert await c2b_payments(biz.tenant.id) == []
        assert await commission_transfers(stk.id) == before
        book = await customer(biz.tenant.id, PHONE)
        assert book is not None and (book.paid_count, book.paid_total) == (1, 700)

    async def test_a_pending_push_of_the_same_money_is_settled_by_it(self, server: LiveServer) -> None:
        biz = await c2b_business(billing=BillingMode.hybrid)
        stk = await push(biz, amount=700)
        body = confirmation(biz.short_code, amount="700.00")
        assert await apply(await deliver(biz, body)) == "settled_push"
        paid = await reload(stk.id)
        assert (paid.status, paid.receipt, paid.paid_amount) == (PaymentStatus.success, body["TransID"], 700)
        assert await c2b_payments(biz.tenant.id) == []
        assert await commission_transfers(stk.id) == [("commission.receivable", 700)]
        book = await customer(biz.tenant.id, PHONE)
        assert book is not None and (book.requested_count, book.paid_count, book.paid_total) == (1, 1, 700)
        # The same confirmation again finds the receipt on the push.
        assert await apply(await deliver(biz, body)) == "duplicate_of_push"

    async def test_a_push_settled_without_its_receipt_learns_it(self, server: LiveServer) -> None:
        biz = await c2b_business(billing=BillingMode.hybrid)
        stk = await push(biz, amount=700)
        await settle(stk, receipt=None)  # the status query says paid, and gives no receipt
        body = confirmation(biz.short_code, amount="700.00")
        assert await apply(await deliver(biz, body)) == "duplicate_of_push"
        assert (await reload(stk.id)).receipt == body["TransID"]
        assert await c2b_payments(biz.tenant.id) == []

    async def test_another_amount_or_phone_is_a_payment_of_its_own(self, server: LiveServer) -> None:
        biz = await c2b_business(billing=BillingMode.hybrid)
        stk = await push(biz, amount=700)
        other_amount = confirmation(biz.short_code, amount="701.00")
        other_phone = confirmation(biz.short_code, amount="700.00", msisdn="254722000999")
        assert await apply(await deliver(biz, other_amount)) == "applied"
        assert await apply(await deliver(biz, other_phone)) == "applied"
        assert (await reload(stk.id)).status is PaymentStatus.pending
        assert len(await c2b_payments(biz.tenant.id)) == 2

    async def test_several_pending_pushes_wait_for_their_callbacks_then_the_oldest_is_settled(
        self, server: LiveServer
    ) -> None:
        biz = await c2b_business(billing=BillingMode.hybrid)
        older = await push(biz, amount=700)
        newer = await push(biz, amount=700)
        body = confirmation(biz.short_code, amount="700.00")
        row = await deliver(biz, body)
        with pytest.raises(NotYetMatched):
            await apply(row)
        late = await deliver(biz, body, received_ago=AFTER_GRACE)
        assert await apply(late) == "settled_push"
        assert ((await reload(older.id)).status, (await reload(newer.id)).status) == (
            PaymentStatus.success,
            PaymentStatus.pending,
        )

    async def test_a_masked_number_never_settles_a_push_it_waits_then_stands_alone_flagged(
        self, server: LiveServer
    ) -> None:
        biz = await c2b_business(billing=BillingMode.hybrid)
        stk = await push(biz, amount=700)
        body = confirmation(biz.short_code, amount="700.00", msisdn="2547 ***** 111")
        with pytest.raises(NotYetMatched):
            await apply(await deliver(biz, body))
        assert await apply(await deliver(biz, body, received_ago=AFTER_GRACE)) == "applied"
        assert (await reload(stk.id)).status is PaymentStatus.pending
        [p] = await c2b_payments(biz.tenant.id)
        assert p.flag == (
            f"Recorded as its own payment, though STK push {stk.id} of the same amount from a number showing "
            "the same digits was still waiting for M-Pesa: if both are counted as paid, check your M-Pesa "
            "statement"
        )

    async def test_a_masked_echo_whose_push_callback_came_first_is_a_duplicate(
        self, server: LiveServer
    ) -> None:
        biz = await c2b_business(billing=BillingMode.hybrid)
        stk = await push(biz, amount=700)
        body = confirmation(biz.short_code, amount="700.00", msisdn="2547 ***** 111")
        row = await deliver(biz, body)
        with pytest.raises(NotYetMatched):
            await apply(row)
        await settle(stk, receipt=body["TransID"])  # the STK callback claims the receipt meanwhile
        assert await apply(row) == "duplicate_of_push"
        assert await c2b_payments(biz.tenant.id) == []
