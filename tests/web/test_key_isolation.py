"""An API key over HTTP stays in its mode and its app: statuses and bodies.

- A test key made in the sandbox phase (every scope) cannot mint a live key once the business is live,
  with the mode left out (the app's, live now) or asked for; it lists only test keys.
- An app's key cannot make an app, make a key in another app (and so read that app's callback secret
  with it), roll or revoke another app's keys, nor change another app."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from core.auth.models import ApiKey
from core.auth.tokens import hash_api_key
from core.runtime import runtime, unit_of_work
from core.tenants.models import ChannelKind, Environment, Tenant
from core.tenants.service import tenants
from tests.conftest import LiveServer
from tests.support.factories import _channel_for, make_api_key, make_tenant


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    r = await client.post("/api/login", json={"email": email, "password": "secret-pass-1"})
    assert r.status_code == 200, r.text
    return bearer(r.json()["access_token"])


async def go_live(tenant: Tenant) -> None:
    """The owner saves production settings and the KES 1 push is approved."""
    async with unit_of_work() as session:
        row = await tenants.get(session, tenant.id)
        channel = await tenants.save_channel(
            session,
            tenant=row,
            data=_channel_for(Environment.production, ChannelKind.paybill),
            box=runtime().secrets,
            by=None,
        )
        await tenants.mark_verified(session, channel=channel)


async def app_of(key: str) -> str:
    async with unit_of_work(readonly=True) as session:
        row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(key)))
    assert row is not None
    return str(row.app_id)


async def test_a_test_key_cannot_mint_a_live_key_after_going_live(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    tenant, owner = await make_tenant(environment=Environment.sandbox)
    test_key = await make_api_key(tenant=tenant)
    await go_live(tenant)
    live_key = await make_api_key(tenant=tenant)
    refusal = {
        "error": "permission_denied",
        "detail": "This is a test key (lp_test_…), and a test key manages test keys only: create live "
        "keys signed in as the owner (panel: Settings → API keys; CLI: `lipapush apikey`) or with a live "
        "key.",
    }
    for body in ({"name": "minted"}, {"name": "minted", "mode": "live"}):
        r = await client.post("/api/api-keys", json=body, headers=bearer(test_key))
        assert (r.status_code, r.json()) == (403, refusal)

    listed = (await client.get("/api/api-keys", headers=bearer(test_key))).json()
    assert [(k["prefix"], k["mode"]) for k in listed] == [(test_key[:12], "test")]
    live_id = next(
        k["id"]
        for k in (await client.get("/api/api-keys", headers=bearer(live_key))).json()
        if k["prefix"] == live_key[:12]
    )
    for method, path in (("POST", f"/api/api-keys/{live_id}/roll"), ("DELETE", f"/api/api-keys/{live_id}")):
        r = await client.request(method, path, headers=bearer(test_key))
        assert r.status_code == 403 and r.json()["detail"].startswith(
            "This is a test key (lp_test_…), and a test key manages test keys only: roll or revoke live keys"
        )
    # the live key still works; the owner signed in makes live keys
    r = await client.get("/api/api-keys", headers=bearer(live_key))
    assert r.status_code == 200 and {k["mode"] for k in r.json()} == {"live"}
    r = await client.post(
        "/api/api-keys", json={"name": "by owner"}, headers=await login(client, owner.email)
    )
    assert r.status_code == 201 and r.json()["key"].startswith("lp_live_")


async def test_an_apps_key_cannot_reach_another_apps_secrets(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    tenant, owner = await make_tenant()
    key_a = await make_api_key(tenant=tenant)  # in the Default app
    r = await client.post("/api/apps", json={"name": "Other team"}, headers=bearer(key_a))
    assert (r.status_code, r.json()) == (
        403,
        {
            "error": "permission_denied",
            "detail": "Apps are created by the owner: panel Settings → Apps, `lipapush app create`, or "
            "with a login token (POST /api/login), not with an API key.",
        },
    )
    as_owner = await login(client, owner.email)
    r = await client.post("/api/apps", json={"name": "Other team"}, headers=as_owner)
    assert r.status_code == 201, r.text
    b_id = r.json()["id"]
    r = await client.post("/api/api-keys", json={"name": "in B", "app_id": b_id}, headers=as_owner)
    key_b_id = r.json()["id"]

    r = await client.post("/api/api-keys", json={"name": "into B", "app_id": b_id}, headers=bearer(key_a))
    assert (r.status_code, r.json()) == (
        404,
        {"error": "not_found", "detail": "No such app. List this business's apps with GET /api/apps."},
    )
    r = await client.get(f"/api/apps/{b_id}/callback-secret", headers=bearer(key_a))
    assert r.status_code == 404
    for method, path, body in (
        ("POST", f"/api/api-keys/{key_b_id}/roll", None),
        ("DELETE", f"/api/api-keys/{key_b_id}", None),
        ("PATCH", f"/api/apps/{b_id}", {"name": "Taken over"}),
        ("PATCH", f"/api/apps/{b_id}", {"callback_hosts": ["evil.example.com"]}),
        ("DELETE", f"/api/apps/{b_id}", None),
    ):
        r = await client.request(method, path, json=body, headers=bearer(key_a))
        assert (method, path, r.status_code) == (method, path, 403), r.text
    # a key it makes lands in its own app
    r = await client.post("/api/api-keys", json={"name": "mine"}, headers=bearer(key_a))
    assert r.status_code == 201
    assert await app_of(r.json()["key"]) == await app_of(key_a)
    r = await client.get(f"/api/apps/{b_id}", headers=as_owner)
    assert (r.json()["name"], r.json()["callback_hosts"], r.json()["key_count"]) == ("Other team", [], 1)
