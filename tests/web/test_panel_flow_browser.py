"""The web panel's acceptance flow in real Chromium, as issue 8 lays it out.

An admin signs in with the emailed code, finds a business and suspends it (its next API push is refused
with the reason), reactivates it, views as the business (banner, audit rows, a change refused until
write access is asked for with a reason), downloads a global export and opens it with openpyxl, and
finds a failed callback in the error log. Then the business owner exports the customer book and
changes the low-balance alert level."""

from __future__ import annotations

import io
import re
import uuid
from pathlib import Path

import httpx
from openpyxl import load_workbook
from playwright.async_api import Browser, Dialog, Page
from sqlalchemy import select

from core.audit.models import AuditLog
from core.runtime import runtime, unit_of_work
from core.tenants.models import Tenant
from core.tenants.service import tenants
from tests.conftest import LiveServer
from tests.support.browser import browser, browser_sign_in, shot  # noqa: F401  - the fixture
from tests.support.factories import letters_token, make_admin, make_api_key, make_tenant
from tests.support.waiting import wait_for_final, wait_until


async def _push(client: httpx.AsyncClient, key: str, phone: str, amount: int) -> httpx.Response:
    return await client.post(
        "/api/stk-push", json={"phone": phone, "amount": amount}, headers={"Authorization": f"Bearer {key}"}
    )


async def _actions(tenant: Tenant, user_email: str) -> list[str]:
    from core.auth.models import User

    async with unit_of_work(readonly=True) as session:
        return list(
            await session.scalars(
                select(AuditLog.action)
                .join(User, User.id == AuditLog.user_id)
                .where(AuditLog.tenant_id == tenant.id, User.email == user_email)
                .order_by(AuditLog.id)
            )
        )


def _accept_dialogs(page: Page) -> None:
    async def accept(dialog: Dialog) -> None:
        await dialog.accept()

    page.on("dialog", accept)


async def test_admin_and_owner_flow(server: LiveServer, client: httpx.AsyncClient, browser: Browser) -> None:  # noqa: F811
    tok = letters_token()  # no digits: the admin search also matches phone digits
    name = f"Flow Duka {tok}"
    tenant, owner = await make_tenant(name=name)
    key = await make_api_key(tenant=tenant)
    paid = await _push(client, key, "0722000111", 320)
    assert (await wait_for_final(client, key, paid.json()["id"]))["status"] == "success"
    # A callback that cannot be applied, to find in the error log.
    rid = f"flow-{uuid.uuid4().hex[:8]}"
    async with unit_of_work(readonly=True) as session:
        channel = await tenants.get_channel(session, tenant.id)
        assert channel is not None
        callback_url = tenants.callback_url(channel, settings=runtime().settings)
    r = await client.post(
        callback_url, content=b'{"Body": {"stkCallback": "garbage"}}', headers={"X-Request-ID": rid}
    )
    assert r.status_code == 200

    email, password = await make_admin()
    page = await browser.new_page(viewport={"width": 360, "height": 740}, accept_downloads=True)
    _accept_dialogs(page)

    # 1. Sign in with the emailed code.
    await browser_sign_in(page, server.url, email, password)
    assert page.url == f"{server.url}/admin"

    # 2. Find the business.
    await page.get_by_role("link", name="Businesses").click()
    await page.get_by_label("Search").fill(tok)
    await page.get_by_role("button", name="Search").click()
    await page.wait_for_load_state()
    await page.get_by_role("link", name=name).click()
    await page.wait_for_url(f"{server.url}/admin/tenants/{tenant.id}")

    # 3. Suspend it: its next API push is refused, with the reason.
    await page.get_by_label("Reason for suspending").fill("KYC documents expired")
    await page.get_by_role("button", name="Suspend").click()
    await page.wait_for_url(f"{server.url}/admin/tenants/{tenant.id}?done=suspended")
    refused = await _push(client, key, "0722000111", 50)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"] == "tenant_not_active"
    assert "KYC documents expired" in refused.json()["detail"]

    # 4. Reactivate: pushes are accepted again.
    await page.get_by_label("Reason for reactivating").fill("Documents renewed")
    await page.get_by_role("button", name="Reactivate").click()
    await page.wait_for_url(f"{server.url}/admin/tenants/{tenant.id}?done=reactivated")
    again = await _push(client, key, "0722000111", 50)
    assert again.status_code == 201, again.text

    # 5. View as the business: a banner on every page, audit rows, read-only until asked.
    await page.get_by_role("button", name="View as this business").click()
    await page.wait_for_url(f"{server.url}/app")
    banner = page.locator("#impersonation-banner")
    assert f"Viewing as {name}" in await banner.inner_text()
    assert "read-only" in await banner.inner_text()
    await shot(page, "impersonation-banner")
    await page.get_by_role("link", name="Wallet", exact=True).click()
    await page.wait_for_url(f"{server.url}/app/wallet")
    assert await banner.is_visible()
    await page.get_by_label("Alert me when the wallet is below (KES)").fill("700")
    await page.get_by_role("button", name="Save alert level").click()
    await page.wait_for_load_state()
    assert await page.locator("h1").inner_text() == "Not allowed"
    assert "write access" in await page.locator("main").inner_text()
    async with unit_of_work(readonly=True) as session:
        row = await session.get(Tenant, tenant.id)
        assert row is not None and row.low_balance_threshold_cents is None
    actions = await _actions(tenant, email)
    assert actions[:2] == ["tenant.suspend", "tenant.reactivate"]
    assert actions[2] == "impersonation.start"
    assert actions.count("impersonation.request") >= 3  # /app, /app/wallet, the refused POST
    await page.goto(f"{server.url}/app/wallet")
    await page.locator("summary", has_text="Ask for write access").click()
    await page.get_by_label("Reason").fill("Ticket 42: owner asked to set the alert")
    await page.get_by_role("button", name="Allow changes").click()
    await page.wait_for_load_state()
    assert "write access" in await banner.inner_text()
    await page.goto(f"{server.url}/app/wallet")
    await page.get_by_label("Alert me when the wallet is below (KES)").fill("700")
    await page.get_by_role("button", name="Save alert level").click()
    await page.wait_for_load_state()
    async with unit_of_work(readonly=True) as session:
        row = await session.get(Tenant, tenant.id)
        assert row is not None and row.low_balance_threshold_cents == 70_000
    assert "impersonation.write" in await _actions(tenant, email)
    await page.get_by_role("button", name="Stop viewing").click()
    await page.wait_for_load_state()
    assert await page.locator("#impersonation-banner").count() == 0

    # 6. A global export, downloaded and opened.
    await page.goto(f"{server.url}/admin/exports")
    await page.get_by_label("What").select_option("transactions")
    await page.get_by_role("button", name="Start export").click()
    await page.wait_for_url(re.compile(r".*/admin/exports\?started=.*"))
    export_id = page.url.split("started=")[1].split("#")[0]
    # This export's own row (older exports of other tests are listed too): the page polls its
    # progress until the file is ready.
    ready = page.locator(f"#export-{export_id}").get_by_role("link", name="Download all-transactions")
    await ready.wait_for(timeout=30_000)
    await shot(page, "admin-exports")
    async with page.expect_download() as info:
        await ready.click()
    download = await info.value
    ws = load_workbook(io.BytesIO(Path(await download.path()).read_bytes()), read_only=True).active  # noqa: ASYNC240
    rows = [r for r in ws.iter_rows(values_only=True) if r[0] == name]
    assert {(r[3], r[5], r[6]) for r in rows} >= {("254722000111", 320, "success")}

    # 7. The failed callback in the error log, with its request id.
    await page.get_by_role("link", name="Errors").click()
    await page.get_by_label("Business (slug, number or id)").fill(tenant.slug)
    await page.get_by_role("button", name="Show").click()
    await page.wait_for_load_state()
    failed = page.locator("#callbacks + .table-wrap tr", has_text=rid)
    assert "malformed" in await failed.inner_text()
    await page.close()

    # 8. The owner exports the customer book and changes the alert level.
    page = await browser.new_page(viewport={"width": 360, "height": 740}, accept_downloads=True)
    await browser_sign_in(page, server.url, owner.email, "secret-pass-1")
    assert page.url == f"{server.url}/app"
    await page.get_by_role("link", name="Customers", exact=True).click()
    await page.wait_for_url(f"{server.url}/app/customers")
    async with page.expect_download() as info:
        await page.get_by_role("link", name="Export to Excel").click()
    book = load_workbook(
        io.BytesIO(Path(await (await info.value).path()).read_bytes()),  # noqa: ASYNC240
        read_only=True,
    ).active
    customers = list(book.iter_rows(values_only=True))
    assert customers[0][:2] == ("Name", "Phone")
    assert [c[1] for c in customers[1:]] == ["254722000111"]
    await page.get_by_role("link", name="Wallet", exact=True).click()
    await page.get_by_label("Alert me when the wallet is below (KES)").fill("1250")
    await page.get_by_role("button", name="Save alert level").click()
    await page.wait_for_load_state()
    assert await page.locator("#w-threshold").inner_text() == "KES 1,250"

    async def saved() -> bool:
        async with unit_of_work(readonly=True) as session:
            row = await session.get(Tenant, tenant.id)
            return row is not None and row.low_balance_threshold_cents == 125_000

    await wait_until(saved, timeout=5)
    assert "export.customers" in await _actions(tenant, owner.email)
    await page.close()
