"""Every row of the Daraja simulator's outcome table, through the REST API, to its final state.

The outcome is picked by the last four digits of the payer's phone. Each test uses a phone never used
before in the run, so its customer-book row is its own even though the module shares one business.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    SANDBOX_SHORT_CODE,
    Business,
    Inbox,
    NewBusiness,
    customer,
    msisdn,
    push,
    sim_callbacks,
    sim_requests,
    unique_phone,
    wait_final,
    wait_for,
)

RECEIPT = re.compile(r"[A-Z0-9]{10}")


@pytest.fixture(scope="module")
async def biz(new_business: NewBusiness) -> Business:
    return await new_business(name="Outcome Traders")


def book(row: dict[str, Any] | None) -> tuple[int, int, int, int]:
    assert row is not None
    return row["requested_count"], row["requested_total"], row["paid_count"], row["paid_total"]


@pytest.mark.parametrize(
    ("last4", "status", "code", "message"),
    [
        ("1032", "cancelled", "1032", "The customer cancelled the M-Pesa prompt."),
        (
            "1037",
            "timeout",
            "1037",
            "The customer's phone could not be reached. "
            "Ask them to check it is on and has signal, then try again.",
        ),
        ("2001", "failed", "2001", "The customer entered a wrong M-Pesa PIN."),
        ("0001", "failed", "1", "The customer's M-Pesa balance is too low for this payment."),
        ("1019", "timeout", "1019", "The customer did not respond to the M-Pesa prompt in time."),
    ],
)
async def test_unpaid_outcomes_are_final_with_reason_and_count_only_as_requested(
    biz: Business, http: httpx.AsyncClient, last4: str, status: str, code: str, message: str
) -> None:
    phone = unique_phone(last4)
    pushed = await push(http, biz, phone=phone, amount=75, name="Otieno")
    final = await wait_final(http, biz, pushed["id"])
    assert (final["status"], final["result_code"], final["result_desc"]) == (status, code, message)
    assert final["receipt"] is None
    assert final["flag"] is None
    assert final["completed_at"] is not None
    assert book(await customer(http, biz, phone)) == (1, 75, 0, 0)

    # A second request to the same customer counts again as requested, never as paid.
    again = await push(http, biz, phone=phone, amount=25)
    assert (await wait_final(http, biz, again["id"]))["status"] == status
    assert book(await customer(http, biz, phone)) == (2, 100, 0, 0)


async def test_any_other_number_succeeds_with_a_receipt(biz: Business, http: httpx.AsyncClient) -> None:
    phone = unique_phone("4242")
    pushed = await push(http, biz, phone=phone, amount=120, name="Achieng")
    final = await wait_final(http, biz, pushed["id"])
    assert (final["status"], final["result_code"], final["result_desc"]) == ("success", "0", "Paid")
    assert RECEIPT.fullmatch(final["receipt"]), final
    row = await customer(http, biz, phone)
    assert book(row) == (1, 120, 1, 120)
    assert row is not None and row["name"] == "Achieng" and row["last_paid_at"] is not None

    again = await push(http, biz, phone=phone, amount=30)
    second = await wait_final(http, biz, again["id"])
    assert second["status"] == "success"
    assert second["receipt"] != final["receipt"]
    assert book(await customer(http, biz, phone)) == (2, 150, 2, 150)


async def test_lost_callback_is_resolved_by_the_reconciliation_query(
    biz: Business, http: httpx.AsyncClient
) -> None:
    phone = unique_phone("9999")
    pushed = await push(http, biz, phone=phone, amount=60)
    final = await wait_final(http, biz, pushed["id"])
    assert final["status"] == "success"
    assert final["result_code"] == "0"
    assert final["result_desc"] == "Paid (confirmed by M-Pesa status query)"
    assert final["receipt"] is None  # STK query does not carry the receipt
    assert await sim_callbacks(http, pushed["checkout_request_id"]) == []
    assert book(await customer(http, biz, phone)) == (1, 60, 1, 60)


async def test_duplicate_callback_delivery_is_counted_once(
    biz: Business, http: httpx.AsyncClient, inbox: Inbox
) -> None:
    phone = unique_phone("9998")
    pushed = await push(http, biz, phone=phone, amount=90)
    cid = pushed["checkout_request_id"]
    final = await wait_final(http, biz, pushed["id"])
    assert (final["status"], final["result_code"]) == ("success", "0")
    assert RECEIPT.fullmatch(final["receipt"])

    async def both_delivered() -> list[dict[str, Any]] | None:
        done = [c for c in await sim_callbacks(http, cid) if c["status_code"] or c["error"]]
        return done if len(done) == 2 else None

    delivered = await wait_for(both_delivered, what="both deliveries of the 9998 callback")
    assert [c["status_code"] for c in delivered] == [200, 200]
    assert delivered[0]["body"] == delivered[1]["body"]
    rows = await inbox.wait_processed(count=2, checkout_request_id=cid)
    assert sorted(r["outcome"] for r in rows) == ["applied", "duplicate"]

    after = (await http.get(f"/api/transactions/{pushed['id']}", headers=biz.headers)).json()
    assert (after["status"], after["receipt"]) == ("success", final["receipt"])
    assert book(await customer(http, biz, phone)) == (1, 90, 1, 90)


class TestChannelKinds:
    async def test_till_sends_buy_goods_to_the_till_number(
        self, api_business: NewBusiness, http: httpx.AsyncClient
    ) -> None:
        till = await api_business(
            name="Kibanda Till",
            kind="till",
            business_short_code=SANDBOX_SHORT_CODE,
            till_number="5551234",
        )
        settings = (await http.get("/api/settings", headers=till.headers)).json()
        assert (settings["channel"]["kind"], settings["channel"]["till_number"]) == ("till", "5551234")
        phone = unique_phone("3131")
        pushed = await push(http, till, phone=phone, amount=40)
        assert (await wait_final(http, till, pushed["id"]))["status"] == "success"

        [sent] = await sim_requests(http, phone=msisdn(phone))
        assert sent["TransactionType"] == "CustomerBuyGoodsOnline"
        assert str(sent["BusinessShortCode"]) == "174379"
        assert str(sent["PartyB"]) == "5551234"
        assert str(sent["PartyA"]) == msisdn(phone)
        assert sent["Amount"] == 40
        assert sent["CallBackURL"] == till.callback_url
        # The onboarding push went the same way.
        [verification] = await sim_requests(http, phone=till.phone)
        assert verification["TransactionType"] == "CustomerBuyGoodsOnline"
        assert str(verification["PartyB"]) == "5551234"

    async def test_paybill_sends_paybill_online_to_its_short_code(
        self, biz: Business, http: httpx.AsyncClient
    ) -> None:
        phone = unique_phone("3232")
        pushed = await push(http, biz, phone=phone, amount=45, reference="INV-42")
        assert (await wait_final(http, biz, pushed["id"]))["status"] == "success"
        [sent] = await sim_requests(http, phone=msisdn(phone))
        assert sent["TransactionType"] == "CustomerPayBillOnline"
        assert str(sent["BusinessShortCode"]) == SANDBOX_SHORT_CODE
        assert str(sent["PartyB"]) == str(sent["BusinessShortCode"])
        assert sent["AccountReference"] == "INV-42"
        assert sent["CallBackURL"] == biz.callback_url
