"""Platform admin → Businesses over HTTP: search and filters, the detail page (masked secrets, recent
errors, hotspot routers), suspend/reactivate as seen by the real push API, commission rates, and
the refusals (roles, unknown ids, CSRF)."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import delete, select

from core.audit.models import AuditLog
from core.auth.models import Role
from core.billing.commission import DEFAULT_RATE_KEY
from core.billing.models import PlatformSetting
from core.billing.platform import platform_channel
from core.db import utcnow
from core.hotspot.routers import routers
from core.hotspot.schemas import RouterIn
from core.notify.models import Notification, NotifyChannel
from core.runtime import runtime, unit_of_work
from core.tenants.admin import tenant_admin
from core.tenants.models import BillingMode, Tenant, TenantKind, TenantStatus
from core.tenants.service import tenants
from tests.conftest import LiveServer
from tests.support.factories import (
    channel_in,
    fund_wallet,
    letters_token,
    make_api_key,
    make_tenant,
    make_user,
)
from tests.support.panel import admin_client, business_client, csrf_of, form_post
from tests.support.waiting import wait_for_final


@pytest.fixture
async def admin(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    client, _ = await admin_client(server.url)
    try:
        yield client
    finally:
        await client.aclose()


def token() -> str:
    return letters_token()


def phone() -> str:
    return f"07{secrets.randbelow(10**8):08d}"


def names_in(html: str) -> list[str]:
    """The business names listed in the table, in order."""
    body = html.split('<table class="data" id="tenants">', 1)
    if len(body) < 2:
        return []
    return re.findall(
        r'<td><a href="/admin/tenants/[0-9a-f-]+">([^<]+)</a></td>', body[1].split("</table>")[0]
    )


async def tenant_row(tenant_id: uuid.UUID) -> Tenant:
    async with unit_of_work(readonly=True) as session:
        row = await session.get(Tenant, tenant_id)
        assert row is not None
        return row


async def audit_rows(tenant_id: uuid.UUID | None, action: str) -> list[AuditLog]:
    async with unit_of_work(readonly=True) as session:
        return list(
            await session.scalars(
                select(AuditLog)
                .where(AuditLog.tenant_id == tenant_id, AuditLog.action == action)
                .order_by(AuditLog.id)
            )
        )


def api(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class TestList:
    async def test_search_and_filters_give_exact_rows(self, admin: httpx.AsyncClient) -> None:
        tok = token()
        alpha, _ = await make_tenant(name=f"Alpha {tok} Duka", phone=(alpha_phone := phone()))
        beta, _ = await make_tenant(name=f"Beta_{tok} Shop")
        gamma, _ = await make_tenant(name=f"Gamma {tok} WiFi")
        async with unit_of_work() as session:
            g = await session.get(Tenant, gamma.id)
            assert g is not None
            g.kind, g.billing_mode = TenantKind.hotspot, BillingMode.subscription
            await tenant_admin.suspend(session, tenant_id=beta.id, reason="KYC documents missing", by=None)

        r = await admin.get("/admin/tenants", params={"q": tok})
        assert r.status_code == 200
        # newest first
        assert names_in(r.text) == [f"Gamma {tok} WiFi", f"Beta_{tok} Shop", f"Alpha {tok} Duka"]
        assert "3 found" in r.text
        # case-insensitive
        r = await admin.get("/admin/tenants", params={"q": f"ALPHA {tok.upper()}"})
        assert names_in(r.text) == [f"Alpha {tok} Duka"]
        # LIKE-escaped: "_" is a character, not "any character" (else "a {tok}" would match too)
        r = await admin.get("/admin/tenants", params={"q": f"a_{tok}"})
        assert names_in(r.text) == [f"Beta_{tok} Shop"]
        r = await admin.get("/admin/tenants", params={"q": f"%{tok}"})
        assert names_in(r.text) == []
        assert "No business matches" in r.text
        # slug, email, phone (as typed and as stored), business number
        for q in (alpha.slug, alpha.email.upper(), alpha_phone, alpha.phone, alpha.business_number):
            r = await admin.get("/admin/tenants", params={"q": q})
            assert names_in(r.text) == [f"Alpha {tok} Duka"], q
        # filters
        r = await admin.get("/admin/tenants", params={"q": tok, "status": "suspended"})
        assert names_in(r.text) == [f"Beta_{tok} Shop"]
        assert (
            '<span class="tag suspended">suspended</span> <span class="muted">KYC documents missing</span>'
            in r.text
        )
        r = await admin.get("/admin/tenants", params={"q": tok, "kind": "hotspot"})
        assert names_in(r.text) == [f"Gamma {tok} WiFi"]
        assert "Hotspot provider" in r.text
        r = await admin.get("/admin/tenants", params={"q": tok, "kind": "business", "status": "active"})
        assert names_in(r.text) == [f"Alpha {tok} Duka"]
        # an unknown filter value is ignored rather than breaking the page
        r = await admin.get("/admin/tenants", params={"q": tok, "status": "nonsense"})
        assert r.status_code == 200 and len(names_in(r.text)) == 3

    async def test_columns_and_never_the_platform(self, admin: httpx.AsyncClient) -> None:
        rt = runtime()
        async with unit_of_work() as session:
            channel = await platform_channel(session, settings=rt.settings, box=rt.secrets)
            platform_id = channel.tenant_id
        r = await admin.get("/admin/tenants", params={"q": "lipapush-platform"})
        assert names_in(r.text) == []
        r = await admin.get(f"/admin/tenants/{platform_id}")
        assert r.status_code == 404

        tok = token()
        tenant, _ = await make_tenant(name=f"Columns {tok}")
        async with unit_of_work() as session:
            t = await session.get(Tenant, tenant.id)
            assert t is not None
            t.commission_bps = 250
        await fund_wallet(tenant, 125_000)
        r = await admin.get("/admin/tenants", params={"q": tok})
        row = r.text.split(f">Columns {tok}</a>")[1].split("</tr>")[0]
        assert "Business" in row and '<span class="tag active">active</span>' in row
        assert "hybrid" in row and "2.5%" in row and "KES 1,250" in row

    async def test_pagination(self, admin: httpx.AsyncClient) -> None:
        def ids_in(html: str) -> list[str]:
            return re.findall(r'<td><a href="/admin/tenants/([0-9a-f-]+)">', html)

        def total_of(html: str) -> int:
            match = re.search(r"(\d+) found", html)
            assert match
            return int(match.group(1))

        for _ in range(max(0, 51 - total_of((await admin.get("/admin/tenants")).text))):
            await make_tenant(name=f"Filler {token()}")
        first = await admin.get("/admin/tenants")
        total = total_of(first.text)
        assert len(ids_in(first.text)) == 50 and 'rel="next"' in first.text and 'rel="prev"' not in first.text
        second = await admin.get("/admin/tenants", params={"page": 2})
        assert second.status_code == 200 and 'rel="prev"' in second.text
        assert len(ids_in(second.text)) == min(50, total - 50)
        assert not set(ids_in(first.text)) & set(ids_in(second.text))


class TestRefusals:
    async def test_anonymous_is_sent_to_sign_in(self, client: httpx.AsyncClient) -> None:
        r = await client.get("/admin/tenants")
        assert (r.status_code, r.headers["location"]) == (303, "/login?next=/admin/tenants")
        tenant, _ = await make_tenant()
        r = await client.post(f"/admin/tenants/{tenant.id}/suspend", data={"reason": "no session here"})
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        assert (await tenant_row(tenant.id)).status is TenantStatus.active

    @pytest.mark.parametrize("role", [Role.owner, Role.cashier])
    async def test_business_users_get_403(self, server: LiveServer, role: Role) -> None:
        tenant, owner = await make_tenant()
        user = owner if role is Role.owner else await make_user(tenant=tenant, role=role)
        c = await business_client(server.url, user)
        try:
            assert (await c.get("/admin/tenants")).status_code == 403
            assert (await c.get(f"/admin/tenants/{tenant.id}")).status_code == 403
            page = await c.get("/app")
            csrf = csrf_of(page.text)
            for action, data in (
                ("suspend", {"reason": "trying my luck"}),
                ("reactivate", {"reason": "trying my luck"}),
                ("commission", {"percent": "0"}),
            ):
                r = await c.post(f"/admin/tenants/{tenant.id}/{action}", data={**data, "csrf_token": csrf})
                assert r.status_code == 403, action
            r = await c.post("/admin/commission-default", data={"percent": "0", "csrf_token": csrf})
            assert r.status_code == 403
        finally:
            await c.aclose()
        row = await tenant_row(tenant.id)
        assert (row.status, row.commission_bps) == (TenantStatus.active, None)

    async def test_unknown_id_is_404(self, admin: httpx.AsyncClient) -> None:
        assert (await admin.get(f"/admin/tenants/{uuid.uuid4()}")).status_code == 404
        assert (await admin.get("/admin/tenants/not-a-uuid")).status_code == 404
        tenant, _ = await make_tenant()
        r = await form_post(
            admin,
            f"/admin/tenants/{tenant.id}",
            f"/admin/tenants/{uuid.uuid4()}/suspend",
            {"reason": "valid reason"},
        )
        assert r.status_code == 404

    async def test_csrf_missing_is_403_and_changes_nothing(self, admin: httpx.AsyncClient) -> None:
        tenant, _ = await make_tenant()
        r = await admin.post(f"/admin/tenants/{tenant.id}/suspend", data={"reason": "no token in this form"})
        assert r.status_code == 403
        r = await admin.post(
            f"/admin/tenants/{tenant.id}/commission", data={"percent": "3", "csrf_token": "forged"}
        )
        assert r.status_code == 403
        row = await tenant_row(tenant.id)
        assert (row.status, row.commission_bps) == (TenantStatus.active, None)
        assert await audit_rows(tenant.id, "tenant.suspend") == []


class TestDetail:
    async def test_secrets_are_masked(self, admin: httpx.AsyncClient) -> None:
        tenant, owner = await make_tenant(with_channel=False)
        secret, passkey = "cs-very-secret-Q7W1", "pk-super-secret-passkey-Z9X2"
        async with unit_of_work() as session:
            t = await session.get(Tenant, tenant.id)
            assert t is not None
            await tenants.save_channel(
                session,
                tenant=t,
                data=channel_in(
                    environment="sandbox",
                    kind="till",
                    business_short_code="174379",
                    till_number="5123456",
                    consumer_key="ck-consumer-key-K3Y4",
                    consumer_secret=secret,
                    passkey=passkey,
                ),
                box=runtime().secrets,
                by=owner.id,
            )
        r = await admin.get(f"/admin/tenants/{tenant.id}")
        assert r.status_code == 200
        assert secret not in r.text and passkey not in r.text and "ck-consumer-key-K3Y4" not in r.text
        assert "****Q7W1" in r.text and "****Z9X2" in r.text and "****K3Y4" in r.text
        assert "5123456" in r.text and "sandbox" in r.text and "not verified yet" in r.text
        assert owner.email in r.text  # staff
        assert (
            "View as this business" in r.text and f'action="/admin/tenants/{tenant.id}/impersonate"' in r.text
        )

    async def test_recent_errors_link_to_the_payment(
        self, admin: httpx.AsyncClient, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant()
        key = await make_api_key(tenant=tenant)
        r = await client.post("/api/stk-push", json={"phone": "0722002001", "amount": 20}, headers=api(key))
        assert r.status_code == 201, r.text
        final = await wait_for_final(client, key, r.json()["id"])
        assert final["status"] == "failed"
        page = await admin.get(f"/admin/tenants/{tenant.id}")
        assert f'href="/admin/transactions/{final["id"]}"' in page.text
        assert "<td>2001</td>" in page.text and "KES 20" in page.text

    async def test_hotspot_provider_shows_subscription_and_routers(self, admin: httpx.AsyncClient) -> None:
        tenant, owner = await make_tenant(name=f"Net {token()}")
        async with unit_of_work() as session:
            t = await session.get(Tenant, tenant.id)
            assert t is not None
            t.kind, t.billing_mode = TenantKind.hotspot, BillingMode.subscription
            t.subscription_until = utcnow() + timedelta(days=10)
            await routers.add(
                session,
                tenant_id=tenant.id,
                data=RouterIn(
                    name="gate-1", host="10.0.0.9", port=8728, username="api", password="pw-router"
                ),
                box=runtime().secrets,
                by=owner.id,
            )
        r = await admin.get(f"/admin/tenants/{tenant.id}")
        assert "Subscription paid until" in r.text and "gate-1" in r.text and "10.0.0.9:8728" in r.text
        assert "pw-router" not in r.text
        assert '<dd id="effective-rate">0%</dd>' in r.text
        assert 'id="plan-none">A WiFi hotspot provider is on no API plan' in r.text


class TestSuspension:
    async def test_suspend_refuses_pushes_and_reactivate_allows_them(
        self, admin: httpx.AsyncClient, client: httpx.AsyncClient
    ) -> None:
        tenant, owner = await make_tenant()
        key = await make_api_key(tenant=tenant)
        page = f"/admin/tenants/{tenant.id}"
        reason = "Chargebacks under review, ticket 4411"

        r = await form_post(admin, page, f"{page}/suspend", {"reason": reason})
        assert (r.status_code, r.headers["location"]) == (303, f"{page}?done=suspended")
        row = await tenant_row(tenant.id)
        assert (row.status, row.status_reason) == (TenantStatus.suspended, reason)
        shown = await admin.get(r.headers["location"])
        assert "Suspended. Its pushes are refused" in shown.text
        assert '<span class="tag suspended" id="status-tag">suspended</span>' in shown.text
        assert reason in shown.text

        refused = await client.post(
            "/api/stk-push", json={"phone": "0722000111", "amount": 10}, headers=api(key)
        )
        assert refused.status_code == 403
        assert refused.json() == {
            "error": "tenant_not_active",
            "detail": f"This business is suspended: {reason}. Contact lipapush support.",
        }

        [audit] = await audit_rows(tenant.id, "tenant.suspend")
        admin_id = audit.user_id
        assert admin_id is not None and audit.detail["reason"] == reason

        # the owner is told: SMS (no Telegram linked) and email, with the reason
        async with unit_of_work(readonly=True) as session:
            told = list(
                await session.scalars(
                    select(Notification).where(
                        Notification.tenant_id == tenant.id, Notification.kind == "tenant.suspended"
                    )
                )
            )
        assert sorted((n.channel, n.recipient) for n in told) == sorted(
            [(NotifyChannel.sms, tenant.phone), (NotifyChannel.email, owner.email)]
        )
        assert all(reason in n.body for n in told)

        # twice: 422 with the message next to the reason field
        again = await form_post(admin, page, f"{page}/suspend", {"reason": "once more for luck"})
        assert again.status_code == 422
        assert "is already suspended" in again.text and 'id="suspend-reason-error"' in again.text
        assert len(await audit_rows(tenant.id, "tenant.suspend")) == 1

        # reactivate needs a reason too
        short = await form_post(admin, page, f"{page}/reactivate", {"reason": "ok"})
        assert short.status_code == 422 and 'id="reactivate-reason-error"' in short.text
        assert "Give a reason of 5 to 300 characters." in short.text

        r = await form_post(admin, page, f"{page}/reactivate", {"reason": "Reviewed, all clear"})
        assert (r.status_code, r.headers["location"]) == (303, f"{page}?done=reactivated")
        row = await tenant_row(tenant.id)
        assert (row.status, row.status_reason) == (TenantStatus.active, None)
        [audit] = await audit_rows(tenant.id, "tenant.reactivate")
        assert audit.user_id == admin_id and audit.detail == {
            "via": "panel",
            "reason": "Reviewed, all clear",
            "status": "active",
        }
        assert "Reactivated." in (await admin.get(r.headers["location"])).text

        ok = await client.post("/api/stk-push", json={"phone": "0722000111", "amount": 10}, headers=api(key))
        assert ok.status_code == 201, ok.text
        assert (await wait_for_final(client, key, ok.json()["id"]))["status"] == "success"

    async def test_reactivating_an_unverified_business_returns_it_to_onboarding(
        self, admin: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant(verified=False)
        page = f"/admin/tenants/{tenant.id}"
        assert (
            await form_post(admin, page, f"{page}/suspend", {"reason": "Suspicious sign-up"})
        ).status_code == 303
        r = await form_post(admin, page, f"{page}/reactivate", {"reason": "Owner called, verified ID"})
        assert r.status_code == 303
        row = await tenant_row(tenant.id)
        assert (row.status, row.status_reason) == (TenantStatus.onboarding, None)

    async def test_reason_rules(self, admin: httpx.AsyncClient) -> None:
        tenant, _ = await make_tenant()
        page = f"/admin/tenants/{tenant.id}"
        for reason in ("", "   abc ", "x" * 301):
            r = await form_post(admin, page, f"{page}/suspend", {"reason": reason})
            assert r.status_code == 422
            assert (
                '<p class="error" id="suspend-reason-error">Give a reason of 5 to 300 characters.</p>'
                in r.text
            )
        r = await form_post(admin, page, f"{page}/reactivate", {"reason": "not suspended now"})
        assert r.status_code == 422 and "is not suspended (it is active)" in r.text
        assert 'id="reactivate-reason-error"' in r.text
        assert (await tenant_row(tenant.id)).status is TenantStatus.active


class TestCommission:
    async def test_set_clear_and_refuse(self, admin: httpx.AsyncClient) -> None:
        tenant, _ = await make_tenant()
        page = f"/admin/tenants/{tenant.id}"
        r = await form_post(admin, page, f"{page}/commission", {"percent": "1.5"})
        assert (r.status_code, r.headers["location"]) == (303, f"{page}?done=commission")
        assert (await tenant_row(tenant.id)).commission_bps == 150
        shown = await admin.get(r.headers["location"])
        assert "Commission rate saved." in shown.text and '<dd id="effective-rate">1.5%</dd>' in shown.text

        for bad, message in (
            ("-1", "The rate must be between 0 and 100 %."),
            ("101", "The rate must be between 0 and 100 %."),
            ("abc", "Give the rate as a percentage, like 1.5"),
            ("1.234", "The rate can have at most two decimals (0.01 % steps)."),
        ):
            r = await form_post(admin, page, f"{page}/commission", {"percent": bad})
            assert r.status_code == 422, bad
            assert f'<p class="error" id="commission-percent-error">{message}</p>' in r.text
            assert f'value="{bad}"' in r.text
        assert (await tenant_row(tenant.id)).commission_bps == 150

        r = await form_post(admin, page, f"{page}/commission", {"percent": ""})
        assert r.status_code == 303
        assert (await tenant_row(tenant.id)).commission_bps is None
        audits = await audit_rows(tenant.id, "commission.set")
        assert [a.detail for a in audits] == [
            {"via": "panel", "bps": 150, "previous_bps": None},
            {"via": "panel", "bps": None, "previous_bps": 150},
        ]
        assert all(a.user_id is not None for a in audits)

    async def test_platform_default(self, admin: httpx.AsyncClient) -> None:
        async with unit_of_work(readonly=True) as session:
            before = await session.get(PlatformSetting, DEFAULT_RATE_KEY)
            before_value = before.value if before else None
        try:
            for bad in ("-1", "101", "abc", "0.125", ""):
                r = await form_post(admin, "/admin/tenants", "/admin/commission-default", {"percent": bad})
                assert r.status_code == 422, bad
                assert 'id="default-percent-error"' in r.text
            r = await form_post(admin, "/admin/tenants", "/admin/commission-default", {"percent": "0.75"})
            assert (r.status_code, r.headers["location"]) == (303, "/admin/tenants?done=default")
            async with unit_of_work(readonly=True) as session:
                row = await session.get(PlatformSetting, DEFAULT_RATE_KEY)
                assert row is not None and row.value == "75"
            page = await admin.get(r.headers["location"])
            assert "Platform default commission saved." in page.text and "pay 0.75%." in page.text
            [audit] = (await audit_rows(None, "commission.default_set"))[-1:]
            assert audit.detail == {"via": "panel", "bps": 75} and audit.user_id is not None
        finally:
            async with unit_of_work() as session:
                if before_value is None:
                    await session.execute(
                        delete(PlatformSetting).where(PlatformSetting.key == DEFAULT_RATE_KEY)
                    )
                else:
                    row = await session.get(PlatformSetting, DEFAULT_RATE_KEY)
                    assert row is not None
                    row.value = before_value
