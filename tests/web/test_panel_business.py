"""The business view over HTTP: dashboard figures, transactions, the customer book and its Excel export,
wallet with top-up and alert level, invoices; roles, other tenants' ids and impersonation."""

from __future__ import annotations

import html
import io
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
from openpyxl import load_workbook
from sqlalchemy import func, select

from core.audit.models import AuditLog
from core.auth.models import Role, User
from core.billing.invoices import invoices
from core.payments.models import Payment, PaymentSource
from core.payments.push import request_stk_push
from core.runtime import runtime, unit_of_work
from core.tenants.models import BillingMode, InvoicePeriod, Tenant
from core.tenants.service import tenants
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant, make_user, set_billing
from tests.support.panel import admin_client, business_client, csrf_of, form_post, rows_of, text_of
from tests.support.waiting import wait_for_final, wait_until
from web.panel.templating import EAT


@asynccontextmanager
async def signed_in(server: LiveServer, user: User | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """A panel client signed in as `user` (a new platform admin when None), closed afterwards."""
    if user is None:
        client, _ = await admin_client(server.url)
    else:
        client = await business_client(server.url, user)
    try:
        yield client
    finally:
        await client.aclose()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def pay(client: httpx.AsyncClient, key: str, phone: str, amount: int, name: str | None = None) -> str:
    body: dict[str, object] = {"phone": phone, "amount": amount}
    if name:
        body["name"] = name
    r = await client.post("/api/stk-push", json=body, headers=bearer(key))
    assert r.status_code == 201, r.text
    return str((await wait_for_final(client, key, r.json()["id"]))["id"])


async def topups_of(tenant: Tenant) -> int:
    async with unit_of_work(readonly=True) as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(Payment)
                .where(Payment.tenant_id == tenant.id, Payment.source == PaymentSource.topup)
            )
            or 0
        )


async def audit_rows(tenant: Tenant, action: str) -> list[AuditLog]:
    async with unit_of_work(readonly=True) as session:
        return list(
            await session.scalars(
                select(AuditLog)
                .where(AuditLog.tenant_id == tenant.id, AuditLog.action == action)
                .order_by(AuditLog.id)
            )
        )


async def threshold_cents(tenant: Tenant) -> int | None:
    async with unit_of_work(readonly=True) as session:
        return (await tenants.get(session, tenant.id)).low_balance_threshold_cents


class TestDashboard:
    async def test_figures_match_the_payments(self, server: LiveServer, client: httpx.AsyncClient) -> None:
        tenant, owner = await make_tenant(name="Stats Duka")
        key = await make_api_key(tenant=tenant)
        await pay(client, key, "0722000111", 1250, "Wanjiru")
        await pay(client, key, "0722000222", 300, "Otieno")
        await pay(client, key, "0722001032", 500)  # cancelled by the customer
        api = (await client.get("/api/dashboard", headers=bearer(key))).json()
        # 1% of KES 1,550; a new business bills hybrid and its wallet is empty, so all of it is owed
        assert (
            api["commission_deducted_cents"],
            api["commission_from_wallet_cents"],
            api["commission_owed_cents"],
        ) == (1_550, 0, 1_550)

        async with signed_in(server, owner) as panel:
            page = await panel.get("/app")
        assert page.status_code == 200
        assert "<h1>Stats Duka</h1>" in page.text
        assert text_of(page.text, "stat-total") == "KES 1,550"
        assert text_of(page.text, "stat-transactions") == "3"
        assert text_of(page.text, "stat-ratio") == "2 / 1"
        assert "67% paid" in page.text
        assert text_of(page.text, "stat-commission-wallet") == "KES 0"
        assert text_of(page.text, "stat-commission-owed") == "KES 15.50"
        assert "Commission deducted" not in page.text
        assert text_of(page.text, "stat-wallet") == "KES 0"
        # the 30-day chart: 30 bars, today's holds everything; its table says the same
        assert page.text.count("<rect ") == 30
        today = datetime.now(UTC).astimezone(EAT).strftime("%d %b %Y")
        assert rows_of(page.text, "daily-table") == [[today, "KES 1,550", "2", "1"]]
        assert f"{today[:6]}: KES 1,550</title>" in page.text
        recent = rows_of(page.text, "recent-customers")
        assert sorted((r[0], r[1], r[2]) for r in recent) == [
            ("Otieno", "0722 000 222", "KES 300"),
            ("Wanjiru", "0722 000 111", "KES 1,250"),
            ("–", "0722 001 032", "KES 0"),
        ]
        assert "notice bad" not in page.text  # an active business has nothing to be told

    async def test_suspension_and_onboarding_notices(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Held Duka")
        async with unit_of_work() as session:
            row = await tenants.get(session, tenant.id)
            row.status, row.status_reason = row.status.suspended, "unpaid invoice INV-7"
        async with signed_in(server, owner) as panel:
            page = await panel.get("/app")
        assert page.status_code == 200
        assert "This business is suspended." in page.text
        assert "Payments cannot be requested from any channel: unpaid invoice INV-7" in page.text

        _, new_owner = await make_tenant(name="New Duka", with_channel=False)
        async with signed_in(server, new_owner) as panel:
            page = await panel.get("/app")
        assert "Setup is not finished." in page.text and 'href="/app/settings"' in page.text


class TestTransactions:
    async def test_filters_pages_detail_and_other_tenants(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, owner = await make_tenant(name="Ledger Duka")
        key = await make_api_key(tenant=tenant)
        paid = await pay(client, key, "0722000111", 1250, "Wanjiru")
        cancelled = await pay(client, key, "0722001032", 500)
        other, _ = await make_tenant(name="Other Duka")
        other_key = await make_api_key(tenant=other)
        foreign = await pay(client, other_key, "0722000555", 40)

        async with signed_in(server, owner) as panel:
            page = await panel.get("/app/transactions")
            assert page.status_code == 200
            rows = rows_of(page.text, "transactions")
            assert [(r[1], r[3], r[4]) for r in rows] == [
                ("0722 001 032", "KES 500", "cancelled"),
                ("0722 000 111", "KES 1,250", "success"),
            ]
            only = await panel.get("/app/transactions", params={"status": "cancelled"})
            assert [r[3] for r in rows_of(only.text, "transactions")] == ["KES 500"]
            by_phone = await panel.get("/app/transactions", params={"phone": "0722 000 111"})
            assert [r[2] for r in rows_of(by_phone.text, "transactions")] == ["Wanjiru"]
            tomorrow = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
            later = await panel.get("/app/transactions", params={"from": tomorrow})
            assert later.status_code == 200 and "No payments match these filters." in later.text
            source = await panel.get("/app/transactions", params={"source": "topup"})
            assert "No payments match these filters." in source.text
            bad = await panel.get("/app/transactions", params={"from": "31/12/2025", "status": "lost"})
            assert bad.status_code == 422
            assert text_of(bad.text, "from-error") == "Use a date like 2025-03-31."
            assert text_of(bad.text, "status-error") == "Choose a status from the list."
            tampered = await panel.get("/app/transactions", params={"cursor": "nonsense"})
            assert tampered.status_code == 422 and "This cursor is not valid" in tampered.text

            detail = await panel.get(f"/app/transactions/{paid}")
            assert detail.status_code == 200
            facts = text_of(detail.text, "payment-facts")
            assert "Amount KES 1,250" in facts and "Customer Wanjiru" in facts
            assert "Commission KES 12.50 (1%)" in facts and 'href="/app/transactions"' in detail.text
            failed = await panel.get(f"/app/transactions/{cancelled}")
            facts = text_of(failed.text, "payment-facts")
            assert "Result The customer cancelled" in facts and "(code 1032)" in facts
            assert "Commission" not in facts  # nothing is charged on an unpaid payment
            for missing in (foreign, str(uuid.uuid4())):
                r = await panel.get(f"/app/transactions/{missing}")
                assert r.status_code == 404 and "No such transaction." in r.text
            assert (await panel.get("/app/transactions/not-an-id")).status_code == 404

    async def test_keyset_pages(self, server: LiveServer, client: httpx.AsyncClient) -> None:
        tenant, owner = await make_tenant(name="Busy Duka")
        key = await make_api_key(tenant=tenant)
        for i in range(27):
            r = await client.post(
                # A phone each: one phone gets at most STK_PUSHES_PER_PHONE_PER_MINUTE prompts a minute.
                "/api/stk-push", json={"phone": f"07220{i:05d}", "amount": 10 + i}, headers=bearer(key)
            )
            assert r.status_code == 201
        async with signed_in(server, owner) as panel:
            first = await panel.get("/app/transactions")
            amounts = [r[3] for r in rows_of(first.text, "transactions")]
            assert amounts == [f"KES {a}" for a in range(36, 11, -1)]
            older = re.search(r'<a href="([^"]+)" rel="next">Older', first.text)
            assert older and "← Newest" not in first.text
            second = await panel.get(html.unescape(older.group(1)))
            assert [r[3] for r in rows_of(second.text, "transactions")] == ["KES 11", "KES 10"]
            assert 'rel="next"' not in second.text and "← Newest" in second.text


class TestCashier:
    async def test_cashier_sees_only_their_own(self, server: LiveServer, client: httpx.AsyncClient) -> None:
        tenant, _ = await make_tenant(name="Till Duka")
        cashier = await make_user(tenant=tenant, role=Role.cashier)
        key = await make_api_key(tenant=tenant)
        owners = await pay(client, key, "0722000111", 1250)
        mine = await request_stk_push(
            tenant_id=tenant.id,
            phone="254722000444",
            amount=77,
            source=PaymentSource.telegram,
            initiated_by=cashier.id,
        )
        await wait_for_final(client, key, str(mine.id))
        async with signed_in(server, cashier) as panel:
            home = await panel.get("/app")
            assert home.status_code == 200
            assert text_of(home.text, "stat-total") == "KES 77"
            assert text_of(home.text, "stat-transactions") == "1"
            assert "stat-wallet" not in home.text and "stat-commission" not in home.text
            assert "recent-customers" not in home.text
            assert [r[2] for r in rows_of(home.text, "recent-payments")] == ["KES 77"]
            listed = await panel.get("/app/transactions")
            assert [r[3] for r in rows_of(listed.text, "transactions")] == ["KES 77"]
            assert (await panel.get(f"/app/transactions/{mine.id}")).status_code == 200
            assert (await panel.get(f"/app/transactions/{owners}")).status_code == 404
            for path in ("/app/wallet", "/app/customers", "/app/customers/export.xlsx", "/app/invoices"):
                r = await panel.get(path)
                assert r.status_code == 403, path
                assert "This is for the owner or manager of Till Duka." in r.text
            r = await form_post(panel, "/app", "/app/wallet/threshold", {"threshold": "100"})
            assert r.status_code == 403
            r = await form_post(panel, "/app", "/app/wallet/topup", {"amount": "100"})
            assert r.status_code == 403
        assert await topups_of(tenant) == 0
        assert await audit_rows(tenant, "export.customers") == []


class TestCustomers:
    async def test_search_sort_filter_and_export(self, server: LiveServer, client: httpx.AsyncClient) -> None:
        tenant, owner = await make_tenant(name="Book Duka")
        key = await make_api_key(tenant=tenant)
        await pay(client, key, "0722000111", 1250, "Wanjiru")
        await pay(client, key, "0722000111", 250, "Wanjiru")
        await pay(client, key, "0722000222", 300, "Akinyi")
        await pay(client, key, "0722001032", 500, "Baraka")  # asked, never paid
        async with signed_in(server, owner) as panel:
            page = await panel.get("/app/customers", params={"sort": "paid_total", "order": "desc"})
            assert page.status_code == 200
            assert text_of(page.text, "customer-count") == "3 customers"
            assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows_of(page.text, "customers")] == [
                ("Wanjiru", "0722 000 111", "2", "2", "KES 1,500"),
                ("Akinyi", "0722 000 222", "1", "1", "KES 300"),
                ("Baraka", "0722 001 032", "1", "0", "KES 0"),
            ]
            by_name = await panel.get("/app/customers", params={"sort": "name", "order": "asc"})
            assert [r[0] for r in rows_of(by_name.text, "customers")] == ["Akinyi", "Baraka", "Wanjiru"]
            found = await panel.get("/app/customers", params={"q": "akin"})
            assert [r[0] for r in rows_of(found.text, "customers")] == ["Akinyi"]
            paid = await panel.get("/app/customers", params={"paid": "yes", "sort": "name", "order": "asc"})
            assert [r[0] for r in rows_of(paid.text, "customers")] == ["Akinyi", "Wanjiru"]
            assert 'href="/app/customers/export.xlsx?sort=name&amp;order=asc&amp;paid=yes"' in paid.text
            bad = await panel.get("/app/customers", params={"sort": "password", "paid": "maybe"})
            assert bad.status_code == 422
            assert text_of(bad.text, "sort-error") == "Choose how to sort from the list."
            assert text_of(bad.text, "paid-error") == "Choose a filter from the list."

            export = await panel.get(
                "/app/customers/export.xlsx", params={"paid": "yes", "sort": "name", "order": "asc"}
            )
        assert export.status_code == 200
        assert export.headers["content-type"].startswith(
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        )
        assert 'filename="customers-' in export.headers["content-disposition"]
        sheet = load_workbook(io.BytesIO(export.content), read_only=True).active
        assert sheet is not None
        rows = [list(r) for r in sheet.iter_rows(values_only=True)]
        assert rows[0] == [
            "Name",
            "Phone",
            "Total transactions",
            "Paid transactions",
            "Total amount processed (KES)",
            "First transaction (EAT)",
            "Last transaction (EAT)",
        ]
        assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows[1:]] == [
            ("Akinyi", "254722000222", 1, 1, 300),
            ("Wanjiru", "254722000111", 2, 2, 1500),
        ]
        (audit,) = await audit_rows(tenant, "export.customers")
        assert (audit.user_id, audit.detail) == (owner.id, {"rows": 2, "via": "panel"})


class TestWallet:
    async def test_topup_validation_creates_nothing(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Topup Duka")
        async with signed_in(server, owner) as panel:
            page = await panel.get("/app/wallet")
            assert page.status_code == 200
            assert 'id="phone" name="phone" inputmode="tel" value="0712345678"' in page.text
            cases = [
                ({"amount": "0"}, "amount", "Amount must be at least KES 1."),
                ({"amount": "1.5"}, "amount", "M-Pesa only takes whole shillings"),
                ({"amount": "abc"}, "amount", "Amount must be a whole number of shillings, like 150."),
                ({"amount": "250001"}, "amount", "Amount must be at most KES 250,000"),
                ({"amount": "100", "phone": "0800 123"}, "phone", "is not a Kenyan mobile number"),
            ]
            for data, field, message in cases:
                r = await panel.post("/app/wallet/topup", data={**data, "csrf_token": csrf_of(page.text)})
                assert r.status_code == 422, data
                assert message in text_of(r.text, f"{field}-error"), (data, r.text)
                assert f'id="{field}" name="{field}"' in r.text and 'aria-invalid="true"' in r.text
                assert f'value="{html.escape(data[field], quote=True)}"' in r.text  # typed value kept
        assert await topups_of(tenant) == 0

    async def test_topup_credits_and_shows_its_status(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, owner = await make_tenant(name="Credit Duka")
        async with signed_in(server, owner) as panel:
            r = await form_post(panel, "/app/wallet", "/app/wallet/topup", {"amount": "1,000", "phone": ""})
            assert (r.status_code, r.headers["location"]) == (303, "/app/wallet?done=topup")
            async with unit_of_work(readonly=True) as session:
                topup = await session.scalar(
                    select(Payment).where(
                        Payment.tenant_id == tenant.id, Payment.source == PaymentSource.topup
                    )
                )
            assert topup is not None
            assert (topup.amount, topup.phone, topup.initiated_by_id) == (1000, "254712345678", owner.id)
            status_url = f"/app/wallet/topups/{topup.id}/status"

            async def paid() -> bool:
                return "wallet credited" in (await panel.get(status_url)).text

            await wait_until(paid)
            fragment = await panel.get(status_url)
            assert "data-poll" not in fragment.text and "KES 1,000 from 0712 345 678" in fragment.text
            page = await panel.get("/app/wallet?done=topup")
            assert "Top-up requested" in text_of(page.text, "done")
            assert text_of(page.text, "w-balance") == "KES 1,000"
            assert rows_of(page.text, "postings")[0][1:] == [
                "Top-up · payment",
                "+KES 1,000",
                "KES 1,000",
            ]
            assert 'id="topup-status"' in page.text
            other, _ = await make_tenant(name="Stranger Duka")
            other_key = await make_api_key(tenant=other)
            foreign = await client.post("/api/wallet/topup", json={"amount": 5}, headers=bearer(other_key))
            r = await panel.get(f"/app/wallet/topups/{foreign.json()['id']}/status")
            assert r.status_code == 404

    async def test_pending_topup_polls(self, server: LiveServer) -> None:
        _, owner = await make_tenant(name="Poll Duka")
        async with signed_in(server, owner) as panel:
            # 9999: the callback is lost, so the top-up stays pending until reconciliation asks
            await form_post(
                panel, "/app/wallet", "/app/wallet/topup", {"amount": "50", "phone": "0722009999"}
            )
            page = await panel.get("/app/wallet")
        assert re.search(r'id="topup-status"[^>]*data-poll="/app/wallet/topups/[0-9a-f-]+/status"', page.text)
        assert "waiting for M-Pesa" in page.text

    async def test_threshold_and_refusals(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Alert Duka")
        manager = await make_user(tenant=tenant, role=Role.manager)
        async with signed_in(server, owner) as panel:
            r = await form_post(panel, "/app/wallet", "/app/wallet/threshold", {"threshold": "1,500"})
            assert (r.status_code, r.headers["location"]) == (303, "/app/wallet?done=threshold")
            page = await panel.get(r.headers["location"])
            assert text_of(page.text, "done") == "Low-balance alert level saved."
            assert text_of(page.text, "w-threshold").startswith("KES 1,500")
            assert text_of(page.text, "w-state") == "low"
            assert "The wallet is below your alert level of KES 1,500" in page.text
            for bad, message in (
                ("abc", "Type the level in whole shillings"),
                ("-5", "Type the level in whole shillings"),
                ("20000000", "The level can be at most KES 10,000,000."),
            ):
                r = await form_post(panel, "/app/wallet", "/app/wallet/threshold", {"threshold": bad})
                assert r.status_code == 422, bad
                assert message in text_of(r.text, "threshold-error")
            no_csrf = await panel.post("/app/wallet/threshold", data={"threshold": "5"})
            assert no_csrf.status_code == 403
        assert await threshold_cents(tenant) == 150_000
        (audit,) = await audit_rows(tenant, "wallet.settings_changed")
        assert audit.user_id == owner.id and audit.detail["low_balance_threshold_cents"] == 150_000

        async with signed_in(server, manager) as panel:
            page = await panel.get("/app/wallet")
            assert page.status_code == 200 and "The owner sets the alert level." in page.text
            assert 'action="/app/wallet/threshold"' not in page.text
            r = await panel.post(
                "/app/wallet/threshold", data={"threshold": "10", "csrf_token": csrf_of(page.text)}
            )
            assert r.status_code == 403 and "This is for the owner of Alert Duka." in r.text
        assert await threshold_cents(tenant) == 150_000


class TestInvoices:
    async def test_list_detail_download_and_other_tenants(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, owner = await make_tenant(name="Billed Duka")
        await set_billing(tenant, mode=BillingMode.invoice, period=InvoicePeriod.daily)
        key = await make_api_key(tenant=tenant)
        await pay(client, key, "0722000333", 275, "Njeri")
        async with signed_in(server, owner) as panel:
            empty = await panel.get("/app/invoices")
            assert "No invoices yet. Commission that goes on the invoice is billed daily." in empty.text
        async with unit_of_work() as session:
            invoice = await invoices.issue_for(
                session,
                tenant=await tenants.get(session, tenant.id),
                now=datetime.now(UTC) + timedelta(days=1),
                settings=runtime().settings,
            )
            assert invoice is not None
            invoice_id, number = invoice.id, invoice.number
        async with signed_in(server, owner) as panel:
            listed = await panel.get("/app/invoices")
            ((num, _period, total, count, state, _due),) = rows_of(listed.text, "invoices")
            assert (num, total, count, state) == (number, "KES 2.75", "1", "issued")
            detail = await panel.get(f"/app/invoices/{invoice_id}")
            assert detail.status_code == 200
            ((_, phone, amount, receipt, rate, commission),) = rows_of(detail.text, "invoice-lines")
            assert (phone, amount, rate, commission) == ("0722 000 333", "KES 275", "1%", "KES 2.75")
            assert receipt != "–"
            xlsx = await panel.get(f"/app/invoices/{invoice_id}/export.xlsx")
            assert xlsx.status_code == 200
            sheet = load_workbook(io.BytesIO(xlsx.content), read_only=True).active
            assert sheet is not None
            rows = [list(r) for r in sheet.iter_rows(values_only=True)]
            assert rows[0][1:] == [
                "Phone",
                "Payment (KES)",
                "M-Pesa receipt",
                "Rate (bps)",
                "Commission (KES)",
            ]
            assert [r[1:] for r in rows[1:]] == [["254722000333", 275, receipt, 100, 2.75]]
        assert len(await audit_rows(tenant, "export.invoice")) == 1

        _, stranger = await make_tenant(name="Nosy Duka")
        async with signed_in(server, stranger) as panel:
            for path in (f"/app/invoices/{invoice_id}", f"/app/invoices/{invoice_id}/export.xlsx"):
                r = await panel.get(path)
                assert r.status_code == 404 and "No such invoice." in r.text


class TestImpersonation:
    async def test_admin_reads_but_cannot_write_without_asking(self, server: LiveServer) -> None:
        tenant, _ = await make_tenant(name="Watched Duka")
        await set_billing(tenant, threshold_cents=20_000)
        async with signed_in(server) as admin:
            overview = await admin.get("/admin")
            r = await admin.post(
                f"/admin/tenants/{tenant.id}/impersonate", data={"csrf_token": csrf_of(overview.text)}
            )
            assert (r.status_code, r.headers["location"]) == (303, "/app")
            home = await admin.get("/app")
            assert home.status_code == 200 and "<h1>Watched Duka</h1>" in home.text
            wallet = await admin.get("/app/wallet")
            assert wallet.status_code == 200 and 'action="/app/wallet/threshold"' in wallet.text
            for action, data in (
                ("/app/wallet/threshold", {"threshold": "999"}),
                ("/app/wallet/topup", {"amount": "100"}),
            ):
                r = await admin.post(action, data={**data, "csrf_token": csrf_of(wallet.text)})
                assert r.status_code == 403, action
                assert "You are viewing this business read-only." in r.text
                assert "ask for write access" in r.text
            assert (await admin.get("/app/customers")).status_code == 200
        assert await threshold_cents(tenant) == 20_000
        assert await topups_of(tenant) == 0
        assert await audit_rows(tenant, "wallet.settings_changed") == []
        requests = [a.target for a in await audit_rows(tenant, "impersonation.request")]
        assert "POST /app/wallet/threshold" in requests and "GET /app/wallet" in requests
