"""The business view in real Chromium at 360 px: an owner signs in, reads the dashboard, exports the
customer book, tops up the wallet (the status updates itself) and changes the low-balance level."""

from __future__ import annotations

import io

import httpx
from openpyxl import load_workbook
from playwright.async_api import Browser, expect

from tests.conftest import LiveServer
from tests.support.browser import browser, browser_sign_in, shot  # noqa: F401  - the fixture
from tests.support.factories import make_api_key, make_tenant
from tests.support.waiting import wait_for_final


async def test_owner_dashboard_customers_export_and_wallet(
    server: LiveServer,
    browser: Browser,  # noqa: F811
    client: httpx.AsyncClient,
) -> None:
    tenant, owner = await make_tenant(name="Chromium Shop")
    key = await make_api_key(tenant=tenant)
    for phone, amount, name in (("0722000111", 1250, "Wanjiru"), ("0722000222", 300, "Akinyi")):
        r = await client.post(
            "/api/stk-push",
            json={"phone": phone, "amount": amount, "name": name},
            headers={"Authorization": f"Bearer {key}"},
        )
        await wait_for_final(client, key, r.json()["id"])

    context = await browser.new_context(viewport={"width": 360, "height": 740}, accept_downloads=True)
    page = await context.new_page()
    await browser_sign_in(page, server.url, owner.email, "secret-pass-1")
    assert page.url == f"{server.url}/app"
    assert await page.locator("h1").inner_text() == "Chromium Shop"
    await expect(page.locator("#stat-total")).to_have_text("KES 1,550")
    await expect(page.locator("#stat-transactions")).to_have_text("2")
    assert await page.locator("svg.chart rect").count() == 30
    # nothing is wider than the phone's screen
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    await shot(page, "app-dashboard")

    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Customers").click()
    await page.wait_for_url(f"{server.url}/app/customers")
    await page.get_by_label("Sort by").select_option("name")
    await page.get_by_label("Order").select_option("asc")
    await page.get_by_role("button", name="Search").click()
    await page.wait_for_url("**/app/customers?*sort=name*")
    await expect(page.locator("#customers tbody tr")).to_have_count(2)
    await expect(page.locator("#customers tbody tr").first).to_contain_text("Akinyi")
    await shot(page, "app-customers")
    async with page.expect_download() as info:
        await page.get_by_role("link", name="Export to Excel").click()
    download = await info.value
    assert download.suggested_filename.endswith(".xlsx")
    saved = await download.path()
    sheet = load_workbook(io.BytesIO(saved.read_bytes()), read_only=True).active
    assert sheet is not None
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert rows[0][:5] == [
        "Name",
        "Phone",
        "Total transactions",
        "Paid transactions",
        "Total amount processed (KES)",
    ]
    assert [r[:5] for r in rows[1:]] == [
        ["Akinyi", "254722000222", 1, 1, 300],
        ["Wanjiru", "254722000111", 1, 1, 1250],
    ]

    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Wallet").click()
    await page.wait_for_url(f"{server.url}/app/wallet")
    await expect(page.get_by_label("M-Pesa phone")).to_have_value("0712345678")
    await page.get_by_label("Amount (KES)").fill("abc")
    await page.get_by_role("button", name="Send M-Pesa prompt").click()
    await expect(page.locator("#amount-error")).to_have_text(
        "Amount must be a whole number of shillings, like 150."
    )
    await page.get_by_label("Amount (KES)").fill("500")
    await page.get_by_role("button", name="Send M-Pesa prompt").click()
    await page.wait_for_url(f"{server.url}/app/wallet?done=topup")
    # the status line polls until M-Pesa has answered, without reloading the page
    await expect(page.locator("#topup-status")).to_contain_text("wallet credited", timeout=20_000)

    await page.get_by_label("Alert me when the wallet is below (KES)").fill("2,500")
    await page.get_by_role("button", name="Save alert level").click()
    await page.wait_for_url(f"{server.url}/app/wallet?done=threshold")
    await expect(page.locator("#done")).to_have_text("Low-balance alert level saved.")
    await expect(page.locator("#w-threshold")).to_have_text("KES 2,500")
    await expect(page.get_by_label("Alert me when the wallet is below (KES)")).to_have_value("2500")
    await expect(page.locator("#low-balance")).to_be_visible()  # KES 500 is below the new level
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    await shot(page, "app-wallet")
    await context.close()
