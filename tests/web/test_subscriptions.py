"""Hotspot providers' subscriptions, through the Pesapal stand-in `serve` mounts at /sim/pesapal: the
IPN only triggers a status query; three IPNs extend once (from the end of the free trial); a reversal
takes the extension back; a lapsed provider stops selling while sold vouchers keep working."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select

from core.billing.models import SubscriptionPeriod, SubscriptionPlan
from core.db import utcnow
from core.ledger.models import Transfer
from core.runtime import unit_of_work
from core.tenants.models import BillingMode, Tenant, TenantKind
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def hotspot_provider() -> tuple[Tenant, str, str]:
    """A provider as signing up makes one: on its free trial, billed by subscription."""
    tenant, _ = await make_tenant(name="Pesa WiFi", tenant_kind=TenantKind.hotspot)
    async with unit_of_work() as session:
        plan = SubscriptionPlan(name=f"Monthly {tenant.slug}", period=SubscriptionPeriod.monthly, price=1500)
        session.add(plan)
        await session.flush()
        plan_id = str(plan.id)
    return tenant, await make_api_key(tenant=tenant), plan_id


async def until(tenant_id) -> object:  # type: ignore[no-untyped-def]
    async with unit_of_work(readonly=True) as session:
        t = await session.get(Tenant, tenant_id)
    assert t is not None
    return t


async def test_subscribe_duplicate_ipns_reversal(client: httpx.AsyncClient, server: LiveServer) -> None:
    tenant, key, plan_id = await hotspot_provider()
    r = await client.post(
        f"/api/providers/{tenant.id}/pesapal/create-order", json={"plan_id": plan_id}, headers=bearer(key)
    )
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "pending" and order["amount"] == 1500
    assert order["redirect_url"].startswith(f"{server.url}/sim/pesapal/pay/")
    tid = order["order_tracking_id"]
    trial_end = (await until(tenant.id)).trial_until  # type: ignore[attr-defined]
    sim = httpx.AsyncClient(base_url=f"{server.url}/sim/pesapal")
    done = await sim.post(f"/_sim/orders/{tid}/complete", json={"duplicate_ipns": 3})
    assert done.status_code == 200, done.text
    ipns = done.json()["ipns"]
    assert len(ipns) == 3 and all(i["ack_ok"] for i in ipns), ipns
    t = await until(tenant.id)
    assert t.billing_mode is BillingMode.subscription  # type: ignore[attr-defined]
    paid_until = t.subscription_until  # type: ignore[attr-defined]
    assert paid_until == trial_end + timedelta(days=30)  # paid time follows the trial: none of it lost
    async with unit_of_work(readonly=True) as session:
        posted = list(
            await session.scalars(
                select(Transfer).where(Transfer.tenant_id == tenant.id, Transfer.kind == "subscription")
            )
        )
    assert [p.amount_cents for p in posted] == [150_000]  # three IPNs, one extension, one posting
    status = await client.get(f"/api/providers/{tenant.id}/subscription-status", headers=bearer(key))
    assert status.json()["active"] is True and status.json()["last_order"]["status"] == "completed"
    assert status.json()["trial"] is True and status.json()["paid_until"] is not None

    reversed_ = await sim.post(f"/_sim/orders/{tid}/reverse", json={})
    assert reversed_.status_code == 200 and all(i["ack_ok"] for i in reversed_.json()["ipns"])
    t = await until(tenant.id)
    assert t.subscription_until == trial_end  # type: ignore[attr-defined]  # back to the trial alone
    status = await client.get(f"/api/providers/{tenant.id}/subscription-status", headers=bearer(key))
    back = status.json()
    assert back["last_order"]["status"] == "reversed"
    assert (back["active"], back["trial"], back["paid_until"]) == (True, True, None)
    async with unit_of_work(readonly=True) as session:
        kinds = sorted(
            p.kind for p in await session.scalars(select(Transfer).where(Transfer.tenant_id == tenant.id))
        )
    assert kinds == ["subscription", "subscription_reversal"]
    # The browser's return only triggers a status query too.
    back = await client.get("/api/payments/pesapal/callback", params={"OrderTrackingId": tid})
    assert back.status_code == 200 and "did not go through" in back.text
    await sim.aclose()


async def test_forged_ipn_and_other_tenants(client: httpx.AsyncClient) -> None:
    tenant, _, plan_id = await hotspot_provider()
    _, other_key, _ = await hotspot_provider()
    forged = await client.get(
        "/api/payments/pesapal/webhook",
        params={"OrderTrackingId": "00000000-0000-0000-0000-000000000000", "OrderMerchantReference": "SUB-x"},
    )
    assert forged.status_code == 200 and forged.json()["status"] == 200
    t = await until(tenant.id)
    assert t.subscription_until == t.trial_until  # type: ignore[attr-defined]  # the trial, unextended
    r = await client.post(
        f"/api/providers/{tenant.id}/pesapal/create-order",
        json={"plan_id": plan_id},
        headers=bearer(other_key),
    )
    assert r.status_code == 403
    business, _ = await make_tenant(name="Not WiFi")
    r = await client.post(
        f"/api/providers/{business.id}/pesapal/create-order",
        json={"plan_id": plan_id},
        headers=bearer(await make_api_key(tenant=business)),
    )
    assert r.status_code == 422 and "hotspot providers" in r.json()["detail"]


async def test_reminders_once_per_date_and_on_lapse(server: LiveServer) -> None:
    from core.billing.subscriptions import send_reminders
    from core.notify.models import Notification

    tenant, _, _ = await hotspot_provider()
    async with unit_of_work() as session:
        t = await session.get(Tenant, tenant.id)
        assert t is not None
        # A provider whose trial ended long ago and who paid: the subscription's own wording.
        t.trial_until = utcnow() - timedelta(days=40)
        t.billing_mode, t.subscription_until = BillingMode.subscription, utcnow() + timedelta(days=2)
    await send_reminders()
    await send_reminders()

    async def notes() -> list[str]:
        async with unit_of_work(readonly=True) as session:
            rows = await session.scalars(
                select(Notification.body)
                .where(Notification.tenant_id == tenant.id, Notification.kind == "subscription.reminder")
                .order_by(Notification.id)
            )
            return list(rows)

    [soon] = await notes()
    assert soon.startswith("lipapush: your WiFi subscription ends on ")
    async with unit_of_work() as session:
        t = await session.get(Tenant, tenant.id)
        assert t is not None
        t.subscription_until = utcnow() - timedelta(hours=1)
    await send_reminders()
    await send_reminders()
    lapsed = (await notes())[1:]
    assert len(lapsed) == 1 and "New WiFi sales are stopped" in lapsed[0]
