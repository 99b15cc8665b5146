from __future__ import annotations

import io
import uuid

import httpx
import openpyxl
from sqlalchemy import select

from core.audit.models import AuditLog
from core.auth.models import Role
from core.runtime import unit_of_work
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant, make_user, unique_email
from tests.support.waiting import wait_for_final, wait_until


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def signup(client: httpx.AsyncClient, *, phone: str = "0712345678") -> tuple[str, str]:
    email = unique_email()
    r = await client.post(
        "/api/signup",
        json={"business_name": "Kiosk ya Juma", "email": email, "password": "long-enough-1", "phone": phone},
    )
    assert r.status_code == 201, r.text
    return email, r.json()["access_token"]


async def actions(tenant_id: str) -> list[str]:
    async with unit_of_work(readonly=True) as session:
        rows = await session.scalars(
            select(AuditLog.action).where(AuditLog.tenant_id == uuid.UUID(tenant_id)).order_by(AuditLog.id)
        )
        return list(rows)


class TestSignupAndOnboarding:
    async def test_signup_settings_verification_activates(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        _email, token = await signup(client)
        me = (await client.get("/api/settings", headers=bearer(token))).json()
        assert me["business"]["status"] == "onboarding"
        assert me["channel"] is None
        r = await client.post(
            "/api/stk-push", json={"phone": "0722000111", "amount": 5}, headers=bearer(token)
        )
        assert (r.status_code, r.json()["error"]) == (409, "channel_not_configured")

        r = await client.post(
            "/api/settings",
            json={
                "environment": "simulator",
                "kind": "paybill",
                "business_short_code": "174379",
                "consumer_key": "my-consumer-key-1234",
                "consumer_secret": "my-consumer-secret-9876",
                "passkey": "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919",
            },
            headers=bearer(token),
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["channel"]["consumer_secret"] == "****9876"
        assert body["channel"]["passkey"] == "****c919"
        assert "my-consumer-secret" not in r.text and "bfb279f9" not in r.text
        assert body["verification"]["amount"] == 1
        assert body["verification"]["phone"] == "254712345678"

        async def active() -> bool:
            s = (await client.get("/api/settings", headers=bearer(token))).json()
            return s["business"]["status"] == "active" and s["channel"]["verified"]

        await wait_until(active)
        tenant_id = body["business"]["id"]
        assert actions_subset(
            await actions(tenant_id), ["tenant.created", "channel.credentials_changed", "channel.verified"]
        )
        # the onboarding push is not a customer
        assert (await client.get("/api/customers", headers=bearer(token))).json()["total"] == 0

    async def test_failed_verification_says_why_and_stays_inactive(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        _, token = await signup(client, phone="0712342001")  # the simulator answers 2001: wrong PIN
        r = await client.post("/api/settings", json={"environment": "simulator"}, headers=bearer(token))
        assert r.status_code == 200
        payment_id = r.json()["verification"]["id"]
        final = await wait_for_final(client, token, payment_id)
        assert final["status"] == "failed"
        s = (await client.get("/api/settings", headers=bearer(token))).json()
        assert s["business"]["status"] == "onboarding"
        assert s["channel"]["verified"] is False
        assert s["channel"]["verification_error"] == "The customer entered a wrong M-Pesa PIN."
        r = await client.post(
            "/api/stk-push", json={"phone": "0722000111", "amount": 5}, headers=bearer(token)
        )
        assert r.status_code == 409
        assert r.json()["error"] == "channel_not_verified"
        assert "wrong M-Pesa PIN" in r.json()["detail"]

    async def test_production_channel_requires_credentials(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        _, token = await signup(client)
        r = await client.post(
            "/api/settings",
            json={"environment": "production", "kind": "till", "business_short_code": "123456"},
            headers=bearer(token),
        )
        assert r.status_code == 422
        assert "till_number is required" in r.json()["detail"]


def actions_subset(got: list[str], expected: list[str]) -> bool:
    return all(a in got for a in expected)


class TestLogin:
    async def test_login_wrong_password_audited(self, server: LiveServer, client: httpx.AsyncClient) -> None:
        email, _token = await signup(client)
        r = await client.post("/api/login", json={"email": email, "password": "nope-nope"})
        assert (r.status_code, r.json()) == (
            401,
            {"error": "authentication_failed", "detail": "Wrong email or password."},
        )
        r = await client.post("/api/login", json={"email": email.upper(), "password": "long-enough-1"})
        assert r.status_code == 200
        tenant_id = r.json()["tenant_id"]
        assert (await actions(tenant_id))[-2:] == ["auth.login_failed", "auth.login"]
        r = await client.post("/api/login", json={"email": "nobody@example.com", "password": "whatever-1"})
        assert r.status_code == 401

    async def test_tampered_token_rejected(self, server: LiveServer, client: httpx.AsyncClient) -> None:
        _, token = await signup(client)
        r = await client.get("/api/dashboard", headers=bearer(token[:-2] + "xx"))
        assert r.status_code == 401
        assert (await client.get("/api/dashboard")).status_code == 401

    async def test_api_key_lifecycle(self, server: LiveServer, client: httpx.AsyncClient) -> None:
        _, token = await signup(client)
        r = await client.post("/api/api-keys", json={"name": "shop", "mode": "test"}, headers=bearer(token))
        assert r.status_code == 201
        created = r.json()
        assert created["key"].startswith("lp_test_") and created["prefix"] == created["key"][:12]
        keys = (await client.get("/api/api-keys", headers=bearer(token))).json()
        assert [k["prefix"] for k in keys] == [created["prefix"]]
        assert "key" not in keys[0]
        assert (await client.get("/api/dashboard", headers=bearer(created["key"]))).status_code == 200
        r = await client.delete(f"/api/api-keys/{created['id']}", headers=bearer(token))
        assert r.json()["revoked_at"] is not None
        r = await client.get("/api/dashboard", headers=bearer(created["key"]))
        assert r.status_code == 401
        tenant_id = (await client.get("/api/settings", headers=bearer(token))).json()["business"]["id"]
        assert actions_subset(await actions(tenant_id), ["apikey.created", "apikey.revoked"])


class TestRoles:
    async def test_cashier_pushes_and_sees_only_own(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, _owner = await make_tenant()
        key = await make_api_key(tenant=tenant)
        cashier = await make_user(tenant=tenant, role=Role.cashier)
        login = await client.post("/api/login", json={"email": cashier.email, "password": "secret-pass-1"})
        ctoken = login.json()["access_token"]
        mine = await client.post(
            "/api/stk-push", json={"phone": "0722000111", "amount": 10}, headers=bearer(ctoken)
        )
        assert mine.status_code == 201
        other = await client.post(
            "/api/stk-push", json={"phone": "0722000222", "amount": 20}, headers=bearer(key)
        )
        items = (await client.get("/api/transactions", headers=bearer(ctoken))).json()["items"]
        assert [i["id"] for i in items] == [mine.json()["id"]]
        r = await client.get(f"/api/transactions/{other.json()['id']}", headers=bearer(ctoken))
        assert r.status_code == 404
        for path in (
            "/api/customers",
            "/api/customers/export-excel",
            "/api/transactions/export-excel",
            "/api/dashboard",
        ):
            r = await client.get(path, headers=bearer(ctoken))
            assert (r.status_code, r.json()["error"]) == (403, "permission_denied"), path
        r = await client.post("/api/settings", json={"environment": "simulator"}, headers=bearer(ctoken))
        assert r.status_code == 403


class TestExport:
    async def test_formula_names_are_neutralised(self, server: LiveServer, client: httpx.AsyncClient) -> None:
        tenant, _ = await make_tenant()
        key = await make_api_key(tenant=tenant)
        evil = '=HYPERLINK("http://evil.example","click")'
        r = await client.post(
            "/api/stk-push", json={"phone": "0722000111", "amount": 150, "name": evil}, headers=bearer(key)
        )
        await wait_for_final(client, key, r.json()["id"])
        r = await client.get("/api/customers/export-excel", headers=bearer(key))
        assert r.status_code == 200
        assert r.headers["content-disposition"].startswith('attachment; filename="customers-mama-mboga')
        ws = openpyxl.load_workbook(io.BytesIO(r.content)).active
        rows = list(ws.iter_rows(values_only=True))
        assert rows[0][:5] == (
            "Name",
            "Phone",
            "Total transactions",
            "Paid transactions",
            "Total amount processed (KES)",
        )
        assert rows[1][0] == "'" + evil
        assert ws.cell(row=2, column=1).data_type == "s"
        assert rows[1][1:5] == ("254722000111", 1, 1, 150)
        tx = await client.get("/api/transactions/export-excel?status=success", headers=bearer(key))
        tws = openpyxl.load_workbook(io.BytesIO(tx.content)).active
        trows = list(tws.iter_rows(values_only=True))
        assert len(trows) == 2
        assert trows[1][1:5] == ("254722000111", "'" + evil, 150, "success")
