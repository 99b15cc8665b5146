"""Every main panel page in Chromium at 360 px: nothing wider than the phone but the tables (which
scroll in their own box), every form field labelled, one h1, a way back (the main nav), and the
keyboard reaches the content first through the skip link."""

from __future__ import annotations

from playwright.async_api import Browser, Page

from tests.conftest import LiveServer
from tests.support.browser import browser, browser_sign_in  # noqa: F401  - the fixture
from tests.support.factories import make_admin, make_provider, make_tenant

ADMIN_PAGES = [
    "/admin",
    "/admin/tenants",
    "/admin/transactions",
    "/admin/commissions",
    "/admin/errors",
    "/admin/exports",
    "/admin/audit",
    "/admin/outbox",
    "/admin/plans",
]
OWNER_PAGES = [
    "/app",
    "/app/transactions",
    "/app/customers",
    "/app/wallet",
    "/app/invoices",
    "/app/settings",
    "/app/settings/channel",
    "/app/settings/channels",
    "/app/settings/plan",
    "/app/settings/keys",
    "/app/settings/apps",
    "/app/settings/webhooks",
    "/app/settings/staff",
    "/app/settings/account",
]
WIFI_PAGES = ["/app/wifi", "/app/wifi/plans", "/app/wifi/vouchers", "/app/wifi/routers", "/app/wifi/sales"]

# Fields a person fills in that have no <label for>, no wrapping <label>, no aria-label(ledby).
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter(el => el.type !== 'hidden' && el.type !== 'submit' && el.type !== 'button')
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !el.getAttribute('aria-labelledby'))
  .map(el => el.outerHTML.slice(0, 120))"""


async def check(page: Page, url: str) -> None:
    response = await page.goto(url)
    assert response is not None and response.status == 200, (url, response and response.status)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"{url} is {width} px wide at 360"
    assert await page.evaluate(UNLABELLED) == [], url
    assert await page.locator("h1").count() == 1, url
    assert await page.get_by_role("navigation", name="Main").count() == 1, url
    # The first Tab stop is the skip link, and it lands on the content.
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content", url


async def test_every_main_page_fits_a_phone_and_labels_its_fields(
    server: LiveServer,
    browser: Browser,  # noqa: F811
) -> None:
    email, password = await make_admin()
    page = await browser.new_page(viewport={"width": 360, "height": 740})
    await browser_sign_in(page, server.url, email, password)
    for path in ADMIN_PAGES:
        await check(page, server.url + path)
    await page.close()

    _, owner = await make_tenant(name="Narrow Duka")
    page = await browser.new_page(viewport={"width": 360, "height": 740})
    await browser_sign_in(page, server.url, owner.email, "secret-pass-1")
    for path in OWNER_PAGES:
        await check(page, server.url + path)
    await page.close()

    _, provider = await make_provider(name="Narrow WiFi")
    page = await browser.new_page(viewport={"width": 360, "height": 740})
    await browser_sign_in(page, server.url, provider.email, "secret-pass-1")
    for path in WIFI_PAGES:
        await check(page, server.url + path)
    await page.close()
