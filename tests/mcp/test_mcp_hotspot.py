"""WiFi hotspot providers through the MCP server, against the RouterOS stand-in: their plans and
routers, printed-card vouchers issued and found on the router, another provider's code, plan or router
not found with nothing issued, and no WiFi tools for a business that collects payments only."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select

from core.hotspot.models import Voucher, VoucherStatus
from core.runtime import unit_of_work
from core.tenants.models import Tenant, TenantKind
from sim.routeros import RouterSim
from tests.conftest import LiveServer
from tests.mcp.helpers import count, refusal
from tests.mcp.support import call, mcp_client, tool_calls, tool_names
from tests.support.factories import make_api_key, make_tenant
from tests.support.waiting import wait_until

HOTSPOT_TOOLS = {"list_plans", "issue_vouchers", "voucher_status"}


@dataclass
class Provider:
    tenant: Tenant
    key: str
    router_id: str
    plan_id: str


@pytest.fixture
async def routers() -> AsyncIterator[tuple[RouterSim, RouterSim]]:
    async with (
        RouterSim(username="api", password="router-pw", identity="Kangemi-1") as a,
        RouterSim(username="api", password="router-pw", identity="Kawangware-1") as b,
    ):
        yield a, b


async def provider(client: httpx.AsyncClient, name: str, sim: RouterSim) -> Provider:
    tenant, _ = await make_tenant(name=name, tenant_kind=TenantKind.hotspot)
    key = await make_api_key(tenant=tenant)
    h = {"Authorization": f"Bearer {key}"}
    router = await client.post(
        "/api/routers",
        json={
            "name": f"{name} stall",
            "host": "127.0.0.1",
            "port": sim.port,
            "username": "api",
            "password": "router-pw",
        },
        headers=h,
    )
    assert router.status_code == 201, router.text
    plan = await client.post(
        "/api/plans",
        json={"name": "1 hour", "price": 20, "validity_minutes": 60, "rate_limit": "2M/5M"},
        headers=h,
    )
    assert plan.status_code == 201, plan.text
    return Provider(tenant, key, router.json()["id"], plan.json()["id"])


async def vouchers_of(tenant_id: uuid.UUID) -> list[Voucher]:
    async with unit_of_work(readonly=True) as session:
        return list(await session.scalars(select(Voucher).where(Voucher.tenant_id == tenant_id)))


async def test_a_provider_issues_vouchers_and_finds_them_but_never_another_provider_s(
    server: LiveServer, client: httpx.AsyncClient, routers: tuple[RouterSim, RouterSim]
) -> None:
    sim_a, sim_b = routers
    a = await provider(client, "Kangemi WiFi", sim_a)
    b = await provider(client, "Kawangware WiFi", sim_b)
    theirs = await client.post(
        "/api/vouchers/batch",
        json={"plan_id": b.plan_id, "router_id": b.router_id, "count": 1},
        headers={"Authorization": f"Bearer {b.key}"},
    )
    assert theirs.status_code == 201, theirs.text
    their_code = theirs.json()["vouchers"][0]["code"]

    async with mcp_client(server.url, a.key) as agent:
        assert await tool_names(agent) >= HOTSPOT_TOOLS
        plans = await call(agent, "list_plans")
        assert [(p["id"], p["name"], p["price"]) for p in plans["plans"]] == [(a.plan_id, "1 hour", 20)]
        assert [r["id"] for r in plans["routers"]] == [a.router_id]

        issued = await call(
            agent, "issue_vouchers", {"plan_id": a.plan_id, "router_id": a.router_id, "count": 3}
        )
        codes = [v["code"] for v in issued["vouchers"]]
        assert len(set(codes)) == 3 and {v["status"] for v in issued["vouchers"]} == {"issued"}
        assert {v["router_id"] for v in issued["vouchers"]} == {a.router_id}

        async def provisioned() -> bool:
            rows = await vouchers_of(a.tenant.id)
            return [v.status for v in rows] == [VoucherStatus.provisioned] * 3

        await wait_until(provisioned)
        assert {str(u["name"]) for u in sim_a.users()} == set(codes)
        found = await call(agent, "voucher_status", {"code": codes[0].lower()})
        assert (found["voucher"]["code"], found["voucher"]["status"], found["router_name"]) == (
            codes[0],
            "provisioned",
            "Kangemi WiFi stall",
        )

        strangers = [
            ("voucher_status", {"code": their_code}),
            ("issue_vouchers", {"plan_id": b.plan_id, "router_id": a.router_id, "count": 2}),
            ("issue_vouchers", {"plan_id": a.plan_id, "router_id": b.router_id, "count": 2}),
            ("issue_vouchers", {"plan_id": b.plan_id, "router_id": b.router_id, "count": 2}),
        ]
        for name, arguments in strangers:
            refused = await refusal(agent, name, arguments)
            assert refused.code == "not_found", (name, refused.text)
        too_many = await refusal(
            agent, "issue_vouchers", {"plan_id": a.plan_id, "router_id": a.router_id, "count": 101}
        )
        assert too_many.code == "invalid_input" and "count: " in too_many.text

    assert len(await vouchers_of(a.tenant.id)) == 3
    assert [v.code for v in await vouchers_of(b.tenant.id)] == [their_code]
    assert their_code not in {str(u["name"]) for u in sim_a.users()}
    rows = await tool_calls(a.tenant.id)
    assert [(r.detail["tool"], r.detail.get("error")) for r in rows[-5:]] == [
        *[(name, "not_found") for name, _ in strangers],
        ("issue_vouchers", "invalid_input"),
    ]
    assert rows[1].detail["tool"] == "issue_vouchers" and rows[1].target == issued["batch_id"]


async def test_a_business_that_is_not_a_provider_has_no_wifi_tools(server: LiveServer) -> None:
    tenant, _ = await make_tenant(name="Duka la Mboga")
    key = await make_api_key(tenant=tenant)
    async with mcp_client(server.url, key) as agent:
        assert not HOTSPOT_TOOLS & await tool_names(agent)
        refused = await refusal(agent, "list_plans")
        status = await refusal(agent, "voucher_status", {"code": "ABCD1234"})
    assert refused.text == (
        "list_plans is for WiFi hotspot providers; this business is not one. (error: permission_denied)"
    )
    assert status.code == "permission_denied"
    assert await count(Voucher, Voucher.tenant_id == tenant.id) == 0
