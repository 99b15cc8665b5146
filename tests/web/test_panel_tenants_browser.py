"""Admin → Businesses in real Chromium at 360 px: find a business, suspend it with a reason (through
the confirmation), see the tag, reactivate it."""

from __future__ import annotations

from playwright.async_api import Browser, Dialog

from core.runtime import unit_of_work
from core.tenants.models import Tenant, TenantStatus
from tests.conftest import LiveServer
from tests.support.browser import browser, browser_sign_in, shot  # noqa: F401  - the fixture
from tests.support.factories import letters_token, make_admin, make_tenant


async def status_of(tenant: Tenant) -> tuple[TenantStatus, str | None]:
    async with unit_of_work(readonly=True) as session:
        row = await session.get(Tenant, tenant.id)
        assert row is not None
        return row.status, row.status_reason


async def test_find_suspend_and_reactivate_a_business(server: LiveServer, browser: Browser) -> None:  # noqa: F811
    tok = letters_token()
    tenant, _ = await make_tenant(name=f"Kibanda {tok}")
    email, password = await make_admin()
    page = await browser.new_page(viewport={"width": 360, "height": 740})
    questions: list[str] = []

    async def accept(dialog: Dialog) -> None:
        questions.append(dialog.message)
        await dialog.accept()

    page.on("dialog", accept)
    await browser_sign_in(page, server.url, email, password)

    await page.get_by_role("link", name="Businesses").click()
    await page.wait_for_url(f"{server.url}/admin/tenants")
    assert await page.locator("h1").inner_text() == "Businesses"
    await page.get_by_label("Search").fill(tok.upper())
    await page.get_by_label("Status").select_option("active")
    await page.get_by_role("button", name="Search").click()
    await page.wait_for_load_state()
    assert await page.locator("#tenants tbody tr").count() == 1
    await shot(page, "admin-tenants")
    # nothing wider than the phone's screen but the table, which scrolls inside its own box
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360

    await page.get_by_role("link", name=f"Kibanda {tok}").click()
    await page.wait_for_url(f"{server.url}/admin/tenants/{tenant.id}")
    assert await page.locator("#status-tag").inner_text() == "active"
    await shot(page, "admin-tenant-detail")

    # too short a reason: the message appears next to the field
    await page.get_by_label("Reason for suspending").fill("bad")
    await page.get_by_role("button", name="Suspend").click()
    await page.wait_for_load_state()
    assert await page.locator("#suspend-reason-error").inner_text() == "Give a reason of 5 to 300 characters."
    assert await status_of(tenant) == (TenantStatus.active, None)

    await page.get_by_label("Reason for suspending").fill("Chargebacks under review")
    await page.get_by_role("button", name="Suspend").click()
    await page.wait_for_url(f"{server.url}/admin/tenants/{tenant.id}?done=suspended")
    assert questions[-1].startswith(f"Suspend Kibanda {tok}?")
    assert await page.locator("#status-tag").inner_text() == "suspended"
    assert await page.locator("#status-reason").inner_text() == "Chargebacks under review"
    assert "Suspended." in await page.get_by_role("status").first.inner_text()
    await shot(page, "admin-tenant-suspended")
    assert await status_of(tenant) == (TenantStatus.suspended, "Chargebacks under review")

    await page.get_by_label("Reason for reactivating").fill("Reviewed with the owner")
    await page.get_by_role("button", name="Reactivate").click()
    await page.wait_for_url(f"{server.url}/admin/tenants/{tenant.id}?done=reactivated")
    assert questions[-1].startswith(f"Reactivate Kibanda {tok}?")
    assert await page.locator("#status-tag").inner_text() == "active"
    assert await status_of(tenant) == (TenantStatus.active, None)

    await page.get_by_role("link", name="← Businesses").click()
    await page.wait_for_url(f"{server.url}/admin/tenants")
    await page.close()
