"""A success callback for a push whose CheckoutRequestID was never saved (the process died after Daraja
accepted the push, before the second transaction recorded its answer) is adopted by that push when
exactly one matches it by channel, amount and phone; otherwise it stays an orphan and applies nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, text

from core.customers.service import customers
from core.db import Scope, utcnow
from core.payments.callbacks import ORPHAN_AFTER, CallbackNotYetMatched, callbacks
from core.payments.models import CallbackInbox, Payment, PaymentSource, PaymentStatus
from core.payments.reconcile import resolve_payment
from core.payments.service import payments
from core.runtime import runtime, unit_of_work
from core.tenants.models import Tenant
from core.tenants.service import tenants
from tests.conftest import LiveServer
from tests.core.payments.test_callbacks import success_body
from tests.core.payments.test_late_callbacks import callback_url, commission_postings, wait_processed
from tests.support.factories import make_tenant
from tests.support.waiting import wait_until

CALLBACKS = Scope.platform("test: Daraja callbacks")
PHONE = "254722000111"
# Received this long ago, a callback that matches nothing is an orphan rather than retried.
AFTER_GRACE = ORPHAN_AFTER + timedelta(minutes=1)


async def unanswered_push(
    tenant: Tenant, *, amount: int, phone: str = PHONE, age: timedelta = timedelta(0), pushed: bool = True
) -> Payment:
    """A push recorded the way core/payments/push.py records it (pending, `pushed_at` set, committed
    before Daraja is called) and then left as it was: the process died before Daraja's answer, its
    CheckoutRequestID, was saved. `pushed=False`: a deferred push whose job never called Daraja."""
    async with unit_of_work(scope=Scope.tenant(tenant.id)) as session:
        channel = await tenants.get_channel(session, tenant.id)
        assert channel is not None
        payment, created = await payments.create_pending(
            session,
            tenant=tenant,
            channel=channel,
            phone=phone,
            amount=amount,
            source=PaymentSource.api,
            settings=runtime().settings,
        )
        assert created
        payment.created_at = payment.created_at - age
        payment.pushed_at = payment.created_at if pushed else None
    return payment


def masked(body: bytes, phone: str) -> bytes:
    """The same callback with PhoneNumber as Safaricom's masking may send it."""
    data = json.loads(body)
    for item in data["Body"]["stkCallback"]["CallbackMetadata"]["Item"]:
        if item["Name"] == "PhoneNumber":
            item["Value"] = phone
    return json.dumps(data).encode()


def failure_body(checkout_id: str) -> bytes:
    return json.dumps(
        {
            "Body": {
                "stkCallback": {
                    "MerchantRequestID": "29115-34620561-2",
                    "CheckoutRequestID": checkout_id,
                    "ResultCode": 1032,
                    "ResultDesc": "Request cancelled by user",
                }
            }
        }
    ).encode()


async def deliver(payment: Payment, body: bytes, *, received_ago: timedelta = timedelta(0)) -> int:
    """Store a callback for the payment's channel as the callback route does, received `received_ago`."""
    async with unit_of_work(scope=CALLBACKS) as session:
        row = CallbackInbox(
            channel_id=payment.channel_id,
            checkout_request_id=None,
            payload=body.decode(),
            received_at=utcnow() - received_ago,
        )
        session.add(row)
        await session.flush()
        return row.id


async def later(inbox_id: int, *pushes: Payment, by: timedelta = AFTER_GRACE) -> None:
    """As if the callback and the pushes had all come `by` earlier: past the grace period now."""
    async with unit_of_work(scope=CALLBACKS) as session:
        row = await session.get(CallbackInbox, inbox_id)
        assert row is not None
        row.received_at -= by
        for push in pushes:
            p = await session.get(Payment, push.id)
            assert p is not None and p.pushed_at is not None
            p.created_at -= by
            p.pushed_at -= by


async def apply(inbox_id: int) -> str:
    """What the payments.process_callback job does with one stored callback."""
    async with unit_of_work(scope=CALLBACKS) as session:
        return await callbacks.process(session, inbox_id=inbox_id, settings=runtime().settings)


async def inbox(inbox_id: int) -> CallbackInbox:
    async with unit_of_work(readonly=True, scope=CALLBACKS) as session:
        row = await session.get(CallbackInbox, inbox_id)
        assert row is not None
        return row


async def reload(payment: Payment) -> Payment:
    async with unit_of_work(readonly=True, scope=Scope.tenant(payment.tenant_id)) as session:
        row = await session.get(Payment, payment.id)
        assert row is not None
        return row


async def paid_totals(payment: Payment) -> tuple[int, int, int]:
    async with unit_of_work(readonly=True, scope=Scope.tenant(payment.tenant_id)) as session:
        c = await customers.get(session, tenant_id=payment.tenant_id, mode=payment.mode, phone=payment.phone)
        assert c is not None
        return c.paid_count, c.paid_total, c.requested_count


def new_ids() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8].upper()
    return f"ws_CO_adopt_{tag}", f"UKA{tag[:7]}"


class TestAdoption:
    async def test_success_callback_is_adopted_by_the_push_that_lost_its_id_once(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant()
        push = await unanswered_push(tenant, amount=150)
        cid, receipt = new_ids()
        body = success_body(cid, amount=150.0, phone=int(PHONE), receipt=receipt)

        # Over HTTP, processed by the real worker, as Daraja would deliver it.
        r = await client.post(await callback_url(tenant.id), content=body)
        assert r.status_code == 200
        [row] = await wait_processed(cid, 1)
        assert (row.outcome, row.error) == (
            "adopted",
            f"payment {push.id}: its CheckoutRequestID had not been saved, so this callback was matched "
            "to it by amount (KES 150) and phone",
        )
        p = await reload(push)
        assert (p.status, p.checkout_request_id, p.merchant_request_id, p.receipt, p.paid_amount) == (
            PaymentStatus.success,
            cid,
            "29115-34620561-1",
            receipt,
            150,
        )
        assert (p.flag, p.next_check_at) == (None, None)
        assert await paid_totals(push) == (1, 150, 1)
        assert await commission_postings(push.id) == 1

        # The same callback again finds the payment by its id now: a duplicate, nothing counted twice.
        r = await client.post(await callback_url(tenant.id), content=body)
        assert r.status_code == 200
        rows = await wait_processed(cid, 2)
        assert [(x.outcome, x.error) for x in rows[1:]] == [("duplicate", None)]
        again = await reload(push)
        assert (again.status, again.receipt, again.completed_at) == (
            PaymentStatus.success,
            receipt,
            p.completed_at,
        )
        assert await paid_totals(push) == (1, 150, 1)
        assert await commission_postings(push.id) == 1

    async def test_masked_phone_is_matched_on_the_digits_it_shows(self, server: LiveServer) -> None:
        tenant, _ = await make_tenant()
        push = await unanswered_push(tenant, amount=70)
        other = await unanswered_push(tenant, amount=70, phone="254722999888")
        cid, receipt = new_ids()
        body = masked(success_body(cid, amount=70, phone=0, receipt=receipt), "2547 ***** 111")
        assert await apply(await deliver(push, body)) == "adopted"
        p, o = await reload(push), await reload(other)
        assert (p.status, p.checkout_request_id, p.receipt) == (PaymentStatus.success, cid, receipt)
        assert (o.status, o.checkout_request_id) == (PaymentStatus.pending, None)

    async def test_concurrent_deliveries_adopt_once(self, server: LiveServer) -> None:
        tenant, _ = await make_tenant()
        push = await unanswered_push(tenant, amount=95)
        cid, receipt = new_ids()
        body = success_body(cid, amount=95, phone=int(PHONE), receipt=receipt)
        ids = [await deliver(push, body) for _ in range(5)]
        outcomes = await asyncio.gather(*(apply(i) for i in ids))
        assert sorted(outcomes) == ["adopted", "duplicate", "duplicate", "duplicate", "duplicate"]
        p = await reload(push)
        assert (p.status, p.checkout_request_id, p.receipt) == (PaymentStatus.success, cid, receipt)
        assert await paid_totals(push) == (1, 95, 1)
        assert await commission_postings(push.id) == 1

    async def test_two_callbacks_racing_for_one_push_adopt_one(self, server: LiveServer) -> None:
        tenant, _ = await make_tenant()
        push = await unanswered_push(tenant, amount=96, age=AFTER_GRACE + timedelta(seconds=10))
        (cid1, receipt1), (cid2, receipt2) = new_ids(), new_ids()
        first = await deliver(
            push, success_body(cid1, amount=96, phone=int(PHONE), receipt=receipt1), received_ago=AFTER_GRACE
        )
        second = await deliver(
            push, success_body(cid2, amount=96, phone=int(PHONE), receipt=receipt2), received_ago=AFTER_GRACE
        )
        outcomes = dict(zip((first, second), await asyncio.gather(apply(first), apply(second)), strict=True))
        assert sorted(outcomes.values()) == ["adopted", "orphan"]
        won = cid1 if outcomes[first] == "adopted" else cid2
        lost = await inbox(second if won == cid1 else first)
        assert lost.error == (
            "no payment of this channel has this CheckoutRequestID, and no push without one matches KES 96 "
            "from 2547****0111"
        )
        p = await reload(push)
        assert (p.status, p.checkout_request_id) == (PaymentStatus.success, won)
        assert await paid_totals(push) == (1, 96, 1)
        assert await commission_postings(push.id) == 1

    async def test_push_answered_meanwhile_keeps_its_callback(self, server: LiveServer) -> None:
        # Two pushes lost their id; one's own answer is being saved while the callback looks for a match.
        # The callback is that push's: the other one is never given its CheckoutRequestID (on Postgres the
        # unique id refuses the adoption, inside a savepoint: no error, no retry).
        tenant, _ = await make_tenant()
        owner = await unanswered_push(tenant, amount=97)
        other = await unanswered_push(tenant, amount=97)
        cid, receipt = new_ids()
        inbox_id = await deliver(owner, success_body(cid, amount=97, phone=int(PHONE), receipt=receipt))
        rt = runtime()
        async with unit_of_work(scope=Scope.tenant(tenant.id)) as session:
            await payments.record_accepted(
                session,
                payment_id=owner.id,
                merchant_request_id="29115-34620561-1",
                checkout_request_id=cid,
                check_after=timedelta(seconds=60),
            )
            await session.flush()
            task = asyncio.create_task(apply(inbox_id))
            if not rt.db.is_sqlite:
                await wait_for_lock_wait()
        assert await task == "applied"
        o, x = await reload(owner), await reload(other)
        assert (o.status, o.checkout_request_id, o.receipt) == (PaymentStatus.success, cid, receipt)
        assert (x.status, x.checkout_request_id, x.merchant_request_id) == (PaymentStatus.pending, None, None)
        assert (await inbox(inbox_id)).error is None


async def wait_for_lock_wait() -> None:
    """Until a callback transaction waits for a payment row another transaction holds."""

    async def waiting() -> bool:
        async with unit_of_work(readonly=True, scope=Scope.none()) as session:
            n = await session.scalar(
                text(
                    # The query text is cut at 1 KB, before its FOR UPDATE.
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE 'SELECT payments.id, %'"
                )
            )
            return bool(n)

    await wait_until(waiting, timeout=10, interval=0.05)


class TestNoAdoption:
    async def test_several_matching_pushes_are_ambiguous(self, server: LiveServer) -> None:
        tenant, _ = await make_tenant()
        a = await unanswered_push(tenant, amount=120)
        b = await unanswered_push(tenant, amount=120)
        cid, receipt = new_ids()
        inbox_id = await deliver(a, success_body(cid, amount=120, phone=int(PHONE), receipt=receipt))
        # Within the grace period our own record of the id may still come: retried, not decided.
        with pytest.raises(CallbackNotYetMatched):
            await apply(inbox_id)
        await later(inbox_id, a, b)
        assert await apply(inbox_id) == "orphan"
        assert (await inbox(inbox_id)).error == (
            "ambiguous: 2 pending payments match KES 120 from 2547****0111 without a CheckoutRequestID, "
            "so none was chosen: check them against your M-Pesa statement"
        )
        for p in (await reload(a), await reload(b)):
            assert (p.status, p.checkout_request_id, p.receipt, p.flag) == (
                PaymentStatus.pending,
                None,
                None,
                None,
            )
        assert await paid_totals(a) == (0, 0, 2)
        assert await commission_postings(a.id) == await commission_postings(b.id) == 0

    async def test_amount_mismatch_stays_orphan(self, server: LiveServer) -> None:
        tenant, _ = await make_tenant()
        push = await unanswered_push(tenant, amount=150, age=AFTER_GRACE + timedelta(seconds=10))
        cid, receipt = new_ids()
        body = success_body(cid, amount=151, phone=int(PHONE), receipt=receipt)
        inbox_id = await deliver(push, body, received_ago=AFTER_GRACE)
        assert await apply(inbox_id) == "orphan"
        assert (await inbox(inbox_id)).error == (
            "no payment of this channel has this CheckoutRequestID, and no push without one matches "
            "KES 151 from 2547****0111"
        )
        p = await reload(push)
        assert (p.status, p.checkout_request_id, p.receipt, p.flag) == (
            PaymentStatus.pending,
            None,
            None,
            None,
        )
        assert await paid_totals(push) == (0, 0, 1)

    async def test_push_never_sent_to_daraja_is_not_adopted(self, server: LiveServer) -> None:
        # A deferred push whose job never ran prompted nobody: it cannot be what the callback answers.
        tenant, _ = await make_tenant()
        push = await unanswered_push(tenant, amount=77, age=AFTER_GRACE + timedelta(seconds=10), pushed=False)
        cid, receipt = new_ids()
        inbox_id = await deliver(
            push, success_body(cid, amount=77, phone=int(PHONE), receipt=receipt), received_ago=AFTER_GRACE
        )
        assert await apply(inbox_id) == "orphan"
        p = await reload(push)
        assert (p.status, p.checkout_request_id) == (PaymentStatus.pending, None)

    async def test_masked_phone_showing_other_digits_stays_orphan(self, server: LiveServer) -> None:
        tenant, _ = await make_tenant()
        push = await unanswered_push(tenant, amount=71, age=AFTER_GRACE + timedelta(seconds=10))
        cid, receipt = new_ids()
        body = masked(success_body(cid, amount=71, phone=0, receipt=receipt), "2547 ***** 112")
        assert await apply(await deliver(push, body, received_ago=AFTER_GRACE)) == "orphan"
        assert (await reload(push)).status is PaymentStatus.pending

    async def test_failure_callback_for_an_unknown_id_stays_orphan(self, server: LiveServer) -> None:
        tenant, _ = await make_tenant()
        push = await unanswered_push(tenant, amount=80)
        cid, _ = new_ids()
        inbox_id = await deliver(push, failure_body(cid))
        with pytest.raises(CallbackNotYetMatched):
            await apply(inbox_id)
        await later(inbox_id, push)
        assert await apply(inbox_id) == "orphan"
        assert (await inbox(inbox_id)).error == "no payment of this channel has this CheckoutRequestID"
        p = await reload(push)
        assert (p.status, p.checkout_request_id, p.result_code) == (PaymentStatus.pending, None, None)


class TestAfterExpiry:
    async def test_success_for_an_expired_push_flags_it_and_changes_nothing_else(
        self, server: LiveServer
    ) -> None:
        tenant, _ = await make_tenant()
        # Older than EXPIRE_AFTER_SECONDS (60 s in tests): nothing could be queried, so it expired.
        push = await unanswered_push(
            tenant, amount=130, age=timedelta(seconds=server.settings.EXPIRE_AFTER_SECONDS + 30)
        )
        assert await resolve_payment(push.id) is PaymentStatus.expired
        expired = await reload(push)
        assert expired.result_desc == (
            "The request to M-Pesa was interrupted before its answer was saved, so its result could not be "
            "checked and it expired. If the customer was charged, M-Pesa's report will be matched to this "
            "payment and flagged here; you can also check your M-Pesa statement."
        )

        cid, receipt = new_ids()
        body = success_body(cid, amount=130, phone=int(PHONE), receipt=receipt)
        inbox_id = await deliver(push, body)
        assert await apply(inbox_id) == "late_success_after_final"
        p = await reload(push)
        note = (
            f"M-Pesa reported KES 130 (receipt {receipt}) as paid after this request was marked expired: "
            "check your M-Pesa statement before asking the customer to pay again"
        )
        assert (p.status, p.receipt, p.paid_amount, p.result_desc, p.completed_at) == (
            PaymentStatus.expired,
            None,
            None,
            expired.result_desc,
            expired.completed_at,
        )
        assert (p.flag, p.checkout_request_id) == (note, cid)
        assert (await inbox(inbox_id)).error == (
            f"payment {push.id} (matched by amount and phone: its CheckoutRequestID had not been saved): "
            + note
        )
        assert await paid_totals(push) == (0, 0, 1)
        assert await commission_postings(push.id) == 0

        # Delivered again, it is found by the id it gave the payment: still flagged once, nothing applied.
        again = await deliver(push, body)
        assert await apply(again) == "late_success_after_final"
        p = await reload(push)
        assert (p.status, p.flag, p.receipt) == (PaymentStatus.expired, note, None)
        assert await paid_totals(push) == (0, 0, 1)
        async with unit_of_work(readonly=True, scope=CALLBACKS) as session:
            n = await session.scalar(
                select(func.count())
                .select_from(CallbackInbox)
                .where(CallbackInbox.checkout_request_id == cid)
            )
            assert n == 2
