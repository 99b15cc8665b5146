"""Platform admin → Commissions (/admin/commissions): commission earned per business from payments
made through the Daraja simulator, invoices by state, wallet balances and the low-balance list,
subscription revenue from orders completed at the Pesapal stand-in, the period picker, and refusals.

The test database is shared by the whole session, so figures are read from our own businesses' rows,
or as the change a test made to a platform-wide total."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from datetime import date, timedelta

import httpx
import pytest
from playwright.async_api import Browser
from sqlalchemy import update

from core.auth.models import Role
from core.billing.invoices import invoices
from core.billing.models import Invoice, SubscriptionPeriod, SubscriptionPlan
from core.billing.periods import custom_period, preset_period
from core.db import utcnow
from core.errors import InvalidInput
from core.runtime import runtime, unit_of_work
from core.tenants.models import BillingMode, InvoicePeriod, Tenant, TenantKind
from core.tenants.service import tenants
from tests.conftest import LiveServer
from tests.support.browser import browser, browser_sign_in, shot  # noqa: F401  - the fixture
from tests.support.factories import (
    fund_wallet,
    make_admin,
    make_api_key,
    make_tenant,
    make_user,
    set_billing,
    wallet_state,
)
from tests.support.panel import admin_client, business_client
from tests.support.waiting import wait_for_final
from web.panel.templating import EAT

PAGE = "/admin/commissions"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def text_of(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def row(page: str, row_id: str) -> str | None:
    """The visible text of the table row with this id, or None when the page has no such row."""
    match = re.search(rf'<tr id="{re.escape(row_id)}">(.*?)</tr>', page, re.S)
    return text_of(match.group(1)) if match else None


def by_id(page: str, element_id: str) -> str:
    match = re.search(rf'id="{re.escape(element_id)}"[^>]*>(.*?)</(span|strong|p|tr)>', page, re.S)
    assert match, f"no #{element_id} on the page"
    return text_of(match.group(1))


def error_of(page: str, field: str) -> str:
    return by_id(page, f"e-{field}")


def cents_of(kes: str) -> int:
    """'KES 1,234.50' / 'KES 17' → cents."""
    match = re.fullmatch(r"(-?)KES ([\d,]+)(?:\.(\d\d))?", kes)
    assert match, kes
    return (-1 if match.group(1) else 1) * (
        int(match.group(2).replace(",", "")) * 100 + int(match.group(3) or 0)
    )


def tally(page: str, row_id: str) -> tuple[int, int]:
    """(count, cents) of a row of the invoice-state table."""
    parts = (row(page, row_id) or "").split(" ")
    kes = " ".join(parts[-2:])
    return int(parts[-3]), cents_of(kes)


@pytest.fixture
async def admin(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    client, _ = await admin_client(server.url)
    yield client
    await client.aclose()


async def push(client: httpx.AsyncClient, key: str, amount: int) -> None:
    r = await client.post(
        "/api/stk-push", json={"phone": "0722000111", "amount": amount}, headers=bearer(key)
    )
    assert r.status_code == 201, r.text
    assert (await wait_for_final(client, key, r.json()["id"]))["status"] == "success"


async def business(name: str, **billing: object) -> tuple[Tenant, str]:
    tenant, _ = await make_tenant(name=name)
    await set_billing(tenant, **billing)  # type: ignore[arg-type]
    return tenant, await make_api_key(tenant=tenant)


class TestPeriods:
    def test_presets_in_nairobi_days(self) -> None:
        today = date(2026, 3, 15)
        assert (
            preset_period("this_month", today=today).first,
            preset_period("this_month", today=today).last,
        ) == (
            date(2026, 3, 1),
            today,
        )
        last = preset_period("last_month", today=today)
        assert (last.first, last.last, last.days) == (date(2026, 2, 1), date(2026, 2, 28), 28)
        week = preset_period("last_7_days", today=today)
        assert (week.first, week.last, week.days) == (date(2026, 3, 9), today, 7)
        january = preset_period("last_month", today=date(2026, 1, 3))
        assert (january.first, january.last) == (date(2025, 12, 1), date(2025, 12, 31))
        # A Nairobi day starts at 21:00 UTC the day before.
        assert week.since.isoformat() == "2026-03-09T00:00:00+03:00"
        assert week.until.astimezone(EAT).isoformat() == "2026-03-16T00:00:00+03:00"

    def test_custom_limits(self) -> None:
        assert custom_period(date(2024, 1, 1), date(2024, 12, 31)).days == 366
        with pytest.raises(InvalidInput) as too_long:
            custom_period(date(2025, 1, 1), date(2026, 1, 2))
        assert (too_long.value.field, too_long.value.message) == (
            "to",
            "Choose a period of at most 366 days.",
        )
        with pytest.raises(InvalidInput) as backwards:
            custom_period(date(2026, 3, 2), date(2026, 3, 1))
        assert backwards.value.field == "to"


class TestCommissionEarned:
    async def test_exact_figures_per_business_and_totals(
        self, server: LiveServer, client: httpx.AsyncClient, admin: httpx.AsyncClient
    ) -> None:
        before = (await admin.get(PAGE, params={"period": "this_month"})).text
        # wallet mode at 1.5 %: KES 150 → 2.25, KES 1,000 → 15.00, all from the wallet
        wallet, wallet_key = await business("Wallet Duka", mode=BillingMode.wallet, bps=150)
        await fund_wallet(wallet, 1_000_000)
        await push(client, wallet_key, 150)
        await push(client, wallet_key, 1_000)
        # invoice mode at the platform default (1 %): KES 275 → 2.75 on the invoice
        invoiced, invoiced_key = await business("Invoice Hardware", mode=BillingMode.invoice)
        await push(client, invoiced_key, 275)
        # hybrid at 2 % with KES 1 in the wallet: KES 100 → 2.00, 1.00 from the wallet, 1.00 invoiced
        hybrid, hybrid_key = await business("Hybrid Salon", mode=BillingMode.hybrid, bps=200)
        await fund_wallet(hybrid, 100)
        await push(client, hybrid_key, 100)
        assert await wallet_state(hybrid) == (0, 0)

        r = await admin.get(PAGE, params={"period": "this_month"})
        assert r.status_code == 200
        page = r.text
        assert row(page, f"c-{wallet.id}") == "Wallet Duka wallet 1.5 % KES 17.25 KES 0 KES 17.25"
        assert (
            row(page, f"c-{invoiced.id}") == "Invoice Hardware invoice 1 % (default) KES 0 KES 2.75 KES 2.75"
        )
        assert row(page, f"c-{hybrid.id}") == "Hybrid Salon hybrid 2 % KES 1 KES 1 KES 2"
        assert f'<a href="/admin/tenants/{wallet.id}">Wallet Duka</a>' in page
        # the platform totals moved by exactly these businesses' commission
        for element, cents in (
            ("commission-total", 1_725 + 275 + 200),
            ("commission-wallet", 1_725 + 100),
            ("commission-invoice", 275 + 100),
        ):
            assert cents_of(by_id(page, element)) - cents_of(by_id(before, element)) == cents, element

        # Sorted by total, highest first by default; lowest first and by name on request.
        def order(p: str) -> list[str]:
            ids = [str(t.id) for t in (wallet, invoiced, hybrid)]
            found = re.findall(r'<tr id="c-([0-9a-f-]+)">', p)
            return [i for i in found if i in ids]

        assert order(page) == [str(wallet.id), str(invoiced.id), str(hybrid.id)]
        assert '<a href="?period=this_month&amp;sort=total_asc">Total ↓</a>' in page
        up = await admin.get(PAGE, params={"period": "this_month", "sort": "total_asc"})
        assert order(up.text) == [str(hybrid.id), str(invoiced.id), str(wallet.id)]
        named = await admin.get(PAGE, params={"period": "this_month", "sort": "name"})
        assert order(named.text) == [str(hybrid.id), str(invoiced.id), str(wallet.id)]

        # Today alone: one bar, carrying the day's whole total.
        today = utcnow().astimezone(EAT).date()
        day = await admin.get(PAGE, params={"from": today.isoformat(), "to": today.isoformat()})
        assert day.status_code == 200
        bars = re.findall(r"<rect [^>]*><title>([^<]+)</title></rect>", day.text)
        assert bars == [f"{today:%d %b}: {by_id(day.text, 'commission-total')}"]
        assert "Commission per day, highest" in day.text
        # Last month holds none of it.
        last = await admin.get(PAGE, params={"period": "last_month"})
        assert row(last.text, f"c-{wallet.id}") is None
        assert len(re.findall(r"<rect ", last.text)) == preset_period("last_month", today=today).days
        # A year is charted by month.
        year = await admin.get(
            PAGE, params={"from": (today - timedelta(days=365)).isoformat(), "to": today.isoformat()}
        )
        assert year.status_code == 200 and "Commission per month" in year.text
        assert len(re.findall(r"<rect ", year.text)) in (12, 13)
        assert row(year.text, f"c-{wallet.id}") == row(page, f"c-{wallet.id}")


class TestInvoicesAndWallets:
    async def test_invoice_states(
        self, server: LiveServer, client: httpx.AsyncClient, admin: httpx.AsyncClient
    ) -> None:
        before = (await admin.get(PAGE)).text
        shop, key = await business(
            "Invoice Kiosk", mode=BillingMode.invoice, bps=100, period=InvoicePeriod.daily
        )
        late, late_key = await business(
            "Late Payer", mode=BillingMode.invoice, bps=100, period=InvoicePeriod.daily
        )
        await push(client, key, 1_250)  # KES 12.50
        await push(client, late_key, 480)  # KES 4.80
        settings = runtime().settings
        tomorrow = utcnow() + timedelta(days=1)
        async with unit_of_work() as session:
            first = await invoices.issue_for(
                session, tenant=await tenants.get(session, shop.id), now=tomorrow, settings=settings
            )
            second = await invoices.issue_for(
                session, tenant=await tenants.get(session, late.id), now=tomorrow, settings=settings
            )
            assert first is not None and second is not None
            # the second one's due date has passed
            await session.execute(
                update(Invoice).where(Invoice.id == second.id).values(due_at=utcnow() - timedelta(days=2))
            )
        page = (await admin.get(PAGE)).text

        def moved(p: str, state: str) -> tuple[int, int]:
            after, was = tally(p, f"inv-{state}"), tally(before, f"inv-{state}")
            return after[0] - was[0], after[1] - was[1]

        assert moved(page, "issued") == (2, 1_250 + 480)
        assert moved(page, "overdue") == (1, 480)
        assert moved(page, "paid") == (0, 0)
        start = first.period_start.astimezone(EAT)
        due = first.due_at.astimezone(EAT)
        assert row(page, f"i-{first.number}") == (
            f"{first.number} Invoice Kiosk {start:%d %b}–{start:%d %b %Y} KES 12.50 issued {due:%d %b %Y}"
        )
        assert row(page, f"i-{second.number}").endswith(  # type: ignore[union-attr]
            f"KES 4.80 overdue {(utcnow() - timedelta(days=2)).astimezone(EAT):%d %b %Y}"
        )
        async with unit_of_work() as session:
            await invoices.mark_paid(session, invoice_id=first.id, by=None, settings=settings)
        page = (await admin.get(PAGE)).text
        assert moved(page, "issued") == (1, 480)
        assert moved(page, "paid") == (1, 1_250)
        assert "paid" in (row(page, f"i-{first.number}") or "")

    async def test_wallet_total_and_low_balance_list(
        self, server: LiveServer, client: httpx.AsyncClient, admin: httpx.AsyncClient
    ) -> None:
        before = (await admin.get(PAGE)).text
        # above its level: KES 10,000 against the default KES 500
        rich, _ = await business("Rich Wallet", mode=BillingMode.wallet)
        await fund_wallet(rich, 1_000_000)
        # below its own level of KES 1,000
        low, _ = await business("Low Wallet", mode=BillingMode.wallet, threshold_cents=100_000)
        await fund_wallet(low, 50_050)
        # a wallet-mode business that never topped up is listed at KES 0
        empty, _ = await business("Empty Wallet", mode=BillingMode.wallet)
        # a hybrid business whose commission emptied its wallet (the owner was alerted)
        drained, drained_key = await business("Drained Hybrid", mode=BillingMode.hybrid, bps=100)
        await fund_wallet(drained, 300)
        await push(client, drained_key, 500)  # KES 5.00: 3.00 from the wallet, 2.00 invoiced
        # invoice billing draws on no wallet: never listed
        invoiced, _ = await business("No Wallet Needed", mode=BillingMode.invoice)

        page = (await admin.get(PAGE)).text
        assert cents_of(by_id(page, "wallets-total")) - cents_of(by_id(before, "wallets-total")) == (
            1_000_000 + 50_050
        )
        assert row(page, f"low-{rich.id}") is None
        assert row(page, f"low-{invoiced.id}") is None
        assert row(page, f"low-{low.id}") == "Low Wallet wallet KES 500.50 KES 0 KES 1,000 yes"
        assert row(page, f"low-{empty.id}") == "Empty Wallet wallet KES 0 KES 0 KES 500 no"
        assert row(page, f"low-{drained.id}") == "Drained Hybrid hybrid KES 0 KES 0 KES 500 yes"
        assert int(by_id(page, "low-count")) - int(by_id(before, "low-count")) == 3
        # topped up past the level: off the list
        await fund_wallet(low, 50_000)
        page = (await admin.get(PAGE)).text
        assert row(page, f"low-{low.id}") is None


async def hotspot_provider(name: str, price: int) -> tuple[Tenant, str, SubscriptionPlan]:
    tenant, _ = await make_tenant(name=name)
    async with unit_of_work() as session:
        t = await session.get(Tenant, tenant.id)
        assert t is not None
        t.kind = TenantKind.hotspot
        plan = SubscriptionPlan(name=f"Monthly {tenant.slug}", period=SubscriptionPeriod.monthly, price=price)
        session.add(plan)
    return tenant, await make_api_key(tenant=tenant), plan


class TestSubscriptionRevenue:
    async def test_completed_then_reversed_order(
        self, server: LiveServer, client: httpx.AsyncClient, admin: httpx.AsyncClient
    ) -> None:
        before = (await admin.get(PAGE)).text
        provider, key, plan = await hotspot_provider("Revenue WiFi", 1_500)
        r = await client.post(
            f"/api/providers/{provider.id}/pesapal/create-order",
            json={"plan_id": str(plan.id)},
            headers=bearer(key),
        )
        assert r.status_code == 201, r.text
        tracking = r.json()["order_tracking_id"]
        async with httpx.AsyncClient(base_url=f"{server.url}/sim/pesapal") as sim:
            done = await sim.post(f"/_sim/orders/{tracking}/complete", json={"duplicate_ipns": 2})
            assert done.status_code == 200, done.text

            page = (await admin.get(PAGE)).text
            assert (
                row(page, f"plan-{plan.id}")
                == f"Monthly {provider.slug} monthly 1 · KES 1,500 0 · KES 0 KES 1,500"
            )
            assert cents_of(by_id(page, "subs-net")) - cents_of(by_id(before, "subs-net")) == 150_000
            assert row(page, f"lapse-{provider.id}") is None  # paid for 30 days

            undone = await sim.post(f"/_sim/orders/{tracking}/reverse", json={})
            assert undone.status_code == 200, undone.text
        page = (await admin.get(PAGE)).text
        assert (
            row(page, f"plan-{plan.id}")
            == f"Monthly {provider.slug} monthly 1 · KES 1,500 1 · KES 1,500 KES 0"
        )
        assert cents_of(by_id(page, "subs-net")) == cents_of(by_id(before, "subs-net"))
        lapse = row(page, f"lapse-{provider.id}")
        assert lapse is not None and lapse.startswith("Revenue WiFi ") and lapse.endswith(" lapsed")
        # Last month had none of this plan's orders.
        last = (await admin.get(PAGE, params={"period": "last_month"})).text
        assert row(last, f"plan-{plan.id}") is None

    async def test_lapsing_soon(self, server: LiveServer, admin: httpx.AsyncClient) -> None:
        soon, _, _ = await hotspot_provider("Soon WiFi", 900)
        later, _, _ = await hotspot_provider("Later WiFi", 900)
        async with unit_of_work() as session:
            for tid, days in ((soon.id, 3), (later.id, 20)):
                t = await session.get(Tenant, tid)
                assert t is not None
                t.billing_mode, t.subscription_until = (
                    BillingMode.subscription,
                    utcnow() + timedelta(days=days),
                )
        page = (await admin.get(PAGE)).text
        assert (row(page, f"lapse-{soon.id}") or "").endswith(" lapses soon")
        assert row(page, f"lapse-{later.id}") is None


class TestRefusals:
    @pytest.mark.parametrize(
        ("params", "field", "message"),
        [
            ({"from": "2026-03-10", "to": "2026-03-01"}, "to", "The end date is before the start date."),
            ({"from": "2025-01-01", "to": "2026-01-02"}, "to", "Choose a period of at most 366 days."),
            ({"from": "2026-02-30", "to": "2026-03-01"}, "from", "Give a date like 2025-03-31."),
            ({"from": "2026-03-01", "to": "tomorrow"}, "to", "Give a date like 2025-03-31."),
            ({"from": "2026-03-01"}, "to", "Give a date like 2025-03-31."),
            ({"period": "forever"}, "period", "Choose one of the listed periods."),
        ],
    )
    async def test_bad_periods(
        self, admin: httpx.AsyncClient, params: dict[str, str], field: str, message: str
    ) -> None:
        r = await admin.get(PAGE, params=params)
        assert r.status_code == 422
        assert error_of(r.text, field) == message
        if field in ("from", "to"):
            assert f'aria-describedby="e-{field}"' in r.text
        assert 'id="commission-total"' not in r.text  # nothing listed for a period we did not understand
        if "from" in params:  # what was typed stays in the form
            assert f'name="from" type="date" value="{params["from"]}"' in r.text

    async def test_a_leap_year_is_allowed(self, admin: httpx.AsyncClient) -> None:
        r = await admin.get(PAGE, params={"from": "2024-01-01", "to": "2024-12-31"})
        assert r.status_code == 200 and "01 Jan 2024 – 31 Dec 2024" in r.text

    async def test_only_platform_admins(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Curious Owner")
        cashier = await make_user(tenant=tenant, role=Role.cashier)
        for user in (owner, cashier):
            c = await business_client(server.url, user)
            r = await c.get(PAGE)
            assert r.status_code == 403, user.role
            assert "This is for platform administrators (role platform_admin)." in r.text
            await c.aclose()
        async with httpx.AsyncClient(base_url=server.url) as anonymous:
            r = await anonymous.get(PAGE, params={"period": "last_month"})
            assert (r.status_code, r.headers["location"]) == (
                303,
                "/login?next=/admin/commissions%3Fperiod%3Dlast_month",
            )


async def test_commissions_in_chromium(
    server: LiveServer,
    client: httpx.AsyncClient,
    browser: Browser,  # noqa: F811
) -> None:
    shop, key = await business("Chromium Commission", mode=BillingMode.invoice, bps=250)
    await push(client, key, 1_000)  # KES 25.00
    email, password = await make_admin()
    page = await browser.new_page(viewport={"width": 360, "height": 740})
    await browser_sign_in(page, server.url, email, password)
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Commissions").click()
    await page.wait_for_url(f"{server.url}/admin/commissions")
    assert await page.locator("h1").inner_text() == "Commissions"
    assert "Chromium Commission" in await page.locator(f"#c-{shop.id}").inner_text()
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    today = utcnow().astimezone(EAT).date()
    await page.get_by_role("link", name="Last month").click()
    await page.wait_for_url("**/admin/commissions?period=last_month")
    last = preset_period("last_month", today=today)
    assert await page.locator("#period-shown").inner_text() == (
        f"{last.first:%d %b %Y} – {last.last:%d %b %Y}"
    )
    assert await page.locator(f"#c-{shop.id}").count() == 0

    await page.get_by_label("From", exact=True).fill((today - timedelta(days=2)).isoformat())
    await page.get_by_label("To", exact=True).fill(today.isoformat())
    await page.get_by_role("button", name="Show").click()
    await page.wait_for_url("**/admin/commissions?from=*")
    assert await page.locator("#period-shown").inner_text() == (
        f"{today - timedelta(days=2):%d %b %Y} – {today:%d %b %Y}"
    )
    assert "KES 25" in await page.locator(f"#c-{shop.id}").inner_text()
    assert await page.locator("#commission-chart rect").count() == 3
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await shot(page, "admin-commissions")

    await page.get_by_label("To", exact=True).fill((today - timedelta(days=5)).isoformat())
    await page.get_by_role("button", name="Show").click()
    await page.wait_for_load_state()
    assert await page.locator("#e-to").inner_text() == "The end date is before the start date."
    await page.get_by_role("link", name="← Overview").click()
    await page.wait_for_url(f"{server.url}/admin")
    await page.close()
