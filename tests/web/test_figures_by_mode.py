"""A business that tried lipapush on the simulator and then went live: its dashboard adds up live
payments only, and its old test payments stay readable by a test view, never mixed in."""

from __future__ import annotations

import httpx

from core.runtime import runtime, unit_of_work
from core.tenants.models import ChannelKind, Environment
from core.tenants.service import tenants
from tests.conftest import LiveServer
from tests.support.factories import _channel_for, make_api_key, make_tenant
from tests.support.waiting import wait_for_final


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_the_dashboard_counts_the_current_mode_only(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    tenant, owner = await make_tenant(environment=Environment.simulator)
    test_key = await make_api_key(tenant=tenant)
    for amount in (100, 200):
        r = await client.post(
            "/api/stk-push", json={"phone": "0722000111", "amount": amount}, headers=auth(test_key)
        )
        assert r.status_code == 201, r.text
        await wait_for_final(client, test_key, r.json()["id"])
    r = await client.get("/api/dashboard", headers=auth(test_key))
    assert r.json()["total_processed"] == 300

    # Live now: a verified production channel.
    async with unit_of_work() as session:
        row = await tenants.get(session, tenant.id)
        channel = await tenants.save_channel(
            session,
            tenant=row,
            data=_channel_for(Environment.production, ChannelKind.paybill),
            box=runtime().secrets,
            by=owner.id,
        )
        await tenants.mark_verified(session, channel=channel)
    live_key = await make_api_key(tenant=tenant)
    assert live_key.startswith("lp_live_")
    r = await client.post("/api/stk-push", json={"phone": "0722000111", "amount": 50}, headers=auth(live_key))
    assert r.status_code == 201, r.text
    await wait_for_final(client, live_key, r.json()["id"])

    assert (await client.get("/api/dashboard", headers=auth(live_key))).json()["total_processed"] == 50
    assert (await client.get("/api/dashboard", headers=auth(test_key))).json()["total_processed"] == 300
    token = (await client.post("/api/login", json={"email": owner.email, "password": "secret-pass-1"})).json()
    r = await client.get("/api/dashboard", headers=auth(token["access_token"]))
    assert r.json()["total_processed"] == 50  # a person sees the business's current mode


async def test_an_idempotency_key_of_the_test_phase_is_new_in_live_mode(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    tenant, owner = await make_tenant(environment=Environment.simulator)
    test_key = await make_api_key(tenant=tenant)
    order = {"Idempotency-Key": "order-1001"}
    r = await client.post(
        "/api/stk-push", json={"phone": "0722000111", "amount": 75}, headers=auth(test_key) | order
    )
    assert r.status_code == 201, r.text
    test_payment = await wait_for_final(client, test_key, r.json()["id"])
    async with unit_of_work() as session:
        row = await tenants.get(session, tenant.id)
        channel = await tenants.save_channel(
            session,
            tenant=row,
            data=_channel_for(Environment.production, ChannelKind.paybill),
            box=runtime().secrets,
            by=owner.id,
        )
        await tenants.mark_verified(session, channel=channel)
    live_key = await make_api_key(tenant=tenant)
    r = await client.post(
        "/api/stk-push", json={"phone": "0722000111", "amount": 75}, headers=auth(live_key) | order
    )
    assert r.status_code == 201, r.text
    live = r.json()
    assert live["id"] != test_payment["id"] and live["mode"] == "live" and live["status"] == "pending"
    # the same key again in live mode is the live payment, as always
    again = await client.post(
        "/api/stk-push", json={"phone": "0722000111", "amount": 75}, headers=auth(live_key) | order
    )
    assert again.status_code == 201 and again.json()["id"] == live["id"]
