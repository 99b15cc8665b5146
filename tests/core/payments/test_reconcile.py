from __future__ import annotations

from datetime import timedelta

import httpx

from core.customers.service import customers
from core.db import utcnow
from core.payments.models import CallbackInbox, Payment, PaymentStatus
from core.payments.reconcile import resolve_payment
from core.runtime import unit_of_work
from tests.conftest import LiveServer
from tests.core.payments.test_callbacks import pending_payment, process, store, success_body
from tests.support.factories import make_api_key, make_tenant
from tests.support.waiting import wait_for_final


class TestReconciliation:
    async def test_lost_callback_resolved_by_stk_query(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        # 9999: the simulator never calls back; only the scheduled STK query can finish this payment.
        tenant, _ = await make_tenant()
        key = await make_api_key(tenant=tenant)
        r = await client.post(
            "/api/stk-push",
            json={"phone": "0722009999", "amount": 40},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert r.status_code == 201
        final = await wait_for_final(client, key, r.json()["id"], timeout=30)
        assert (final["status"], final["result_code"], final["receipt"]) == ("success", "0", None)
        customers = (await client.get("/api/customers", headers={"Authorization": f"Bearer {key}"})).json()
        assert (customers["items"][0]["paid_count"], customers["items"][0]["paid_total"]) == (1, 40)

    async def test_unknown_to_daraja_backs_off_then_expires(self, server: LiveServer) -> None:
        p = await pending_payment(checkout="ws_CO_daraja_never_heard", amount=5)
        assert await resolve_payment(p.id) is PaymentStatus.pending
        async with unit_of_work() as session:
            row = await session.get(Payment, p.id)
            assert row is not None
            assert row.query_attempts == 1
            assert row.next_check_at is not None and row.next_check_at > utcnow()
            row.created_at = utcnow() - timedelta(seconds=server.settings.EXPIRE_AFTER_SECONDS + 1)
        assert await resolve_payment(p.id) is PaymentStatus.expired
        async with unit_of_work(readonly=True) as session:
            row = await session.get(Payment, p.id)
            assert row is not None
            assert row.result_desc is not None and "expired" in row.result_desc
            assert row.next_check_at is None

    async def test_push_without_checkout_id_expires(self, server: LiveServer) -> None:
        p = await pending_payment(checkout=None, amount=5)
        async with unit_of_work() as session:
            row = await session.get(Payment, p.id)
            assert row is not None
            row.created_at = utcnow() - timedelta(hours=1)
        assert await resolve_payment(p.id) is PaymentStatus.expired

    async def test_final_payment_is_left_alone(self, server: LiveServer) -> None:
        # Finished the real way (Daraja's success callback), so the ledger carries its commission and a
        # later `ledger check` of the whole database finds nothing wrong with it.
        p = await pending_payment(checkout="ws_CO_done_already", amount=5)
        body = success_body("ws_CO_done_already", amount=5.0, phone=int(p.phone), receipt="UKN1DONE01")
        assert await process(await store(p, body)) == "applied"
        assert await resolve_payment(p.id) is PaymentStatus.success
        async with unit_of_work(readonly=True) as session:
            row = await session.get(Payment, p.id)
            assert row is not None and (row.status, row.receipt) == (PaymentStatus.success, "UKN1DONE01")

    async def test_success_after_expiry_is_flagged_not_applied(self, server: LiveServer) -> None:
        p = await pending_payment(checkout="ws_CO_expired_then_paid", amount=35)
        async with unit_of_work() as session:
            row = await session.get(Payment, p.id)
            assert row is not None
            row.created_at = utcnow() - timedelta(seconds=server.settings.EXPIRE_AFTER_SECONDS + 1)
        assert await resolve_payment(p.id) is PaymentStatus.expired
        late = success_body("ws_CO_expired_then_paid", amount=35, phone=254722000111, receipt="UKN1LATEX1")
        inbox_id = await store(p, late)
        assert await process(inbox_id) == "late_success_after_final"
        async with unit_of_work(readonly=True) as session:
            row = await session.get(Payment, p.id)
            assert row is not None
            assert (row.status, row.receipt, row.paid_amount) == (PaymentStatus.expired, None, None)
            assert row.flag is not None and "UKN1LATEX1" in row.flag and "expired" in row.flag
            inbox = await session.get(CallbackInbox, inbox_id)
            assert inbox is not None and inbox.error == row.flag
            c = await customers.get(session, tenant_id=p.tenant_id, mode=p.mode, phone=p.phone)
            assert c is not None and (c.paid_count, c.paid_total) == (0, 0)
        # A replay of the same late callback adds nothing more.
        assert await process(await store(p, late)) == "late_success_after_final"
