"""Request a payment in real Chromium at 360 px: tap a recent customer, send, and watch the status line
turn into the receipt without a reload; the dashboard chart's dates at phone and desktop width."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import Browser, Page, expect

from tests.conftest import LiveServer
from tests.support.browser import browser, browser_sign_in, shot  # noqa: F401  - the fixture
from tests.support.factories import make_api_key, make_tenant
from tests.support.waiting import wait_for_final


async def widest(page: Page) -> int:
    return int(await page.evaluate("document.documentElement.scrollWidth"))


async def test_owner_requests_a_payment_from_the_dashboard(
    server: LiveServer,
    browser: Browser,  # noqa: F811
    client: httpx.AsyncClient,
) -> None:
    tenant, owner = await make_tenant(name="Chromium Pay Shop")
    key = await make_api_key(tenant=tenant)
    r = await client.post(
        "/api/stk-push",
        json={"phone": "0722000111", "amount": 1250, "name": "Wanjiru"},
        headers={"Authorization": f"Bearer {key}"},
    )
    await wait_for_final(client, key, r.json()["id"])

    context = await browser.new_context(viewport={"width": 360, "height": 740})
    page = await context.new_page()
    await browser_sign_in(page, server.url, owner.email, "secret-pass-1")
    assert page.url == f"{server.url}/app"
    await expect(page.locator("h1")).to_have_count(1)
    form = page.locator("#request-payment")
    await expect(form.get_by_role("heading", name="Request a payment")).to_be_visible()
    for label in (
        "Customer's M-Pesa phone",
        "Amount (KES)",
        "Customer name (optional)",
        "Reference (optional)",
    ):
        await expect(page.get_by_label(label)).to_be_editable()
    assert await widest(page) <= 360

    # a mistake is said next to the field, and nothing is sent
    await page.get_by_label("Customer's M-Pesa phone").fill("0722000222")
    await page.get_by_label("Amount (KES)").fill("1.5")
    await page.get_by_role("button", name="Send M-Pesa prompt").click()
    await expect(page.locator("#amount-error")).to_have_text(
        "M-Pesa only takes whole shillings: send an amount without cents, like 150."
    )
    await expect(page.get_by_label("Amount (KES)")).to_have_attribute("aria-invalid", "true")
    assert await widest(page) <= 360

    # tapping a recent customer fills the phone and the name in place
    await form.get_by_role("link", name="Wanjiru · 0722 000 111").click()
    await expect(page.get_by_label("Customer's M-Pesa phone")).to_have_value("0722000111")
    await expect(page.get_by_label("Customer name (optional)")).to_have_value("Wanjiru")
    await expect(page.get_by_label("Amount (KES)")).to_be_focused()
    assert "phone=" not in page.url  # filled by panel.js, not by reloading
    await page.get_by_label("Amount (KES)").fill("300")
    await page.get_by_role("button", name="Send M-Pesa prompt").click()
    await page.wait_for_url(f"{server.url}/app?payment=*")
    # the status line polls until M-Pesa has answered, without reloading the page
    url = page.url
    await expect(page.locator("#pay-state")).to_have_text("Paid", timeout=20_000)
    await expect(page.locator("#pay-status")).to_contain_text("KES 300 from Wanjiru (0722 000 111)")
    await expect(page.locator("#pay-receipt")).to_have_text(re.compile(r"^[A-Z0-9]{10}$"))
    assert page.url == url
    assert await widest(page) <= 360
    await shot(page, "app-pay-360")
    await context.close()


async def test_chart_dates_keep_the_page_size_at_any_width(
    server: LiveServer,
    browser: Browser,  # noqa: F811
    client: httpx.AsyncClient,
) -> None:
    tenant, owner = await make_tenant(name="Chart Width Shop")
    key = await make_api_key(tenant=tenant)
    r = await client.post(
        "/api/stk-push",
        json={"phone": "0722000333", "amount": 800},
        headers={"Authorization": f"Bearer {key}"},
    )
    await wait_for_final(client, key, r.json()["id"])
    sizes = {}
    for width in (360, 1280):
        context = await browser.new_context(viewport={"width": width, "height": 900})
        page = await context.new_page()
        await browser_sign_in(page, server.url, owner.email, "secret-pass-1")
        axis = page.locator(".chart-axis span").first
        await expect(axis).to_be_visible()
        sizes[width] = (
            await axis.evaluate("e => getComputedStyle(e).fontSize"),
            await page.locator("svg.chart").evaluate("e => Math.round(e.getBoundingClientRect().height)"),
            await page.locator("svg.chart").evaluate("e => Math.round(e.getBoundingClientRect().width)"),
        )
        assert await widest(page) <= width
        await page.locator("svg.chart").scroll_into_view_if_needed()
        await shot(page, f"app-chart-{width}")
        await context.close()
    # the dates are page text (0.85 rem) at both widths; the chart is short on a phone, taller on a
    # desktop, never the ~400 px it grew to when its height followed its width
    assert sizes[360][0] == sizes[1280][0] == "13.6px"
    assert sizes[360][1] == 128 and sizes[1280][1] == 192
    assert sizes[360][2] < 330 and sizes[1280][2] > 1000
