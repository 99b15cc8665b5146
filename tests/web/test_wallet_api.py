from __future__ import annotations

import httpx

from core.tenants.models import BillingMode
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant, set_billing, wallet_state
from tests.support.waiting import wait_for_final


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class TestTopup:
    async def test_topup_credits_the_wallet_once(self, server: LiveServer, client: httpx.AsyncClient) -> None:
        tenant, _ = await make_tenant()
        key = await make_api_key(tenant=tenant)
        r = await client.post("/api/wallet/topup", json={"amount": 500}, headers=bearer(key))
        assert r.status_code == 201, r.text
        body = r.json()
        assert (body["source"], body["phone"], body["amount"], body["account_reference"]) == (
            "topup",
            "254712345678",
            500,
            "TOPUP",
        )
        assert (await wait_for_final(client, key, body["id"]))["status"] == "success"
        # a duplicated callback (…9998) still credits once
        r = await client.post(
            "/api/wallet/topup", json={"amount": 200, "phone": "0722009998"}, headers=bearer(key)
        )
        assert (await wait_for_final(client, key, r.json()["id"]))["status"] == "success"
        assert await wallet_state(tenant) == (70_000, 0)
        page = (await client.get("/api/wallet/ledger", headers=bearer(key))).json()
        assert [(p["kind"], p["wallet_effect_cents"]) for p in page["items"]] == [
            ("topup", 20_000),
            ("topup", 50_000),
        ]
        # top-ups are not customers
        assert (await client.get("/api/customers", headers=bearer(key))).json()["total"] == 0

    async def test_failed_topup_credits_nothing(self, server: LiveServer, client: httpx.AsyncClient) -> None:
        tenant, _ = await make_tenant()
        key = await make_api_key(tenant=tenant)
        r = await client.post(
            "/api/wallet/topup", json={"amount": 500, "phone": "0722001032"}, headers=bearer(key)
        )
        assert (await wait_for_final(client, key, r.json()["id"]))["status"] == "cancelled"
        assert await wallet_state(tenant) == (0, 0)

    async def test_bad_topup_input(self, server: LiveServer, client: httpx.AsyncClient) -> None:
        tenant, _ = await make_tenant()
        key = await make_api_key(tenant=tenant)
        for payload, field in (
            ({"amount": 1.5}, "amount"),
            ({"amount": 0}, "amount"),
            ({"amount": 100, "phone": "123"}, "phone"),
        ):
            r = await client.post("/api/wallet/topup", json=payload, headers=bearer(key))
            assert r.status_code == 422, payload
            assert field in r.json()["errors"], r.json()

    async def test_topup_then_wallet_mode_push(self, server: LiveServer, client: httpx.AsyncClient) -> None:
        tenant, _ = await make_tenant()
        await set_billing(tenant, mode=BillingMode.wallet, bps=200)
        key = await make_api_key(tenant=tenant)
        r = await client.post(
            "/api/stk-push", json={"phone": "0722000111", "amount": 100}, headers=bearer(key)
        )
        assert r.status_code == 402
        r = await client.post("/api/wallet/topup", json={"amount": 10}, headers=bearer(key))
        await wait_for_final(client, key, r.json()["id"])
        r = await client.post(
            "/api/stk-push", json={"phone": "0722000111", "amount": 100}, headers=bearer(key)
        )
        assert r.status_code == 201
        await wait_for_final(client, key, r.json()["id"])
        w = (await client.get("/api/wallet", headers=bearer(key))).json()
        assert (w["balance_cents"], w["billing_mode"], w["commission_bps"]) == (1_000 - 200, "wallet", 200)

    async def test_wallet_settings(self, server: LiveServer, client: httpx.AsyncClient) -> None:
        tenant, _ = await make_tenant()
        key = await make_api_key(tenant=tenant)
        r = await client.post(
            "/api/wallet/settings",
            json={"low_balance_threshold": 250, "invoice_period": "weekly"},
            headers=bearer(key),
        )
        assert r.status_code == 200
        assert (r.json()["low_balance_threshold_cents"], r.json()["invoice_period"]) == (25_000, "weekly")
