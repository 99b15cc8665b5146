"""Platform admin → Transactions in real Chromium at 360 px: filter by business and status, open a
payment, come back to the same filtered list."""

from __future__ import annotations

from playwright.async_api import Browser

from core.payments.models import PaymentSource, PaymentStatus
from tests.conftest import LiveServer
from tests.support.browser import browser, browser_sign_in, shot  # noqa: F401  - the fixture
from tests.support.factories import make_admin, make_tenant
from tests.web.test_panel_transactions import a_day, add_payment, eat


async def fits(page) -> bool:  # type: ignore[no-untyped-def]
    """Nothing wider than the phone's screen: wide tables scroll inside their own box."""
    return bool(await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


async def test_filter_open_a_payment_and_go_back(server: LiveServer, browser: Browser) -> None:  # noqa: F811
    tenant, _ = await make_tenant(name="Chromium Kiosk")
    d = a_day()
    await add_payment(tenant, eat(d, 9), phone="254712000111", amount=300)
    failed = await add_payment(
        tenant,
        eat(d, 10),
        status=PaymentStatus.failed,
        source=PaymentSource.ussd,
        phone="254722000222",
        amount=1250,
    )
    await add_payment(tenant, eat(d, 11), phone="254733000333", amount=75)
    email, password = await make_admin()
    page = await browser.new_page(viewport={"width": 360, "height": 740})
    await browser_sign_in(page, server.url, email, password)
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Transactions").click()
    await page.wait_for_url(f"{server.url}/admin/transactions")
    assert await page.locator("h1").inner_text() == "Transactions"

    await page.get_by_label("Business (slug or id)").fill(tenant.slug)
    await page.get_by_label("Status").select_option("failed")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_load_state()
    assert "status=failed" in page.url
    rows = page.locator("#transactions tbody tr")
    assert await rows.count() == 1
    assert await rows.first.get_attribute("data-id") == str(failed)
    row_text = await rows.first.inner_text()
    assert "KES 1,250" in row_text and "0722 000 222" in row_text and "failed" in row_text
    assert await fits(page)
    await shot(page, "admin-transactions")

    await rows.first.get_by_role("link", name=f"{d.strftime('%d %b %Y')} 10:00:00").click()
    await page.wait_for_url(f"{server.url}/admin/transactions/{failed}?back=*")
    assert "KES 1,250" in await page.locator("h1").inner_text()
    assert await page.get_by_text("Chromium Kiosk").first.is_visible()
    assert await page.get_by_text("No callback received").is_visible()
    assert await fits(page)
    await shot(page, "admin-payment")

    await page.locator("#back").click()
    await page.wait_for_load_state()
    assert "/admin/transactions?" in page.url and "status=failed" in page.url
    assert await page.get_by_label("Status").input_value() == "failed"
    assert await page.locator("#transactions tbody tr").count() == 1
    await page.close()
