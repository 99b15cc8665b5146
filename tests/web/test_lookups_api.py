"""/api/balance and /api/lookups against the live server and its simulators: the balance shows what
M-Pesa last said and refreshes on demand, a receipt's or a payment's status is asked and answered on the
lookup (never changing the payment), and a key sees only its business's lookups, with the right scope."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from core.access.permissions import ApiScope
from core.lookups.models import Lookup, LookupStatus
from core.payments.models import Payment
from core.payouts.use_cases import request_payout
from core.runtime import unit_of_work
from tests.conftest import LiveServer
from tests.support.factories import make_api_key, make_tenant
from tests.support.payouts import PASSWORD, paying_business, wait_final
from tests.support.waiting import wait_for_final, wait_until


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def answered(lookup_id: str) -> Lookup:
    async def done() -> bool:
        async with unit_of_work(readonly=True) as session:
            row = await session.get(Lookup, uuid.UUID(lookup_id))
            return row is not None and row.status is not LookupStatus.pending

    await wait_until(done)
    async with unit_of_work(readonly=True) as session:
        row = await session.get(Lookup, uuid.UUID(lookup_id))
        assert row is not None
        return row


class TestBalance:
    async def test_the_latest_balance_and_a_refresh(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        biz = await paying_business(server, name="Balance Duka")
        key = await make_api_key(tenant=biz.tenant, scopes=[ApiScope.payouts_write])
        # the balance check that proved the initiator is the first balance
        [shown] = (await client.get("/api/balance", headers=auth(key))).json()["channels"]
        assert (shown["channel_id"], shown["channel_name"], shown["kind"], shown["short_code"]) == (
            str(biz.channel_id),
            "Payouts",
            "b2c",
            biz.short_code,
        )
        assert (shown["utility_cents"], shown["working_cents"], shown["refreshing"], shown["last_error"]) == (
            100_000_00,
            0,
            False,
            None,
        )
        assert shown["initiator_verified"] is True and shown["as_of"] is not None
        assert [a["name"] for a in shown["accounts"]] == [
            "Working Account",
            "Float Account",
            "Utility Account",
            "Charges Paid Account",
            "Organization Settlement Account",
        ]
        await wait_final((await request_payout(biz.actor, phone="254722000111", amount=2500)).id)
        r = await client.post("/api/balance/refresh", headers=auth(key))
        assert r.status_code == 202, r.text
        [asked] = r.json()["lookups"]
        assert (asked["kind"], asked["status"], asked["channel_id"]) == (
            "balance",
            "pending",
            str(biz.channel_id),
        )
        await answered(asked["id"])
        [shown] = (await client.get("/api/balance", headers=auth(key))).json()["channels"]
        assert (shown["utility_cents"], shown["lookup_id"], shown["refreshing"]) == (
            97_500_00,
            asked["id"],
            False,
        )

    async def test_it_needs_payouts_read(self, server: LiveServer, client: httpx.AsyncClient) -> None:
        biz = await paying_business(server, name="Closed Balance Duka")
        key = await make_api_key(tenant=biz.tenant)  # no money-out scope
        r = await client.get("/api/balance", headers=auth(key))
        assert r.status_code == 403, r.text
        assert r.json()["detail"].startswith("This API key lacks the payouts:read scope.")
        r = await client.post("/api/balance/refresh", headers=auth(key))
        assert r.status_code == 403, r.text


class TestStatus:
    async def test_a_receipt_is_looked_up_and_answered(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        biz = await paying_business(server, name="Receipt Duka")
        paid = await wait_final((await request_payout(biz.actor, phone="254722000111", amount=640)).id)
        key = await make_api_key(tenant=biz.tenant, scopes=[ApiScope.payments_write])
        r = await client.post("/api/lookups/status", json={"receipt": paid.receipt}, headers=auth(key))
        assert r.status_code == 202, r.text
        assert (r.json()["kind"], r.json()["status"], r.json()["transaction_id"]) == (
            "status",
            "pending",
            paid.receipt,
        )
        await answered(r.json()["id"])
        got = (await client.get(f"/api/lookups/{r.json()['id']}", headers=auth(key))).json()
        assert (got["status"], got["result_code"], got["result_desc"]) == (
            "done",
            "0",
            "M-Pesa says: Completed",
        )
        result: dict[str, Any] = got["result"]
        assert (
            result["receipt"],
            result["amount_cents"],
            result["outcome"],
            result["transaction_status"],
        ) == (
            paid.receipt,
            640_00,
            "success",
            "Completed",
        )
        assert result["originator_conversation_id"] == paid.originator_conversation_id

        r = await client.post("/api/lookups/status", json={"receipt": "UZZ0000000"}, headers=auth(key))
        unknown = await answered(r.json()["id"])
        assert (unknown.status, unknown.result_code, unknown.result_desc) == (
            LookupStatus.failed,
            "2032",
            "M-Pesa has no transaction with this receipt number.",
        )

    async def test_a_payments_status_is_reported_without_changing_it(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        tenant, _ = await make_tenant(name="Payment Lookup Duka")
        key = await make_api_key(tenant=tenant, scopes=[ApiScope.payments_write, ApiScope.business_write])
        channels = (await client.get("/api/channels", headers=auth(key))).json()
        main = channels[0]["id"]
        r = await client.put(
            f"/api/channels/{main}/initiator",
            json={"initiator_name": "apiop", "initiator_password": PASSWORD},
            headers=auth(key),
        )
        assert r.status_code == 200, r.text
        pending = await client.post(
            "/api/stk-push", json={"phone": "0722000111", "amount": 55}, headers=auth(key)
        )
        no_receipt = await client.post(
            "/api/lookups/status", json={"payment_id": pending.json()["id"]}, headers=auth(key)
        )
        assert (no_receipt.status_code, no_receipt.json()["error"]) == (409, "conflict")
        paid = await wait_for_final(client, key, pending.json()["id"])
        assert paid["status"] == "success"
        async with unit_of_work(readonly=True) as session:
            before = await session.get(Payment, uuid.UUID(paid["id"]))
            assert before is not None
            updated_at = before.updated_at
        r = await client.post("/api/lookups/status", json={"payment_id": paid["id"]}, headers=auth(key))
        assert r.status_code == 202, r.text
        assert (r.json()["payment_id"], r.json()["transaction_id"], r.json()["channel_id"]) == (
            paid["id"],
            paid["receipt"],
            main,
        )
        lookup = await answered(r.json()["id"])
        assert lookup.status is LookupStatus.done and lookup.result is not None
        assert (lookup.result["receipt"], lookup.result["amount_cents"]) == (paid["receipt"], 55_00)
        async with unit_of_work(readonly=True) as session:
            after = await session.get(Payment, uuid.UUID(paid["id"]))
            assert after is not None and after.updated_at == updated_at

    async def test_another_business_lookup_is_not_found(
        self, server: LiveServer, client: httpx.AsyncClient
    ) -> None:
        biz = await paying_business(server, name="Private Lookup Duka")
        key = await make_api_key(tenant=biz.tenant, scopes=[ApiScope.payments_write])
        r = await client.post("/api/lookups/status", json={"receipt": "UZZ0000001"}, headers=auth(key))
        other, _ = await make_tenant(name="Peeking Duka")
        theirs = await make_api_key(tenant=other)
        got = await client.get(f"/api/lookups/{r.json()['id']}", headers=auth(theirs))
        assert (got.status_code, got.json()["error"]) == (404, "not_found")
        bad = await client.post(
            "/api/lookups/status", json={"receipt": "UZZ", "payment_id": None}, headers=auth(key)
        )
        assert bad.status_code == 422, bad.text
