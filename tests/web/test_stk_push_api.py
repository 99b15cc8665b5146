from __future__ import annotations

import httpx
import pytest

from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant
from tests.support.waiting import wait_for_final


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class TestPushLifecycle:
    async def test_success_updates_customer_book(self, server: LiveServer, client: httpx.AsyncClient) -> None:
        tenant, _ = await make_tenant()
        key = await make_api_key(tenant=tenant)
        r = await client.post(
            "/api/stk-push", json={"phone": "0722000111", "amount": 150, "name": "Wanjiku"}, headers=auth(key)
        )
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["status"] == "pending"
        assert body["phone"] == "254722000111"
        assert body["checkout_request_id"].startswith("ws_CO_")
        final = await wait_for_final(client, key, body["id"])
        assert final["status"] == "success"
        assert final["result_code"] == "0"
        assert len(final["receipt"]) == 10
        r = await client.get("/api/customers", headers=auth(key))
        [customer] = r.json()["items"]
        assert customer == customer | {
            "phone": "254722000111",
            "name": "Wanjiku",
            "requested_count": 1,
            "requested_total": 150,
            "paid_count": 1,
            "paid_total": 150,
        }

    @pytest.mark.parametrize(
        ("phone", "status", "code", "message"),
        [
            ("0722001032", "cancelled", "1032", "The customer cancelled the M-Pesa prompt."),
            ("0722001037", "timeout", "1037", "could not be reached"),
            ("0722002001", "failed", "2001", "wrong M-Pesa PIN"),
            ("0722000001", "failed", "1", "balance is too low"),
            ("0722001019", "timeout", "1019", "did not respond"),
        ],
    )
    async def test_failures_are_final_with_reason(
        self, server: LiveServer, client: httpx.AsyncClient, phone: str, status: str, code: str, message: str
    ) -> None:
        tenant, _ = await make_tenant()
        key = await make_api_key(tenant=tenant)
        r = await client.post("/api/stk-push", json={"phone": phone, "amount": 20}, headers=auth(key))
        assert r.status_code == 201, r.text
        final = await wait_for_final(client, key, r.json()["id"])
        assert (final["status"], final["result_code"]) == (status, code)
        assert message in final["result_desc"]
        assert final["receipt"] is None
        [customer] = (await client.get("/api/customers", headers=auth(key))).json()["items"]
        assert (customer["requested_count"], customer["paid_count"], customer["paid_total"]) == (1, 0, 0)
