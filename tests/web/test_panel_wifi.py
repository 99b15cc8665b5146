"""The business view's WiFi pages (/app/wifi) for hotspot providers, over HTTP against the RouterOS and
Pesapal stand-ins, and once in Chromium at 360 px: plans, voucher batches that reach the router,
revoking, texting a sold voucher again, routers (the password never shown, test connection, setup
script), sales, the subscription; roles, other tenants' ids, plain businesses and impersonation."""

from __future__ import annotations

import html
import io
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from openpyxl import load_workbook
from playwright.async_api import Browser, expect
from sqlalchemy import func, select

from core.audit.models import AuditLog
from core.auth.models import Role, User
from core.billing.models import SubscriptionPeriod, SubscriptionPlan
from core.hotspot.models import Plan, PlanKind, Router, Voucher, VoucherStatus
from core.hotspot.routers import routers
from core.hotspot.schemas import RouterIn
from core.hotspot.vouchers import vouchers
from core.notify.models import Notification
from core.runtime import runtime, unit_of_work
from core.tenants.models import Tenant, TenantKind
from core.tenants.service import tenants
from sim.routeros import RouterSim
from tests.conftest import LiveServer
from tests.support.browser import browser, browser_sign_in, shot  # noqa: F401  - the fixture
from tests.support.factories import make_api_key, make_tenant, make_user
from tests.support.panel import admin_client, business_client, csrf_of, form_post, rows_of, text_of
from tests.support.waiting import wait_for_final, wait_until

ROUTER_PASSWORD = "Rtr-Secret-7781"


@asynccontextmanager
async def signed_in(server: LiveServer, user: User | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """A panel client signed in as `user` (a new platform admin when None), closed afterwards."""
    if user is None:
        client, _ = await admin_client(server.url)
    else:
        client = await business_client(server.url, user)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def sim() -> AsyncIterator[RouterSim]:
    async with RouterSim(username="api", password=ROUTER_PASSWORD, identity="Kangemi-1") as s:
        yield s


async def provider(name: str = "Kangemi WiFi") -> tuple[Tenant, User]:
    """A provider as signing up makes one: on its free trial, billed by subscription."""
    return await make_tenant(name=name, tenant_kind=TenantKind.hotspot)


async def attach_router(tenant: Tenant, sim: RouterSim | None, name: str = "Gate A") -> Router:
    """A router registered through the service (the panel's own form is tested separately)."""
    async with unit_of_work() as session:
        return await routers.add(
            session,
            tenant_id=tenant.id,
            data=RouterIn(
                name=name,
                host="127.0.0.1",
                port=sim.port if sim else 1,
                username="api",
                password=ROUTER_PASSWORD,
            ),
            box=runtime().secrets,
            by=None,
        )


async def add_plan(tenant: Tenant, name: str = "1 hour", price: int = 20) -> Plan:
    async with unit_of_work() as session:
        plan = Plan(tenant_id=tenant.id, name=name, kind=PlanKind.time, price=price, validity_minutes=60)
        session.add(plan)
        await session.flush()
        return plan


async def tenant_vouchers(tenant: Tenant) -> list[Voucher]:
    async with unit_of_work(readonly=True) as session:
        return list(
            await session.scalars(
                select(Voucher).where(Voucher.tenant_id == tenant.id).order_by(Voucher.code)
            )
        )


async def audit_rows(tenant: Tenant, action: str) -> list[AuditLog]:
    async with unit_of_work(readonly=True) as session:
        return list(
            await session.scalars(
                select(AuditLog)
                .where(AuditLog.tenant_id == tenant.id, AuditLog.action == action)
                .order_by(AuditLog.id)
            )
        )


async def post(client: httpx.AsyncClient, page: str, action: str, **data: str) -> httpx.Response:
    return await form_post(client, page, action, data)


PLAN = {
    "name": "1 hour",
    "kind": "time",
    "price": "20",
    "duration": "1",
    "unit": "hours",
    "data_mb": "",
    "rate_limit": "2M/5M",
    "devices": "1",
    "router_id": "",
    "active": "on",
    "sort_order": "0",
}


class TestPlans:
    async def test_create_edit_delete_with_errors_by_the_field(self, server: LiveServer) -> None:
        tenant, owner = await provider()
        async with signed_in(server, owner) as panel:
            page = await panel.get("/app/wifi/plans")
            assert page.status_code == 200 and 'id="no-plans"' in page.text
            for changes, field, message in (
                ({"price": "0"}, "price", "The price is from KES 1 to KES 250,000."),
                ({"price": "1.5"}, "price", "Type the price in whole shillings, like 20."),
                ({"duration": "abc"}, "duration", "Type how long the plan lasts as a whole number"),
                (
                    {"duration": "2", "unit": "minutes"},
                    "duration",
                    "A plan lasts from 5 minutes to 366 days.",
                ),
                ({"duration": "400", "unit": "days"}, "duration", "A plan lasts from 5 minutes to 366 days."),
                ({"kind": "data"}, "data_mb", "A data plan needs data_mb (the allowance in MB)."),
                ({"rate_limit": "fast"}, "rate_limit", 'Write upload/download like "2M/5M"'),
                ({"name": "  "}, "name", "Give the plan a name"),
            ):
                r = await post(panel, "/app/wifi/plans", "/app/wifi/plans", **{**PLAN, **changes})
                assert r.status_code == 422, (changes, r.text)
                assert text_of(r.text, f"{field}-error").startswith(message), changes
                # the form keeps what was typed
                assert f'value="{html.escape(changes.get("price", "20"))}"' in r.text
            async with unit_of_work(readonly=True) as session:
                assert await session.scalar(select(func.count()).where(Plan.tenant_id == tenant.id)) == 0

            r = await post(panel, "/app/wifi/plans", "/app/wifi/plans", **PLAN)
            assert (r.status_code, r.headers["location"]) == (303, "/app/wifi/plans?done=plan_created")
            listed = await panel.get(r.headers["location"])
            assert text_of(listed.text, "done") == "Plan created."
            assert rows_of(listed.text, "plans") == [
                ["1 hour", "KES 20", "1 hour", "unlimited", "2M/5M", "all routers", "yes"]
            ]
            async with unit_of_work(readonly=True) as session:
                plan = await session.scalar(select(Plan).where(Plan.tenant_id == tenant.id))
            assert plan is not None
            assert (plan.price, plan.validity_minutes, plan.rate_limit, plan.active) == (
                20,
                60,
                "2M/5M",
                True,
            )

            dup = await post(panel, "/app/wifi/plans", "/app/wifi/plans", **PLAN)
            assert dup.status_code == 422
            assert (
                text_of(dup.text, "name-error")
                == "You already have a plan called '1 hour'. Pick another name."
            )

            edit = await panel.get(f"/app/wifi/plans/{plan.id}")
            assert edit.status_code == 200 and 'value="2M/5M"' in edit.text
            bad = await post(
                panel, f"/app/wifi/plans/{plan.id}", f"/app/wifi/plans/{plan.id}", **{**PLAN, "price": "0"}
            )
            assert bad.status_code == 422 and "price-error" in bad.text
            data = {**PLAN, "name": "Day pass", "kind": "data", "price": "1,500", "duration": "1"}
            data |= {"unit": "days", "data_mb": "2048", "active": ""}
            r = await post(panel, f"/app/wifi/plans/{plan.id}", f"/app/wifi/plans/{plan.id}", **data)
            assert (r.status_code, r.headers["location"]) == (303, "/app/wifi/plans?done=plan_saved")
            async with unit_of_work(readonly=True) as session:
                fresh = await session.get(Plan, plan.id)
            assert fresh is not None
            assert (
                fresh.name,
                fresh.kind,
                fresh.price,
                fresh.validity_minutes,
                fresh.data_mb,
                fresh.active,
            ) == (
                "Day pass",
                PlanKind.data,
                1500,
                1440,
                2048,
                False,
            )
            edit = await panel.get(f"/app/wifi/plans/{plan.id}")
            assert 'data-confirm="Delete the plan Day pass?' in edit.text
            r = await post(panel, f"/app/wifi/plans/{plan.id}", f"/app/wifi/plans/{plan.id}/delete")
            assert (r.status_code, r.headers["location"]) == (303, "/app/wifi/plans?done=plan_deleted")
            async with unit_of_work(readonly=True) as session:
                assert await session.get(Plan, plan.id) is None
            assert (await panel.get(f"/app/wifi/plans/{plan.id}")).status_code == 404
        assert [a.target for a in await audit_rows(tenant, "plan.created")] == [str(plan.id)]
        assert len(await audit_rows(tenant, "plan.updated")) == 1
        assert [a.detail["name"] for a in await audit_rows(tenant, "plan.deleted")] == ["Day pass"]


class TestVouchers:
    async def test_batch_reaches_the_router_then_print_export_filter_revoke(
        self, server: LiveServer, sim: RouterSim
    ) -> None:
        tenant, owner = await provider()
        box = await attach_router(tenant, sim)
        plan = await add_plan(tenant)
        async with signed_in(server, owner) as panel:
            page = await panel.get("/app/wifi/vouchers")
            assert page.status_code == 200 and 'id="no-vouchers"' in page.text
            for count in ("0", "501", "ten"):
                r = await post(
                    panel,
                    "/app/wifi/vouchers",
                    "/app/wifi/vouchers/batch",
                    plan_id=str(plan.id),
                    router_id=str(box.id),
                    count=count,
                )
                assert r.status_code == 422
                assert text_of(r.text, "count-error") == "Issue 1 to 500 vouchers at a time."
            r = await post(
                panel, "/app/wifi/vouchers", "/app/wifi/vouchers/batch", router_id=str(box.id), count="5"
            )
            assert (
                r.status_code == 422
                and text_of(r.text, "plan_id-error") == "Choose the plan the cards are for."
            )
            assert await tenant_vouchers(tenant) == []

            r = await post(
                panel,
                "/app/wifi/vouchers",
                "/app/wifi/vouchers/batch",
                plan_id=str(plan.id),
                router_id=str(box.id),
                count="5",
            )
            assert r.status_code == 303, r.text
            batch_url = r.headers["location"]
            assert re.fullmatch(r"/app/wifi/vouchers/batches/[0-9a-f-]{36}\?done=issued", batch_url)
            made = await tenant_vouchers(tenant)
            assert len(made) == 5 and len({v.batch_id for v in made}) == 1
            assert {(v.plan_name, v.price, v.router_id) for v in made} == {("1 hour", 20, box.id)}
            codes = [v.code for v in made]

            async def provisioned() -> bool:
                return {v.status for v in await tenant_vouchers(tenant)} == {VoucherStatus.provisioned}

            await wait_until(provisioned)
            assert {str(u["name"]) for u in sim.users()} == set(codes)

            batch = await panel.get(batch_url)
            assert batch.status_code == 200
            assert text_of(batch.text, "done").startswith("Vouchers issued.")
            assert [row[0] for row in rows_of(batch.text, "batch-codes")] == codes
            assert {row[1] for row in rows_of(batch.text, "batch-codes")} == {"provisioned"}
            base = batch_url.split("?")[0]
            printed = await panel.get(f"{base}/print")
            assert printed.status_code == 200 and printed.headers["content-type"].startswith("text/html")
            assert all(code in printed.text for code in codes) and "@page{size:A4" in printed.text
            roll = await panel.get(f"{base}/print", params={"paper": "58mm"})
            assert roll.status_code == 200 and "@page{size:58mm auto" in roll.text
            assert (await panel.get(f"{base}/print", params={"paper": "letter"})).status_code == 422
            xlsx = await panel.get(f"{base}/export.xlsx")
            assert xlsx.status_code == 200 and xlsx.headers["x-row-count"] == "5"
            sheet = load_workbook(io.BytesIO(xlsx.content), read_only=True).active
            assert sheet is not None
            assert sorted(str(r[0]) for r in list(sheet.iter_rows(values_only=True))[1:]) == codes

            listed = await panel.get("/app/wifi/vouchers")
            assert sorted(row[0] for row in rows_of(listed.text, "vouchers")) == codes
            found = await panel.get("/app/wifi/vouchers", params={"code": codes[2][2:6].lower()})
            assert codes[2] in [row[0] for row in rows_of(found.text, "vouchers")]
            bad = await panel.get("/app/wifi/vouchers", params={"status": "lost", "plan": "x"})
            assert bad.status_code == 422
            assert text_of(bad.text, "status-error") == "Choose a status from the list."
            assert text_of(bad.text, "plan-error") == "Choose a plan from the list."
            broken = await panel.get("/app/wifi/vouchers", params={"cursor": "not-a-cursor"})
            assert broken.status_code == 422 and "cursor-error" in broken.text

            target = made[0]
            assert f'data-confirm="Revoke {target.code}?' in listed.text
            r = await post(panel, "/app/wifi/vouchers", f"/app/wifi/vouchers/{target.id}/revoke")
            assert r.status_code == 303
            assert r.headers["location"] == f"/app/wifi/vouchers?code={target.code}&done=revoked"
            after = await panel.get(r.headers["location"])
            assert text_of(after.text, "done").startswith("Voucher revoked")
            assert rows_of(after.text, "vouchers")[0][:2] == [target.code, "revoked"]
            revoked = await panel.get("/app/wifi/vouchers", params={"status": "revoked"})
            assert [row[0] for row in rows_of(revoked.text, "vouchers")] == [target.code]
            by_plan = await panel.get(
                "/app/wifi/vouchers", params={"plan": str(plan.id), "status": "provisioned"}
            )
            assert sorted(row[0] for row in rows_of(by_plan.text, "vouchers")) == codes[1:]

            async def taken_off() -> bool:
                return target.code not in {str(u["name"]) for u in sim.users()}

            await wait_until(taken_off)
            async with unit_of_work(readonly=True) as session:
                v = await session.get(Voucher, target.id)
            assert v is not None and v.status is VoucherStatus.revoked and v.revoked_at is not None
            # A printed card has no buyer to text.
            r = await post(panel, "/app/wifi/vouchers", f"/app/wifi/vouchers/{made[1].id}/text")
            assert r.status_code == 409 and "printed, not sold by M-Pesa" in r.text
        assert [a.detail["count"] for a in await audit_rows(tenant, "vouchers.batch")] == [5]
        assert [a.target for a in await audit_rows(tenant, "voucher.revoked")] == [target.code]
        assert len(await audit_rows(tenant, "export.vouchers")) == 1

    async def test_pages_of_fifty_newest_first(self, server: LiveServer, sim: RouterSim) -> None:
        tenant, owner = await provider()
        box = await attach_router(tenant, sim)
        plan = await add_plan(tenant)
        async with unit_of_work() as session:
            t = await tenants.get(session, tenant.id)
            r = await session.get(Router, box.id)
            p = await session.get(Plan, plan.id)
            assert r is not None and p is not None
            await vouchers.issue_batch(session, tenant=t, router=r, plan=p, count=60)
        async with signed_in(server, owner) as panel:
            first = await panel.get("/app/wifi/vouchers")
            one = [row[0] for row in rows_of(first.text, "vouchers")]
            assert len(one) == 50
            older = re.search(r'<a href="([^"]+)" rel="next">', first.text)
            assert older
            second = await panel.get(html.unescape(older.group(1)))
            two = [row[0] for row in rows_of(second.text, "vouchers")]
            assert len(two) == 10 and not set(one) & set(two)
            assert 'rel="next"' not in second.text and "← Newest" in second.text
        assert sorted(one + two) == [v.code for v in await tenant_vouchers(tenant)]


class TestSoldVoucherAndOverview:
    async def test_sms_again_figures_and_subscription(
        self, server: LiveServer, sim: RouterSim, client: httpx.AsyncClient
    ) -> None:
        tenant, owner = await provider(name="Sold WiFi")
        manager = await make_user(tenant=tenant, role=Role.manager)
        box = await attach_router(tenant, sim)
        plan = await add_plan(tenant, price=50)
        key = await make_api_key(tenant=tenant)
        r = await client.post(
            "/api/stk-push",
            json={"phone": "0722000333", "amount": 50},
            headers={"Authorization": f"Bearer {key}"},
        )
        paid = await wait_for_final(client, key, r.json()["id"])
        async with unit_of_work() as session:
            t = await tenants.get(session, tenant.id)
            rr = await session.get(Router, box.id)
            p = await session.get(Plan, plan.id)
            assert rr is not None and p is not None
            sold = await vouchers.issue(
                session, tenant=t, router=rr, plan=p, phone="254722000333", payment_id=uuid.UUID(paid["id"])
            )
            sold_id, code = sold.id, sold.code

        async def texts() -> list[str]:
            async with unit_of_work(readonly=True) as session:
                return list(
                    await session.scalars(
                        select(Notification.body).where(
                            Notification.tenant_id == tenant.id, Notification.kind == "hotspot.voucher"
                        )
                    )
                )

        async def sms_sent() -> bool:
            return len(await texts()) == 1

        await wait_until(sms_sent)  # sent when the router acknowledged it
        plan_row = await add_plan(tenant, name="Day", price=100)
        sub_plan_id = await subscription_plan(tenant)

        async with signed_in(server, owner) as panel:
            r = await post(panel, f"/app/wifi/vouchers?code={code}", f"/app/wifi/vouchers/{sold_id}/text")
            assert (r.status_code, r.headers["location"]) == (
                303,
                f"/app/wifi/vouchers?code={code}&done=texted",
            )
            sent = await texts()
            assert len(sent) == 2 and sent[0] == sent[1] and code in sent[1]
            r = await post(panel, "/app/wifi/vouchers", f"/app/wifi/vouchers/{sold_id}/resend")
            assert r.status_code == 303 and r.headers["location"].endswith("done=resent")

            home = await panel.get("/app/wifi")
            assert home.status_code == 200
            assert (text_of(home.text, "today-kes"), text_of(home.text, "today-count")) == (
                "KES 50",
                "1 voucher",
            )
            assert (text_of(home.text, "month-kes"), text_of(home.text, "month-count")) == (
                "KES 50",
                "1 voucher",
            )
            assert text_of(home.text, "routers-state") == "1 up · 0 down"  # it took the voucher
            assert rows_of(home.text, "today-by-plan") == [["1 hour", "1", "KES 50"]]
            assert text_of(home.text, "sub-state") == "No subscription paid yet."
            assert "Subscribe before then to keep selling" in text_of(home.text, "sub-trial")
            sales = await panel.get("/app/wifi/sales")
            assert sales.status_code == 200
            assert (text_of(sales.text, "sales-kes"), text_of(sales.text, "sales-count")) == (
                "KES 50",
                "1 voucher",
            )
            assert rows_of(sales.text, "sales-by-plan") == [["1 hour", "1", "KES 50"]]
            assert len(rows_of(sales.text, "sales-by-day")) == 1
            bad = await panel.get("/app/wifi/sales", params={"from": "2025-05-02", "to": "2025-05-01"})
            assert (
                bad.status_code == 422
                and text_of(bad.text, "to-error") == "The end date is before the start date."
            )
            bad = await panel.get("/app/wifi/sales", params={"from": "yesterday"})
            assert bad.status_code == 422 and text_of(bad.text, "from-error") == "Use a date like 2025-03-31."
            old = await panel.get("/app/wifi/sales", params={"from": "2020-01-01", "to": "2020-01-31"})
            assert text_of(old.text, "sales-kes") == "KES 0" and "no-sales" in old.text

            # Renew: an order at Pesapal (the stand-in), paid there, the state shown here.
            r = await post(panel, "/app/wifi", "/app/wifi/subscription", plan_id=sub_plan_id)
            assert r.status_code == 303, r.text
            order_page = await panel.get(r.headers["location"])
            assert text_of(order_page.text, "order-amount") == "KES 1,500"
            link = re.search(r'id="pay-link" href="([^"]+)"', order_page.text)
            assert link and html.unescape(link.group(1)).startswith(f"{server.url}/sim/pesapal/pay/")
            order_id = r.headers["location"].rsplit("/", 1)[1]
            async with unit_of_work(readonly=True) as session:
                from core.billing.models import SubscriptionOrder

                order = await session.get(SubscriptionOrder, uuid.UUID(order_id))
            assert order is not None and order.tenant_id == tenant.id
            async with httpx.AsyncClient(base_url=f"{server.url}/sim/pesapal") as pesapal:
                done = await pesapal.post(f"/_sim/orders/{order.order_tracking_id}/complete", json={})
                assert done.status_code == 200, done.text
            home = await panel.get("/app/wifi")
            assert text_of(home.text, "sub-state") == "paid"
            assert text_of(home.text, "sub-days") in ("43", "44")  # the trial's 14 days, then 30 paid
            assert "completed" in text_of(home.text, "last-order")
        assert len(await audit_rows(tenant, "subscription.order_started")) == 1
        assert [a.target for a in await audit_rows(tenant, "voucher.sms_resent")] == [code]

        async with signed_in(server, manager) as panel:
            home = await panel.get("/app/wifi")
            assert home.status_code == 200 and "The owner renews the subscription." in home.text
            r = await panel.post(
                "/app/wifi/subscription", data={"plan_id": sub_plan_id, "csrf_token": csrf_of(home.text)}
            )
            assert r.status_code == 403
            assert (await panel.get(f"/app/wifi/subscription/{order_id}")).status_code == 403
            # a manager manages plans, as in the API
            r = await post(panel, f"/app/wifi/plans/{plan_row.id}", f"/app/wifi/plans/{plan_row.id}/delete")
            assert r.status_code == 303


async def subscription_plan(tenant: Tenant) -> str:
    async with unit_of_work() as session:
        plan = SubscriptionPlan(name=f"Monthly {tenant.slug}", period=SubscriptionPeriod.monthly, price=1500)
        session.add(plan)
        await session.flush()
        return str(plan.id)


class TestRouters:
    async def test_add_never_shows_the_password_then_test_and_script(
        self, server: LiveServer, sim: RouterSim
    ) -> None:
        tenant, owner = await provider()
        await add_plan(tenant)
        async with signed_in(server, owner) as panel:
            page = await panel.get("/app/wifi/routers")
            assert page.status_code == 200 and 'id="no-routers"' in page.text
            form = {
                "name": "Stall 42",
                "host": "127.0.0.1",
                "port": str(sim.port),
                "username": "api",
                "password": ROUTER_PASSWORD,
                "hotspot_server": "hotspot1",
            }
            bad = await post(
                panel, "/app/wifi/routers", "/app/wifi/routers", **{**form, "host": "not a host!"}
            )
            assert bad.status_code == 422
            assert text_of(bad.text, "r-host-error").startswith("Give the router's IP address or host name")
            assert ROUTER_PASSWORD not in bad.text and 'value="Stall 42"' in bad.text
            bad = await post(panel, "/app/wifi/routers", "/app/wifi/routers", **{**form, "port": "99999"})
            assert bad.status_code == 422 and "r-port-error" in bad.text and ROUTER_PASSWORD not in bad.text
            bad = await post(panel, "/app/wifi/routers", "/app/wifi/routers", **{**form, "password": ""})
            assert text_of(bad.text, "r-password-error") == "Type the RouterOS API user's password."

            r = await post(panel, "/app/wifi/routers", "/app/wifi/routers", **form)
            assert (r.status_code, r.headers["location"]) == (303, "/app/wifi/routers?done=router_added")
            listed = await panel.get(r.headers["location"])
            assert ROUTER_PASSWORD not in listed.text
            async with unit_of_work(readonly=True) as session:
                box = await session.scalar(select(Router).where(Router.tenant_id == tenant.id))
            assert box is not None and ROUTER_PASSWORD not in box.password_enc
            card = text_of(listed.text, f"router-{box.id}")
            assert card.startswith(f"Stall 42 unknown Address 127.0.0.1:{sim.port} API user api")
            assert runtime().secrets.decrypt(box.password_enc) == ROUTER_PASSWORD
            dup = await post(panel, "/app/wifi/routers", "/app/wifi/routers", **form)
            assert dup.status_code == 422 and "already have a router called" in text_of(
                dup.text, "r-name-error"
            )

            r = await post(panel, "/app/wifi/routers", f"/app/wifi/routers/{box.id}/test")
            assert (r.status_code, r.headers["location"]) == (303, f"/app/wifi/routers?tested={box.id}")
            tested = await panel.get(r.headers["location"])
            assert text_of(tested.text, "test-result").startswith(
                "Stall 42 answers: Kangemi-1, RouterOS 7.18.2"
            )
            assert text_of(tested.text, f"router-state-{box.id}") == "up"
            async with unit_of_work(readonly=True) as session:
                fresh = await session.get(Router, box.id)
            assert fresh is not None and fresh.identity == "Kangemi-1" and fresh.last_seen_at is not None

            script = await panel.get(f"/app/wifi/routers/{box.id}/setup.rsc")
            assert script.status_code == 200
            assert script.headers["content-disposition"] == 'attachment; filename="lipapush.rsc"'
            assert "/ip hotspot" in script.text and ROUTER_PASSWORD not in script.text

            await sim.stop()
            r = await post(panel, "/app/wifi/routers", f"/app/wifi/routers/{box.id}/test")
            failed = await panel.get(r.headers["location"])
            assert text_of(failed.text, "test-result").startswith("Stall 42 does not answer:")
            assert text_of(failed.text, f"router-state-{box.id}") == "down"
            assert "Last error" in text_of(failed.text, f"router-{box.id}")
        assert len(await audit_rows(tenant, "router.added")) == 1
        assert [a.detail["answered"] for a in await audit_rows(tenant, "router.tested")] == [True, False]


class TestRefusals:
    async def test_plain_business_cashier_and_manager(self, server: LiveServer) -> None:
        _, shop_owner = await make_tenant(name="Plain Duka")
        async with signed_in(server, shop_owner) as panel:
            for path in (
                "/app/wifi",
                "/app/wifi/plans",
                "/app/wifi/vouchers",
                "/app/wifi/routers",
                "/app/wifi/sales",
            ):
                r = await panel.get(path)
                assert r.status_code == 404, path
                assert "WiFi is for hotspot providers." in r.text
            assert 'href="/app/wifi"' not in (await panel.get("/app")).text
        tenant, _ = await provider()
        cashier = await make_user(tenant=tenant, role=Role.cashier)
        manager = await make_user(tenant=tenant, role=Role.manager)
        async with signed_in(server, cashier) as panel:
            home = await panel.get("/app")
            assert 'href="/app/wifi"' not in home.text
            for path in (
                "/app/wifi",
                "/app/wifi/plans",
                "/app/wifi/vouchers",
                "/app/wifi/routers",
                "/app/wifi/sales",
            ):
                r = await panel.get(path)
                assert r.status_code == 403, path
                assert "This is for the owner or manager of Kangemi WiFi." in r.text
            r = await panel.post("/app/wifi/plans", data={**PLAN, "csrf_token": csrf_of(home.text)})
            assert r.status_code == 403
        async with signed_in(server, manager) as panel:
            page = await panel.get("/app/wifi/routers")
            assert page.status_code == 200 and "The owner adds routers." in page.text
            r = await panel.post(
                "/app/wifi/routers",
                data={
                    "name": "x",
                    "host": "10.0.0.1",
                    "username": "api",
                    "password": "pw",
                    "csrf_token": csrf_of(page.text),
                },
            )
            assert r.status_code == 403 and "This is for the owner of Kangemi WiFi." in r.text
            # no CSRF token: refused before anything is read
            r = await panel.post("/app/wifi/plans", data=PLAN)
            assert r.status_code == 403
        async with unit_of_work(readonly=True) as session:
            assert await session.scalar(select(func.count()).where(Plan.tenant_id == tenant.id)) == 0
            assert await session.scalar(select(func.count()).where(Router.tenant_id == tenant.id)) == 0

    async def test_another_providers_ids_are_not_found(self, server: LiveServer, sim: RouterSim) -> None:
        victim, _ = await provider(name="Victim WiFi")
        box = await attach_router(victim, sim)
        plan = await add_plan(victim)
        async with unit_of_work() as session:
            t = await tenants.get(session, victim.id)
            r = await session.get(Router, box.id)
            p = await session.get(Plan, plan.id)
            assert r is not None and p is not None
            batch, made = await vouchers.issue_batch(session, tenant=t, router=r, plan=p, count=2)
            voucher_id = made[0].id
        _, nosy = await provider(name="Nosy WiFi")
        async with signed_in(server, nosy) as panel:
            for path in (
                f"/app/wifi/plans/{plan.id}",
                f"/app/wifi/routers/{box.id}/setup.rsc",
                f"/app/wifi/vouchers/batches/{batch}",
                f"/app/wifi/vouchers/batches/{batch}/print",
                f"/app/wifi/vouchers/batches/{batch}/export.xlsx",
            ):
                assert (await panel.get(path)).status_code == 404, path
            page = await panel.get("/app/wifi")
            token = csrf_of(page.text)
            for path, data in (
                (f"/app/wifi/plans/{plan.id}", PLAN),
                (f"/app/wifi/plans/{plan.id}/delete", {}),
                (f"/app/wifi/vouchers/{voucher_id}/revoke", {}),
                (f"/app/wifi/vouchers/{voucher_id}/text", {}),
                (f"/app/wifi/vouchers/{voucher_id}/resend", {}),
                (f"/app/wifi/routers/{box.id}/test", {}),
                (
                    "/app/wifi/vouchers/batch",
                    {"plan_id": str(plan.id), "router_id": str(box.id), "count": "3"},
                ),
                ("/app/wifi/plans", {**PLAN, "router_id": str(box.id)}),
            ):
                r = await panel.post(path, data={**data, "csrf_token": token})
                assert r.status_code == 404, (path, r.status_code)
                assert "Victim" not in r.text
            listed = await panel.get("/app/wifi/vouchers", params={"plan": str(plan.id)})
            assert listed.status_code == 200 and 'id="no-vouchers"' in listed.text
        async with unit_of_work(readonly=True) as session:
            assert await session.get(Plan, plan.id) is not None
            v = await session.get(Voucher, voucher_id)
            assert v is not None and v.status is not VoucherStatus.revoked
            assert await session.scalar(select(func.count()).where(Voucher.tenant_id == victim.id)) == 2

    async def test_impersonating_admin_reads_and_writes_only_when_allowed(
        self, server: LiveServer, sim: RouterSim
    ) -> None:
        tenant, _ = await provider(name="Watched WiFi")
        box = await attach_router(tenant, sim)
        plan = await add_plan(tenant)
        async with signed_in(server) as admin:
            overview = await admin.get("/admin")
            r = await admin.post(
                f"/admin/tenants/{tenant.id}/impersonate", data={"csrf_token": csrf_of(overview.text)}
            )
            assert r.status_code == 303
            for path in (
                "/app/wifi",
                "/app/wifi/plans",
                "/app/wifi/vouchers",
                "/app/wifi/routers",
                "/app/wifi/sales",
            ):
                assert (await admin.get(path)).status_code == 200, path
            page = await admin.get("/app/wifi/plans")
            token = csrf_of(page.text)
            for path, data in (
                ("/app/wifi/plans", {**PLAN, "name": "Sneaky"}),
                (f"/app/wifi/plans/{plan.id}/delete", {}),
                (
                    "/app/wifi/vouchers/batch",
                    {"plan_id": str(plan.id), "router_id": str(box.id), "count": "3"},
                ),
                (f"/app/wifi/routers/{box.id}/test", {}),
                ("/app/wifi/routers", {"name": "x", "host": "10.0.0.1", "username": "api", "password": "pw"}),
            ):
                r = await admin.post(path, data={**data, "csrf_token": token})
                assert r.status_code == 403, path
                assert "You are viewing this business read-only." in r.text
            assert await tenant_vouchers(tenant) == []
            r = await admin.post(
                "/admin/impersonation/write", data={"reason": "ticket 42: print cards", "csrf_token": token}
            )
            assert r.status_code == 303
            r = await post(
                admin,
                "/app/wifi/vouchers",
                "/app/wifi/vouchers/batch",
                plan_id=str(plan.id),
                router_id=str(box.id),
                count="3",
            )
            assert r.status_code == 303
        assert len(await tenant_vouchers(tenant)) == 3
        [row] = await audit_rows(tenant, "vouchers.batch")
        assert row.detail["impersonating"] is True and row.detail["count"] == 3
        async with unit_of_work(readonly=True) as session:
            assert await session.scalar(select(func.count()).where(Plan.tenant_id == tenant.id)) == 1
        requests = [a.target for a in await audit_rows(tenant, "impersonation.request")]
        assert "POST /app/wifi/plans" in requests and "GET /app/wifi/routers" in requests


async def test_chromium_overview_plans_vouchers_routers(
    server: LiveServer,
    browser: Browser,  # noqa: F811
    sim: RouterSim,
) -> None:
    tenant, owner = await provider(name="Chromium WiFi")
    await attach_router(tenant, sim, name="Gate A")
    context = await browser.new_context(viewport={"width": 360, "height": 740})
    page = await context.new_page()
    await browser_sign_in(page, server.url, owner.email, "secret-pass-1")
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="WiFi").click()
    await page.wait_for_url(f"{server.url}/app/wifi")
    await expect(page.locator("h1")).to_have_text("WiFi")
    await expect(page.locator("#today-kes")).to_have_text("KES 0")
    # The live server's scheduler may already have swept the router (its simulator answers), so
    # it shows as unchecked or up, never down.
    await expect(page.locator("#routers-state")).to_have_text(re.compile(r"^[01] up · 0 down$"))
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    await shot(page, "app-wifi")

    await page.get_by_role("navigation", name="WiFi").get_by_role("link", name="Plans").click()
    await page.wait_for_url(f"{server.url}/app/wifi/plans")
    await page.get_by_label("Name").fill("2 hours")
    await page.get_by_label("Price (KES)").fill("0")
    await page.get_by_label("Lasts").fill("2")
    await page.get_by_role("button", name="Create plan").click()
    await expect(page.locator("#price-error")).to_have_text("The price is from KES 1 to KES 250,000.")
    await page.get_by_label("Price (KES)").fill("30")
    await page.get_by_label("Speed (upload/download)").fill("2M/5M")
    await page.get_by_role("button", name="Create plan").click()
    await page.wait_for_url("**/app/wifi/plans?done=plan_created")
    await expect(page.locator("#plans tbody tr")).to_have_count(1)
    await expect(page.locator("#plans tbody tr").first).to_contain_text("KES 30")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    await shot(page, "app-wifi-plans")

    await page.get_by_role("navigation", name="WiFi").get_by_role("link", name="Vouchers").click()
    await page.wait_for_url(f"{server.url}/app/wifi/vouchers")
    await page.locator("#issue-plan").select_option(label="2 hours · KES 30")
    await page.get_by_label("How many (1–500)").fill("5")
    await page.get_by_role("button", name="Issue vouchers").click()
    await page.wait_for_url("**/app/wifi/vouchers/batches/**")
    await expect(page.locator("#batch-codes tbody tr")).to_have_count(5)
    codes = sorted(v.code for v in await tenant_vouchers(tenant))
    assert await page.locator("#batch-codes tbody tr td code").all_inner_texts() == codes
    await expect(page.get_by_role("link", name="Print cards (A4)")).to_be_visible()
    await expect(page.get_by_role("link", name="Export to Excel")).to_be_visible()
    await shot(page, "app-wifi-batch")

    async def provisioned() -> bool:
        return {v.status for v in await tenant_vouchers(tenant)} == {VoucherStatus.provisioned}

    await wait_until(provisioned)
    await page.get_by_role("link", name="← All vouchers").click()
    await page.wait_for_url(f"{server.url}/app/wifi/vouchers")
    await expect(page.locator("#vouchers tbody tr")).to_have_count(5)
    page.once("dialog", lambda d: d.accept())
    await page.get_by_role("button", name=f"Revoke {codes[0]}").click()
    await page.wait_for_url("**done=revoked**")
    await expect(page.locator("#vouchers tbody tr").first).to_contain_text("revoked")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    await shot(page, "app-wifi-vouchers")

    await page.get_by_role("navigation", name="WiFi").get_by_role("link", name="Routers").click()
    await page.wait_for_url(f"{server.url}/app/wifi/routers")
    await page.get_by_role("button", name="Test the connection to Gate A").click()
    await page.wait_for_url("**/app/wifi/routers?tested=*")
    await expect(page.locator("#test-result")).to_contain_text("Gate A answers: Kangemi-1")
    assert ROUTER_PASSWORD not in await page.content()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    await shot(page, "app-wifi-routers")
    await context.close()
