"""The admin's error log, audit trail and outbox: each failure kind shows up linked to what it concerns,
with the request id; filters that cannot be understood are refused next to their field."""

from __future__ import annotations

import re
import uuid
from contextlib import aclosing

import httpx
from playwright.async_api import Browser
from sqlalchemy import select

from core.db import utcnow
from core.jobs.models import JobOutbox
from core.notify.models import Notification, NotifyChannel, NotifyStatus
from core.payments.models import CallbackInbox
from core.runtime import runtime, unit_of_work
from core.tenants.models import Tenant
from core.tenants.service import tenants
from tests.conftest import LiveServer
from tests.support.browser import browser, browser_sign_in, shot  # noqa: F401  - the fixture
from tests.support.factories import make_admin, make_api_key, make_tenant, make_user
from tests.support.panel import admin_client, business_client
from tests.support.waiting import wait_for_final, wait_until


async def _failed_push(client: httpx.AsyncClient, key: str, request_id: str) -> str:
    r = await client.post(
        "/api/stk-push",
        json={"phone": "0722002001", "amount": 20},  # the simulator answers 2001: wrong PIN
        headers={"Authorization": f"Bearer {key}", "X-Request-ID": request_id},
    )
    assert r.status_code == 201, r.text
    final = await wait_for_final(client, key, r.json()["id"])
    assert (final["status"], final["result_code"]) == ("failed", "2001")
    return str(r.json()["id"])


async def _malformed_callback(client: httpx.AsyncClient, tenant: Tenant, request_id: str) -> int:
    async with unit_of_work(readonly=True) as session:
        channel = await tenants.get_channel(session, tenant.id)
        assert channel is not None
        url = tenants.callback_url(channel, settings=runtime().settings)
    r = await client.post(
        url,
        content=b'{"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_bad"}}}',
        headers={"X-Request-ID": request_id},
    )
    assert r.status_code == 200, r.text

    async def applied() -> bool:
        async with unit_of_work(readonly=True) as session:
            row = await session.scalar(select(CallbackInbox).where(CallbackInbox.request_id == request_id))
            return row is not None and row.processed_at is not None

    await wait_until(applied)
    async with unit_of_work(readonly=True) as session:
        row = await session.scalar(select(CallbackInbox).where(CallbackInbox.request_id == request_id))
        assert row is not None and row.outcome == "malformed"
        return row.id


def _section(html: str, anchor: str) -> str:
    """The HTML of one section of the error log: from its heading to the next."""
    start = html.index(f'id="{anchor}"')
    nxt = html.find("<h2", start + 1)
    return html[start : nxt if nxt != -1 else len(html)]


async def test_error_log_links_each_failure_with_its_request_id(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    tenant, _ = await make_tenant(name="Errors Duka")
    key = await make_api_key(tenant=tenant)
    push_rid, cb_rid = f"push-{uuid.uuid4().hex[:8]}", f"cb-{uuid.uuid4().hex[:8]}"
    payment_id = await _failed_push(client, key, push_rid)
    await _malformed_callback(client, tenant, cb_rid)
    async with unit_of_work() as session:
        job = JobOutbox(
            actor="send_notification",
            kwargs={"payment_id": payment_id, "tenant_id": str(tenant.id)},
            failed_at=utcnow(),
            sends=5,
            error="ConnectError: all connection attempts failed",
            request_id="job-rid-1",
        )
        message = Notification(
            tenant_id=tenant.id,
            kind="payment_receipt",
            channel=NotifyChannel.sms,
            recipient="254722002001",
            body="Paid KES 20",
            status=NotifyStatus.undeliverable,
            error="AbsentSubscriber",
            payment_id=uuid.UUID(payment_id),
        )
        # A job of no business in particular, and one about this business's payment named only by it.
        loose = JobOutbox(actor="hotspot.sweep", kwargs={}, failed_at=utcnow(), sends=3, error="loose")
        by_payment = JobOutbox(
            actor="payments.check_payment", kwargs={"payment_id": payment_id}, failed_at=utcnow(), sends=8
        )
        session.add_all([job, message, loose, by_payment])
        await session.flush()
        job_id, message_id, loose_id, by_payment_id = job.id, message.id, loose.id, by_payment.id

    admin, _ = await admin_client(server.url)
    async with aclosing(admin):
        page = await admin.get("/admin/errors", params={"tenant": tenant.slug, "days": "1"})
        assert page.status_code == 200
        html = page.text
        by_code = _section(html, "daraja")
        assert "<code>2001</code>" in by_code and "wrong M-Pesa PIN" in by_code
        assert f'href="/admin/transactions?tenant={tenant.id}&amp;status=failed">1</a>' in by_code
        recent = _section(html, "payments")
        assert f'href="/admin/transactions/{payment_id}"' in recent and f"<code>{push_rid}</code>" in recent
        callbacks = _section(html, "callbacks")
        assert "malformed" in callbacks and f"<code>{cb_rid}</code>" in callbacks
        jobs = _section(html, "jobs")
        assert f"#{job_id}, 5 tries" in jobs and "<code>job-rid-1</code>" in jobs
        assert f'href="/admin/transactions/{payment_id}">payment</a>' in jobs
        assert f"#{by_payment_id}, 8 tries" in jobs and f"#{loose_id}," not in jobs
        messages = _section(html, "messages")
        assert "undeliverable" in messages and "AbsentSubscriber" in messages
        assert f"#n{message_id}" in messages

        # Another business's log does not show this one's failures.
        other, _ = await make_tenant(name="Quiet Duka")
        quiet = await admin.get("/admin/errors", params={"tenant": other.slug})
        assert push_rid not in quiet.text and cb_rid not in quiet.text
        assert "No failed or timed-out payments." in quiet.text

        # The outbox shows the undelivered message at its anchor, with its state.
        box = await admin.get("/admin/outbox", params={"tenant": tenant.slug, "status": "undeliverable"})
        row = re.search(rf'<tr id="n{message_id}">.*?</tr>', box.text, re.S)
        assert row and "AbsentSubscriber" in row.group(0) and "254722002001" in row.group(0)


async def test_filters_that_cannot_be_understood_are_refused_next_to_the_field(server: LiveServer) -> None:
    admin, _ = await admin_client(server.url)
    async with aclosing(admin):
        r = await admin.get("/admin/errors", params={"tenant": "no-such-duka", "days": "400"})
        assert r.status_code == 422
        assert (
            '<p class="error" id="e-tenant">No business has the id, slug or number “no-such-duka”.</p>'
            in r.text
        )
        assert '<p class="error" id="e-days">Choose a period of 1 to 90 days.</p>' in r.text
        r = await admin.get("/admin/outbox", params={"channel": "pigeon", "before": "x1"})
        assert r.status_code == 422
        assert 'id="e-channel">Choose one of the listed values.' in r.text
        assert "This page link is damaged" in r.text
        r = await admin.get("/admin/audit", params={"category": "gossip"})
        assert r.status_code == 422 and 'id="e-category">Choose one of the listed categories.' in r.text


async def test_audit_log_filters_and_pages(server: LiveServer) -> None:
    tenant, owner = await make_tenant(name="Audit Duka")
    async with unit_of_work() as session:
        from core.audit.service import record

        for i in range(55):
            await record(
                session, action="export.customers", tenant_id=tenant.id, user_id=owner.id, target=f"t{i}"
            )
        await record(session, action="apikey.created", tenant_id=tenant.id, user_id=owner.id, target="key")
    admin, _ = await admin_client(server.url)
    async with aclosing(admin):
        first = await admin.get("/admin/audit", params={"tenant": tenant.slug, "category": "exports"})
        assert first.status_code == 200
        assert first.text.count("<code>export.customers</code>") == 50
        assert "apikey.created" not in first.text
        assert owner.email in first.text
        older = re.search(r'href="(/admin/audit\?[^"]*before=\d+[^"]*)">Older', first.text)
        assert older, "no link to the older page"
        second = await admin.get(older.group(1).replace("&amp;", "&"))
        assert second.text.count("<code>export.customers</code>") == 5
        assert ">t0<" in second.text and ">t54<" not in second.text and "Older" not in second.text
        keys = await admin.get("/admin/audit", params={"tenant": tenant.slug, "category": "keys"})
        assert keys.text.count("<code>apikey.created</code>") == 1
        # The admin's own sign-in is in the log too.
        logins = await admin.get("/admin/audit", params={"category": "logins"})
        assert "<code>auth.login_2fa</code>" in logins.text


async def test_business_users_cannot_open_the_logs(server: LiveServer) -> None:
    from core.auth.models import Role

    tenant, owner = await make_tenant(name="Nosy Duka")
    cashier = await make_user(tenant=tenant, role=Role.cashier)
    for user in (owner, cashier):
        client = await business_client(server.url, user)
        async with aclosing(client):
            for path in ("/admin/errors", "/admin/audit", "/admin/outbox"):
                r = await client.get(path)
                assert r.status_code == 403, path
                assert "This is for platform administrators (role platform_admin)." in r.text


async def test_failed_callback_in_the_error_log_in_chromium(
    server: LiveServer,
    client: httpx.AsyncClient,
    browser: Browser,  # noqa: F811
) -> None:
    tenant, _ = await make_tenant(name="Chromium Errors")
    rid = f"cb-{uuid.uuid4().hex[:8]}"
    await _malformed_callback(client, tenant, rid)
    email, password = await make_admin()
    page = await browser.new_page(viewport={"width": 360, "height": 740})
    await browser_sign_in(page, server.url, email, password)
    await page.get_by_role("link", name="Errors").click()
    await page.get_by_label("Business (slug, number or id)").fill(tenant.slug)
    await page.get_by_role("button", name="Show").click()
    await page.wait_for_load_state()
    row = page.locator("#callbacks + .table-wrap tr", has_text=rid)
    assert "malformed" in await row.inner_text()
    await shot(page, "admin-errors")
    await page.get_by_role("link", name="Outbox").click()
    await page.wait_for_load_state()
    assert await page.locator("h1").inner_text() == "Outbox"
    await shot(page, "admin-outbox")
    await page.get_by_role("link", name="Audit").click()
    await page.get_by_label("Category").select_option("logins")
    await page.get_by_role("button", name="Show").click()
    await page.wait_for_load_state()
    assert await page.locator("td code", has_text="auth.login_2fa").count() >= 1
    await shot(page, "admin-audit")
    await page.close()


async def test_the_outbox_never_shows_codes_or_links_that_act_for_someone(server: LiveServer) -> None:
    from tests.support.factories import emailed_code

    other_email, _ = await make_admin()
    async with httpx.AsyncClient(base_url=server.url) as other:
        from tests.support.panel import password_step

        await password_step(other, other_email, "admin-pass-123")  # another admin's code goes out
    code = await emailed_code(other_email)
    admin, _ = await admin_client(server.url)
    async with aclosing(admin):
        page = await admin.get("/admin/outbox", params={"recipient": other_email})
        assert page.status_code == 200
        row = re.search(r'<tr id="n\d+">.*?</tr>', page.text, re.S)
        assert row and other_email in row.group(0) and "auth.code" in row.group(0)
        assert "Not shown: it carries a code or link that acts for the recipient." in row.group(0)
        assert code not in page.text
