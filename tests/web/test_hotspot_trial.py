"""A new hotspot provider is billed by subscription from the start, on a free trial: its buyers' payments
carry no commission, it is reminded once before the trial ends, selling pauses when the trial ends
unsubscribed (vouchers sold keep working) and a Pesapal subscription lifts the pause; paying during
the trial loses no trial days. Time moves by setting the trial's end in the database."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from bots.routers.wifi import subscription_line
from core.audit.models import AuditLog
from core.billing.integrity import check_all
from core.billing.models import SubscriptionOrder, SubscriptionPeriod, SubscriptionPlan
from core.billing.subscriptions import is_lapsed, send_reminders, start_trial, trial_only
from core.db import utcnow
from core.hotspot.models import Plan, PlanKind
from core.hotspot.reports import EAT
from core.hotspot.routers import routers
from core.hotspot.schemas import RouterIn
from core.ledger.models import Transfer
from core.notify.models import Notification, NotifyChannel
from core.payments.models import Payment
from core.runtime import runtime, unit_of_work
from core.tenants.models import BillingMode, Tenant, TenantKind
from sim.routeros import RouterSim
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant
from tests.support.panel import business_client, text_of
from tests.support.waiting import wait_until

TRIAL = timedelta(days=14)  # HOTSPOT_TRIAL_DAYS' default, which the test server keeps


@pytest.fixture
async def sim() -> AsyncIterator[RouterSim]:
    async with RouterSim(username="api", password="router-pw") as s:
        yield s


def buyer() -> str:
    return f"07{random.randint(10_000_000, 99_999_999)}"


def unique_ip() -> str:
    return f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


async def tenant_row(tenant_id: uuid.UUID) -> Tenant:
    async with unit_of_work(readonly=True) as session:
        t = await session.get(Tenant, tenant_id)
    assert t is not None
    return t


async def provider_with_router(sim: RouterSim, name: str) -> tuple[Tenant, uuid.UUID, uuid.UUID]:
    tenant, owner = await make_tenant(name=name, tenant_kind=TenantKind.hotspot)
    async with unit_of_work() as session:
        r = await routers.add(
            session,
            tenant_id=tenant.id,
            data=RouterIn(name="gate", host="127.0.0.1", port=sim.port, username="api", password="router-pw"),
            box=runtime().secrets,
            by=owner.id,
        )
        plan = Plan(tenant_id=tenant.id, name="1 hour", kind=PlanKind.time, price=20, validity_minutes=60)
        session.add(plan)
        # An explicit commission rate too: a provider on a subscription pays none whatever its rate.
        row = await session.get(Tenant, tenant.id)
        assert row is not None
        row.commission_bps = 250
        await session.flush()
        return tenant, r.id, plan.id


async def buy(
    client: httpx.AsyncClient, tenant_id: uuid.UUID, router_id: uuid.UUID, plan_id: uuid.UUID
) -> dict:
    r = await client.post(
        f"/api/captive/{tenant_id}/initiate-mpesa",
        json={"router_id": str(router_id), "plan_id": str(plan_id), "phone": buyer(), "ip": unique_ip()},
    )
    assert r.status_code == 201, r.text
    started: dict = r.json()

    async def usable() -> bool:
        s = (await client.get(started["status_url"])).json()
        return bool(s.get("voucher") and s["voucher"]["usable"])

    await wait_until(usable)
    return started


async def end_selling_at(tenant_id: uuid.UUID, at: datetime) -> None:
    """Move the clock: the trial (the provider's only selling time) ends at `at`."""
    async with unit_of_work() as session:
        t = await session.get(Tenant, tenant_id)
        assert t is not None
        t.trial_until = t.subscription_until = at


async def subscription_plan() -> str:
    async with unit_of_work() as session:
        plan = SubscriptionPlan(
            name=f"Monthly {uuid.uuid4().hex[:8]}", period=SubscriptionPeriod.monthly, price=1500
        )
        session.add(plan)
        await session.flush()
        return str(plan.id)


async def pay_subscription(
    client: httpx.AsyncClient, server: LiveServer, tenant: Tenant
) -> SubscriptionOrder:
    """Order a month through the API and pay it on the Pesapal stand-in."""
    key = await make_api_key(tenant=tenant)
    r = await client.post(
        f"/api/providers/{tenant.id}/pesapal/create-order",
        json={"plan_id": await subscription_plan()},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 201, r.text
    async with httpx.AsyncClient(base_url=f"{server.url}/sim/pesapal") as sim:
        done = await sim.post(f"/_sim/orders/{r.json()['order_tracking_id']}/complete", json={})
        assert done.status_code == 200, done.text
    async with unit_of_work(readonly=True) as session:
        order = await session.get(SubscriptionOrder, uuid.UUID(r.json()["id"]))
    assert order is not None and order.period_start is not None and order.period_end is not None
    return order


async def status(client: httpx.AsyncClient, tenant: Tenant) -> dict:
    key = await make_api_key(tenant=tenant)
    r = await client.get(
        f"/api/providers/{tenant.id}/subscription-status", headers={"Authorization": f"Bearer {key}"}
    )
    assert r.status_code == 200, r.text
    body: dict = r.json()
    return body


def iso(at: datetime | None) -> str | None:
    return at.isoformat().replace("+00:00", "Z") if at else None


def same_instant(text: str | None, at: datetime | None) -> bool:
    if text is None or at is None:
        return text is None and at is None
    return datetime.fromisoformat(text.replace("Z", "+00:00")) == at


class TestNewProvider:
    async def test_starts_billed_by_subscription_on_a_trial(self, client: httpx.AsyncClient) -> None:
        before = utcnow()
        tenant, _ = await make_tenant(name="Trial WiFi", tenant_kind=TenantKind.hotspot)
        after = utcnow()
        t = await tenant_row(tenant.id)
        assert t.billing_mode is BillingMode.subscription
        assert t.trial_until is not None and t.subscription_until == t.trial_until
        assert before + TRIAL <= t.trial_until <= after + TRIAL
        assert t.subscription_reminded is None
        async with unit_of_work(readonly=True) as session:
            [created] = await session.scalars(
                select(AuditLog).where(AuditLog.tenant_id == tenant.id, AuditLog.action == "tenant.created")
            )
        assert created.detail == {"trial_until": t.trial_until.isoformat()}

        s = await status(client, tenant)
        assert (s["active"], s["trial"], s["paid_until"], s["days_left"], s["last_order"]) == (
            True,
            True,
            None,
            13,  # 14 days less the moments since it was created
            None,
        )
        assert same_instant(s["trial_until"], t.trial_until)
        line = subscription_line(t)
        assert line == (
            f"🎁 Free trial until {t.trial_until.astimezone(EAT):%d %b %Y}. "
            "Subscribe before then to keep selling."
        )

    def test_no_trial_when_the_setting_is_0(self) -> None:
        t = Tenant(kind=TenantKind.hotspot, billing_mode=BillingMode.hybrid)
        start_trial(t, days=0)
        assert (t.billing_mode, t.trial_until, t.subscription_until) == (BillingMode.subscription, None, None)
        assert is_lapsed(t) and not trial_only(t)  # it subscribes before its first sale

    async def test_a_plain_business_is_unchanged(self) -> None:
        tenant, _ = await make_tenant(name="Not WiFi Duka")
        t = await tenant_row(tenant.id)
        assert (t.billing_mode, t.trial_until, t.subscription_until) == (BillingMode.hybrid, None, None)


class TestSellingOnTheTrial:
    async def test_buyer_payment_issues_a_voucher_and_no_commission(
        self, client: httpx.AsyncClient, server: LiveServer, sim: RouterSim
    ) -> None:
        tenant, rid, pid = await provider_with_router(sim, "Commission-free WiFi")
        started = await buy(client, tenant.id, rid, pid)
        async with unit_of_work(readonly=True) as session:
            payment = await session.get(Payment, uuid.UUID(started["payment_id"]))
            assert payment is not None
            postings = list(await session.scalars(select(Transfer).where(Transfer.tenant_id == tenant.id)))
            problems = await check_all(session, tenant_id=tenant.id)
        charged = (payment.commission_bps, payment.commission_cents, payment.reserved_cents)
        assert (payment.status.value, charged) == ("success", (0, 0, 0))
        assert postings == [] and problems == []

    async def test_trial_end_pauses_selling_and_a_subscription_lifts_it(
        self, client: httpx.AsyncClient, server: LiveServer, sim: RouterSim
    ) -> None:
        tenant, rid, pid = await provider_with_router(sim, "Lapsing WiFi")
        sold = await buy(client, tenant.id, rid, pid)
        ended = utcnow() - timedelta(minutes=1)
        await end_selling_at(tenant.id, ended)

        page = await client.get(f"/portal/{tenant.slug}/{rid}")
        assert page.status_code == 503 and "Vouchers already bought still work" in page.text
        refused = await client.post(
            f"/api/captive/{tenant.id}/initiate-mpesa",
            json={"router_id": str(rid), "plan_id": str(pid), "phone": buyer(), "ip": unique_ip()},
        )
        assert refused.status_code == 403 and refused.json()["detail"] == (
            "Buying WiFi here is unavailable right now. Vouchers already bought still work."
        )
        voucher = (await client.get(sold["status_url"])).json()["voucher"]
        assert voucher["usable"] is True and voucher["code"] in {str(u["name"]) for u in sim.users()}

        s = await status(client, tenant)
        assert (s["active"], s["trial"], s["paid_until"], s["days_left"]) == (False, False, None, 0)
        assert same_instant(s["trial_until"], ended)
        assert subscription_line(await tenant_row(tenant.id)) == (
            "⚠️ <b>Free trial ended</b>: the WiFi page takes no new sales. Vouchers already sold keep "
            "working. Tap 💳 Subscription to subscribe."
        )

        before = utcnow()
        order = await pay_subscription(client, server, tenant)
        assert order.period_start >= before  # the trial is over: paid time starts now
        assert order.period_end - order.period_start == timedelta(days=30)
        t = await tenant_row(tenant.id)
        assert (t.subscription_until, t.trial_until) == (order.period_end, ended)
        s = await status(client, tenant)
        assert (s["active"], s["trial"]) == (True, False)
        assert same_instant(s["paid_until"], order.period_end)
        assert (await client.get(f"/portal/{tenant.slug}/{rid}")).status_code == 200
        await buy(client, tenant.id, rid, pid)

    async def test_subscribing_during_the_trial_starts_the_paid_time_at_its_end(
        self, client: httpx.AsyncClient, server: LiveServer
    ) -> None:
        tenant, owner = await make_tenant(name="Early WiFi", tenant_kind=TenantKind.hotspot)
        trial_end = (await tenant_row(tenant.id)).trial_until
        assert trial_end is not None
        order = await pay_subscription(client, server, tenant)
        assert (order.period_start, order.period_end) == (trial_end, trial_end + timedelta(days=30))
        t = await tenant_row(tenant.id)
        assert (t.trial_until, t.subscription_until) == (trial_end, trial_end + timedelta(days=30))
        s = await status(client, tenant)
        assert (s["active"], s["trial"]) == (True, True)
        assert same_instant(s["paid_until"], order.period_end)
        assert subscription_line(t) == (
            f"🎁 Free trial until {trial_end.astimezone(EAT):%d %b %Y}; paid from then until "
            f"{order.period_end.astimezone(EAT):%d %b %Y}."
        )
        panel = await business_client(server.url, owner)
        try:
            home = await panel.get("/app/wifi")
        finally:
            await panel.aclose()
        assert home.status_code == 200
        assert text_of(home.text, "sub-trial").endswith(
            ": you sell without commission. Your paid subscription starts when the trial ends."
        )
        assert text_of(home.text, "sub-state") == "paid"


class TestPanel:
    async def test_trial_and_its_end_on_the_wifi_page(self, server: LiveServer) -> None:
        tenant, owner = await make_tenant(name="Panel Trial WiFi", tenant_kind=TenantKind.hotspot)
        panel = await business_client(server.url, owner)
        try:
            home = await panel.get("/app/wifi")
            assert home.status_code == 200 and 'id="sub-lapsed"' not in home.text
            until = (await tenant_row(tenant.id)).trial_until
            assert until is not None
            assert text_of(home.text, "trial-until") == f"{until.astimezone(EAT):%d %b %Y %H:%M}"
            assert text_of(home.text, "sub-state") == "No subscription paid yet."
            await end_selling_at(tenant.id, utcnow() - timedelta(hours=1))
            home = await panel.get("/app/wifi")
        finally:
            await panel.aclose()
        assert text_of(home.text, "sub-lapsed") == (
            "Free trial ended. New WiFi sales are stopped; vouchers already sold keep working. "
            "Subscribe below to sell again."
        )
        assert 'id="sub-trial"' not in home.text
        assert text_of(home.text, "sub-state").startswith(
            "No subscription paid yet: new WiFi sales are stopped until it is. The free trial ended on "
        )


class TestReminders:
    async def test_once_before_the_trial_ends_and_once_when_it_has(self, server: LiveServer) -> None:
        tenant, _ = await make_tenant(name="Reminded WiFi", tenant_kind=TenantKind.hotspot)

        async def notes() -> list[tuple[NotifyChannel, str, str]]:
            async with unit_of_work(readonly=True) as session:
                rows = await session.execute(
                    select(Notification.channel, Notification.recipient, Notification.body)
                    .where(Notification.tenant_id == tenant.id, Notification.kind == "subscription.reminder")
                    .order_by(Notification.id)
                )
                return [tuple(r) for r in rows.all()]  # type: ignore[misc]

        await send_reminders()
        assert await notes() == []  # 14 days to go: nothing yet

        soon = utcnow() + timedelta(days=2)
        await end_selling_at(tenant.id, soon)
        await send_reminders()
        await send_reminders()
        day = soon.strftime("%d %b %Y")
        notes_now = await notes()
        assert all(len(body) <= 160 for _, _, body in notes_now)  # one SMS each
        assert notes_now == [
            (
                NotifyChannel.sms,
                tenant.phone,
                f"lipapush: your free WiFi trial ends on {day}. Subscribe before then to keep selling; "
                "the paid time starts when the trial ends.",
            )
        ]

        ended = utcnow() - timedelta(hours=1)
        await end_selling_at(tenant.id, ended)
        await send_reminders()
        await send_reminders()
        assert all(len(body) <= 160 for _, _, body in await notes())
        assert (await notes())[1:] == [
            (
                NotifyChannel.sms,
                tenant.phone,
                f"lipapush: your free WiFi trial ended on {ended:%d %b %Y}. New WiFi sales are stopped; "
                "vouchers already sold keep working. Subscribe to sell again.",
            )
        ]
