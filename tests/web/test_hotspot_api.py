"""Routers, plans and voucher batches through the REST API, against the RouterOS stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from core.hotspot.models import Voucher, VoucherStatus
from core.runtime import unit_of_work
from sim.routeros import RouterSim
from tests.support.factories import make_api_key, make_tenant
from tests.support.waiting import wait_until


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def sim() -> AsyncIterator[RouterSim]:
    async with RouterSim(username="api", password="router-pw", identity="Kangemi-1") as s:
        yield s


async def test_router_plan_and_batch(client: httpx.AsyncClient, sim: RouterSim) -> None:
    tenant, _ = await make_tenant(name="Kangemi WiFi")
    h = bearer(await make_api_key(tenant=tenant))
    bad = await client.post(
        "/api/routers",
        json={"name": "x", "host": "not a host!", "username": "api", "password": "pw"},
        headers=h,
    )
    assert bad.status_code == 422 and "host" in bad.json()["errors"]
    r = await client.post(
        "/api/routers",
        json={
            "name": "stall-42",
            "host": "127.0.0.1",
            "port": sim.port,
            "username": "api",
            "password": "router-pw",
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    router = r.json()
    assert router["status"] == "unknown" and "password" not in router
    dup = await client.post(
        "/api/routers",
        json={"name": "stall-42", "host": "127.0.0.1", "username": "api", "password": "pw"},
        headers=h,
    )
    assert dup.status_code == 409
    tested = await client.post(f"/api/routers/{router['id']}/test", headers=h)
    assert tested.status_code == 200
    assert (tested.json()["status"], tested.json()["identity"]) == ("up", "Kangemi-1")
    assert tested.json()["version"]

    plan = await client.post(
        "/api/plans",
        json={"name": "1 hour", "price": 20, "validity_minutes": 60, "rate_limit": "2M/5M"},
        headers=h,
    )
    assert plan.status_code == 201, plan.text
    data_plan = await client.post(
        "/api/plans", json={"name": "1 GB", "kind": "data", "price": 50, "validity_minutes": 1440}, headers=h
    )
    assert data_plan.status_code == 422
    assert data_plan.json()["detail"].endswith("A data plan needs data_mb (the allowance in MB).")
    bad_rate = await client.post(
        "/api/plans",
        json={"name": "fast", "price": 50, "validity_minutes": 60, "rate_limit": "fast"},
        headers=h,
    )
    assert bad_rate.status_code == 422 and "rate_limit" in bad_rate.json()["errors"]

    batch = await client.post(
        "/api/vouchers/batch",
        json={"plan_id": plan.json()["id"], "router_id": router["id"], "count": 10},
        headers=h,
    )
    assert batch.status_code == 201, batch.text
    codes = [v["code"] for v in batch.json()["vouchers"]]
    assert len(set(codes)) == 10 and {v["status"] for v in batch.json()["vouchers"]} == {"issued"}

    async def provisioned() -> bool:
        async with unit_of_work(readonly=True) as session:
            rows = list(await session.scalars(select(Voucher.status).where(Voucher.tenant_id == tenant.id)))
        return rows.count(VoucherStatus.provisioned) == 10

    await wait_until(provisioned)
    assert {str(u["name"]) for u in sim.users()} == set(codes)
    batch_id = batch.json()["batch_id"]
    printed = await client.get(f"/api/vouchers/batches/{batch_id}/print", params={"paper": "58mm"}, headers=h)
    assert printed.status_code == 200 and printed.headers["content-type"].startswith("text/html")
    assert all(code in printed.text for code in codes) and "@page{size:58mm auto" in printed.text
    assert "not on the router yet" not in printed.text
    assert printed.text.count("<div>Kangemi WiFi</div>") == 10
    assert (
        await client.get(f"/api/vouchers/batches/{batch_id}/print", params={"paper": "letter"}, headers=h)
    ).status_code == 422
    xlsx = await client.get(f"/api/vouchers/batches/{batch_id}/export-excel", headers=h)
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK" and xlsx.headers["x-row-count"] == "10"

    # A plan change never touches vouchers already sold.
    changed = await client.put(
        f"/api/plans/{plan.json()['id']}",
        json={"name": "1 hour", "price": 30, "validity_minutes": 90, "rate_limit": "5M/10M"},
        headers=h,
    )
    assert changed.status_code == 200 and changed.json()["price"] == 30
    async with unit_of_work(readonly=True) as session:
        sold = list(await session.scalars(select(Voucher).where(Voucher.tenant_id == tenant.id)))
    assert {(v.price, v.validity_minutes, v.rate_limit) for v in sold} == {(20, 60, "2M/5M")}

    revoked = await client.post(f"/api/vouchers/{codes[0].lower()}/revoke", headers=h)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"

    async def gone() -> bool:
        return codes[0] not in {str(u["name"]) for u in sim.users()}

    await wait_until(gone)
    again = await client.post(f"/api/tickets/{codes[0]}/activate", headers=h)
    assert again.status_code == 409

    other, _ = await make_tenant(name="Other WiFi")
    oh = bearer(await make_api_key(tenant=other))
    assert (await client.post(f"/api/routers/{router['id']}/test", headers=oh)).status_code == 404
    assert (await client.post(f"/api/vouchers/{codes[1]}/revoke", headers=oh)).status_code == 404
    assert (await client.get("/api/routers", headers=oh)).json() == []
    assert (await client.get(f"/api/vouchers/batches/{batch_id}/print", headers=oh)).status_code == 404


async def test_unreachable_router_says_why(client: httpx.AsyncClient) -> None:
    tenant, _ = await make_tenant(name="Down WiFi")
    h = bearer(await make_api_key(tenant=tenant))
    async with RouterSim(username="api", password="pw") as s:
        port = s.port
    r = await client.post(
        "/api/routers",
        json={"name": "gone", "host": "127.0.0.1", "port": port, "username": "api", "password": "pw"},
        headers=h,
    )
    tested = await client.post(f"/api/routers/{r.json()['id']}/test", headers=h)
    assert tested.status_code == 200
    body = tested.json()
    assert body["status"] == "down" and body["last_error"] and str(port) in body["last_error"]


async def test_router_setup_script(client: httpx.AsyncClient, server) -> None:  # type: ignore[no-untyped-def]
    tenant, _ = await make_tenant(name="Script WiFi")
    h = bearer(await make_api_key(tenant=tenant))
    r = await client.post(
        "/api/routers",
        json={
            "name": "Gate\nA",
            "host": "10.0.0.1",
            "username": "lipapush-api",
            "password": "very-secret-pw",
        },
        headers=h,
    )
    assert r.status_code == 201 and r.json()["name"] == "Gate A"
    for body in (
        {"name": "1 hour", "price": 20, "validity_minutes": 60, "rate_limit": "2M/5M"},
        {"name": "1 day", "price": 80, "validity_minutes": 1440, "rate_limit": "2M/5M"},  # same profile
        {"name": "Family day", "price": 150, "validity_minutes": 1440, "devices": 3},
    ):
        assert (await client.post("/api/plans", json=body, headers=h)).status_code == 201
    script = await client.get(f"/api/routers/{r.json()['id']}/config", headers=h)
    assert script.status_code == 200
    assert script.headers["content-disposition"] == 'attachment; filename="lipapush.rsc"'
    text = script.text
    from core.hotspot.models import profile_name

    assert text.count(f"add name={profile_name('2M/5M', 1)} ") == 1
    assert f'set [find name={profile_name("2M/5M", 1)}] rate-limit="2M/5M" shared-users=1' in text
    assert f"set [find name={profile_name(None, 3)}] shared-users=3" in text
    host = server.url.split("//")[1].split(":")[0]
    assert f'add dst-host="{host}"' in text
    assert "login-by=http-chap,http-pap,cookie,mac-cookie" in text
    assert f"/portal/{tenant.slug}/{r.json()['id']}?mac=\\$(mac-esc)" in text  # $ escaped for RouterOS
    assert "very-secret-pw" not in text
    assert "# lipapush setup for router Gate A" in text
