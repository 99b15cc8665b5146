"""Tenant isolation, authentication, input validation and idempotency over the real HTTP API."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook

from tests.e2e.conftest import (
    XLSX_MEDIA_TYPE,
    Business,
    NewBusiness,
    Serve,
    all_customers,
    all_transactions,
    bearer,
    customer,
    login,
    msisdn,
    push,
    sim_requests,
    unique_phone,
    wait_final,
)


@dataclass
class Pair:
    a: Business
    b: Business
    a_payment: dict[str, Any]
    b_payment: dict[str, Any]
    a_phone: str
    b_phone: str


@pytest.fixture(scope="module")
async def pair(new_business: NewBusiness, serve: Serve) -> Pair:
    """Two businesses, each with one paid customer of its own."""
    a, b = await asyncio.gather(new_business(name="Alpha Hardware"), new_business(name="Beta Salon"))
    a_phone, b_phone = unique_phone("1111"), unique_phone("2222")
    async with httpx.AsyncClient(base_url=serve.url, timeout=30) as http:
        a_payment = await push(http, a, phone=a_phone, amount=111, name="Alice Alpha")
        b_payment = await push(http, b, phone=b_phone, amount=222, name="Bob Beta")
        assert (await wait_final(http, a, a_payment["id"]))["status"] == "success"
        assert (await wait_final(http, b, b_payment["id"]))["status"] == "success"
    return Pair(a, b, a_payment, b_payment, a_phone, b_phone)


def xlsx_rows(r: httpx.Response) -> list[tuple[Any, ...]]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == XLSX_MEDIA_TYPE
    wb = load_workbook(io.BytesIO(r.content))
    return [tuple(row) for row in wb.worksheets[0].iter_rows(values_only=True)]


class TestIsolation:
    async def test_other_tenants_transaction_is_not_found(self, pair: Pair, http: httpx.AsyncClient) -> None:
        r = await http.get(f"/api/transactions/{pair.a_payment['id']}", headers=pair.b.headers)
        assert r.status_code == 404, r.text
        assert r.json() == {"error": "not_found", "detail": "No such transaction."}
        # The owner still sees it, and B's own id is found by B: the 404 is about ownership.
        r = await http.get(f"/api/transactions/{pair.a_payment['id']}", headers=pair.a.headers)
        assert r.status_code == 200
        r = await http.get(f"/api/transactions/{pair.b_payment['id']}", headers=pair.b.headers)
        assert r.status_code == 200

    async def test_customer_book_and_its_export_hold_only_own_customers(
        self, pair: Pair, http: httpx.AsyncClient
    ) -> None:
        b_phones = {c["phone"] for c in await all_customers(http, pair.b)}
        assert msisdn(pair.b_phone) in b_phones
        assert msisdn(pair.a_phone) not in b_phones
        r = await http.get("/api/customers", params={"q": "Alice"}, headers=pair.b.headers)
        assert r.json()["items"] == []
        r = await http.get("/api/customers", params={"q": pair.a_phone}, headers=pair.b.headers)
        assert r.json()["items"] == []

        rows = xlsx_rows(await http.get("/api/customers/export-excel", headers=pair.b.headers))
        assert ("Bob Beta", msisdn(pair.b_phone)) in [row[:2] for row in rows[1:]]
        assert {row[1] for row in rows[1:]} == b_phones
        flat = repr(rows)
        assert "Alice" not in flat and msisdn(pair.a_phone) not in flat

    async def test_transaction_list_and_export_hold_only_own_payments(
        self, pair: Pair, http: httpx.AsyncClient
    ) -> None:
        a_ids = {t["id"] for t in await all_transactions(http, pair.a)}
        b_ids = {t["id"] for t in await all_transactions(http, pair.b)}
        assert pair.a_payment["id"] in a_ids and pair.b_payment["id"] in b_ids
        assert not a_ids & b_ids
        r = await http.get("/api/transactions", params={"phone": pair.a_phone}, headers=pair.b.headers)
        assert r.json()["items"] == []

        rows = xlsx_rows(await http.get("/api/transactions/export-excel", headers=pair.b.headers))
        phones = {row[1] for row in rows[1:]}
        assert msisdn(pair.b_phone) in phones
        assert msisdn(pair.a_phone) not in phones and pair.a.phone not in phones
        assert "Alice Alpha" not in repr(rows)

    async def test_dashboard_counts_only_own_payments(self, pair: Pair, http: httpx.AsyncClient) -> None:
        own = [t for t in await all_transactions(http, pair.b) if t["source"] == "api"]
        dash = (await http.get("/api/dashboard", headers=pair.b.headers)).json()
        assert dash["business"] == "Beta Salon"
        assert dash["transactions"] == len(own)
        assert dash["total_processed"] == sum(t["amount"] for t in own if t["status"] == "success")
        assert msisdn(pair.a_phone) not in {c["phone"] for c in dash["recent_customers"]}


class TestAuthentication:
    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"Authorization": "Bearer lp_live_" + "x" * 43},
            {"Authorization": "Bearer not-a-token"},
            {"Authorization": "Basic dXNlcjpwYXNz"},
        ],
        ids=["no-auth", "garbage-api-key", "garbage-jwt", "basic"],
    )
    async def test_missing_or_bad_credentials_are_401(
        self, pair: Pair, http: httpx.AsyncClient, headers: dict[str, str]
    ) -> None:
        for method, path in [
            ("GET", f"/api/transactions/{pair.a_payment['id']}"),
            ("GET", "/api/customers"),
            ("POST", "/api/stk-push"),
        ]:
            r = await http.request(method, path, headers=headers, json={"phone": "0722000111", "amount": 10})
            assert r.status_code == 401, (path, r.text)
            assert r.json()["error"] == "authentication_failed"

    async def test_revoked_key_is_401(self, pair: Pair, http: httpx.AsyncClient) -> None:
        jwt = await login(http, pair.a.email, pair.a.password)
        r = await http.post("/api/api-keys", json={"name": "to revoke"}, headers=bearer(jwt))
        assert r.status_code == 201, r.text
        created = r.json()
        key = created["key"]
        assert (await http.get("/api/customers", headers=bearer(key))).status_code == 200

        r = await http.delete(f"/api/api-keys/{created['id']}", headers=bearer(jwt))
        assert r.status_code == 200, r.text
        assert r.json()["revoked_at"] is not None
        r = await http.get("/api/customers", headers=bearer(key))
        assert r.status_code == 401
        assert r.json()["error"] == "authentication_failed"
        r = await http.post("/api/stk-push", json={"phone": "0722000111", "amount": 10}, headers=bearer(key))
        assert r.status_code == 401
        # The business's other key is untouched.
        assert (await http.get("/api/customers", headers=pair.a.headers)).status_code == 200

    async def test_one_tenant_cannot_revoke_anothers_key(self, pair: Pair, http: httpx.AsyncClient) -> None:
        a_jwt = await login(http, pair.a.email, pair.a.password)
        b_jwt = await login(http, pair.b.email, pair.b.password)
        r = await http.post("/api/api-keys", json={"name": "a's"}, headers=bearer(a_jwt))
        created = r.json()
        r = await http.delete(f"/api/api-keys/{created['id']}", headers=bearer(b_jwt))
        assert r.status_code == 404
        assert r.json()["error"] == "not_found"
        assert (await http.get("/api/customers", headers=bearer(created["key"]))).status_code == 200


class TestValidation:
    @pytest.mark.parametrize(
        ("body", "field", "message"),
        [
            ({"phone": "12345", "amount": 10}, "phone", "'12345' is not a Kenyan mobile number."),
            ({"phone": "0722000111", "amount": 0}, "amount", "Amount must be at least KES 1."),
            ({"phone": "0722000111", "amount": 1.5}, "amount", "M-Pesa only takes whole shillings"),
            ({"phone": "0722000111", "amount": "abc"}, "amount", "Amount must be a whole number"),
            ({"phone": "0722000111", "amount": 250001}, "amount", "Amount must be at most KES 250,000"),
            (
                {"phone": "0722000111", "amount": 10, "reference": "R" * 13},
                "reference",
                "reference must be at most 12 characters",
            ),
            (
                {"phone": "0722000111", "amount": 10, "name": "N" * 101},
                "name",
                "Customer name must be at most 100 characters.",
            ),
            ({"phone": "0722000111", "amount": 10, "tip": 5}, "tip", "Unknown field: remove it."),
            ({"amount": 10}, "phone", "This field is required."),
        ],
        ids=[
            "phone",
            "amount-0",
            "amount-1.5",
            "amount-abc",
            "amount-250001",
            "reference-13",
            "name-101",
            "unknown-field",
            "missing-phone",
        ],
    )
    async def test_bad_input_is_422_naming_the_field_and_creates_nothing(
        self, pair: Pair, http: httpx.AsyncClient, body: dict[str, Any], field: str, message: str
    ) -> None:
        before = await all_transactions(http, pair.a)
        pushes_before = len(await sim_requests(http))
        r = await http.post("/api/stk-push", json=body, headers=pair.a.headers)
        assert r.status_code == 422, r.text
        err = r.json()
        assert err["error"] == "invalid_input"
        assert field in err["errors"], err
        assert message in err["errors"][field], err
        assert message in err["detail"]
        assert await all_transactions(http, pair.a) == before
        assert len(await sim_requests(http)) == pushes_before

    async def test_amount_limits_are_inclusive(self, pair: Pair, http: httpx.AsyncClient) -> None:
        for amount in (1, 250000, "250000", 99.0):
            phone = unique_phone("1032")  # cancelled: nothing is paid, no matter the amount
            r = await http.post(
                "/api/stk-push", json={"phone": phone, "amount": amount}, headers=pair.a.headers
            )
            assert r.status_code == 201, (amount, r.text)
            assert r.json()["amount"] == int(float(amount))
            assert (await wait_final(http, pair.a, r.json()["id"]))["status"] == "cancelled"


class TestIdempotency:
    async def test_same_key_same_body_is_one_payment_and_one_prompt(
        self, pair: Pair, http: httpx.AsyncClient
    ) -> None:
        phone = unique_phone("4343")
        headers = {**pair.a.headers, "Idempotency-Key": "order-" + phone}
        body = {"phone": phone, "amount": 130, "name": "Njeri"}
        first = await http.post("/api/stk-push", json=body, headers=headers)
        assert first.status_code == 201, first.text
        second = await http.post("/api/stk-push", json=body, headers=headers)
        assert second.status_code in (200, 201), second.text
        assert second.json()["id"] == first.json()["id"]
        final = await wait_final(http, pair.a, first.json()["id"])
        assert final["status"] == "success"
        # A retry after the payment ended still answers with the same payment, now final.
        third = await http.post("/api/stk-push", json=body, headers=headers)
        assert (third.json()["id"], third.json()["status"]) == (final["id"], "success")

        assert len(await sim_requests(http, phone=msisdn(phone))) == 1
        [row] = [t for t in await all_transactions(http, pair.a) if t["phone"] == msisdn(phone)]
        assert row["id"] == final["id"]
        r = await http.get("/api/customers", params={"q": phone}, headers=pair.a.headers)
        [cust] = r.json()["items"]
        assert (cust["requested_count"], cust["paid_count"], cust["paid_total"]) == (1, 1, 130)

    async def test_same_key_different_amount_is_409(self, pair: Pair, http: httpx.AsyncClient) -> None:
        phone = unique_phone("4444")
        headers = {**pair.a.headers, "Idempotency-Key": "order-" + phone}
        first = await http.post("/api/stk-push", json={"phone": phone, "amount": 50}, headers=headers)
        assert first.status_code == 201, first.text
        r = await http.post("/api/stk-push", json={"phone": phone, "amount": 51}, headers=headers)
        assert r.status_code == 409, r.text
        assert r.json()["error"] == "idempotency_key_reused"
        await wait_final(http, pair.a, first.json()["id"])
        assert len(await sim_requests(http, phone=msisdn(phone))) == 1

    async def test_keys_are_per_tenant(self, pair: Pair, http: httpx.AsyncClient) -> None:
        """B using the same Idempotency-Key as A gets its own payment, never A's."""
        key = "shared-" + unique_phone("4545")
        a = await http.post(
            "/api/stk-push",
            json={"phone": unique_phone("4646"), "amount": 20},
            headers={**pair.a.headers, "Idempotency-Key": key},
        )
        b = await http.post(
            "/api/stk-push",
            json={"phone": unique_phone("4747"), "amount": 20},
            headers={**pair.b.headers, "Idempotency-Key": key},
        )
        assert (a.status_code, b.status_code) == (201, 201), (a.text, b.text)
        assert a.json()["id"] != b.json()["id"]
        await asyncio.gather(
            wait_final(http, pair.a, a.json()["id"]), wait_final(http, pair.b, b.json()["id"])
        )

    async def test_concurrent_retries_with_one_key_make_one_payment(
        self, pair: Pair, http: httpx.AsyncClient
    ) -> None:
        """A client that times out and retries may send the same request again while the first is still
        in flight: every answer is the one payment (or a 409 telling it to wait), never a 5xx. A few
        bursts, each with its own key and phone, so a check-then-insert race shows up reliably."""

        async def burst(phone: str) -> list[httpx.Response]:
            headers = {**pair.a.headers, "Idempotency-Key": "retry-" + phone}
            body = {"phone": phone, "amount": 140}
            return list(
                await asyncio.gather(
                    *(http.post("/api/stk-push", json=body, headers=headers) for _ in range(6))
                )
            )

        phones = [unique_phone("4848") for _ in range(4)]
        bursts = await asyncio.gather(*(burst(p) for p in phones))
        for phone, replies in zip(phones, bursts, strict=True):
            answers = [(r.status_code, r.text) for r in replies]
            assert all(r.status_code in (200, 201, 409) for r in replies), answers
            ids = {r.json()["id"] for r in replies if r.status_code in (200, 201)}
            assert len(ids) == 1, answers
            final = await wait_final(http, pair.a, ids.pop())
            assert final["status"] == "success"
            assert len(await sim_requests(http, phone=msisdn(phone))) == 1
            cust = await customer(http, pair.a, phone)
            assert cust is not None
            assert (cust["requested_count"], cust["paid_count"], cust["paid_total"]) == (1, 1, 140)
