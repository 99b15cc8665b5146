from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from core.billing.commission import commission_cents, percent_to_bps
from core.billing.integrity import check_all
from core.billing.invoices import invoices
from core.errors import InvalidInput
from core.ledger.models import AccountKind, Transfer
from core.notify.models import Notification
from core.runtime import runtime, unit_of_work
from core.tenants.models import BillingMode, Tenant
from core.tenants.service import tenants
from tests.conftest import LiveServer
from tests.support.factories import (
    account_balance,
    fund_wallet,
    make_api_key,
    make_tenant,
    set_billing,
    wallet_state,
)
from tests.support.waiting import wait_for_final, wait_until


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class TestRounding:
    @pytest.mark.parametrize(
        ("amount", "bps", "cents"),
        [
            (150, 100, 150),
            (1, 150, 2),
            (1, 149, 1),
            (1, 50, 1),
            (1, 49, 0),
            (250_000, 100, 250_000),
            (7, 33, 2),
            (10, 0, 0),
        ],
    )
    def test_half_up_to_the_cent(self, amount: int, bps: int, cents: int) -> None:
        assert commission_cents(amount, bps) == cents

    @pytest.mark.parametrize(
        ("text", "bps"), [("1", 100), ("1.5", 150), ("0.01", 1), ("0", 0), ("100", 10_000)]
    )
    def test_percent(self, text: str, bps: int) -> None:
        assert percent_to_bps(text) == bps

    @pytest.mark.parametrize("text", ["1.555", "-1", "101", "abc"])
    def test_bad_percent(self, text: str) -> None:
        with pytest.raises(InvalidInput):
            percent_to_bps(text)


async def push(client: httpx.AsyncClient, key: str, phone: str, amount: int) -> httpx.Response:
    return await client.post("/api/stk-push", json={"phone": phone, "amount": amount}, headers=bearer(key))


async def problems(tenant: Tenant) -> list[str]:
    """What `ledger check` finds wrong with this test's business (not other tests': whatever they left
    in the shared database is theirs to answer for)."""
    async with unit_of_work(readonly=True) as session:
        return [f"{p.what}: {p.detail}" for p in await check_all(session, tenant_id=tenant.id)]


class TestWalletMode:
    async def test_success_takes_commission_off_the_wallet(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant()
        await set_billing(tenant, mode=BillingMode.wallet, bps=100)
        await fund_wallet(tenant, 1_000)
        key = await make_api_key(tenant=tenant)
        r = await push(client, key, "0722000111", 150)
        assert r.status_code == 201, r.text
        assert await wallet_state(tenant) == (1_000, 150)  # held while in flight
        await wait_for_final(client, key, r.json()["id"])
        assert await wallet_state(tenant) == (850, 0)
        assert await account_balance(tenant, AccountKind.revenue) == 150
        w = (await client.get("/api/wallet", headers=bearer(key))).json()
        assert (w["balance_cents"], w["month_to_date_commission_cents"], w["commission_percent"]) == (
            850,
            150,
            "1%",
        )
        d = (await client.get("/api/dashboard", headers=bearer(key))).json()
        assert (
            d["commission_deducted_cents"],
            d["commission_from_wallet_cents"],
            d["commission_owed_cents"],
            d["wallet_balance_cents"],
        ) == (150, 150, 0, 850)
        assert await problems(tenant) == []

    async def test_push_refused_when_wallet_cannot_cover(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant()
        await set_billing(tenant, mode=BillingMode.wallet, bps=100)
        await fund_wallet(tenant, 100)
        key = await make_api_key(tenant=tenant)
        r = await push(client, key, "0722000111", 150)
        assert r.status_code == 402
        body = r.json()
        assert body["error"] == "insufficient_wallet_balance"
        assert "KES 1.00" in body["detail"] and "KES 1.50" in body["detail"] and "Top up" in body["detail"]
        assert (await client.get("/api/transactions", headers=bearer(key))).json()["items"] == []
        assert (await client.get("/api/customers", headers=bearer(key))).json()["total"] == 0
        assert await wallet_state(tenant) == (100, 0)

    async def test_failed_payment_releases_the_hold(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant()
        await set_billing(tenant, mode=BillingMode.wallet, bps=100)
        await fund_wallet(tenant, 1_000)
        key = await make_api_key(tenant=tenant)
        r = await push(client, key, "0722001032", 300)
        assert await wallet_state(tenant) == (1_000, 300)
        final = await wait_for_final(client, key, r.json()["id"])
        assert final["status"] == "cancelled"
        assert await wallet_state(tenant) == (1_000, 0)
        assert await account_balance(tenant, AccountKind.revenue) == 0

    async def test_concurrent_pushes_never_go_below_the_floor(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant()
        await set_billing(tenant, mode=BillingMode.wallet, bps=100, floor_cents=100)
        await fund_wallet(tenant, 1_000)  # spendable 900: six pushes of KES 150 (150 cents each)
        key = await make_api_key(tenant=tenant)
        responses = await asyncio.gather(*(push(client, key, f"07221{i:02d}555", 150) for i in range(20)))
        codes = sorted(r.status_code for r in responses)
        assert codes == [201] * 6 + [402] * 14
        for r in responses:
            if r.status_code == 201:
                await wait_for_final(client, key, r.json()["id"])
        assert await wallet_state(tenant) == (100, 0)
        assert await problems(tenant) == []

    async def test_rate_is_the_one_in_force_at_creation(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant()
        await set_billing(tenant, mode=BillingMode.wallet, bps=100)
        await fund_wallet(tenant, 10_000)
        key = await make_api_key(tenant=tenant)
        r = await push(client, key, "0722009999", 1_000)  # resolved later by reconciliation
        await set_billing(tenant, bps=300)
        await wait_for_final(client, key, r.json()["id"], timeout=30)
        assert await wallet_state(tenant) == (10_000 - 1_000, 0)


class TestHybridAndInvoice:
    async def test_hybrid_wallet_first_rest_on_invoice(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant()
        await set_billing(tenant, mode=BillingMode.hybrid, bps=100)
        await fund_wallet(tenant, 100)
        key = await make_api_key(tenant=tenant)
        r = await push(client, key, "0722000111", 150)
        assert r.status_code == 201
        await wait_for_final(client, key, r.json()["id"])
        assert await wallet_state(tenant) == (0, 0)
        assert await account_balance(tenant, AccountKind.receivable) == -50
        assert await account_balance(tenant, AccountKind.revenue) == 150
        w = (await client.get("/api/wallet", headers=bearer(key))).json()
        assert w["owed_on_invoice_cents"] == 50

        async def split() -> tuple[int, int, int]:
            d = (await client.get("/api/dashboard", headers=bearer(key))).json()
            return (
                d["commission_deducted_cents"],
                d["commission_from_wallet_cents"],
                d["commission_owed_cents"],
            )

        # KES 1.50: KES 1 from the wallet, KES 0.50 owed on the invoice, still owed once invoiced,
        # and nothing owed once that invoice is paid
        assert await split() == (150, 100, 50)
        async with unit_of_work() as session:
            invoice = await invoices.issue_for(
                session,
                tenant=await tenants.get(session, tenant.id),
                now=datetime.now(UTC) + timedelta(days=40),
                settings=runtime().settings,
            )
            assert invoice is not None and invoice.total_cents == 50
            invoice_id = invoice.id
        assert await split() == (150, 100, 50)
        async with unit_of_work() as session:
            await invoices.mark_paid(session, invoice_id=invoice_id, by=None, settings=runtime().settings)
        assert await split() == (150, 100, 0)

    async def test_invoice_mode_accrues_everything(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant()
        await set_billing(tenant, mode=BillingMode.invoice, bps=250)
        await fund_wallet(tenant, 5_000)
        key = await make_api_key(tenant=tenant)
        r = await push(client, key, "0722000111", 99)
        await wait_for_final(client, key, r.json()["id"])
        assert await wallet_state(tenant) == (5_000, 0)
        assert await account_balance(tenant, AccountKind.receivable) == -248  # 99 × 2.5 % = 247.5 → 248


class TestConcurrentCallbacks:
    async def test_200_concurrent_successes_and_duplicates_post_exactly_once(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        from tests.core.payments.test_callbacks import success_body

        tenant, _ = await make_tenant(plan="founding")  # 400 live pushes: more than Free's month
        await set_billing(tenant, mode=BillingMode.wallet, bps=100)
        start = 1_000_000
        await fund_wallet(tenant, start)
        # 200 pending pushes whose callbacks never come on their own (…9999), then 200 success
        # callbacks at once through the real endpoint, each also duplicated.
        # One key may start STK_PUSHES_PER_KEY_PER_MINUTE pushes a minute: enough keys for 200 at once.
        per_key = server.settings.STK_PUSHES_PER_KEY_PER_MINUTE
        keys = [await make_api_key(tenant=tenant) for _ in range(-(-200 // per_key))]
        created = await asyncio.gather(
            *(push(client, keys[i % len(keys)], f"072{i:03d}9999", 100 + i) for i in range(200))
        )
        assert all(r.status_code == 201 for r in created), [r.text for r in created if r.status_code != 201][
            :2
        ]
        async with unit_of_work(readonly=True) as session:
            from core.tenants.service import tenants

            channel = await tenants.get_channel(session, tenant.id)
            assert channel is not None
            token = channel.callback_token
        bodies = [
            success_body(
                p.json()["checkout_request_id"],
                amount=float(p.json()["amount"]),
                phone=int(p.json()["phone"]),
                receipt=f"UKC{i:07d}",
            )
            for i, p in enumerate(created)
        ]
        sem = asyncio.Semaphore(50)

        async def deliver(body: bytes) -> int:
            async with sem:
                resp = await client.post(
                    f"/callbacks/daraja/{token}", content=body, headers={"content-type": "application/json"}
                )
                return resp.status_code

        statuses = await asyncio.gather(*(deliver(b) for b in bodies + bodies))
        assert statuses == [200] * 400
        for p in created:
            await wait_for_final(client, keys[0], p.json()["id"])
        expected = sum(commission_cents(100 + i, 100) for i in range(200))
        assert await wallet_state(tenant) == (start - expected, 0)
        async with unit_of_work(readonly=True) as session:
            n = await session.scalar(
                select(func.count())
                .select_from(Transfer)
                .where(Transfer.tenant_id == tenant.id, Transfer.kind == "commission.wallet")
            )
        assert n == 200
        assert await problems(tenant) == []


class TestLowBalanceAlert:
    async def alerts(self, tenant_id: object) -> int:
        async with unit_of_work(readonly=True) as session:
            return int(
                await session.scalar(
                    select(func.count())
                    .select_from(Notification)
                    .where(Notification.tenant_id == tenant_id, Notification.kind == "wallet.low_balance")
                )
                or 0
            )

    async def test_one_alert_per_crossing(self, server: LiveServer, client: httpx.AsyncClient) -> None:
        tenant, _ = await make_tenant()
        await set_billing(tenant, mode=BillingMode.wallet, bps=100, threshold_cents=500)
        await fund_wallet(tenant, 700)
        key = await make_api_key(tenant=tenant)
        for _ in range(3):  # 700 → 550 → 400 (crosses) → 250
            r = await push(client, key, "0722000111", 150)
            await wait_for_final(client, key, r.json()["id"])
        assert await wallet_state(tenant) == (250, 0)
        assert await self.alerts(tenant.id) == 1
        await fund_wallet(tenant, 1_000)  # back above: re-armed, no alert
        assert await self.alerts(tenant.id) == 1
        await fund_wallet(tenant, -900, reason="test debit")  # 1250 → 350: crosses again
        assert await self.alerts(tenant.id) == 2
        async with unit_of_work(readonly=True) as session:
            note = await session.scalar(
                select(Notification)
                .where(Notification.tenant_id == tenant.id)
                .order_by(Notification.id.desc())
            )
        assert note is not None
        assert (note.channel.value, note.recipient) == ("sms", "254712345678")
        assert "KES 3.50" in note.body and "KES 5.00" in note.body

        async def sent() -> bool:
            async with unit_of_work(readonly=True) as session:
                row = await session.get(Notification, note.id)
                return row is not None and row.status.value == "sent" and row.provider_message_id is not None

        await wait_until(sent)  # through the Africa's Talking stand-in
