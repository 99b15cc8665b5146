"""Signing in to the panel in real Chromium: an admin with the emailed code, a business owner without."""

from __future__ import annotations

from playwright.async_api import Browser

from tests.conftest import LiveServer
from tests.support.browser import browser, browser_sign_in, shot  # noqa: F401  - the fixture
from tests.support.factories import make_admin, make_tenant


async def test_admin_and_owner_sign_in_in_chromium(server: LiveServer, browser: Browser) -> None:  # noqa: F811
    email, password = await make_admin()
    page = await browser.new_page(viewport={"width": 360, "height": 740})
    await page.goto(f"{server.url}/admin")
    assert page.url.endswith("/login?next=/admin")
    await shot(page, "login")
    await browser_sign_in(page, server.url, email, password)
    assert page.url == f"{server.url}/admin"
    assert await page.locator("h1").inner_text() == "Platform overview"
    await shot(page, "admin-overview")
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(f"{server.url}/login")
    await page.close()

    _, owner = await make_tenant(name="Chromium Duka")
    page = await browser.new_page()
    await browser_sign_in(page, server.url, owner.email, "secret-pass-1")
    assert page.url == f"{server.url}/app"
    assert await page.locator("h1").inner_text() == "Chromium Duka"
    await page.close()
