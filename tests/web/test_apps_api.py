"""/api/apps over HTTP: statuses and bodies for create, list, read, change and archive, as the owner's
login, a manager's and API keys with and without keys:write."""

from __future__ import annotations

import uuid

import httpx

from core.access.permissions import ApiScope
from core.auth.models import Role
from core.tenants.models import Environment
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant, make_user


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    r = await client.post("/api/login", json={"email": email, "password": "secret-pass-1"})
    assert r.status_code == 200, r.text
    return bearer(r.json()["access_token"])


class TestApps:
    async def test_create_list_read_change_archive(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, owner = await make_tenant(environment=Environment.simulator)
        key = await make_api_key(tenant=tenant)  # in the business's Default app
        auth = await login(client, owner.email)

        r = await client.post(
            "/api/apps", json={"name": "Shop", "callback_hosts": ["Shop.Example.com"]}, headers=auth
        )
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["name"] == "Shop" and made["mode"] == "test"
        assert made["callback_hosts"] == ["shop.example.com"]
        assert (made["key_count"], made["webhook_endpoint_count"], made["archived_at"]) == (0, 0, None)
        assert made["channel"]["label"] == f"Main: Paybill {made['channel']['number']} (simulator)"
        assert made["channel"]["environment"] == "simulator" and made["channel"]["kind"] == "paybill"

        r = await client.post("/api/apps", json={"name": "shop"}, headers=auth)
        taken = "This business already has an app named “shop”: choose another name, or rename that app."
        assert (r.status_code, r.json()) == (
            409,
            {"error": "conflict", "detail": taken, "errors": {"name": taken}},
        )

        listed = (await client.get("/api/apps", headers=bearer(key))).json()
        assert [(a["name"], a["key_count"]) for a in listed] == [("Default app", 1), ("Shop", 0)]
        default_id = listed[0]["id"]

        r = await client.patch(
            f"/api/apps/{made['id']}", json={"name": "Shop website", "callback_hosts": []}, headers=auth
        )
        assert r.status_code == 200, r.text
        assert (r.json()["name"], r.json()["callback_hosts"]) == ("Shop website", [])
        r = await client.get(f"/api/apps/{made['id']}", headers=auth)
        assert (r.status_code, r.json()["name"]) == (200, "Shop website")

        # the key of the Default app can archive neither its own app nor another; the owner can
        r = await client.delete(f"/api/apps/{default_id}", headers=bearer(key))
        assert r.status_code == 409
        assert r.json()["detail"].startswith("This API key belongs to the app “Default app”")
        r = await client.delete(f"/api/apps/{made['id']}", headers=bearer(key))
        assert r.status_code == 403
        assert r.json()["detail"].startswith("An API key changes only its own app")
        r = await client.delete(f"/api/apps/{made['id']}", headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "Shop website" and r.json()["archived_at"] is not None
        r = await client.get(f"/api/apps/{made['id']}", headers=auth)
        assert (r.status_code, r.json()) == (
            404,
            {"error": "not_found", "detail": "No such app. List this business's apps with GET /api/apps."},
        )
        # the owner cannot archive the last one
        r = await client.delete(f"/api/apps/{default_id}", headers=auth)
        assert r.status_code == 409
        assert r.json()["detail"].startswith("“Default app” is this business's only app")

    async def test_bad_input_is_422_with_the_field(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        _, owner = await make_tenant()
        auth = await login(client, owner.email)
        r = await client.post(
            "/api/apps",
            json={"name": "Web", "callback_hosts": ["https://shop.example.com/hook"]},
            headers=auth,
        )
        assert r.status_code == 422
        body = r.json()
        assert body["error"] == "invalid_input"
        assert "'https://shop.example.com/hook' is not a host name" in body["errors"]["callback_hosts"]
        r = await client.post("/api/apps", json={"name": "x" * 81}, headers=auth)
        assert r.status_code == 422
        assert "at most 80 characters" in r.json()["errors"]["name"]
        assert (await client.get("/api/apps", headers=auth)).json() == []

    async def test_who_may(self, server: LiveServer, client: httpx.AsyncClient) -> None:
        tenant, owner = await make_tenant(name="Who Duka")
        _other, other_owner = await make_tenant()
        theirs = (
            await client.post(
                "/api/apps", json={"name": "Theirs"}, headers=await login(client, other_owner.email)
            )
        ).json()
        manager = await make_user(tenant=tenant, role=Role.manager)
        cashier = await make_user(tenant=tenant, role=Role.cashier)
        as_manager = await login(client, manager.email)
        as_cashier = await login(client, cashier.email)
        reader = bearer(await make_api_key(tenant=tenant, scopes=[ApiScope.keys_read]))

        assert (await client.get("/api/apps", headers=as_manager)).status_code == 200
        r = await client.post("/api/apps", json={"name": "M"}, headers=as_manager)
        assert (r.status_code, r.json()["detail"]) == (403, "This is for the owner of the business.")
        r = await client.get("/api/apps", headers=as_cashier)
        assert (r.status_code, r.json()["detail"]) == (
            403,
            "This is for the owner or manager of the business.",
        )
        r = await client.post("/api/apps", json={"name": "K"}, headers=reader)
        assert r.status_code == 403 and r.json()["detail"].startswith(
            "This API key lacks the keys:write scope."
        )
        assert [a["name"] for a in (await client.get("/api/apps", headers=reader)).json()] == ["Default app"]
        auth = await login(client, owner.email)
        for method, body in (("GET", None), ("PATCH", {"name": "Mine"}), ("DELETE", None)):
            r = await client.request(method, f"/api/apps/{theirs['id']}", json=body, headers=auth)
            assert (method, r.status_code) == (method, 404)
        r = await client.get(f"/api/apps/{uuid.uuid4()}", headers=auth)
        assert r.status_code == 404
