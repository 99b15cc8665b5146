"""Hostile and broken traffic on POST /callbacks/daraja/{token}: unknown URLs, replays, forgeries, bad
bodies. Whatever arrives, a final payment never changes and money is never counted twice or wrongly."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    ACCEPTED,
    Business,
    Inbox,
    NewBusiness,
    Serve,
    all_customers,
    all_transactions,
    customer,
    push,
    sim_callbacks,
    success_callback,
    unique_phone,
    wait_final,
    wait_for,
)


async def books(http: httpx.AsyncClient, biz: Business) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return await all_transactions(http, biz), await all_customers(http, biz)


async def delivered_callback(http: httpx.AsyncClient, checkout_request_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        done = [c for c in await sim_callbacks(http, checkout_request_id) if c["status_code"] == 200]
        return done[0] if done else None

    found: dict[str, Any] = await wait_for(probe, what=f"simulator callback for {checkout_request_id}")
    return found


def request_id() -> str:
    return "e2e-" + secrets.token_hex(8)


async def test_unknown_callback_token_is_404_and_changes_nothing(
    new_business: NewBusiness, http: httpx.AsyncClient, inbox: Inbox
) -> None:
    biz = await new_business(name="Unknown Token Shop")
    phone = unique_phone("1032")
    pushed = await push(http, biz, phone=phone, amount=300)
    assert (await wait_final(http, biz, pushed["id"]))["status"] == "cancelled"
    before = await books(http, biz)

    forged = success_callback(
        checkout_request_id=pushed["checkout_request_id"],
        merchant_request_id=pushed["merchant_request_id"],
        amount=300,
        phone=phone,
    )
    rid = request_id()
    r = await http.post(
        f"/callbacks/daraja/{secrets.token_hex(24)}", json=forged, headers={"X-Request-Id": rid}
    )
    assert r.status_code == 404, r.text
    assert r.json()["error"] == "not_found"
    # An over-long token is refused before any lookup, in Daraja's own envelope.
    r = await http.post(f"/callbacks/daraja/{'a' * 65}", json=forged)
    assert r.status_code == 404
    assert r.json() == {"ResultCode": 1, "ResultDesc": "Unknown callback URL"}

    assert await inbox.rows(request_id=rid) == []
    assert await books(http, biz) == before


async def test_replayed_success_callback_counts_once(
    new_business: NewBusiness, http: httpx.AsyncClient, inbox: Inbox
) -> None:
    biz = await new_business(name="Replay Shop")
    phone = unique_phone("7070")
    pushed = await push(http, biz, phone=phone, amount=250, name="Kamau")
    cid = pushed["checkout_request_id"]
    final = await wait_final(http, biz, pushed["id"])
    assert final["status"] == "success"
    original = await delivered_callback(http, cid)
    assert original["url"] == biz.callback_url
    await inbox.wait_processed(count=1, checkout_request_id=cid)

    r = await http.post(original["url"], json=original["body"])
    assert (r.status_code, r.json()) == (200, ACCEPTED)
    replies = await asyncio.gather(*(http.post(original["url"], json=original["body"]) for _ in range(5)))
    assert [(x.status_code, x.json()) for x in replies] == [(200, ACCEPTED)] * 5

    rows = await inbox.wait_processed(count=7, checkout_request_id=cid)
    assert len(rows) == 7
    assert sorted(r["outcome"] for r in rows) == ["applied"] + ["duplicate"] * 6

    after = (await http.get(f"/api/transactions/{pushed['id']}", headers=biz.headers)).json()
    assert after == final
    row = await customer(http, biz, phone)
    assert row is not None
    assert (row["paid_count"], row["paid_total"], row["requested_count"]) == (1, 250, 1)
    dash = (await http.get("/api/dashboard", headers=biz.headers)).json()
    assert (dash["total_processed"], dash["success_count"]) == (250, 1)


async def test_forged_success_after_cancellation_leaves_it_cancelled(
    new_business: NewBusiness, http: httpx.AsyncClient, inbox: Inbox
) -> None:
    biz = await new_business(name="Cancelled Shop")
    phone = unique_phone("1032")
    pushed = await push(http, biz, phone=phone, amount=500)
    cid = pushed["checkout_request_id"]
    final = await wait_final(http, biz, pushed["id"])
    assert (final["status"], final["result_code"]) == ("cancelled", "1032")
    await inbox.wait_processed(count=1, checkout_request_id=cid)

    forged = success_callback(
        checkout_request_id=cid,
        merchant_request_id=pushed["merchant_request_id"],
        amount=500,
        phone=phone,
    )
    r = await http.post(biz.callback_url, json=forged)
    assert (r.status_code, r.json()) == (200, ACCEPTED)
    rows = await inbox.wait_processed(count=2, checkout_request_id=cid)
    assert [r["outcome"] for r in rows] == ["applied", "duplicate"]

    after = (await http.get(f"/api/transactions/{pushed['id']}", headers=biz.headers)).json()
    assert after == final
    assert (after["status"], after["receipt"]) == ("cancelled", None)
    row = await customer(http, biz, phone)
    assert row is not None and (row["paid_count"], row["paid_total"]) == (0, 0)


async def test_success_for_a_different_amount_is_flagged_not_paid(
    new_business: NewBusiness, http: httpx.AsyncClient, inbox: Inbox
) -> None:
    """The push goes to a 9999 number (the simulator never calls back), so the forged callback is the
    first word on it; the reconciliation query only ever moves a *pending* payment."""
    biz = await new_business(name="Amount Shop")
    phone = unique_phone("9999")
    pushed = await push(http, biz, phone=phone, amount=1000, name="Mwangi")
    cid = pushed["checkout_request_id"]
    forged = success_callback(
        checkout_request_id=cid,
        merchant_request_id=pushed["merchant_request_id"],
        amount=1,
        phone=phone,
    )
    r = await http.post(biz.callback_url, json=forged)
    assert (r.status_code, r.json()) == (200, ACCEPTED)
    [row] = await inbox.wait_processed(count=1, checkout_request_id=cid)
    assert row["outcome"] == "applied"

    final = await wait_final(http, biz, pushed["id"])
    assert final["status"] == "failed"
    assert final["receipt"] is None
    assert final["flag"] == "callback amount KES 1 differs from requested KES 1000"
    assert "amount" in final["result_desc"] and "review" in final["result_desc"]
    cust = await customer(http, biz, phone)
    assert cust is not None
    assert (cust["requested_total"], cust["paid_count"], cust["paid_total"]) == (1000, 0, 0)
    dash = (await http.get("/api/dashboard", headers=biz.headers)).json()
    assert (dash["total_processed"], dash["success_count"]) == (0, 0)


@pytest.fixture(scope="module")
async def settled(new_business: NewBusiness, serve: Serve, inbox: Inbox) -> tuple[Business, dict[str, Any]]:
    """A business with one paid payment whose callback has been processed: nothing is in flight."""
    biz = await new_business(name="Malformed Shop")
    async with httpx.AsyncClient(base_url=serve.url, timeout=30) as http:
        pushed = await push(http, biz, phone=unique_phone("7171"), amount=80)
        assert (await wait_final(http, biz, pushed["id"]))["status"] == "success"
    await inbox.wait_processed(count=1, checkout_request_id=pushed["checkout_request_id"])
    return biz, pushed


async def post_raw(http: httpx.AsyncClient, url: str, body: bytes) -> tuple[httpx.Response, str]:
    rid = request_id()
    r = await http.post(url, content=body, headers={"Content-Type": "application/json", "X-Request-Id": rid})
    return r, rid


async def test_malformed_json_is_stored_and_answered_200_but_changes_nothing(
    settled: tuple[Business, dict[str, Any]], http: httpx.AsyncClient, inbox: Inbox
) -> None:
    biz, pushed = settled
    before = await books(http, biz)
    bodies = [
        b'{"Body": {"stkCallback": {"CheckoutRequestID": ',  # truncated JSON
        b"not json at all",
        b"[]",
        # Valid JSON naming the real payment, but not an STK callback (no MerchantRequestID, no ResultCode).
        json.dumps({"Body": {"stkCallback": {"CheckoutRequestID": pushed["checkout_request_id"]}}}).encode(),
        b"\xff\xfe garbage that is not UTF-8",
    ]
    for body in bodies:
        r, rid = await post_raw(http, biz.callback_url, body)
        assert (r.status_code, r.json()) == (200, ACCEPTED), (body, r.text)
        [row] = await inbox.wait_processed(count=1, request_id=rid)
        assert row["outcome"] == "malformed", (body, row)
        assert row["error"], row
    assert await books(http, biz) == before


async def test_body_with_a_nul_byte_is_stored_and_answered_200(
    settled: tuple[Business, dict[str, Any]], http: httpx.AsyncClient, inbox: Inbox
) -> None:
    """A NUL byte is text no database can store: the body is kept (U+0000 replaced, so Postgres TEXT
    can hold it), answered 200, recorded rejected with the reason at ingest, and changes nothing."""
    biz, _ = settled
    before = await books(http, biz)
    r, rid = await post_raw(http, biz.callback_url, b'{"Body": "\x00"}\x00garbage')
    assert (r.status_code, r.json()) == (200, ACCEPTED), r.text
    [row] = await inbox.wait_processed(count=1, request_id=rid)
    assert (row["outcome"], row["checkout_request_id"]) == ("rejected", None), row
    assert "NUL" in row["error"], row
    assert await books(http, biz) == before


async def test_body_over_64_kib_is_rejected_and_changes_nothing(
    new_business: NewBusiness, http: httpx.AsyncClient, inbox: Inbox
) -> None:
    biz = await new_business(name="Big Body Shop")
    phone = unique_phone("1032")
    pushed = await push(http, biz, phone=phone, amount=70)
    assert (await wait_final(http, biz, pushed["id"]))["status"] == "cancelled"
    before = await books(http, biz)

    forged = success_callback(
        checkout_request_id=pushed["checkout_request_id"],
        merchant_request_id=pushed["merchant_request_id"],
        amount=70,
        phone=phone,
    )
    forged["Body"]["stkCallback"]["Padding"] = "x" * (64 * 1024)
    body = json.dumps(forged).encode()
    assert len(body) > 64 * 1024
    rid = request_id()
    r = await http.post(
        biz.callback_url, content=body, headers={"Content-Type": "application/json", "X-Request-Id": rid}
    )
    assert 400 <= r.status_code < 500, r.text
    assert r.json().get("ResultCode") != 0

    assert await inbox.rows(request_id=rid) == []
    assert await books(http, biz) == before
