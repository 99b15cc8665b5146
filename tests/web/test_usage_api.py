"""/api/usage over HTTP: the figures count exactly the requests a test made (requests, pushes, successes,
failures, per app, per key and per endpoint), the log lists them newest first with their route
templates, the export holds the same rows, and who may read what."""

from __future__ import annotations

import io
import uuid
from typing import Any

import httpx
from openpyxl import load_workbook
from sqlalchemy import select

from core.access.permissions import ApiScope
from core.audit.models import AuditLog
from core.auth.models import ApiKey, Role
from core.runtime import unit_of_work
from core.tenants.models import Environment, Tenant
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant, make_user
from tests.support.waiting import wait_for_final


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    r = await client.post("/api/login", json={"email": email, "password": "secret-pass-1"})
    assert r.status_code == 200, r.text
    return bearer(r.json()["access_token"])


async def flush(server: LiveServer) -> None:
    """Write what the API logged so far (the recorder's timer would, within USAGE_FLUSH_SECONDS)."""
    await server.app.state.usage_recorder.flush()


async def key_row(tenant: Tenant, prefix: str) -> ApiKey:
    async with unit_of_work(readonly=True) as session:
        row = await session.scalar(
            select(ApiKey).where(ApiKey.tenant_id == tenant.id, ApiKey.prefix == prefix)
        )
    assert row is not None
    return row


async def known_requests(client: httpx.AsyncClient, key: str) -> None:
    """Exactly 7 requests with `key`: 2 accepted pushes, a refused push (422), 3 lists, one 404."""
    for amount in (10, 20):
        r = await client.post(
            "/api/stk-push", json={"phone": "0722000111", "amount": amount}, headers=bearer(key)
        )
        assert r.status_code == 201, r.text
    r = await client.post("/api/stk-push", json={"phone": "12", "amount": 10}, headers=bearer(key))
    assert r.status_code == 422
    for _ in range(3):
        assert (await client.get("/api/transactions", headers=bearer(key))).status_code == 200
    r = await client.get(f"/api/transactions/{uuid.uuid4()}", headers=bearer(key))
    assert r.status_code == 404


def counts(entry: dict[str, Any]) -> tuple[int, int, int, int]:
    return entry["requests"], entry["pushes"], entry["successes"], entry["failures"]


class TestFigures:
    async def test_figures_log_and_export_count_the_requests_made(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, owner = await make_tenant(name="Usage Duka", environment=Environment.simulator)
        key = await make_api_key(tenant=tenant)
        other = await make_api_key(tenant=tenant)  # same app, never used
        row = await key_row(tenant, key[:12])
        await known_requests(client, key)
        await flush(server)

        as_owner = await login(client, owner.email)
        r = await client.get("/api/usage", params={"app_id": str(row.app_id)}, headers=as_owner)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["app_id"] == str(row.app_id) and body["key_id"] is None
        for period in ("last_24h", "this_month"):
            figures = body[period]
            assert counts(figures["totals"]) == (7, 2, 5, 2)
            [app] = figures["apps"]
            assert (app["app_id"], app["name"], app["mode"]) == (str(row.app_id), "Default app", "test")
            assert counts(app) == (7, 2, 5, 2)
            by_key = {k["prefix"]: counts(k) for k in figures["keys"]}
            assert by_key == {key[:12]: (7, 2, 5, 2), other[:12]: (0, 0, 0, 0)}
            endpoints = {
                (e["method"], e["route"]): (e["requests"], e["failures"]) for e in figures["endpoints"]
            }
            assert endpoints == {
                ("POST", "/api/stk-push"): (3, 1),
                ("GET", "/api/transactions"): (3, 0),
                ("GET", "/api/transactions/{payment_id}"): (1, 1),
            }
            assert figures["endpoints"][0]["route"] in ("/api/stk-push", "/api/transactions")
            for e in figures["endpoints"]:
                assert 0 <= e["p50_ms"] <= e["p95_ms"] and e["avg_ms"] >= 0
        assert body["month"] == body["this_month"]["start"][:7] or body["this_month"]["start"].endswith(
            "21:00:00Z"
        )

        # the log: the same 7, newest first, with their route templates and the key that made them
        r = await client.get(
            "/api/usage/requests", params={"key_id": str(row.id), "limit": 4}, headers=as_owner
        )
        assert r.status_code == 200, r.text
        page = r.json()
        assert [(i["method"], i["route"], i["status_code"]) for i in page["items"]] == [
            ("GET", "/api/transactions/{payment_id}", 404),
            ("GET", "/api/transactions", 200),
            ("GET", "/api/transactions", 200),
            ("GET", "/api/transactions", 200),
        ]
        assert {i["key_prefix"] for i in page["items"]} == {key[:12]}
        assert all(i["network"] == "127.0.0.0/24" and i["request_id"] for i in page["items"])
        r = await client.get(
            "/api/usage/requests",
            params={"key_id": str(row.id), "limit": 4, "cursor": page["next_cursor"]},
            headers=as_owner,
        )
        rest = r.json()
        assert [(i["route"], i["status_code"]) for i in rest["items"]] == [
            ("/api/stk-push", 422),
            ("/api/stk-push", 201),
            ("/api/stk-push", 201),
        ]
        assert rest["next_cursor"] is None
        r = await client.get(
            "/api/usage/requests", params={"app_id": str(row.app_id), "status_class": "4xx"}, headers=as_owner
        )
        assert [i["status_code"] for i in r.json()["items"]] == [404, 422]
        r = await client.get(
            "/api/usage/requests", params={"route": "/api/stk-push", "method": "post"}, headers=as_owner
        )
        assert [i["status_code"] for i in r.json()["items"]] == [422, 201, 201]

        # the export: the same rows, newest first
        r = await client.get("/api/usage/export.xlsx", params={"key_id": str(row.id)}, headers=as_owner)
        assert r.status_code == 200, r.text
        assert r.headers["x-row-count"] == "7"
        assert r.headers["content-disposition"].startswith('attachment; filename="api-usage-usage-duka')
        sheet = load_workbook(io.BytesIO(r.content), read_only=True).active
        assert sheet is not None
        rows = list(sheet.iter_rows(values_only=True))
        assert rows[0][:6] == ("Time (EAT)", "Method", "Route", "Status", "Latency (ms)", "Key")
        assert [(m, route, s, k) for _, m, route, s, _, k, *_ in rows[1:]] == [
            ("GET", "/api/transactions/{payment_id}", 404, f"{key[:12]}…"),
            *[("GET", "/api/transactions", 200, f"{key[:12]}…")] * 3,
            ("POST", "/api/stk-push", 422, f"{key[:12]}…"),
            *[("POST", "/api/stk-push", 201, f"{key[:12]}…")] * 2,
        ]
        assert all(r[6] == "Default app" and r[7] == "test" for r in rows[1:])
        async with unit_of_work(readonly=True) as session:
            audit = await session.scalar(
                select(AuditLog).where(AuditLog.tenant_id == tenant.id, AuditLog.action == "export.usage")
            )
        assert audit is not None and audit.detail["rows"] == 7 and audit.detail["key_id"] == str(row.id)

    async def test_pushes_count_only_accepted_ones_and_the_push_finishing_is_not_a_request(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, owner = await make_tenant(name="Push Count", environment=Environment.simulator)
        key = await make_api_key(tenant=tenant)
        r = await client.post(
            "/api/stk-push", json={"phone": "0722000111", "amount": 10}, headers=bearer(key)
        )
        await wait_for_final(client, key, r.json()["id"])  # polls: GET /api/transactions/{payment_id}
        await flush(server)
        row = await key_row(tenant, key[:12])
        body = (
            await client.get(
                "/api/usage", params={"key_id": str(row.id)}, headers=await login(client, owner.email)
            )
        ).json()
        [entry] = body["last_24h"]["keys"]
        polls = entry["requests"] - 1
        assert polls >= 1 and counts(entry) == (1 + polls, 1, 1 + polls, 0)
        assert body["last_24h"]["apps"][0]["requests"] == 1 + polls

    async def test_login_token_requests_count_for_the_business_not_an_app(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant(name="Login Count", environment=Environment.simulator)
        manager = await make_user(tenant=tenant, role=Role.manager)
        as_manager = await login(client, manager.email)
        assert (await client.get("/api/transactions", headers=as_manager)).status_code == 200
        assert (await client.get("/api/wallet/ledger?limit=0", headers=as_manager)).status_code == 422
        await flush(server)
        body = (await client.get("/api/usage", headers=as_manager)).json()
        day = body["last_24h"]
        # the two above; this GET /api/usage is logged once it has answered
        assert counts(day["totals"]) == (2, 0, 1, 1)
        assert [(a["app_id"], a["name"], counts(a)) for a in day["apps"]] == [
            (None, "Signed-in people (login tokens)", (2, 0, 1, 1))
        ]
        assert day["keys"] == []
        await flush(server)
        again = (await client.get("/api/usage", headers=as_manager)).json()
        assert again["last_24h"]["totals"]["requests"] == 3


class TestRefusedAndUnknown:
    async def test_a_revoked_key_is_logged_as_its_business_s_401_and_strangers_are_not(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, owner = await make_tenant(name="Revoked Duka", environment=Environment.simulator)
        key = await make_api_key(tenant=tenant)
        row = await key_row(tenant, key[:12])
        as_owner = await login(client, owner.email)
        r = await client.delete(f"/api/api-keys/{row.id}", headers=as_owner)
        assert r.status_code == 200, r.text
        assert (await client.get("/api/transactions", headers=bearer(key))).status_code == 401
        # the same prefix with a wrong secret: still that key's business
        assert (await client.get("/api/transactions", headers=bearer(key[:12] + "x" * 40))).status_code == 401
        # a key nobody has, a made-up token, no credentials: nobody's, not logged
        assert (
            await client.get("/api/transactions", headers=bearer("lp_test_" + "y" * 43))
        ).status_code == 401
        assert (await client.get("/api/transactions", headers=bearer("a.b.c"))).status_code == 401
        assert (await client.get("/api/transactions")).status_code == 401
        await flush(server)
        page = (
            await client.get("/api/usage/requests", params={"key_id": str(row.id)}, headers=as_owner)
        ).json()
        assert [(i["route"], i["status_code"], i["key_prefix"]) for i in page["items"]] == [
            ("/api/transactions", 401, key[:12]),
            ("/api/transactions", 401, key[:12]),
        ]
        body = (await client.get("/api/usage", params={"key_id": str(row.id)}, headers=as_owner)).json()
        [entry] = body["this_month"]["keys"]
        assert counts(entry) == (2, 0, 0, 2) and entry["revoked"] is True

    async def test_a_path_no_route_serves_and_a_request_id_the_client_chose(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, owner = await make_tenant(name="Unrouted Duka", environment=Environment.simulator)
        key = await make_api_key(tenant=tenant)
        row = await key_row(tenant, key[:12])
        r = await client.get(
            f"/api/nothing-here/{uuid.uuid4()}", headers={**bearer(key), "X-Request-Id": "order 42"}
        )
        assert (r.status_code, r.headers["x-request-id"]) == (404, "order 42")
        await flush(server)
        as_owner = await login(client, owner.email)
        page = (
            await client.get("/api/usage/requests", params={"key_id": str(row.id)}, headers=as_owner)
        ).json()
        # never the raw path with its ids; the id as a log column can always hold it
        assert [(i["route"], i["status_code"], i["request_id"]) for i in page["items"]] == [
            ("(no route)", 404, "order42")
        ]


class TestWhoMay:
    async def test_roles_scopes_and_a_key_s_own_app(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, owner = await make_tenant(name="Who Usage", environment=Environment.simulator)
        _other, other_owner = await make_tenant(environment=Environment.simulator)
        as_owner = await login(client, owner.email)
        default_key = await make_api_key(tenant=tenant, scopes=[ApiScope.keys_read])  # the Default app
        default = await key_row(tenant, default_key[:12])
        shop = (await client.post("/api/apps", json={"name": "Shop"}, headers=as_owner)).json()
        r = await client.post(
            "/api/api-keys",
            json={"name": "shop", "app_id": shop["id"], "scopes": ["keys:read"]},
            headers=as_owner,
        )
        assert r.status_code == 201, r.text
        shop_key = r.json()["key"]
        cashier = await make_user(tenant=tenant, role=Role.cashier)
        no_scope = await make_api_key(tenant=tenant, scopes=[ApiScope.payments_read])

        r = await client.get("/api/usage", headers=await login(client, cashier.email))
        assert (r.status_code, r.json()["detail"]) == (
            403,
            "This is for the owner or manager of the business.",
        )
        r = await client.get("/api/usage/requests", headers=bearer(no_scope))
        assert r.status_code == 403
        assert r.json()["detail"].startswith("This API key lacks the keys:read scope.")

        # a key sees its own app, named or not; another app is refused with where to look
        mine = (await client.get("/api/usage", headers=bearer(shop_key))).json()
        assert mine["app_id"] == shop["id"]
        assert [a["name"] for a in mine["this_month"]["apps"]] == ["Shop"]
        assert [k["prefix"] for k in mine["this_month"]["keys"]] == [shop_key[:12]]
        r = await client.get("/api/usage", params={"app_id": str(default.app_id)}, headers=bearer(shop_key))
        assert r.status_code == 403
        assert r.json()["detail"].startswith("An API key reads only its own app's usage")
        r = await client.get(
            "/api/usage/requests", params={"key_id": str(default.id)}, headers=bearer(shop_key)
        )
        assert r.status_code == 403
        # a person sees every app
        await flush(server)
        everything = (await client.get("/api/usage", headers=as_owner)).json()
        assert [a["name"] for a in everything["this_month"]["apps"]] == [
            "Default app",
            "Shop",
            "Signed-in people (login tokens)",  # the owner's and the cashier's requests above
        ]

        # another business's app or key is not found
        theirs = await make_api_key(tenant=_other)
        their_row = await key_row(_other, theirs[:12])
        r = await client.get("/api/usage", params={"key_id": str(their_row.id)}, headers=as_owner)
        assert (r.status_code, r.json()["detail"]) == (
            404,
            "No such API key. List this business's keys with GET /api/api-keys.",
        )
        r = await client.get("/api/usage", params={"app_id": str(their_row.app_id)}, headers=as_owner)
        assert r.status_code == 404
        r = await client.get("/api/usage/requests", params={"cursor": "nonsense"}, headers=as_owner)
        assert (r.status_code, r.json()["errors"]) == (
            422,
            {"cursor": "This cursor is not one this list gave: start again without it."},
        )
        del other_owner
