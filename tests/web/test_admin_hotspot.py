"""The platform admin's hotspot overview: providers with subscription state, routers up and down,
voucher sales per provider and day, through the REST API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from core.db import utcnow
from core.hotspot.models import Plan, PlanKind, Router
from core.hotspot.reports import today_eat
from core.hotspot.routers import routers
from core.hotspot.schemas import RouterIn
from core.hotspot.vouchers import vouchers
from core.runtime import runtime, unit_of_work
from core.tenants.models import BillingMode, Tenant, TenantKind
from sim.routeros import RouterSim
from tests.support.factories import emailed_code, make_admin, make_api_key, make_tenant
from tests.support.waiting import wait_until
from tests.web.test_captive import buyer, unique_ip


@pytest.fixture
async def sim() -> AsyncIterator[RouterSim]:
    async with RouterSim(username="api", password="router-pw") as s:
        yield s


async def provider(name: str, port: int, *, paid_days: int) -> tuple[Tenant, Router, Plan]:
    tenant, owner = await make_tenant(name=name)
    async with unit_of_work() as session:
        t = await session.get(Tenant, tenant.id)
        assert t is not None
        t.kind, t.billing_mode = TenantKind.hotspot, BillingMode.subscription
        t.subscription_until = utcnow() + timedelta(days=paid_days)
        r = await routers.add(
            session,
            tenant_id=tenant.id,
            data=RouterIn(name="gate", host="127.0.0.1", port=port, username="api", password="router-pw"),
            box=runtime().secrets,
            by=owner.id,
        )
        plan = Plan(tenant_id=tenant.id, name="1 hour", kind=PlanKind.time, price=20, validity_minutes=60)
        session.add(plan)
        await session.flush()
        return t, r, plan


async def admin_headers(client: httpx.AsyncClient) -> dict[str, str]:
    email, password = await make_admin()
    r = await client.post("/api/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    assert r.json()["two_factor_required"] is True  # always for platform admins
    v = await client.post(
        "/api/2fa/verify", json={"challenge_id": r.json()["challenge_id"], "code": await emailed_code(email)}
    )
    assert v.status_code == 200, v.text
    return {"Authorization": f"Bearer {v.json()['access_token']}"}


async def test_admin_sees_providers_routers_and_sales(client: httpx.AsyncClient, sim: RouterSim) -> None:
    a, a_router, a_plan = await provider("Alpha WiFi", sim.port, paid_days=20)
    b, b_router, _ = await provider("Beta WiFi", 1, paid_days=-1)  # lapsed; nothing listens on port 1
    shop, _ = await make_tenant(name="Just a Shop")  # a business, not a provider: not listed
    a_key = {"Authorization": f"Bearer {await make_api_key(tenant=a)}"}
    b_key = {"Authorization": f"Bearer {await make_api_key(tenant=b)}"}
    assert (await client.post(f"/api/routers/{a_router.id}/test", headers=a_key)).json()["status"] == "up"
    assert (await client.post(f"/api/routers/{b_router.id}/test", headers=b_key)).json()["status"] == "down"

    # Two vouchers bought through the portal (one at KES 20, one after the plan went up to 30) and a
    # batch of cards: only the bought ones are sales.
    started = []
    for price in (20, 30):
        async with unit_of_work() as session:
            p = await session.get(Plan, a_plan.id)
            assert p is not None
            p.price = price
        r = await client.post(
            f"/api/captive/{a.id}/initiate-mpesa",
            json={
                "router_id": str(a_router.id),
                "plan_id": str(a_plan.id),
                "phone": buyer(),
                "ip": unique_ip(),
            },
        )
        assert r.status_code == 201, r.text
        started.append(r.json()["status_url"])
    for url in started:

        async def usable(url: str = url) -> bool:
            s = (await client.get(url)).json()
            return bool(s.get("voucher") and s["voucher"]["usable"])

        await wait_until(usable)
    async with unit_of_work() as session:
        t, r_, p = (await session.get(Tenant, a.id)), (await session.get(Router, a_router.id)), None
        p = await session.get(Plan, a_plan.id)
        assert t and r_ and p
        await vouchers.issue_batch(session, tenant=t, router=r_, plan=p, count=3)

    h = await admin_headers(client)
    listed = await client.get("/api/admin/providers", headers=h)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    today = today_eat()
    assert (body["first"], body["last"]) == (str(today - timedelta(days=29)), str(today))
    mine = {p["name"]: p for p in body["providers"] if p["id"] in (str(a.id), str(b.id))}
    assert "Just a Shop" not in {p["name"] for p in body["providers"]}
    assert str(shop.id) not in {p["id"] for p in body["providers"]}
    alpha, beta = mine["Alpha WiFi"], mine["Beta WiFi"]
    assert (alpha["subscription"], alpha["routers"], alpha["routers_up"], alpha["routers_down"]) == (
        "active",
        1,
        1,
        0,
    )
    assert alpha["sales"] == {"vouchers": 2, "kes": 50}
    assert (beta["subscription"], beta["routers_up"], beta["routers_down"], beta["sales"]) == (
        "lapsed",
        0,
        1,
        {"vouchers": 0, "kes": 0},
    )

    down = await client.get("/api/admin/routers", params={"status": "down"}, headers=h)
    assert down.status_code == 200
    ours = [r for r in down.json() if r["tenant_id"] in (str(a.id), str(b.id))]
    assert [(r["provider"], r["name"], r["status"]) for r in ours] == [("Beta WiFi", "gate", "down")]
    assert ours[0]["last_error"]
    everything = (await client.get("/api/admin/routers", headers=h)).json()
    ids = [r["id"] for r in everything]
    assert ids.index(str(b_router.id)) < ids.index(str(a_router.id))  # down ones first

    sales = await client.get(
        "/api/admin/hotspot/sales", params={"from": str(today), "to": str(today)}, headers=h
    )
    assert sales.status_code == 200
    rows = [d for d in sales.json()["days"] if d["tenant_id"] in (str(a.id), str(b.id))]
    assert rows == [
        {"tenant_id": str(a.id), "provider": "Alpha WiFi", "day": str(today), "vouchers": 2, "kes": 50}
    ]
    yesterday = str(today - timedelta(days=1))
    none = await client.get(
        "/api/admin/hotspot/sales", params={"from": yesterday, "to": yesterday}, headers=h
    )
    assert [d for d in none.json()["days"] if d["tenant_id"] == str(a.id)] == []


async def test_admin_endpoints_refuse_others_and_bad_periods(client: httpx.AsyncClient) -> None:
    tenant, _ = await make_tenant(name="Curious Owner")
    owner = {"Authorization": f"Bearer {await make_api_key(tenant=tenant)}"}
    for path in ("/api/admin/providers", "/api/admin/routers", "/api/admin/hotspot/sales"):
        r = await client.get(path, headers=owner)
        assert r.status_code == 403, path
        assert "platform_admin" in r.json()["detail"]
        assert (await client.get(path)).status_code == 401
    h = await admin_headers(client)
    backwards = await client.get(
        "/api/admin/hotspot/sales", params={"from": "2026-11-10", "to": "2026-11-01"}, headers=h
    )
    assert backwards.status_code == 422 and "swap them" in backwards.json()["detail"]
    too_long = await client.get(
        "/api/admin/providers", params={"from": "2024-01-01", "to": "2026-11-01"}, headers=h
    )
    assert too_long.status_code == 422 and "at most 366 days" in too_long.json()["detail"]
    garbage = await client.get("/api/admin/routers", params={"status": "sideways"}, headers=h)
    assert garbage.status_code == 422
